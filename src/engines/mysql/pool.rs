//! The snapshot connections of a dump, handed to tables (and key ranges) strictly in
//! consumption order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mysql_async::Conn;
use tokio::sync::mpsc;

use super::catalog::TableInfo;
use super::connect::{one_line, query_err};
use super::ranges::{plan_ranges, split_table};
use super::read::{read_table, PartSender, ReadError};
use crate::engines::DbError;
use crate::snapshot::manifest::TableEntry;

pub(super) struct TableJob {
    pub(super) db: String,
    pub(super) info: TableInfo,
    pub(super) tx: PartSender,
}

pub(super) type Results = Arc<Mutex<BTreeMap<String, BTreeMap<String, TableEntry>>>>;

/// The snapshot connections not in use, handed out one at a time in consumption order.
pub(super) struct Pool {
    /// Connections that exist: free, or in use and to be given back.
    pub(super) alive: usize,
    pub(super) back_tx: mpsc::UnboundedSender<Option<Conn>>,
    pub(super) back_rx: mpsc::UnboundedReceiver<Option<Conn>>,
}

impl Pool {
    /// The next free connection, waiting for one to be given back; `None` once none is left.
    pub(super) async fn acquire(&mut self) -> Option<Conn> {
        while self.alive > 0 {
            match self.back_rx.recv().await {
                Some(Some(c)) => return Some(c),
                Some(None) => self.alive -= 1,
                None => self.alive = 0,
            }
        }
        None
    }
}

/// A connection in use by a range reader. It goes back to the pool as soon as the range is
/// read (before its last rows are forwarded), or as lost when the reader fails or panics.
pub(super) struct Lease {
    pub(super) back: mpsc::UnboundedSender<Option<Conn>>,
    pub(super) returned: bool,
}

impl Lease {
    pub(super) fn give_back(&mut self, c: Option<Conn>) {
        if !self.returned {
            self.returned = true;
            let _ = self.back.send(c);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.give_back(None);
    }
}

pub(super) fn no_connection_left(job: &TableJob) -> DbError {
    DbError::Query {
        what: "dump".into(),
        database: job.db.clone(),
        table: Some(job.info.name.clone()),
        detail: "no snapshot connection left after an earlier table failed".into(),
    }
}

/// Starts tables in consumption order, each on the next free snapshot connection, so the
/// earliest unfinished table always has one. A connection that failed is not reused (its
/// snapshot or stream is gone); when none is left, the remaining tables get an error.
///
/// A large table with an integer primary key is split into key ranges (see [`plan_ranges`]),
/// each read on its own connection into a bounded channel, and forwarded in order as one
/// stream. Why this cannot deadlock: connections are handed out strictly in consumption order
/// (table by table, and range by range within a table), and a connection is only ever waited
/// for by the scheduler, on behalf of the next item in that order. So every connection in use
/// belongs to an item before the one the scheduler waits for. The earliest unfinished item
/// (the consumer's table, and within it the range its forwarder is reading) therefore holds a
/// connection, or is the item being served when every earlier item has given its connection
/// back. Each blocked reader waits only on its own bounded channel, which its forwarder
/// drains once the earlier ranges are done, and the forwarder waits only on the consumer,
/// which is on that table: the earliest item always progresses, finishes, and frees its
/// connection. Later ranges may run ahead but only as far as their bounded channels allow.
pub(super) async fn schedule(
    conns: Vec<Conn>,
    jobs: Vec<TableJob>,
    part_bytes: usize,
    results: Results,
) {
    let (back_tx, back_rx) = mpsc::unbounded_channel::<Option<Conn>>();
    let mut pool = Pool {
        alive: conns.len(),
        back_tx,
        back_rx,
    };
    for c in conns {
        let _ = pool.back_tx.send(Some(c));
    }
    for job in jobs {
        if job.tx.is_closed() {
            continue;
        }
        let Some(mut conn) = pool.acquire().await else {
            let e = no_connection_left(&job);
            let _ = job.tx.send(Err(e)).await;
            continue;
        };
        let bounds = match plan_ranges(&mut conn, &job, part_bytes, pool.alive).await {
            Ok(bounds) => bounds,
            Err(e) => {
                let e = query_err("planning key ranges", &job.db, Some(&job.info.name), &e);
                let _ = job.tx.send(Err(e)).await;
                pool.alive -= 1;
                continue;
            }
        };
        if bounds.is_empty() {
            spawn_table(conn, job, part_bytes, results.clone(), pool.back_tx.clone());
        } else {
            split_table(conn, &mut pool, job, &bounds, part_bytes, results.clone()).await;
        }
    }
    // Close the snapshots once every table is done.
    let Pool {
        back_tx,
        mut back_rx,
        ..
    } = pool;
    drop(back_tx);
    while let Some(conn) = back_rx.recv().await {
        if let Some(c) = conn {
            let _ = c.disconnect().await;
        }
    }
}

/// Dumps one table as one stream on `conn`, which goes back to the pool when it is done.
pub(super) fn spawn_table(
    conn: Conn,
    job: TableJob,
    part_bytes: usize,
    results: Results,
    back: mpsc::UnboundedSender<Option<Conn>>,
) {
    // A panicking worker must not look like a finished (short) table: this guard keeps the
    // channel open until it has reported the failure.
    let guard = job.tx.clone();
    let (db, name) = (job.db.clone(), job.info.name.clone());
    let worker = tokio::spawn(dump_table(conn, job, part_bytes, results));
    tokio::spawn(async move {
        let conn = match worker.await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = guard.send(Err(worker_failed(&db, &name, &e))).await;
                None
            }
        };
        drop(guard);
        let _ = back.send(conn);
    });
}

pub(super) fn worker_failed(db: &str, table: &str, e: &tokio::task::JoinError) -> DbError {
    DbError::Query {
        what: "dump".into(),
        database: db.to_string(),
        table: Some(table.to_string()),
        detail: one_line(&format!("worker failed: {e}")),
    }
}

/// Records a finished table's rows and checksum. Called before the table's channel closes
/// (the job holds its sender), so the consumer finds the result when the channel ends.
pub(super) fn record(results: &Results, job: &TableJob, entry: TableEntry) {
    results
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(job.db.clone())
        .or_default()
        .insert(job.info.name.clone(), entry);
}

/// Dumps one table; returns the connection if it is still usable.
pub(super) async fn dump_table(
    mut c: Conn,
    job: TableJob,
    part_bytes: usize,
    results: Results,
) -> Option<Conn> {
    match read_table(&mut c, &job.db, &job.info, part_bytes, Some(&job.tx)).await {
        Ok(entry) => {
            tracing::debug!(database = %job.db, table = %job.info.name, rows = entry.rows, "table dumped");
            record(&results, &job, entry);
            Some(c)
        }
        Err(ReadError::Closed) => None,
        Err(ReadError::Sql(e)) => {
            let e = query_err("dump", &job.db, Some(&job.info.name), &e);
            let _ = job.tx.send(Err(e)).await;
            None
        }
    }
}
