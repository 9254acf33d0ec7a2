//! The PostgreSQL engine: consistent, parallel, streaming dumps and verified restores, with
//! `tokio-postgres` only (no `pg_dump`, no `psql`).
//!
//! **Dump.** Per database a coordinator connection opens a `REPEATABLE READ, READ ONLY`
//! transaction, exports its snapshot (`pg_export_snapshot()`), reads the schema from the
//! catalogs and takes `ACCESS SHARE` locks on the selected tables (so no `DROP`/`ALTER`/
//! `TRUNCATE` can slip in). Up to `jobs` worker connections import that snapshot with
//! `SET TRANSACTION SNAPSHOT` before [`dump`] returns, so every table of a database is read at
//! the same point. Each table is streamed as `COPY (SELECT … ORDER BY <primary key>) TO STDOUT`
//! in text format, cut at row boundaries into parts of at most `part_bytes`, and checksummed
//! with [`RowChecksum`]. A table with a one-column integer primary key larger than a few parts
//! is read in key ranges by several workers at once (as many as are free when it starts); the
//! ranges are concatenated in key order, so its bytes, parts and checksum are those of the
//! single stream (see [`dispatch`] for why this cannot deadlock). The coordinator stays open
//! (holding the locks) until the last table of its database is done.
//!
//! Files per database: `schema.sql` (schemas, extensions, enum/domain/composite types,
//! functions, sequences, tables, views, comments) runs before the data; `post.sql` (primary,
//! unique, exclusion, check and foreign-key constraints, indexes, extended statistics,
//! triggers, materialized-view refreshes and `setval` of every sequence) runs after it. Both are
//! plain SQL that `psql` can run. Objects not captured (aggregates, operators, rules, policies,
//! range types, …) are reported as warnings, never dropped silently. Ownership and privileges
//! are not captured: restored objects belong to the restoring role.
//!
//! **Determinism.** Workers set `extra_float_digits = 3` (shortest exact floats),
//! `DateStyle = ISO`, `IntervalStyle = postgres`, `TimeZone = UTC`, `client_encoding = UTF8`
//! and `bytea_output = hex`, and rows come in primary-key order (tables without one are ordered
//! by their row text in the "C" collation), so an unchanged table dumps to identical bytes.
//!
//! **Restore.** Creates the target database (with the source's encoding and locale when the
//! server has it), runs `schema.sql` in one transaction, loads tables in parallel with
//! `COPY … FROM STDIN`, runs `post.sql` in one transaction, then re-reads every table through the
//! dump's own code path and compares row count and checksum with the manifest.
//!
//! A table's channel ends with an `Err` if its connection fails; its entry in
//! `DumpSession::results` is written just before its last part is sent, so a channel that
//! closes without one (the runtime shut down) means the table is incomplete.
//!
//! Connections are plain TCP (`NoTls`). Servers older than PostgreSQL 12 are not supported.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, Semaphore};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, Row};

use super::{
    abandoned, file_stem, part_path, Connection, DatabaseDump, DbError, DumpFile, DumpOptions,
    DumpSession, Fetch, Left, RestoreReport, RestoreRequest, RowChecksum, TableStream,
};
use crate::snapshot::manifest::TableEntry;

const ENGINE: &str = "PostgreSQL";
/// Extension of data parts: PostgreSQL `COPY` text format.
const PART_EXT: &str = "copy";
/// Bounds one connection attempt (TCP connect); the whole handshake gets [`HANDSHAKE_TIMEOUT`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the coordinator waits for table locks before giving up (a running migration).
const LOCK_TIMEOUT: &str = "30s";
/// Parts waiting in a table's channel. With the part being filled and the part the consumer
/// holds, memory stays near `jobs × 3 × part_bytes`.
const TABLE_CHANNEL_CAPACITY: usize = 1;
/// A table with an integer key larger than this many parts is read in key ranges.
const SPLIT_PARTS: usize = 4;
/// Chunks waiting between a key range's reader and its table's forwarder.
const RANGE_CHANNEL_CAPACITY: usize = 1;
/// Alias of the table in the dump query, for the whole-row ordering of tables without a key.
const ROW_ALIAS: &str = "kfguard_row";

/// Session settings of every dump, restore and verify connection: they fix the text form of
/// every value, so the same rows always produce the same bytes.
const SESSION_SETTINGS: &str = "SET extra_float_digits = 3; SET DateStyle = ISO; \
     SET IntervalStyle = postgres; SET TimeZone = 'UTC'; SET client_encoding = 'UTF8'; \
     SET bytea_output = hex; SET standard_conforming_strings = on; SET statement_timeout = 0; \
     SET idle_in_transaction_session_timeout = 0; SET search_path = ''";

/// Preamble of `schema.sql` and `post.sql`; the empty search path matches the dump session,
/// in which every name printed by `pg_get_*def` is schema-qualified.
const FILE_SETTINGS: &str = "SET client_encoding = 'UTF8';\n\
     SET standard_conforming_strings = on;\n\
     SET check_function_bodies = false;\n\
     SET client_min_messages = warning;\n\
     SELECT pg_catalog.set_config('search_path', '', false);\n";

/// Prefix of the `schema.sql` comment line that carries the database's encoding and locale.
const DATABASE_HEADER: &str = "-- kfguard-database: ";

/// Namespaces that hold user objects (`n` is `pg_namespace`).
const USER_NS: &str = "n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'";

type Results = Arc<Mutex<BTreeMap<String, BTreeMap<String, TableEntry>>>>;
type PartSender = mpsc::Sender<Result<DumpFile, DbError>>;

// ------------------------------------------------------------------------------------------
// Dump
// ------------------------------------------------------------------------------------------

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
        let start = format!(
            "{SESSION_SETTINGS}; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
             SET TRANSACTION SNAPSHOT {}",
            literal(&snapshot)
        );
        let workers = futures::future::try_join_all((0..n_workers).map(|_| async {
            let client = server.connect(db).await?;
            client
                .batch_execute(&start)
                .await
                .map_err(|e| query_err("import snapshot", db, None, &e))?;
            Ok::<_, DbError>(client)
        }))
        .await?;

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
            database: db.clone(),
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
        work.push(DbWork {
            database: db.clone(),
            coordinator: Arc::new(coordinator),
            workers,
            tables,
        });
    }
    tokio::spawn(dispatch(work, jobs, part_bytes, results));
    Ok(session)
}

