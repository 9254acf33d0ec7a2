//! The dump's scheduling: per database a coordinator holds the exported snapshot and the table
//! locks while worker connections stream tables strictly in consumption order, with bounded
//! memory and no deadlock (see [`dispatch`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Semaphore};
use tokio_postgres::Client;

use super::catalog::capture_schema;
use super::connect::{query_err, Lease, Server};
use super::copy::{stream_table, TablePlan};
use super::quote::literal;
use super::ranges::{max_ranges, run_split_table};
use super::SESSION_SETTINGS;
use crate::engines::{
    Connection, DatabaseDump, DbError, DumpFile, DumpOptions, DumpSession, TableStream,
};
use crate::snapshot::manifest::TableEntry;

/// How long the coordinator waits for table locks before giving up (a running migration).
const LOCK_TIMEOUT: &str = "30s";
/// Parts waiting in a table's channel. With the part being filled and the part the consumer
/// holds, memory stays near `jobs × 3 × part_bytes`.
const TABLE_CHANNEL_CAPACITY: usize = 1;

pub(super) type Results = Arc<Mutex<BTreeMap<String, BTreeMap<String, TableEntry>>>>;
pub(super) type PartSender = mpsc::Sender<Result<DumpFile, DbError>>;

/// Starts a dump of the server at `conn`: returns once every database's schema is captured and
/// its workers hold the snapshot; table data then streams through [`DumpSession`]'s channels
/// from tasks on the current runtime.
pub async fn dump(conn: &Connection, opts: &DumpOptions) -> Result<DumpSession, DbError> {
    let jobs = opts.jobs.max(1);
    let part_bytes = opts.part_bytes.max(1);
    let server = Server::new(conn)?;
    let (maint, _) = server.connect_maintenance().await?;
    let version = maint
        .query_one(
            "SELECT current_setting('server_version'), \
             current_setting('server_version_num')::int4",
            &[],
        )
        .await
        .map_err(|e| query_err("read server version", &server.maintenance, None, &e))?;
    let server_version: String = version.get(0);
    let version_num: i32 = version.get(1);
    let databases = resolve_databases(&server, &maint, opts).await?;
    drop(maint);

    let results: Results = Arc::default();
    let mut session = DumpSession {
        server_version,
        consistency: BTreeMap::new(),
        warnings: Vec::new(),
        databases: Vec::new(),
        results: results.clone(),
    };
    let mut work = Vec::new();
    for db in &databases {
        work.push(start_database(&server, db, opts, version_num, &mut session).await?);
    }
    tokio::spawn(dispatch(work, jobs, part_bytes, results));
    Ok(session)
}

/// Captures one database's schema under its coordinator's snapshot, locks its tables, opens
/// its workers and adds its files and table channels to `session`.
async fn start_database(
    server: &Server,
    db: &str,
    opts: &DumpOptions,
    version_num: i32,
    session: &mut DumpSession,
) -> Result<DbWork, DbError> {
    let (jobs, part_bytes) = (opts.jobs.max(1), opts.part_bytes.max(1));
    let (coordinator, snapshot) = open_coordinator(server, db, session).await?;
    let capture = capture_schema(&coordinator, db, opts, version_num).await?;
    session.warnings.extend(capture.warnings);
    if !capture.tables.is_empty() {
        let list: Vec<&str> = capture.tables.iter().map(|t| t.qname.as_str()).collect();
        coordinator
            .batch_execute(&format!(
                "LOCK TABLE {} IN ACCESS SHARE MODE",
                list.join(", ")
            ))
            .await
            .map_err(|e| query_err("lock tables", db, None, &e))?;
    }

    let ranges = max_ranges(&coordinator, db, &capture.tables, jobs, part_bytes).await?;
    // Enough workers for every table to run at once, each large one in all its ranges.
    let n_workers = jobs.min(ranges.iter().sum());
    let workers = open_workers(server, db, &snapshot, n_workers).await?;

    let mut streams = Vec::new();
    let mut tables = Vec::new();
    for (plan, max_ranges) in capture.tables.into_iter().zip(ranges) {
        let (tx, rx) = mpsc::channel(TABLE_CHANNEL_CAPACITY);
        streams.push(TableStream {
            name: plan.name.clone(),
            parts: rx,
        });
        tables.push((plan, tx, max_ranges));
    }
    session.databases.push(DatabaseDump {
        database: db.to_string(),
        files: vec![
            DumpFile {
                path: "schema.sql".into(),
                bytes: capture.schema_sql.into_bytes(),
            },
            DumpFile {
                path: "post.sql".into(),
                bytes: capture.post_sql.into_bytes(),
            },
        ],
        tables: streams,
    });
    Ok(DbWork {
        database: db.to_string(),
        coordinator: Arc::new(coordinator),
        workers,
        tables,
    })
}

