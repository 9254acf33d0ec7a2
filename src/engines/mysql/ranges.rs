//! Large tables split into integer key ranges, read in parallel and forwarded in key order as
//! one stream.

use mysql_async::prelude::*;
use mysql_async::{Conn, Row};
use tokio::sync::mpsc;

use super::connect::{cell, qi, query_err};
use super::encode::encode_row;
use super::pool::{record, worker_failed, Lease, Pool, Results, TableJob};
use super::read::{PartSink, ReadError, INITIAL_PART_CAPACITY};
use crate::engines::{DbError, RowChecksum};
use crate::snapshot::manifest::TableEntry;

/// A table is split once it is estimated at this many parts or more.
pub(super) const SPLIT_MIN_PARTS: u64 = 4;
/// Range readers hand rows to their table's forwarder in chunks of about this size.
pub(super) const RANGE_CHUNK: usize = 1024 * 1024;

/// The inner boundaries of the key ranges of a table, in increasing order, or none to read it
/// as one stream. A table splits when it has an integer primary key, more than one connection
/// exists, and its estimated size is at least [`SPLIT_MIN_PARTS`] parts: into one range per
/// that many parts, at most one per connection. The boundaries divide `MIN..=MAX` of the key,
/// read inside the snapshot, evenly; the first range has no lower and the last no upper
/// bound, so the ranges cover every row whatever the key's distribution.
pub(super) async fn plan_ranges(
    c: &mut Conn,
    job: &TableJob,
    part_bytes: usize,
    connections: usize,
) -> Result<Vec<i128>, mysql_async::Error> {
    let Some(key) = &job.info.split_key else {
        return Ok(Vec::new());
    };
    let threshold = (part_bytes as u64).saturating_mul(SPLIT_MIN_PARTS).max(1);
    let wanted = usize::try_from(job.info.data_length / threshold).unwrap_or(usize::MAX);
    let k = wanted.min(connections);
    if k < 2 {
        return Ok(Vec::new());
    }
    let row: Option<Row> = c
        .query_first(format!(
            "SELECT MIN({k}), MAX({k}) FROM {}.{}",
            qi(&job.db),
            qi(&job.info.name),
            k = qi(key)
        ))
        .await?;
    let bound = |i: usize| {
        row.as_ref()
            .and_then(|r| cell(r, i))
            .and_then(|v| v.parse::<i128>().ok())
    };
    let (Some(lo), Some(hi)) = (bound(0), bound(1)) else {
        return Ok(Vec::new());
    };
    let span = hi - lo + 1;
    let k = (k as i128).min(span);
    let mut bounds: Vec<i128> = (1..k).map(|i| lo + span * i / k).collect();
    bounds.dedup();
    tracing::debug!(database = %job.db, table = %job.info.name, ranges = bounds.len() + 1, "table split into key ranges");
    Ok(bounds)
}

/// What a range reader sends its forwarder.
pub(super) enum RangeMsg {
    /// Whole encoded rows, and the length of each.
    Rows(Vec<u8>, Vec<usize>),
    /// The range is complete.
    Done,
    Failed(mysql_async::Error),
}

/// Dumps a table as key ranges: the first on `conn`, the others on connections taken from the
/// pool in order. Each range is read into its own bounded channel; one forwarder concatenates
/// them in key order into the table's parts.
pub(super) async fn split_table(
    conn: Conn,
    pool: &mut Pool,
    job: TableJob,
    bounds: &[i128],
    part_bytes: usize,
    results: Results,
) {
    let key = qi(job.info.split_key.as_deref().unwrap_or_default());
    let cols: Vec<String> = job.info.columns.iter().map(|c| qi(&c.name)).collect();
    let base = format!(
        "SELECT {} FROM {}.{}",
        cols.join(", "),
        qi(&job.db),
        qi(&job.info.name)
    );
    let mut sqls = Vec::with_capacity(bounds.len() + 1);
    for i in 0..=bounds.len() {
        let mut cond = Vec::new();
        if i > 0 {
            cond.push(format!("{key} >= {}", bounds[i - 1]));
        }
        if let Some(hi) = bounds.get(i) {
            cond.push(format!("{key} < {hi}"));
        }
        sqls.push(format!(
            "{base} WHERE {} ORDER BY {key}",
            cond.join(" AND ")
        ));
    }
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in &sqls {
        let (tx, rx) = mpsc::channel(1);
        senders.push(tx);
        receivers.push(rx);
    }

    let guard = job.tx.clone();
    let (db, name) = (job.db.clone(), job.info.name.clone());
    let forwarder = tokio::spawn(forward_ranges(job, receivers, part_bytes, results));
    tokio::spawn(async move {
        if let Err(e) = forwarder.await {
            let _ = guard.send(Err(worker_failed(&db, &name, &e))).await;
        }
    });

    let mut first = Some(conn);
    for (sql, tx) in sqls.into_iter().zip(senders) {
        let conn = match first.take() {
            Some(c) => Some(c),
            // The forwarder has stopped (failure or consumer gone): read no further ranges.
            None if tx.is_closed() => None,
            None => pool.acquire().await,
        };
        let Some(conn) = conn else {
            let e = mysql_async::Error::Other("no snapshot connection left".into());
            let _ = tx.try_send(RangeMsg::Failed(e));
            continue;
        };
        let lease = Lease {
            back: pool.back_tx.clone(),
            returned: false,
        };
        tokio::spawn(read_range(conn, sql, tx, lease));
    }
}