/// How many key ranges each table may be read in, at most: 1, or for a table with an integer
/// key larger than [`SPLIT_PARTS`] parts, one range per `SPLIT_PARTS / 2` parts, up to `jobs`.
/// Sizes (with TOAST) come from `pg_table_size`; the tables are locked already.
async fn max_ranges(
    coordinator: &Client,
    db: &str,
    tables: &[TablePlan],
    jobs: usize,
    part_bytes: usize,
) -> Result<Vec<usize>, DbError> {
    let keyed: Vec<String> = tables
        .iter()
        .filter(|t| t.int_key)
        .map(|t| t.qname.clone())
        .collect();
    let mut sizes = HashMap::new();
    if jobs > 1 && !keyed.is_empty() {
        let rows = coordinator
            .query(
                "SELECT t, pg_catalog.pg_table_size(t::pg_catalog.regclass) \
                 FROM pg_catalog.unnest($1::text[]) AS t",
                &[&keyed],
            )
            .await
            .map_err(|e| query_err("read table sizes", db, None, &e))?;
        for r in rows {
            let size: i64 = r.get(1);
            sizes.insert(r.get::<_, String>(0), usize::try_from(size).unwrap_or(0));
        }
    }
    let per_range = (SPLIT_PARTS / 2).saturating_mul(part_bytes).max(1);
    Ok(tables
        .iter()
        .map(|t| match sizes.get(&t.qname) {
            Some(&size) if size > SPLIT_PARTS.saturating_mul(part_bytes) => {
                (size / per_range).clamp(1, jobs)
            }
            _ => 1,
        })
        .collect())
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

/// A worker connection on loan; it goes back to its pool when dropped, even on error paths.
struct Lease {
    client: Option<Client>,
    pool: mpsc::Sender<Client>,
}

impl Lease {
    fn client(&self) -> &Client {
        // Only `Drop` takes the client.
        self.client
            .as_ref()
            .expect("lease holds its client until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            // The pool has room for all its clients; if it is gone the connection just closes.
            let _ = self.pool.try_send(c);
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
async fn finish_table(
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
                .unwrap_or_else(|e| e.into_inner())
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

/// What a key range's reader hands its table's forwarder.
enum RangeMsg {
    /// `COPY` bytes in order (the range's output ends at a row boundary).
    Chunk(Vec<u8>),
    /// The range is complete; the permit (of an extra reader) is freed once this is taken.
    Done(Option<tokio::sync::OwnedSemaphorePermit>),
    Failed(DbError),
}

/// Reads a large table in key ranges, one per worker: the first on `lease`, one more on each
/// of `extra`. Each range streams into its own bounded channel; the forwarder (this task)
/// takes the ranges in key order, so the bytes, parts and checksum are those of
/// [`run_table`]'s single stream. A range whose reader fails or vanishes fails the table.
#[allow(clippy::too_many_arguments)]
async fn run_split_table(
    database: String,
    plan: TablePlan,
    lease: Lease,
    mut extra: Vec<(Lease, tokio::sync::OwnedSemaphorePermit)>,
    tx: PartSender,
    permit: tokio::sync::OwnedSemaphorePermit,
    coordinator: Arc<Client>,
    part_bytes: usize,
    results: Results,
) {
    let outcome = async {
        let bounds = key_bounds(lease.client(), &database, &plan, extra.len() + 1).await?;
        // Readers not needed (a small key span) go back at once.
        extra.truncate(bounds.len());
        let mut readers = Vec::new();
        let mut lo = None;
        let mut leases =
            std::iter::once((lease, None)).chain(extra.into_iter().map(|(l, p)| (l, Some(p))));
        for i in 0..=bounds.len() {
            let hi = bounds.get(i).copied();
            let Some((lease, permit)) = leases.next() else {
                break;
            };
            let (rtx, rrx) = mpsc::channel(RANGE_CHANNEL_CAPACITY);
            let sql = plan.copy_out_range_sql(lo, hi);
            tokio::spawn(read_range(
                database.clone(),
                plan.name.clone(),
                sql,
                lease,
                permit,
                part_bytes,
                rtx,
            ));
            readers.push(rrx);
            lo = hi;
        }
        let stopped = |detail: &str| DbError::Query {
            what: "COPY TO".into(),
            database: database.clone(),
            table: Some(plan.name.clone()),
            detail: detail.into(),
        };
        let mut cutter = PartCutter::new(&plan.name, part_bytes);
        let mut full = Vec::new();
        for mut rrx in readers {
            loop {
                match rrx.recv().await {
                    Some(RangeMsg::Chunk(chunk)) => {
                        cutter.push(&chunk, &mut full);
                        for part in full.drain(..) {
                            if tx.send(Ok(part)).await.is_err() {
                                return Err(stopped("the snapshot writer stopped reading"));
                            }
                        }
                    }
                    Some(RangeMsg::Done(permit)) => {
                        drop(permit);
                        break;
                    }
                    Some(RangeMsg::Failed(e)) => return Err(e),
                    None => return Err(stopped("a key range reader stopped")),
                }
            }
        }
        cutter.finish().map_err(|detail| stopped(&detail))
    }
    .await;
    finish_table(database, &plan, outcome, &tx, &results).await;
    drop(permit);
    drop(coordinator);
}

/// Up to `ranges - 1` strictly increasing key values inside the table's key span `(min, max]`
/// (read in the snapshot). The first range is open below and the last open above, so the
/// ranges cover every row whatever the boundaries are; these only balance the work. They are
/// taken from the key's histogram in `pg_stats` when `ANALYZE` left one (equal row counts
/// even for sparse keys), else they cut `[min, max]` evenly (fine for dense serial ids).
async fn key_bounds(
    client: &Client,
    db: &str,
    plan: &TablePlan,
    ranges: usize,
) -> Result<Vec<i64>, DbError> {
    let key = plan.pk.first().map_or("", String::as_str);
    let row = client
        .query_one(
            &format!(
                "SELECT min({key})::int8, max({key})::int8 FROM ONLY {}",
                plan.qname
            ),
            &[],
        )
        .await
        .map_err(|e| query_err("read key range", db, Some(&plan.name), &e))?;
    let (Some(min), Some(max)) = (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
    else {
        return Ok(Vec::new());
    };
    // Statistics only steer the balance: ignore them if they cannot be read.
    let histogram: Vec<i64> = client
        .query_opt(
            "SELECT s.histogram_bounds::text::int8[] FROM pg_catalog.pg_stats s \
             WHERE pg_catalog.quote_ident(s.schemaname) || '.' || \
                   pg_catalog.quote_ident(s.tablename) = $1 \
               AND pg_catalog.quote_ident(s.attname) = $2 AND NOT s.inherited",
            &[&plan.qname, &key],
        )
        .await
        .ok()
        .flatten()
        .and_then(|r| r.get::<_, Option<Vec<i64>>>(0))
        .unwrap_or_default();
    let n = ranges.max(1);
    let candidates: Vec<i128> = if histogram.len() > n {
        (1..n)
            .map(|i| i128::from(histogram[i * (histogram.len() - 1) / n]))
            .collect()
    } else {
        let span = i128::from(max) - i128::from(min);
        let n = i128::try_from(n).unwrap_or(1);
        (1..n).map(|i| i128::from(min) + span * i / n).collect()
    };
    let mut bounds: Vec<i64> = Vec::new();
    for b in candidates {
        if let Ok(b) = i64::try_from(b) {
            if b > min && b <= max && bounds.last().is_none_or(|&l| b > l) {
                bounds.push(b);
            }
        }
    }
    Ok(bounds)
}

/// Streams one key range into `out` as chunks of up to `part_bytes`, then `Done`
/// (carrying `permit`, so it is held until the forwarder has taken everything) or `Failed`.
async fn read_range(
    database: String,
    table: String,
    sql: String,
    lease: Lease,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    part_bytes: usize,
    out: mpsc::Sender<RangeMsg>,
) {
    let err = |e: &tokio_postgres::Error| query_err("COPY TO", &database, Some(&table), e);
    let read = async {
        let stream = lease.client().copy_out(&sql).await.map_err(|e| err(&e))?;
        futures::pin_mut!(stream);
        let mut chunk = Vec::new();
        while let Some(data) = stream.next().await {
            let data = data.map_err(|e| err(&e))?;
            if !chunk.is_empty() && chunk.len() + data.len() > part_bytes {
                let full = std::mem::take(&mut chunk);
                if out.send(RangeMsg::Chunk(full)).await.is_err() {
                    // The forwarder is gone (the table failed or was abandoned).
                    return Ok(false);
                }
            }
            if chunk.capacity() == 0 {
                // At most `part_bytes` unless one message is larger: no reallocation.
                chunk.reserve_exact(part_bytes.max(data.len()));
            }
            chunk.extend_from_slice(&data);
        }
        if !chunk.is_empty() && out.send(RangeMsg::Chunk(chunk)).await.is_err() {
            return Ok(false);
        }
        Ok::<_, DbError>(true)
    }
    .await;
    // The connection is free for the next table of this database; the permit is not yet.
    drop(lease);
    let _ = match read {
        Ok(true) => out.send(RangeMsg::Done(permit)).await,
        Ok(false) => Ok(()),
        Err(e) => out.send(RangeMsg::Failed(e)).await,
    };
}

/// How one table is read: shared by the dump and the restore's verification, so both produce
/// the same bytes for the same rows.
#[derive(Debug, Clone)]
struct TablePlan {
    /// Name in files and the manifest: `table`, or `schema.table` outside `public`.
    name: String,
    /// Quoted `schema.table`.
    qname: String,
    /// Quoted stored columns (not generated), in column order.
    columns: Vec<String>,
    /// Quoted primary-key columns, in key order; empty without a primary key.
    pk: Vec<String>,
    /// The primary key is one `int2`/`int4`/`int8` column: the table can be read in key ranges.
    int_key: bool,
}

impl TablePlan {
    fn copy_out_sql(&self) -> String {
        self.copy_out_range_sql(None, None)
    }

    /// `COPY` of the rows with `lo <= key < hi` (a missing bound is open) of a table with an
    /// integer key: the same column list and order as [`Self::copy_out_sql`], so the ranges'
    /// outputs, concatenated in order, are the bytes of the whole table.
    fn copy_out_range_sql(&self, lo: Option<i64>, hi: Option<i64>) -> String {
        let cols = self.columns.join(", ");
        let key = self.pk.first().map_or("", String::as_str);
        let mut filter = Vec::new();
        if let Some(lo) = lo {
            filter.push(format!("{key} >= {lo}"));
        }
        if let Some(hi) = hi {
            filter.push(format!("{key} < {hi}"));
        }
        let filter = if filter.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filter.join(" AND "))
        };
        let order = if self.pk.is_empty() {
            // No key: the row's text in the "C" collation is a total, locale-free order.
            format!("(ROW({ROW_ALIAS}.*)::text) COLLATE \"C\"")
        } else {
            self.pk.join(", ")
        };
        format!(
            "COPY (SELECT {cols} FROM ONLY {} AS {ROW_ALIAS}{filter} ORDER BY {order}) TO STDOUT",
            self.qname
        )
    }

    fn copy_in_sql(&self) -> String {
        if self.columns.is_empty() {
            format!("COPY {} FROM STDIN", self.qname)
        } else {
            format!(
                "COPY {} ({}) FROM STDIN",
                self.qname,
                self.columns.join(", ")
            )
        }
    }
}

/// Name of a table in files and the manifest.
fn table_name(schema: &str, table: &str) -> String {
    if schema == "public" {
        table.to_string()
    } else {
        format!("{schema}.{table}")
    }
}

/// Every ordinary user table of the connected database, by oid.
async fn table_plans(c: &Client, db: &str) -> Result<BTreeMap<u32, TablePlan>, DbError> {
    let sql = format!(
        "SELECT c.oid, n.nspname::text, c.relname::text, \
           quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
           ARRAY(SELECT quote_ident(a.attname) FROM pg_attribute a \
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                   AND a.attgenerated = '' ORDER BY a.attnum), \
           ARRAY(SELECT quote_ident(a.attname) FROM pg_constraint co \
                 CROSS JOIN LATERAL unnest(co.conkey) WITH ORDINALITY AS k(attnum, ord) \
                 JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum \
                 WHERE co.conrelid = c.oid AND co.contype = 'p' ORDER BY k.ord), \
           coalesce((SELECT count(*) = 1 AND bool_and(a.atttypid IN (20, 21, 23)) \
                 FROM pg_constraint co CROSS JOIN LATERAL unnest(co.conkey) AS k(attnum) \
                 JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum \
                 WHERE co.conrelid = c.oid AND co.contype = 'p'), false) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND {USER_NS} AND {}",
        not_extension("pg_class", "c.oid")
    );
    let rows = c
        .query(&sql, &[])
        .await
        .map_err(|e| query_err("list tables", db, None, &e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let schema: String = r.get(1);
            let rel: String = r.get(2);
            (
                r.get(0),
                TablePlan {
                    name: table_name(&schema, &rel),
                    qname: r.get(3),
                    columns: r.get(4),
                    pk: r.get(5),
                    int_key: r.get(6),
                },
            )
        })
        .collect())
}

/// Streams one table through `COPY … TO STDOUT`, handing full parts to `emit` (false: the
/// consumer is gone) and returning the last part with the table's rows and checksum.
async fn stream_table<F, Fut>(
    client: &Client,
    db: &str,
    plan: &TablePlan,
    part_bytes: usize,
    mut emit: F,
) -> Result<(DumpFile, TableEntry), DbError>
where
    F: FnMut(DumpFile) -> Fut,
    Fut: Future<Output = bool>,
{
    let err = |e: &tokio_postgres::Error| query_err("COPY TO", db, Some(&plan.name), e);
    let stream = client
        .copy_out(&plan.copy_out_sql())
        .await
        .map_err(|e| err(&e))?;
    futures::pin_mut!(stream);
    let mut cutter = PartCutter::new(&plan.name, part_bytes);
    let mut full = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| err(&e))?;
        cutter.push(&chunk, &mut full);
        for part in full.drain(..) {
            if !emit(part).await {
                return Err(DbError::Query {
                    what: "COPY TO".into(),
                    database: db.into(),
                    table: Some(plan.name.clone()),
                    detail: "the snapshot writer stopped reading".into(),
                });
            }
        }
    }
    cutter.finish().map_err(|detail| DbError::Query {
        what: "COPY TO".into(),
        database: db.into(),
        table: Some(plan.name.clone()),
        detail,
    })
}

/// Cuts a `COPY` text stream into parts at row boundaries (rows end with `\n`; newlines inside
/// values are escaped), checksumming every byte in order.
struct PartCutter {
    table: String,
    part_bytes: usize,
    part: Vec<u8>,
    /// The start of a row split across chunks.
    pending: Vec<u8>,
    parts: usize,
    sum: RowChecksum,
}

impl PartCutter {
    fn new(table: &str, part_bytes: usize) -> Self {
        Self {
            table: table.to_string(),
            part_bytes: part_bytes.max(1),
            part: Vec::new(),
            pending: Vec::new(),
            parts: 0,
            sum: RowChecksum::default(),
        }
    }

    fn push(&mut self, mut data: &[u8], full: &mut Vec<DumpFile>) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            let (row, rest) = data.split_at(i + 1);
            let len = self.pending.len() + row.len();
            if !self.part.is_empty() && self.part.len() + len > self.part_bytes {
                full.push(self.cut());
            }
            if self.part.capacity() == 0 {
                // Exact capacity: a part never reallocates unless one row exceeds it.
                self.part.reserve_exact(self.part_bytes.max(len));
            }
            self.part.extend_from_slice(&self.pending);
            self.pending.clear();
            self.part.extend_from_slice(row);
            self.sum.add_rows(1);
            data = rest;
        }
        self.pending.extend_from_slice(data);
    }

    fn cut(&mut self) -> DumpFile {
        self.sum.update(&self.part);
        self.parts += 1;
        if self.part.len() < self.part.capacity() / 2 {
            // A small last part should not pin a whole part's worth of memory downstream.
            self.part.shrink_to_fit();
        }
        DumpFile {
            path: part_path(&self.table, self.parts, PART_EXT),
            bytes: std::mem::take(&mut self.part),
        }
    }

    /// The last part (the only, empty one for an empty table) and the table's entry.
    fn finish(mut self) -> Result<(DumpFile, TableEntry), String> {
        if !self.pending.is_empty() {
            return Err(format!(
                "COPY data ended inside a row ({} bytes without a newline)",
                self.pending.len()
            ));
        }
        let last = self.cut();
        let rows = self.sum.rows;
        let entry = TableEntry {
            name: self.table,
            rows,
            checksum: self.sum.finish(),
        };
        Ok((last, entry))
    }
}