/// Opens the database's coordinator: a read-only snapshot transaction whose snapshot is
/// exported for the workers, recorded in the session's consistency map.
async fn open_coordinator(
    server: &Server,
    db: &str,
    session: &mut DumpSession,
) -> Result<(Client, String), DbError> {
    let coordinator = server.connect(db).await?;
    coordinator
        .batch_execute(&format!(
            "{SESSION_SETTINGS}; SET lock_timeout = '{LOCK_TIMEOUT}'; \
             BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        ))
        .await
        .map_err(|e| query_err("start snapshot transaction", db, None, &e))?;
    // First statement of the transaction: the exported snapshot is the one all reads use.
    let row = coordinator
        .query_one(
            "SELECT pg_export_snapshot(), (CASE WHEN pg_is_in_recovery() \
             THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text",
            &[],
        )
        .await
        .map_err(|e| query_err("export snapshot", db, None, &e))?;
    let snapshot: String = row.get(0);
    let lsn: Option<String> = row.get(1);
    if session.consistency.is_empty() {
        session
            .consistency
            .insert("snapshot".into(), snapshot.clone());
        if let Some(lsn) = &lsn {
            session.consistency.insert("lsn".into(), lsn.clone());
        }
    }
    session
        .consistency
        .insert(format!("snapshot.{db}"), snapshot.clone());
    Ok((coordinator, snapshot))
}

/// `n` worker connections to `db`, each in a transaction on the coordinator's `snapshot`.
async fn open_workers(
    server: &Server,
    db: &str,
    snapshot: &str,
    n: usize,
) -> Result<Vec<Client>, DbError> {
    let start = format!(
        "{SESSION_SETTINGS}; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
         SET TRANSACTION SNAPSHOT {}",
        literal(snapshot)
    );
    futures::future::try_join_all((0..n).map(|_| async {
        let client = server.connect(db).await?;
        client
            .batch_execute(&start)
            .await
            .map_err(|e| query_err("import snapshot", db, None, &e))?;
        Ok::<_, DbError>(client)
    }))
    .await
}

/// The databases to dump, checked against `pg_database`.
async fn resolve_databases(
    server: &Server,
    maint: &Client,
    opts: &DumpOptions,
) -> Result<Vec<String>, DbError> {
    let what = "list databases";
    if opts.databases.is_empty() {
        let rows = maint
            .query(
                "SELECT datname::text FROM pg_database WHERE NOT datistemplate AND datallowconn \
                 AND datname <> 'postgres' ORDER BY datname",
                &[],
            )
            .await
            .map_err(|e| query_err(what, &server.maintenance, None, &e))?;
        return Ok(rows.iter().map(|r| r.get(0)).collect());
    }
    let rows = maint
        .query("SELECT datname::text FROM pg_database", &[])
        .await
        .map_err(|e| query_err(what, &server.maintenance, None, &e))?;
    let existing: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    let mut out: Vec<String> = Vec::new();
    for db in &opts.databases {
        if !existing.contains(db) {
            return Err(DbError::NoDatabase {
                source_name: server.source.clone(),
                database: db.clone(),
            });
        }
        if !out.contains(db) {
            out.push(db.clone());
        }
    }
    Ok(out)
}

/// One database's share of a running dump.
struct DbWork {
    database: String,
    /// Holds the exported snapshot and the table locks until the last table is done.
    coordinator: Arc<Client>,
    workers: Vec<Client>,
    /// In consumption order, with the most key ranges each may be read in.
    tables: Vec<(TablePlan, PartSender, usize)>,
}

/// Starts tables strictly in consumption order, each with one of `jobs` permits and one worker
/// connection of its database. A permit is released only once the consumer has taken the
/// table's last part, so the earliest unfinished table always holds one (no deadlock) and at
/// most `jobs` tables buffer parts (bounded memory).
///
/// A large table with an integer key also takes, without waiting (`try_*`), as many more
/// permit-and-worker pairs as are free right now (up to its range count), and is read in that
/// many key ranges at once ([`run_split_table`]). This cannot deadlock: the dispatcher only
/// ever *waits* for the first permit and worker of the next table, exactly as before, and
/// everything that holds a permit or a worker belongs to a table started earlier, which already
/// has all it needs to finish once the consumer reaches it — a range reader that runs ahead
/// only waits on its own bounded channel, which its table's forwarder drains in range order as
/// the consumer takes that table's parts. A later table or range never holds anything an
/// earlier one still needs, because the earlier one got all its resources when it started.
/// An extra worker is returned before its permit, so "a worker in use implies a permit held"
/// still holds and, with `min(jobs, Σ ranges)` workers, a table holding a permit always finds
/// a worker. Memory stays bounded: every range reader holds a permit until its last chunk is
/// taken, so at most `jobs` readers buffer at once.
async fn dispatch(work: Vec<DbWork>, jobs: usize, part_bytes: usize, results: Results) {
    let permits = Arc::new(Semaphore::new(jobs));
    for db in work {
        let DbWork {
            database,
            coordinator,
            workers,
            tables,
        } = db;
        let (pool_tx, mut pool_rx) = mpsc::channel(workers.len().max(1));
        for w in workers {
            // Capacity equals the number of workers: cannot fail.
            let _ = pool_tx.try_send(w);
        }
        for (plan, tx, max_ranges) in tables {
            let permit = permits.clone().acquire_owned().await;
            // A free worker exists: at most `jobs` tables run, this database has
            // min(jobs, tables) workers, and a lease always returns its worker.
            let client = pool_rx.recv().await;
            let (Ok(permit), Some(client)) = (permit, client) else {
                let _ = tx
                    .send(Err(DbError::Query {
                        what: "schedule table dump".into(),
                        database: database.clone(),
                        table: Some(plan.name.clone()),
                        detail: "no worker connection available".into(),
                    }))
                    .await;
                continue;
            };
            let lease = Lease {
                client: Some(client),
                pool: pool_tx.clone(),
            };
            // Extra readers for a large table: only what is free now, never waiting for more.
            let mut extra = Vec::new();
            while extra.len() + 1 < max_ranges {
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break;
                };
                let Ok(client) = pool_rx.try_recv() else {
                    break;
                };
                let lease = Lease {
                    client: Some(client),
                    pool: pool_tx.clone(),
                };
                extra.push((lease, permit));
            }
            let coordinator = coordinator.clone();
            if extra.is_empty() {
                tokio::spawn(run_table(
                    database.clone(),
                    plan,
                    lease,
                    tx,
                    permit,
                    coordinator,
                    part_bytes,
                    results.clone(),
                ));
            } else {
                tokio::spawn(run_split_table(
                    database.clone(),
                    plan,
                    lease,
                    extra,
                    tx,
                    permit,
                    coordinator,
                    part_bytes,
                    results.clone(),
                ));
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_table(
    database: String,
    plan: TablePlan,
    lease: Lease,
    tx: PartSender,
    permit: tokio::sync::OwnedSemaphorePermit,
    coordinator: Arc<Client>,
    part_bytes: usize,
    results: Results,
) {
    let outcome = stream_table(lease.client(), &database, &plan, part_bytes, |part| {
        let tx = tx.clone();
        async move { tx.send(Ok(part)).await.is_ok() }
    })
    .await;
    // The connection is free for the next table of this database.
    drop(lease);
    finish_table(database, &plan, outcome, &tx, &results).await;
    drop(permit);
    drop(coordinator);
}

/// Records a finished table and sends its last part, then waits until the consumer has taken
/// it; or sends the table's error.
pub(super) async fn finish_table(
    database: String,
    plan: &TablePlan,
    outcome: Result<(DumpFile, TableEntry), DbError>,
    tx: &PartSender,
    results: &Results,
) {
    match outcome {
        Ok((last, entry)) => {
            // Recorded before the channel closes, so a consumer that saw the end finds it.
            results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(database)
                .or_default()
                .insert(plan.name.clone(), entry);
            if tx.send(Ok(last)).await.is_ok() {
                // Wait until the consumer has taken the last part before freeing the permit.
                let _ = tx.reserve().await;
            }
        }
        Err(e) => {
            let _ = tx.send(Err(e)).await;
        }
    }
}