/// Reads one key range into its channel, in chunks of whole rows.
pub(super) async fn read_range(
    mut c: Conn,
    sql: String,
    tx: mpsc::Sender<RangeMsg>,
    mut lease: Lease,
) {
    let mut last = (Vec::new(), Vec::new());
    match read_range_rows(&mut c, &sql, &tx, &mut last).await {
        Ok(()) => {
            // The range is read: the connection is free before its last rows are forwarded.
            lease.give_back(Some(c));
            let (bytes, lens) = last;
            if !lens.is_empty() && tx.send(RangeMsg::Rows(bytes, lens)).await.is_err() {
                return;
            }
            let _ = tx.send(RangeMsg::Done).await;
        }
        // The forwarder stopped; the result set is half read, so the connection is not reused.
        Err(ReadError::Closed) => lease.give_back(None),
        Err(ReadError::Sql(e)) => {
            lease.give_back(None);
            let _ = tx.send(RangeMsg::Failed(e)).await;
        }
    }
}

pub(super) async fn read_range_rows(
    c: &mut Conn,
    sql: &str,
    tx: &mpsc::Sender<RangeMsg>,
    last: &mut (Vec<u8>, Vec<usize>),
) -> Result<(), ReadError> {
    let mut result = c.exec_iter(sql, ()).await.map_err(ReadError::Sql)?;
    let mut bytes = Vec::with_capacity(RANGE_CHUNK);
    let mut lens = Vec::new();
    while let Some(row) = result.next().await.map_err(ReadError::Sql)? {
        let before = bytes.len();
        encode_row(&mut bytes, row);
        lens.push(bytes.len() - before);
        if bytes.len() >= RANGE_CHUNK {
            let full = std::mem::replace(&mut bytes, Vec::with_capacity(RANGE_CHUNK));
            tx.send(RangeMsg::Rows(full, std::mem::take(&mut lens)))
                .await
                .map_err(|_| ReadError::Closed)?;
        }
    }
    drop(result);
    *last = (bytes, lens);
    Ok(())
}

/// Concatenates a table's ranges in order and cuts the rows into parts exactly as
/// [`read_table`] does, so the files, row count and checksum are those of one stream.
pub(super) async fn forward_ranges(
    job: TableJob,
    ranges: Vec<mpsc::Receiver<RangeMsg>>,
    part_bytes: usize,
    results: Results,
) {
    let fail = |detail: String| DbError::Query {
        what: "dump".into(),
        database: job.db.clone(),
        table: Some(job.info.name.clone()),
        detail,
    };
    match forward_rows(&job, ranges, part_bytes).await {
        Ok(entry) => {
            tracing::debug!(database = %job.db, table = %job.info.name, rows = entry.rows, "table dumped");
            record(&results, &job, entry);
        }
        Err(None) => {}
        Err(Some(Ok(e))) => {
            let _ = job
                .tx
                .send(Err(query_err("dump", &job.db, Some(&job.info.name), &e)))
                .await;
        }
        Err(Some(Err(detail))) => {
            let _ = job.tx.send(Err(fail(detail))).await;
        }
    }
}

/// `Err(None)`: the consumer went away; `Err(Some(..))`: a range failed, with the server's
/// error or a description.
pub(super) async fn forward_rows(
    job: &TableJob,
    ranges: Vec<mpsc::Receiver<RangeMsg>>,
    part_bytes: usize,
) -> Result<TableEntry, Option<Result<mysql_async::Error, String>>> {
    let part_bytes = part_bytes.max(1);
    let closed = |_| None;
    let mut sink = PartSink {
        table: &job.info.name,
        tx: Some(&job.tx),
        sum: RowChecksum::default(),
        parts: 0,
    };
    let mut next_capacity = part_bytes.min(INITIAL_PART_CAPACITY);
    let mut part: Vec<u8> = Vec::with_capacity(next_capacity);
    for (n, mut rx) in ranges.into_iter().enumerate() {
        loop {
            let (bytes, lens) = match rx.recv().await {
                Some(RangeMsg::Rows(bytes, lens)) => (bytes, lens),
                Some(RangeMsg::Done) => break,
                Some(RangeMsg::Failed(e)) => return Err(Some(Ok(e))),
                None => {
                    return Err(Some(Err(format!(
                        "key range {} of the table ended without completing",
                        n + 1
                    ))))
                }
            };
            let mut start = 0;
            for len in lens {
                let row = &bytes[start..start + len];
                start += len;
                sink.sum.add_rows(1);
                if !part.is_empty() && part.len() + row.len() > part_bytes {
                    next_capacity = part_bytes;
                    let full = std::mem::replace(&mut part, Vec::with_capacity(next_capacity));
                    sink.emit(full).await.map_err(closed)?;
                }
                if part.is_empty() && row.len() >= part_bytes {
                    sink.emit(row.to_vec()).await.map_err(closed)?;
                    continue;
                }
                let need = part.len() + row.len();
                if need > part.capacity() {
                    let target = (part.capacity() * 2).clamp(need, part_bytes.max(need));
                    part.reserve_exact(target - part.len());
                }
                part.extend_from_slice(row);
            }
        }
    }
    if !part.is_empty() || sink.parts == 0 {
        sink.emit(part).await.map_err(closed)?;
    }
    let rows = sink.sum.rows;
    Ok(TableEntry {
        name: job.info.name.clone(),
        rows,
        checksum: sink.sum.finish(),
    })
}