// ------------------------------------------------------------------------------------------
// Schema capture
// ------------------------------------------------------------------------------------------

struct Capture {
    schema_sql: String,
    post_sql: String,
    /// Selected tables, sorted by file stem.
    tables: Vec<TablePlan>,
    warnings: Vec<String>,
}

/// A relation of a user schema: table, partitioned or foreign table, view or materialized view.
struct Rel {
    oid: u32,
    kind: String,
    qname: String,
    name: String,
    unlogged: bool,
    is_partition: bool,
    options: Option<String>,
    comment: Option<String>,
    row_security: bool,
    inherits: bool,
    viewdef: Option<String>,
    populated: bool,
}

/// One stored or generated column, for `CREATE TABLE`.
struct Column {
    attnum: i32,
    qname: String,
    type_sql: String,
    not_null: bool,
    identity: String,
    generated: String,
    default: Option<String>,
    collation: String,
    comment: Option<String>,
}

struct Sequence {
    qname: String,
    type_sql: String,
    options: String,
    owner: Option<(u32, i32)>,
    identity: bool,
    last_value: i64,
    is_called: bool,
}

async fn rows(c: &Client, db: &str, what: &str, sql: &str) -> Result<Vec<Row>, DbError> {
    c.query(sql, &[])
        .await
        .map_err(|e| query_err(what, db, None, &e))
}

