//! Restore of one database: create the target (with the source's encoding and locale), run
//! `schema.sql`, load the tables in parallel, run `post.sql`, then read every table back
//! through the dump's own path and compare it with the manifest. A failure drops what the
//! restore created.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::connect::{detail, one_line, query_err, Lease, Server};
use super::copy::{load_table, stream_table, table_plans, TablePlan};
use super::quote::{ident, literal};
use super::sql_split::split_sql;
use super::{DATABASE_HEADER, SESSION_SETTINGS, USER_NS};
use crate::engines::{abandoned, Connection, DbError, Left, RestoreReport, RestoreRequest};
use crate::snapshot::manifest::TableEntry;

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
        count_tables(&server, &target).await?
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
    plan.extend(data_steps(&req, &schema_stmts, &post_stmts));
    let mut report = RestoreReport {
        source: req.source.clone(),
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

/// The user tables of an existing `target`, with the session closed again before returning.
async fn count_tables(server: &Server, target: &str) -> Result<usize, DbError> {
    let (client, session) = server.connect_with_handle(target).await?;
    let sql = format!(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'f') AND {USER_NS}"
    );
    let n: i64 = client
        .query_one(&sql, &[])
        .await
        .map_err(|e| query_err("count tables", target, None, &e))?
        .get(0);
    // Closed before a DROP DATABASE, which refuses while sessions remain.
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(5), session).await;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// The plan's steps after the database is there: scripts, tables, loads and verification.
fn data_steps(req: &RestoreRequest, schema_stmts: &[String], post_stmts: &[String]) -> Vec<String> {
    let mut plan = vec![format!(
        "run schema.sql ({} statements)",
        schema_stmts.len()
    )];
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
    plan
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

    verify(req, &target, &plans, &pool_tx, &mut pool_rx, n_conns).await
}

/// Reads every expected table back through the dump's own code path, on at most `n_conns`
/// connections of the pool, and compares rows and checksum with the manifest.
async fn verify(
    req: &RestoreRequest,
    target: &str,
    plans: &HashMap<String, TablePlan>,
    pool_tx: &mpsc::Sender<Client>,
    pool_rx: &mut mpsc::Receiver<Client>,
    n_conns: usize,
) -> Result<Vec<TableEntry>, DbError> {
    let mut verify = tokio::task::JoinSet::new();
    let mut found: HashMap<String, TableEntry> = HashMap::new();
    for e in &req.expected {
        let Some(p) = plans.get(&e.name).cloned() else {
            return Err(DbError::Verify {
                database: target.into(),
                table: e.name.clone(),
                expected_rows: e.rows,
                rows: 0,
                expected: e.checksum.clone(),
                found: "(table missing)".into(),
            });
        };
        let client = pool_rx.recv().await.ok_or_else(|| pool_gone(target))?;
        let lease = Lease {
            client: Some(client),
            pool: pool_tx.clone(),
        };
        let db = target.to_string();
        verify.spawn(async move {
            let r = stream_table(lease.client(), &db, &p, 8 << 20, |_| async { true }).await;
            r.map(|(_, entry)| entry)
        });
        while verify.len() >= n_conns {
            let entry = join_next(&mut verify, target).await?;
            found.insert(entry.name.clone(), entry);
        }
    }
    while !verify.is_empty() {
        let entry = join_next(&mut verify, target).await?;
        found.insert(entry.name.clone(), entry);
    }
    let mut tables = Vec::new();
    for e in &req.expected {
        let got = found.remove(&e.name).unwrap_or_default();
        if got.rows != e.rows || got.checksum != e.checksum {
            return Err(DbError::Verify {
                database: target.into(),
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