/// Reads the schema of the connected database inside the snapshot transaction and writes
/// `schema.sql` and `post.sql`.
async fn capture_schema(
    c: &Client,
    db: &str,
    opts: &DumpOptions,
    version_num: i32,
) -> Result<Capture, DbError> {
    let what = "read schema";
    let mut warnings = Vec::new();
    let mut warn = |msg: String| warnings.push(format!("{db}: {msg}"));
    let mut ddl = String::new();
    let mut post = String::new();

    // Header: encoding and locale, so a restore creates a database that sorts the same.
    let info = c
        .query_one(
            "SELECT pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text \
             FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| query_err(what, db, None, &e))?;
    let header = serde_json::json!({
        "encoding": info.get::<_, String>(0),
        "lc_collate": info.get::<_, String>(1),
        "lc_ctype": info.get::<_, String>(2),
    });
    ddl.push_str(&format!(
        "-- kfguard: schema of PostgreSQL database {}, to run before the data; then post.sql.\n\
         -- Ownership and privileges are not included.\n{DATABASE_HEADER}{header}\n{FILE_SETTINGS}",
        ident(db)
    ));
    post.push_str(&format!(
        "-- kfguard: constraints, indexes, triggers and sequence values of PostgreSQL database \
         {}, to run after the data.\n{FILE_SETTINGS}",
        ident(db)
    ));

    // Schemas and extensions.
    let sql = format!(
        "SELECT n.nspname::text, quote_ident(n.nspname) FROM pg_namespace n \
         WHERE {USER_NS} AND {} ORDER BY n.nspname",
        not_extension("pg_namespace", "n.oid")
    );
    let mut section = String::new();
    for r in rows(c, db, what, &sql).await? {
        let name: String = r.get(0);
        if name != "public" {
            section.push_str(&format!(
                "CREATE SCHEMA IF NOT EXISTS {};\n",
                r.get::<_, String>(1)
            ));
        }
    }
    let sql = "SELECT quote_ident(e.extname), n.nspname::text, quote_ident(n.nspname) \
               FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
               WHERE e.extname <> 'plpgsql' ORDER BY e.extname";
    for r in rows(c, db, what, sql).await? {
        let schema: String = r.get(1);
        let with = if schema == "pg_catalog" {
            String::new()
        } else {
            format!(" WITH SCHEMA {}", r.get::<_, String>(2))
        };
        section.push_str(&format!(
            "CREATE EXTENSION IF NOT EXISTS {}{with};\n",
            r.get::<_, String>(0)
        ));
    }
    push_section(&mut ddl, "Schemas and extensions", &section);

    // Types: enums, domains and composite types, in creation (oid) order.
    let collate = |coll: &str, typ: &str| {
        format!(
            "COALESCE((SELECT ' COLLATE ' || quote_ident(cn.nspname) || '.' || \
               quote_ident(co.collname) FROM pg_collation co \
               JOIN pg_namespace cn ON cn.oid = co.collnamespace \
             WHERE co.oid = {coll} AND {coll} <> 0 \
               AND {coll} <> (SELECT ty.typcollation FROM pg_type ty WHERE ty.oid = {typ})), '')"
        )
    };
    let sql = format!(
        "SELECT t.typtype::text, quote_ident(n.nspname) || '.' || quote_ident(t.typname), \
           ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid \
                 ORDER BY e.enumsortorder), \
           format_type(t.typbasetype, t.typtypmod), {}, t.typnotnull, pg_get_expr(t.typdefaultbin, 0), \
           ARRAY(SELECT 'CONSTRAINT ' || quote_ident(co.conname) || ' ' || \
                   pg_get_constraintdef(co.oid) FROM pg_constraint co \
                 WHERE co.contypid = t.oid AND co.contype = 'c' ORDER BY co.conname), \
           ARRAY(SELECT quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod) \
                   || {} FROM pg_attribute a \
                 WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum) \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE {USER_NS} AND {} AND ( \
           t.typtype IN ('e', 'd', 'r') \
           OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c') \
           OR (t.typtype = 'b' AND NOT EXISTS (SELECT 1 FROM pg_type et WHERE et.typarray = t.oid))) \
         ORDER BY t.oid",
        collate("t.typcollation", "t.typbasetype"),
        collate("a.attcollation", "a.atttypid"),
        not_extension("pg_type", "t.oid")
    );
    let mut section = String::new();
    for r in rows(c, db, what, &sql).await? {
        let kind: String = r.get(0);
        let qname: String = r.get(1);
        match kind.as_str() {
            "e" => {
                let labels: Vec<String> = r.get(2);
                let labels: Vec<String> = labels.iter().map(|l| literal(l)).collect();
                section.push_str(&format!(
                    "CREATE TYPE {qname} AS ENUM ({});\n",
                    labels.join(", ")
                ));
            }
            "d" => {
                let mut s = format!(
                    "CREATE DOMAIN {qname} AS {}{}",
                    r.get::<_, String>(3),
                    r.get::<_, String>(4)
                );
                if let Some(default) = r.get::<_, Option<String>>(6) {
                    s.push_str(&format!(" DEFAULT {default}"));
                }
                if r.get::<_, bool>(5) {
                    s.push_str(" NOT NULL");
                }
                for check in r.get::<_, Vec<String>>(7) {
                    s.push_str(&format!(" {check}"));
                }
                section.push_str(&s);
                section.push_str(";\n");
            }
            "c" => {
                let attrs: Vec<String> = r.get(8);
                section.push_str(&format!("CREATE TYPE {qname} AS ({});\n", attrs.join(", ")));
            }
            "r" => warn(format!("range type {qname} not captured")),
            _ => warn(format!("base type {qname} not captured")),
        }
    }
    push_section(&mut ddl, "Types", &section);

    // Functions and procedures. SQL-standard bodies (BEGIN ATOMIC) are checked on creation,
    // so they come after the tables and views they may use.
    let atomic = if version_num >= 140000 {
        "p.prosqlbody IS NOT NULL"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT p.prokind::text, p.oid::regprocedure::text, \
           CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid) END, {atomic} \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE {USER_NS} AND {} ORDER BY p.oid",
        not_extension("pg_proc", "p.oid")
    );
    let mut functions = String::new();
    let mut atomic_functions = String::new();
    for r in rows(c, db, what, &sql).await? {
        let kind: String = r.get(0);
        let signature: String = r.get(1);
        match r.get::<_, Option<String>>(2) {
            Some(def) => {
                let target = if r.get::<_, bool>(3) {
                    &mut atomic_functions
                } else {
                    &mut functions
                };
                target.push_str(def.trim_end());
                target.push_str(";\n\n");
            }
            None if kind == "a" => warn(format!("aggregate {signature} not captured")),
            None => warn(format!("function {signature} not captured")),
        }
    }
    push_section(&mut ddl, "Functions", &functions);

    // Sequences, with the owning column of serial and identity sequences.
    let sql = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
           format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, \
           s.seqcache, s.seqcycle, d.refobjid, d.refobjsubid, d.deptype::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_sequence s ON s.seqrelid = c.oid \
         LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid \
           AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 \
           AND d.deptype IN ('a', 'i') \
         WHERE c.relkind = 'S' AND {USER_NS} AND {} ORDER BY c.oid",
        not_extension("pg_class", "c.oid")
    );
    let mut sequences = Vec::new();
    for r in rows(c, db, what, &sql).await? {
        let qname: String = r.get(0);
        let options = format!(
            "START WITH {} INCREMENT BY {} MINVALUE {} MAXVALUE {} CACHE {}{}",
            r.get::<_, i64>(2),
            r.get::<_, i64>(3),
            r.get::<_, i64>(4),
            r.get::<_, i64>(5),
            r.get::<_, i64>(6),
            if r.get::<_, bool>(7) {
                " CYCLE"
            } else {
                " NO CYCLE"
            }
        );
        // Sequences are not transactional: the value read here is at least the snapshot's.
        let value = c
            .query_one(&format!("SELECT last_value, is_called FROM {qname}"), &[])
            .await
            .map_err(|e| query_err("read sequence", db, None, &e))?;
        let owner = match (r.get::<_, Option<u32>>(8), r.get::<_, Option<i32>>(9)) {
            (Some(rel), Some(att)) => Some((rel, att)),
            _ => None,
        };
        sequences.push(Sequence {
            qname,
            type_sql: r.get(1),
            options,
            owner,
            identity: r.get::<_, Option<String>>(10).as_deref() == Some("i"),
            last_value: value.get(0),
            is_called: value.get(1),
        });
    }

    // Relations.
    let sql = format!(
        "SELECT c.oid, c.relkind::text, n.nspname::text, c.relname::text, \
           quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relpersistence = 'u', \
           c.relispartition, array_to_string(c.reloptions, ', '), \
           obj_description(c.oid, 'pg_class'), c.relrowsecurity, \
           EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid), \
           CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END, c.relispopulated \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND {USER_NS} AND {} ORDER BY c.oid",
        not_extension("pg_class", "c.oid")
    );
    let rels: Vec<Rel> = rows(c, db, what, &sql)
        .await?
        .iter()
        .map(|r| Rel {
            oid: r.get(0),
            kind: r.get(1),
            name: table_name(&r.get::<_, String>(2), &r.get::<_, String>(3)),
            qname: r.get(4),
            unlogged: r.get(5),
            is_partition: r.get(6),
            options: r.get::<_, Option<String>>(7).filter(|o| !o.is_empty()),
            comment: r.get(8),
            row_security: r.get(9),
            inherits: r.get(10),
            viewdef: r.get(11),
            populated: r.get(12),
        })
        .collect();
    let mut plans = table_plans(c, db).await?;
    let mut tables: Vec<&Rel> = Vec::new();
    for rel in &rels {
        match rel.kind.as_str() {
            "r" if opts.selects(&rel.name) => {
                if rel.inherits && !rel.is_partition {
                    warn(format!(
                        "table {} inherits from another table: inheritance not captured, it is \
                         restored as a standalone table",
                        rel.name
                    ));
                }
                if rel.row_security {
                    warn(format!(
                        "row-level security of table {} not captured",
                        rel.name
                    ));
                }
                tables.push(rel);
            }
            "p" if opts.selects(&rel.name) => warn(format!(
                "partitioned table {} not captured; its partitions are backed up as standalone \
                 tables",
                rel.name
            )),
            "f" if opts.selects(&rel.name) => {
                warn(format!("foreign table {} not captured", rel.name))
            }
            _ => {}
        }
    }
    let table_oids: HashSet<u32> = tables.iter().map(|t| t.oid).collect();

    // Columns.
    let sql = format!(
        "SELECT a.attrelid, a.attnum::int4, quote_ident(a.attname), \
           format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity::text, \
           a.attgenerated::text, pg_get_expr(ad.adbin, ad.adrelid), {}, \
           col_description(a.attrelid, a.attnum) \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
         WHERE c.relkind = 'r' AND {USER_NS} AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attrelid, a.attnum",
        collate("a.attcollation", "a.atttypid")
    );
    let mut columns: HashMap<u32, Vec<Column>> = HashMap::new();
    for r in rows(c, db, what, &sql).await? {
        let rel: u32 = r.get(0);
        if !table_oids.contains(&rel) {
            continue;
        }
        columns.entry(rel).or_default().push(Column {
            attnum: r.get(1),
            qname: r.get(2),
            type_sql: r.get(3),
            not_null: r.get(4),
            identity: r.get(5),
            generated: r.get(6),
            default: r.get(7),
            collation: r.get(8),
            comment: r.get(9),
        });
    }

    // Sequences that are not identity columns (those come with their table).
    let mut section = String::new();
    for s in sequences.iter().filter(|s| !s.identity) {
        section.push_str(&format!(
            "CREATE SEQUENCE {} AS {} {};\n",
            s.qname, s.type_sql, s.options
        ));
    }
    push_section(&mut ddl, "Sequences", &section);

    // Tables.
    let mut section = String::new();
    let mut comments = String::new();
    for t in &tables {
        let mut cols = Vec::new();
        for col in columns.get(&t.oid).map(Vec::as_slice).unwrap_or_default() {
            let mut s = format!("    {} {}{}", col.qname, col.type_sql, col.collation);
            if col.generated == "s" {
                if let Some(expr) = &col.default {
                    s.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"));
                }
            } else if !col.identity.is_empty() {
                let seq = sequences
                    .iter()
                    .find(|s| s.identity && s.owner == Some((t.oid, col.attnum)));
                let kind = if col.identity == "a" {
                    "ALWAYS"
                } else {
                    "BY DEFAULT"
                };
                s.push_str(&format!(" GENERATED {kind} AS IDENTITY"));
                if let Some(seq) = seq {
                    s.push_str(&format!(" ({})", seq.options));
                }
            } else if let Some(expr) = &col.default {
                s.push_str(&format!(" DEFAULT {expr}"));
            }
            if col.not_null {
                s.push_str(" NOT NULL");
            }
            cols.push(s);
            if let Some(comment) = &col.comment {
                comments.push_str(&format!(
                    "COMMENT ON COLUMN {}.{} IS {};\n",
                    t.qname,
                    col.qname,
                    literal(comment)
                ));
            }
        }
        section.push_str(&format!(
            "CREATE {}TABLE {} (\n{}\n){};\n\n",
            if t.unlogged { "UNLOGGED " } else { "" },
            t.qname,
            cols.join(",\n"),
            t.options
                .as_ref()
                .map(|o| format!(" WITH ({o})"))
                .unwrap_or_default()
        ));
        if let Some(comment) = &t.comment {
            comments.push_str(&format!(
                "COMMENT ON TABLE {} IS {};\n",
                t.qname,
                literal(comment)
            ));
        }
    }
    for s in sequences.iter().filter(|s| !s.identity) {
        let Some((rel, att)) = s.owner else { continue };
        let Some(col) = columns
            .get(&rel)
            .and_then(|cols| cols.iter().find(|c| c.attnum == att))
        else {
            continue;
        };
        let Some(t) = tables.iter().find(|t| t.oid == rel) else {
            continue;
        };
        section.push_str(&format!(
            "ALTER SEQUENCE {} OWNED BY {}.{};\n",
            s.qname, t.qname, col.qname
        ));
    }
    push_section(&mut ddl, "Tables", &section);

    // Views and materialized views, after what they depend on.
    let deps = rows(
        c,
        db,
        what,
        "SELECT DISTINCT r.ev_class, d.refobjid FROM pg_rewrite r \
         JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid \
           AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class",
    )
    .await?;
    let mut view_deps: HashMap<u32, Vec<u32>> = HashMap::new();
    for r in &deps {
        view_deps.entry(r.get(0)).or_default().push(r.get(1));
    }
    let views: Vec<&Rel> = rels
        .iter()
        .filter(|r| r.kind == "v" || r.kind == "m")
        .collect();
    let by_oid: HashMap<u32, &Rel> = rels.iter().map(|r| (r.oid, r)).collect();
    let ordered = order_views(&views, &view_deps, |oid| match by_oid.get(&oid) {
        None => Dep::Present,
        Some(r) if table_oids.contains(&r.oid) => Dep::Present,
        Some(r) if r.kind == "v" || r.kind == "m" => Dep::View,
        Some(r) => Dep::Missing(format!("table {}", r.name)),
    });
    let mut section = String::new();
    let mut refreshes = String::new();
    let mut view_oids = HashSet::new();
    for v in ordered {
        let (view, missing) = v;
        if let Some(missing) = missing {
            warn(format!(
                "view {} not captured: it depends on {missing}, which is not in the backup",
                view.name
            ));
            continue;
        }
        view_oids.insert(view.oid);
        let def = view.viewdef.as_deref().unwrap_or_default().trim_end();
        let def = def.strip_suffix(';').unwrap_or(def).trim_end();
        let with = view
            .options
            .as_ref()
            .map(|o| format!(" WITH ({o})"))
            .unwrap_or_default();
        if view.kind == "m" {
            section.push_str(&format!(
                "CREATE MATERIALIZED VIEW {}{with} AS\n{def}\nWITH NO DATA;\n\n",
                view.qname
            ));
            if view.populated {
                refreshes.push_str(&format!("REFRESH MATERIALIZED VIEW {};\n", view.qname));
            }
        } else {
            section.push_str(&format!("CREATE VIEW {}{with} AS\n{def};\n\n", view.qname));
        }
        if let Some(comment) = &view.comment {
            let kind = if view.kind == "m" {
                "MATERIALIZED VIEW"
            } else {
                "VIEW"
            };
            comments.push_str(&format!(
                "COMMENT ON {kind} {} IS {};\n",
                view.qname,
                literal(comment)
            ));
        }
    }
    push_section(&mut ddl, "Views", &section);
    push_section(
        &mut ddl,
        "Functions with SQL-standard bodies",
        &atomic_functions,
    );
    push_section(&mut ddl, "Comments", &comments);

    // post.sql: constraints, the foreign keys last.
    let sql = format!(
        "SELECT co.conrelid, co.contype::text, quote_ident(co.conname), \
           pg_get_constraintdef(co.oid), co.confrelid, co.conname::text \
         FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE {USER_NS} AND co.contype IN ('p', 'u', 'x', 'c', 'f')"
    );
    let mut constraints = Vec::new();
    for r in rows(c, db, what, &sql).await? {
        let rel: u32 = r.get(0);
        let Some(t) = tables.iter().find(|t| t.oid == rel) else {
            continue;
        };
        let kind: String = r.get(1);
        let order = match kind.as_str() {
            "p" => 0,
            "u" => 1,
            "x" => 2,
            "c" => 3,
            _ => 4,
        };
        let name: String = r.get(2);
        if kind == "f" && !table_oids.contains(&r.get::<_, u32>(4)) {
            warn(format!(
                "foreign key {name} of table {} not captured: it references a table that is \
                 not in the backup",
                t.name
            ));
            continue;
        }
        constraints.push((
            order,
            t.name.clone(),
            r.get::<_, String>(5),
            format!(
                "ALTER TABLE ONLY {} ADD CONSTRAINT {name} {};\n",
                t.qname,
                r.get::<_, String>(3)
            ),
        ));
    }
    constraints.sort();
    let section: String = constraints.into_iter().map(|c| c.3).collect();
    push_section(&mut post, "Constraints", &section);

    // Indexes that do not back a constraint, on tables and materialized views.
    let sql = format!(
        "SELECT i.indrelid, pg_get_indexdef(i.indexrelid) FROM pg_index i \
         JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace \
         WHERE {USER_NS} AND NOT EXISTS (SELECT 1 FROM pg_constraint co \
           WHERE co.conindid = i.indexrelid AND co.contype IN ('p', 'u', 'x')) \
         ORDER BY i.indrelid, ic.relname"
    );
    let mut section = String::new();
    for r in rows(c, db, what, &sql).await? {
        let rel: u32 = r.get(0);
        if table_oids.contains(&rel) || view_oids.contains(&rel) {
            section.push_str(&format!("{};\n", r.get::<_, String>(1)));
        }
    }
    let sql = format!(
        "SELECT s.stxrelid, pg_get_statisticsobjdef(s.oid) FROM pg_statistic_ext s \
         JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE {USER_NS} ORDER BY s.stxname"
    );
    for r in rows(c, db, what, &sql).await? {
        let rel: u32 = r.get(0);
        if table_oids.contains(&rel) || view_oids.contains(&rel) {
            section.push_str(&format!("{};\n", r.get::<_, String>(1)));
        }
    }
    push_section(&mut post, "Indexes and statistics", &section);

    // Triggers (their functions are in schema.sql), with their enabled state.
    let sql =
        "SELECT t.tgrelid, pg_get_triggerdef(t.oid), t.tgenabled::text, quote_ident(t.tgname) \
               FROM pg_trigger t WHERE NOT t.tgisinternal ORDER BY t.tgrelid, t.tgname";
    let mut section = String::new();
    for r in rows(c, db, what, sql).await? {
        let rel: u32 = r.get(0);
        let Some(target) = by_oid.get(&rel) else {
            continue;
        };
        if !table_oids.contains(&rel) && !view_oids.contains(&rel) {
            continue;
        }
        section.push_str(&format!("{};\n", r.get::<_, String>(1)));
        let state = match r.get::<_, String>(2).as_str() {
            "D" => "DISABLE",
            "R" => "ENABLE REPLICA",
            "A" => "ENABLE ALWAYS",
            _ => continue,
        };
        section.push_str(&format!(
            "ALTER TABLE {} {state} TRIGGER {};\n",
            target.qname,
            r.get::<_, String>(3)
        ));
    }
    push_section(&mut post, "Triggers", &section);
    push_section(&mut post, "Materialized views", &refreshes);

    // Sequence values, now that the data is in.
    let mut section = String::new();
    for s in &sequences {
        let called = if s.is_called { "true" } else { "false" };
        if s.identity {
            let Some((rel, att)) = s.owner else { continue };
            let (Some(t), Some(col)) = (
                tables.iter().find(|t| t.oid == rel),
                columns
                    .get(&rel)
                    .and_then(|cols| cols.iter().find(|c| c.attnum == att)),
            ) else {
                continue;
            };
            // The identity sequence's name is chosen on creation: look it up by column.
            let column = unquote_ident(&col.qname);
            section.push_str(&format!(
                "SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence({}, {}), {}, {called});\n",
                literal(&t.qname),
                literal(&column),
                s.last_value
            ));
        } else {
            section.push_str(&format!(
                "SELECT pg_catalog.setval({}, {}, {called});\n",
                literal(&s.qname),
                s.last_value
            ));
        }
    }
    push_section(&mut post, "Sequence values", &section);

    // Everything else a database can hold that is not captured above.
    for msg in rows(c, db, what, &uncaptured_sql()).await? {
        warn(format!("{} not captured", msg.get::<_, String>(0)));
    }

    // Tables to dump, in consumption order.
    let mut selected: Vec<TablePlan> = Vec::new();
    for t in &tables {
        let Some(plan) = plans.remove(&t.oid) else {
            continue;
        };
        if plan.pk.is_empty() {
            warn(format!(
                "table {} has no primary key: row order is not guaranteed stable",
                plan.name
            ));
        }
        selected.push(plan);
    }
    selected.sort_by_cached_key(|t| file_stem(&t.name));
    if let Some(w) = selected.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(DbError::Query {
            what: "read schema".into(),
            database: db.into(),
            table: Some(w[0].name.clone()),
            detail: "two tables have the same backup name (a public table whose name contains a \
                     dot, and a schema-qualified table); rename one or exclude it"
                .into(),
        });
    }
    Ok(Capture {
        schema_sql: ddl,
        post_sql: post,
        tables: selected,
        warnings,
    })
}

/// One query listing the kinds of objects kfguard does not capture, one line per object.
fn uncaptured_sql() -> String {
    let named = |label: &str, catalog: &str, ns_col: &str, name_col: &str| {
        format!(
            "SELECT '{label} ' || quote_ident(n.nspname) || '.' || quote_ident(x.{name_col}) \
             FROM {catalog} x JOIN pg_namespace n ON n.oid = x.{ns_col} \
             WHERE {USER_NS} AND {}",
            not_extension(catalog, "x.oid")
        )
    };
    let global = |label: &str, catalog: &str, name_col: &str| {
        format!(
            "SELECT '{label} ' || quote_ident(x.{name_col}) FROM {catalog} x WHERE {}",
            not_extension(catalog, "x.oid")
        )
    };
    let parts = [
        format!(
            "SELECT 'operator ' || x.oid::regoperator::text FROM pg_operator x \
             JOIN pg_namespace n ON n.oid = x.oprnamespace WHERE {USER_NS} AND {}",
            not_extension("pg_operator", "x.oid")
        ),
        named("operator class", "pg_opclass", "opcnamespace", "opcname"),
        named("operator family", "pg_opfamily", "opfnamespace", "opfname"),
        named("collation", "pg_collation", "collnamespace", "collname"),
        named("conversion", "pg_conversion", "connamespace", "conname"),
        named(
            "text search configuration",
            "pg_ts_config",
            "cfgnamespace",
            "cfgname",
        ),
        named(
            "text search dictionary",
            "pg_ts_dict",
            "dictnamespace",
            "dictname",
        ),
        named(
            "text search parser",
            "pg_ts_parser",
            "prsnamespace",
            "prsname",
        ),
        named(
            "text search template",
            "pg_ts_template",
            "tmplnamespace",
            "tmplname",
        ),
        format!(
            "SELECT 'rule ' || quote_ident(x.rulename) || ' on ' || quote_ident(n.nspname) || '.' \
               || quote_ident(c.relname) FROM pg_rewrite x JOIN pg_class c ON c.oid = x.ev_class \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE x.rulename <> '_RETURN' AND {USER_NS}"
        ),
        format!(
            "SELECT 'row-level security policy ' || quote_ident(x.polname) || ' on ' || \
               quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_policy x \
             JOIN pg_class c ON c.oid = x.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {USER_NS}"
        ),
        format!(
            "SELECT 'cast ' || format_type(x.castsource, NULL) || ' AS ' || \
               format_type(x.casttarget, NULL) FROM pg_cast x WHERE x.oid >= 16384 AND {}",
            not_extension("pg_cast", "x.oid")
        ),
        global("event trigger", "pg_event_trigger", "evtname"),
        global("foreign-data wrapper", "pg_foreign_data_wrapper", "fdwname"),
        global("foreign server", "pg_foreign_server", "srvname"),
        global("publication", "pg_publication", "pubname"),
        "SELECT count(*) || ' large object(s)' FROM pg_largeobject_metadata \
         HAVING count(*) > 0"
            .to_string(),
    ];
    format!(
        "SELECT msg FROM ({}) AS w(msg) ORDER BY msg",
        parts.join(" UNION ALL ")
    )
}

/// SQL condition: the object is not a member of an extension.
fn not_extension(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend dx WHERE dx.classid = '{catalog}'::regclass \
         AND dx.objid = {oid} AND dx.deptype = 'e')"
    )
}

fn push_section(out: &mut String, title: &str, body: &str) {
    if !body.is_empty() {
        out.push_str(&format!("\n-- {title}\n{body}"));
    }
}

enum Dep {
    /// Not a user relation, or a table in the backup.
    Present,
    /// A view or materialized view: created first, if it can be.
    View,
    /// A user relation not in the backup.
    Missing(String),
}

/// Orders views so that each comes after the views it uses (creation order otherwise); a view
/// that needs a relation not in the backup is returned with that relation's name.
fn order_views<'a>(
    views: &[&'a Rel],
    deps: &HashMap<u32, Vec<u32>>,
    classify: impl Fn(u32) -> Dep,
) -> Vec<(&'a Rel, Option<String>)> {
    let names: HashMap<u32, &str> = views.iter().map(|v| (v.oid, v.name.as_str())).collect();
    // View oid -> whether it is created.
    let mut done: HashMap<u32, bool> = HashMap::new();
    let mut out = Vec::new();
    let mut remaining: Vec<&Rel> = views.to_vec();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|v| {
            let mut missing = None;
            for dep in deps.get(&v.oid).map(Vec::as_slice).unwrap_or_default() {
                match classify(*dep) {
                    Dep::Present => {}
                    Dep::Missing(name) => missing = missing.or(Some(name)),
                    Dep::View => match done.get(dep) {
                        None => return true,
                        Some(false) => {
                            missing = missing.or_else(|| {
                                Some(format!("view {}", names.get(dep).unwrap_or(&"?")))
                            })
                        }
                        Some(true) => {}
                    },
                }
            }
            done.insert(v.oid, missing.is_none());
            out.push((*v, missing));
            false
        });
        if remaining.len() == before {
            // A dependency cycle cannot happen between views; do not loop if it does.
            for v in remaining.drain(..) {
                out.push((v, Some("a view dependency cycle".into())));
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// Restore
// ------------------------------------------------------------------------------------------

/// Restores one database dumped by [`dump`] into `req.target`, then verifies every table of
/// `req.expected` against the restored data.
pub async fn restore(conn: &Connection, req: RestoreRequest) -> Result<RestoreReport, DbError> {
    let server = Server::new(conn)?;
    let (maint, maint_db) = server.connect_maintenance().await?;
    let target = req.target.clone();
    let exists = maint
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&target])
        .await
        .map_err(|e| query_err("look up database", &target, None, &e))?
        .is_some();
    let existing_tables = if exists {
        let (client, session) = server.connect_with_handle(&target).await?;
        let sql = format!(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'f') AND {USER_NS}"
        );
        let n: i64 = client
            .query_one(&sql, &[])
            .await
            .map_err(|e| query_err("count tables", &target, None, &e))?
            .get(0);
        // Closed before a DROP DATABASE, which refuses while sessions remain.
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(5), session).await;
        usize::try_from(n).unwrap_or(usize::MAX)
    } else {
        0
    };

    let mut plan = Vec::new();
    let recreate = existing_tables > 0;
    if recreate {
        if !req.force {
            return Err(DbError::NotEmpty {
                database: target,
                tables: existing_tables,
            });
        }
        if target == maint_db {
            return Err(DbError::Query {
                what: "replace database".into(),
                database: target,
                table: None,
                detail: "it is the maintenance database kfguard connects to; restore with \
                         --into another name"
                    .into(),
            });
        }
        plan.push(format!("drop database {target} ({existing_tables} tables)"));
        plan.push(format!("create database {target}"));
    } else if exists {
        plan.push(format!("use existing empty database {target}"));
    } else {
        plan.push(format!("create database {target}"));
    }
    let schema_stmts = split_sql(&req.schema_sql);
    let post_stmts = req.post_sql.as_deref().map(split_sql).unwrap_or_default();
    plan.push(format!(
        "run schema.sql ({} statements)",
        schema_stmts.len()
    ));
    for t in &req.tables {
        plan.push(format!("create table {}", t.name));
    }
    for t in &req.tables {
        plan.push(format!("copy {} parts into {}", t.parts.len(), t.name));
    }
    if req.post_sql.is_some() {
        plan.push(format!("apply post.sql ({} statements)", post_stmts.len()));
    }
    for e in &req.expected {
        plan.push(format!("verify {}: {} rows", e.name, e.rows));
    }
    let mut report = RestoreReport {
        database: req.database.clone(),
        target: target.clone(),
        dry_run: req.dry_run,
        plan,
        tables: Vec::new(),
    };
    if req.dry_run {
        return Ok(report);
    }

    // Database.
    if recreate {
        maint
            .batch_execute(&format!("DROP DATABASE {}", ident(&target)))
            .await
            .map_err(|e| query_err("drop database", &target, None, &e))?;
    }
    if !exists || recreate {
        create_database(&maint, &target, &req.schema_sql).await?;
    }
    drop(maint);

    // From here on the target holds what this restore put there: a failure (or a stop
    // request) must not leave it behind unannounced.
    let created = !exists;
    let filled = tokio::select! {
        r = fill(&server, &target, &req, &schema_stmts, &post_stmts) => r,
        sig = crate::interrupt::wait() => Err(DbError::Interrupted(sig)),
    };
    match filled {
        Ok(tables) => report.tables = tables,
        Err(e) => return Err(abandon(&server, &target, created, e).await),
    }
    Ok(report)
}

/// Fills the created or empty target: schema, data, post.sql, then reads every table back;
/// returns what was found, already compared with the manifest.
async fn fill(
    server: &Server,
    target: &str,
    req: &RestoreRequest,
    schema_stmts: &[String],
    post_stmts: &[String],
) -> Result<Vec<TableEntry>, DbError> {
    let target = target.to_string();
    // Schema, in one transaction: a failure leaves an empty database behind.
    let jobs = req.jobs.max(1);
    let first = open_session(server, &target).await?;
    run_script(&first, &target, "schema.sql", schema_stmts).await?;
    let plans: HashMap<String, TablePlan> = table_plans(&first, &target)
        .await?
        .into_values()
        .map(|p| (p.name.clone(), p))
        .collect();

    // Data, largest tables (by part count) first.
    let mut loads = Vec::new();
    for t in &req.tables {
        let Some(p) = plans.get(&t.name) else {
            return Err(DbError::Query {
                what: "COPY FROM".into(),
                database: target,
                table: Some(t.name.clone()),
                detail: "schema.sql does not create this table".into(),
            });
        };
        loads.push((p.clone(), t.parts.clone()));
    }
    loads.sort_by_key(|l| std::cmp::Reverse(l.1.len()));
    let n_conns = jobs.min(loads.len().max(req.expected.len()).max(1));
    let mut conns = vec![first];
    let more =
        futures::future::try_join_all((1..n_conns).map(|_| open_session(server, &target))).await?;
    conns.extend(more);
    let (pool_tx, mut pool_rx) = mpsc::channel(conns.len());
    for c in conns {
        let _ = pool_tx.try_send(c);
    }
    let mut set = tokio::task::JoinSet::new();
    for (p, parts) in loads {
        let client = pool_rx.recv().await.ok_or_else(|| pool_gone(&target))?;
        let lease = Lease {
            client: Some(client),
            pool: pool_tx.clone(),
        };
        let (db, fetch) = (target.clone(), req.fetch.clone());
        set.spawn(async move { load_table(lease.client(), &db, &p, &parts, fetch).await });
        // Keep at most `jobs` loads running; surface the first failure early.
        while set.len() >= n_conns {
            join_next(&mut set, &target).await?;
        }
    }
    while !set.is_empty() {
        join_next(&mut set, &target).await?;
    }

    // Constraints, indexes, triggers and sequence values.
    let client = pool_rx.recv().await.ok_or_else(|| pool_gone(&target))?;
    run_script(&client, &target, "post.sql", post_stmts).await?;
    let plans: HashMap<String, TablePlan> = table_plans(&client, &target)
        .await?
        .into_values()
        .map(|p| (p.name.clone(), p))
        .collect();
    let _ = pool_tx.try_send(client);

    // Verification through the dump's own code path.
    let mut verify = tokio::task::JoinSet::new();
    let mut found: HashMap<String, TableEntry> = HashMap::new();
    for e in &req.expected {
        let Some(p) = plans.get(&e.name).cloned() else {
            return Err(DbError::Verify {
                database: target,
                table: e.name.clone(),
                expected_rows: e.rows,
                rows: 0,
                expected: e.checksum.clone(),
                found: "(table missing)".into(),
            });
        };
        let client = pool_rx.recv().await.ok_or_else(|| pool_gone(&target))?;
        let lease = Lease {
            client: Some(client),
            pool: pool_tx.clone(),
        };
        let db = target.clone();
        verify.spawn(async move {
            let r = stream_table(lease.client(), &db, &p, 8 << 20, |_| async { true }).await;
            r.map(|(_, entry)| entry)
        });
        while verify.len() >= n_conns {
            let entry = join_next(&mut verify, &target).await?;
            found.insert(entry.name.clone(), entry);
        }
    }
    while !verify.is_empty() {
        let entry = join_next(&mut verify, &target).await?;
        found.insert(entry.name.clone(), entry);
    }
    let mut tables = Vec::new();
    for e in &req.expected {
        let got = found.remove(&e.name).unwrap_or_default();
        if got.rows != e.rows || got.checksum != e.checksum {
            return Err(DbError::Verify {
                database: target,
                table: e.name.clone(),
                expected_rows: e.rows,
                rows: got.rows,
                expected: e.checksum.clone(),
                found: got.checksum,
            });
        }
        tables.push(got);
    }
    Ok(tables)
}

/// After a failed fill: drops the target if this restore created it (never one that existed
/// before), and says what became of it.
async fn abandon(server: &Server, target: &str, created: bool, cause: DbError) -> DbError {
    if !created {
        return abandoned(target, cause, Left::Existed);
    }
    let dropped = async {
        let (maint, _) = server.connect_maintenance().await?;
        // FORCE: the fill's own sessions may not have closed yet.
        maint
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                ident(target)
            ))
            .await
            .map_err(|e| query_err("drop database", target, None, &e))
    };
    let left = match dropped.await {
        Ok(()) => Left::Dropped,
        Err(e) => Left::DropFailed(e),
    };
    abandoned(target, cause, left)
}

fn pool_gone(db: &str) -> DbError {
    DbError::Query {
        what: "restore".into(),
        database: db.into(),
        table: None,
        detail: "no connection available".into(),
    }
}

async fn join_next<T: 'static>(
    set: &mut tokio::task::JoinSet<Result<T, DbError>>,
    db: &str,
) -> Result<T, DbError> {
    match set.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(DbError::Query {
            what: "restore task".into(),
            database: db.into(),
            table: None,
            detail: one_line(&e.to_string()),
        }),
        None => Err(pool_gone(db)),
    }
}

/// Creates `target` with the source's encoding and locale from the `schema.sql` header; if this
/// server lacks that locale, with the server's defaults (verification still compares the data).
async fn create_database(maint: &Client, target: &str, schema_sql: &str) -> Result<(), DbError> {
    let plain = format!("CREATE DATABASE {}", ident(target));
    let header = schema_sql
        .lines()
        .take(20)
        .find_map(|l| l.strip_prefix(DATABASE_HEADER))
        .and_then(|h| serde_json::from_str::<serde_json::Value>(h).ok());
    let field = |k: &str| {
        header
            .as_ref()
            .and_then(|h| h.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    if let (Some(enc), Some(coll), Some(ctype)) =
        (field("encoding"), field("lc_collate"), field("lc_ctype"))
    {
        let sql = format!(
            "{plain} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            literal(&enc),
            literal(&coll),
            literal(&ctype)
        );
        match maint.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {
                return Err(query_err("create database", target, None, &e))
            }
            Err(e) => tracing::warn!(
                database = target,
                error = %detail(&e),
                "cannot create the database with the source's encoding and locale; \
                 using the server defaults"
            ),
        }
    }
    maint
        .batch_execute(&plain)
        .await
        .map_err(|e| query_err("create database", target, None, &e))
}

/// A connection to the target database with the dump's session settings.
async fn open_session(server: &Server, db: &str) -> Result<Client, DbError> {
    let client = server.connect(db).await?;
    client
        .batch_execute(SESSION_SETTINGS)
        .await
        .map_err(|e| query_err("configure session", db, None, &e))?;
    Ok(client)
}

/// Runs the statements of a script in one transaction, naming the one that fails.
async fn run_script(c: &Client, db: &str, file: &str, stmts: &[String]) -> Result<(), DbError> {
    let what = |i: usize, s: &str| {
        let head: String = s
            .lines()
            .find(|l| !l.trim_start().starts_with("--") && !l.trim().is_empty())
            .unwrap_or_default()
            .chars()
            .take(80)
            .collect();
        format!("{file} statement {} (`{}`)", i + 1, head.trim())
    };
    c.batch_execute("BEGIN")
        .await
        .map_err(|e| query_err(file, db, None, &e))?;
    for (i, s) in stmts.iter().enumerate() {
        c.batch_execute(s)
            .await
            .map_err(|e| query_err(&what(i, s), db, None, &e))?;
    }
    c.batch_execute("COMMIT")
        .await
        .map_err(|e| query_err(file, db, None, &e))?;
    // The scripts change the search path; restore the dump's setting for COPY and verify.
    c.batch_execute(SESSION_SETTINGS)
        .await
        .map_err(|e| query_err("configure session", db, None, &e))
}

/// Feeds a table's parts to `COPY … FROM STDIN`, fetching the next part while sending one.
async fn load_table(
    client: &Client,
    db: &str,
    plan: &TablePlan,
    parts: &[String],
    fetch: Fetch,
) -> Result<(), DbError> {
    let err = |e: &tokio_postgres::Error| query_err("COPY FROM", db, Some(&plan.name), e);
    let sink = client
        .copy_in::<_, Bytes>(&plan.copy_in_sql())
        .await
        .map_err(|e| err(&e))?;
    futures::pin_mut!(sink);
    let spawn_fetch = |path: &String| {
        let (fetch, path) = (fetch.clone(), path.clone());
        tokio::task::spawn_blocking(move || {
            let r = fetch(&path);
            (path, r)
        })
    };
    let mut next = parts.first().map(spawn_fetch);
    let mut i = 0;
    while let Some(handle) = next.take() {
        let (path, data) = handle.await.map_err(|e| DbError::Fetch {
            path: parts[i].clone(),
            detail: one_line(&e.to_string()),
        })?;
        let data = data.map_err(|e| DbError::Fetch {
            path,
            detail: one_line(&e.to_string()),
        })?;
        i += 1;
        next = parts.get(i).map(spawn_fetch);
        if !data.is_empty() {
            sink.send(Bytes::from(data)).await.map_err(|e| err(&e))?;
        }
    }
    sink.as_mut().finish().await.map_err(|e| err(&e))?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Connections and errors
// ------------------------------------------------------------------------------------------

/// A source's connection settings; every connection is to one database.
struct Server {
    config: Config,
    source: String,
    address: String,
    /// The database to connect to for server-wide queries: the URL's, or `postgres`.
    maintenance: String,
    /// Whether the maintenance database came from the URL (no fallback then).
    explicit_maintenance: bool,
}

impl Server {
    fn new(conn: &Connection) -> Result<Self, DbError> {
        let address = conn.address();
        let mut config: Config =
            conn.url
                .parse()
                .map_err(|e: tokio_postgres::Error| DbError::Connect {
                    engine: ENGINE,
                    source_name: conn.source.clone(),
                    address: address.clone(),
                    detail: format!("invalid url: {}", error_chain(&e)),
                })?;
        if let Some(pw) = &conn.password {
            config.password(pw);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("kfguard");
        }
        let explicit_maintenance = config.get_dbname().is_some();
        let maintenance = config.get_dbname().unwrap_or("postgres").to_string();
        Ok(Self {
            config,
            source: conn.source.clone(),
            address,
            maintenance,
            explicit_maintenance,
        })
    }

    /// Connects to the maintenance database; without one in the URL, falls back to
    /// `template1` on servers without a `postgres` database.
    async fn connect_maintenance(&self) -> Result<(Client, String), DbError> {
        match self.connect(&self.maintenance).await {
            Err(DbError::NoDatabase { .. }) if !self.explicit_maintenance => {
                let c = self.connect("template1").await?;
                Ok((c, "template1".into()))
            }
            r => r.map(|c| (c, self.maintenance.clone())),
        }
    }

    async fn connect(&self, db: &str) -> Result<Client, DbError> {
        Ok(self.connect_with_handle(db).await?.0)
    }

    /// Also returns the connection task, which ends once the client is dropped and the
    /// session closed.
    async fn connect_with_handle(
        &self,
        db: &str,
    ) -> Result<(Client, tokio::task::JoinHandle<()>), DbError> {
        let mut config = self.config.clone();
        config.dbname(db);
        let (client, connection) =
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, config.connect(NoTls)).await {
                Err(_) => {
                    return Err(self.connect_error(format!(
                        "no answer within {} s",
                        HANDSHAKE_TIMEOUT.as_secs()
                    )))
                }
                Ok(Err(e)) => return Err(self.map_connect_error(db, &e)),
                Ok(Ok(pair)) => pair,
            };
        let handle = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %error_chain(&e), "PostgreSQL connection ended");
            }
        });
        Ok((client, handle))
    }

    fn connect_error(&self, detail: String) -> DbError {
        DbError::Connect {
            engine: ENGINE,
            source_name: self.source.clone(),
            address: self.address.clone(),
            detail,
        }
    }

    fn map_connect_error(&self, db: &str, e: &tokio_postgres::Error) -> DbError {
        let auth = |detail| DbError::Auth {
            engine: ENGINE,
            source_name: self.source.clone(),
            address: self.address.clone(),
            detail,
        };
        if let Some(code) = e.code() {
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                return auth(detail(e));
            }
            if *code == SqlState::INVALID_CATALOG_NAME {
                return DbError::NoDatabase {
                    source_name: self.source.clone(),
                    database: db.into(),
                };
            }
        }
        let chain = error_chain(e);
        if chain.contains("password missing") || chain.starts_with("authentication error") {
            return auth(chain);
        }
        self.connect_error(chain)
    }
}

fn query_err(what: &str, db: &str, table: Option<&str>, e: &tokio_postgres::Error) -> DbError {
    DbError::Query {
        what: what.into(),
        database: db.into(),
        table: table.map(Into::into),
        detail: detail(e),
    }
}

/// One line: the server's message and SQLSTATE, or the client error with its causes.
fn detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; {d}"));
            }
            one_line(&s)
        }
        None if e.is_closed() => "the connection was closed (the server went away, or the \
                                  session was terminated)"
            .into(),
        None => one_line(&error_chain(e)),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = c.source();
    }
    s
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ------------------------------------------------------------------------------------------
// SQL text
// ------------------------------------------------------------------------------------------

/// A quoted identifier.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A string literal (with `standard_conforming_strings = on`).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Inverse of `quote_ident` for one identifier.
fn unquote_ident(s: &str) -> String {
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_string(),
    }
}

/// Splits a script into statements at top-level semicolons, skipping quotes, quoted
/// identifiers, dollar-quoted bodies, comments and `BEGIN ATOMIC … END` function bodies (as
/// psql does). Statements that are only comments are dropped.
fn split_sql(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i, mut content) = (0, 0, false);
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    // Inside `BEGIN ATOMIC`: nesting of BEGIN/CASE … END; semicolons do not end the statement.
    let (mut atomic, mut after_begin) = (0usize, false);
    let mut finish = |from: usize, to: usize, content: &mut bool| {
        if *content {
            out.push(sql[from..to].trim().to_string());
        }
        *content = false;
    };
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'\'' => {
                content = true;
                // E'…' strings take backslash escapes.
                let escapes =
                    i > 0 && matches!(b[i - 1], b'E' | b'e') && (i < 2 || !is_ident(b[i - 2]));
                i += 1;
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'\'' {
                        break;
                    }
                    i += 1;
                }
            }
            b'"' => {
                content = true;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
            }
            b'$' if i == 0 || !is_ident(b[i - 1]) => {
                let tag_end = b[i + 1..]
                    .iter()
                    .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(e)
                        if b[e] == b'$' && !b[i + 1..e].first().is_some_and(u8::is_ascii_digit) =>
                    {
                        content = true;
                        let tag = &sql[i..=e];
                        match sql[e + 1..].find(tag) {
                            Some(p) => i = e + 1 + p + tag.len() - 1,
                            None => i = b.len(),
                        }
                    }
                    _ => {}
                }
            }
            b';' if atomic == 0 => {
                finish(start, i, &mut content);
                start = i + 1;
                after_begin = false;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                content = true;
                let from = i;
                while i + 1 < b.len() && is_ident(b[i + 1]) {
                    i += 1;
                }
                let word = &sql[from..=i];
                let begin = word.eq_ignore_ascii_case("begin");
                if atomic == 0 {
                    if after_begin && word.eq_ignore_ascii_case("atomic") {
                        atomic = 1;
                    }
                } else if begin || word.eq_ignore_ascii_case("case") {
                    atomic += 1;
                } else if word.eq_ignore_ascii_case("end") {
                    atomic -= 1;
                }
                after_begin = begin;
            }
            c if !c.is_ascii_whitespace() => {
                content = true;
                after_begin = false;
            }
            _ => {}
        }
        i += 1;
    }
    finish(start, b.len().min(sql.len()), &mut content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_outside_quotes_and_bodies() {
        let sql = "-- header; not a statement\nSET a = 1;\n\
                   CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n\
                   COMMENT ON TABLE \"x;y\" IS 'it''s; fine';\n\
                   SELECT E'a\\';b', $$;$$ /* ; /* nested ; */ */;\n-- trailing comment\n";
        let stmts = split_sql(sql);
        assert_eq!(stmts.len(), 4, "{stmts:#?}");
        assert!(stmts[1].ends_with("LANGUAGE sql"));
        assert!(stmts[2].ends_with("'it''s; fine'"));
        assert!(stmts[3].starts_with("SELECT E'a"));
        assert!(split_sql("-- only a comment\n").is_empty());
        let atomic = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT CASE \
                      WHEN true THEN 1 END;\n SELECT 2;\nEND;\nSELECT 3;";
        let stmts = split_sql(atomic);
        assert_eq!(stmts.len(), 2, "{stmts:#?}");
        assert!(stmts[0].ends_with("SELECT 2;\nEND"));
        assert_eq!(split_sql("BEGIN; SELECT 1; COMMIT").len(), 3);
    }

    #[test]
    fn parts_end_at_rows_and_checksum_everything() {
        let mut c = PartCutter::new("t", 10);
        let mut full = Vec::new();
        // Rows split across chunks; one row longer than a part.
        c.push(b"aaaa\nbb", &mut full);
        c.push(b"bb\ncccccccccccccc\nd\n", &mut full);
        let (last, entry) = c.finish().expect("complete rows");
        full.push(last);
        let parts: Vec<&[u8]> = full.iter().map(|p| p.bytes.as_slice()).collect();
        assert_eq!(
            parts,
            vec![&b"aaaa\nbbbb\n"[..], b"cccccccccccccc\n", b"d\n"]
        );
        assert_eq!(full[0].path, "data/t.000001.copy");
        assert_eq!(entry.rows, 4);
        let mut sum = RowChecksum::default();
        sum.update(b"aaaa\nbbbb\ncccccccccccccc\nd\n");
        assert_eq!(entry.checksum, sum.finish());

        let (last, entry) = PartCutter::new("e", 10).finish().expect("empty");
        assert_eq!(
            (last.path.as_str(), last.bytes.len(), entry.rows),
            ("data/e.000001.copy", 0, 0)
        );
        let mut c = PartCutter::new("x", 10);
        c.push(b"no newline", &mut Vec::new());
        assert!(c.finish().is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(ident("My \"T\""), "\"My \"\"T\"\"\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(unquote_ident("\"a \"\"b\"\"\""), "a \"b\"");
        assert_eq!(unquote_ident("plain"), "plain");
        assert_eq!(table_name("public", "t"), "t");
        assert_eq!(table_name("kfp", "t"), "kfp.t");
    }
}
