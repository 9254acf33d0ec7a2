//! The restore of one database: plan, create, load with `LOAD DATA LOCAL INFILE`, then views
//! and triggers, and verification.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{Conn, Row};

use super::catalog::{table_infos, TableInfo};
use super::connect::{
    cell, cell_or_empty, connect, one_line, qi, qs, query_err, server_code, setup_session,
};
use super::encode::LOAD_FORMAT;
use super::read::{read_table, ReadError};
use super::schema::{SECTION_PREAMBLE, SECTION_TABLES, SECTION_TRIGGERS, SECTION_VIEWS};
use super::sql_split::{object_name, schema_charset, split_sql, statement_head, Statement};
use crate::engines::{
    abandoned, Connection, DbError, Fetch, Left, RestoreReport, RestoreRequest, RestoreTable,
};
use crate::snapshot::manifest::TableEntry;

/// Verification hashes in chunks of this size.
const VERIFY_CHUNK: usize = 1024 * 1024;

/// Restores one database from a dump: refuses a database with tables unless `force`, creates
/// the tables, loads every table's parts with `LOAD DATA LOCAL INFILE` over `jobs` connections,
/// then creates views and triggers, and re-reads every table to compare it with the manifest.
pub async fn restore(conn: &Connection, req: RestoreRequest) -> Result<RestoreReport, DbError> {
    let jobs = req.jobs.max(1);
    let target = req.target.clone();
    let qerr = |what: &str, e: &mysql_async::Error| query_err(what, &target, None, e);
    let mut ddl = connect(conn).await?;
    setup_session(&mut ddl)
        .await
        .map_err(|e| qerr("session setup", &e))?;

    let statements = split_sql(&req.schema_sql);
    let (charset, collation) =
        schema_charset(&statements).unwrap_or_else(|| ("utf8mb4".to_string(), String::new()));

    let exists: Option<String> = ddl
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (&target,),
        )
        .await
        .map_err(|e| qerr("checking the target database", &e))?;
    let existing: Vec<Row> = ddl
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            (&target,),
        )
        .await
        .map_err(|e| qerr("checking the target database", &e))?;
    if !existing.is_empty() && !req.force {
        return Err(DbError::NotEmpty {
            database: target,
            tables: existing.len(),
        });
    }

    // Refuse early, before anything is created, if the data cannot be loaded.
    if !req.tables.is_empty() {
        if let Ok(Some(row)) = ddl
            .query_first::<Row, _>("SELECT @@GLOBAL.local_infile")
            .await
        {
            if cell(&row, 0).as_deref() == Some("0") {
                return Err(DbError::LocalInfileDisabled);
            }
        }
    }

    // The plan, in the order of the work below.
    let mut plan = Vec::new();
    if exists.is_none() {
        plan.push(format!("create database {target}"));
    } else if !existing.is_empty() {
        plan.push(format!(
            "drop {} tables and views in {target}",
            existing.len()
        ));
    }
    // Views and triggers go on after the data: triggers must not fire during the load.
    let (before_data, after_data): (Vec<Statement>, Vec<Statement>) = statements
        .iter()
        .cloned()
        .partition(|s| s.section == SECTION_PREAMBLE || s.section == SECTION_TABLES);
    for s in before_data.iter().chain(&after_data) {
        let kw = match s.section.as_str() {
            SECTION_TABLES => "TABLE",
            SECTION_VIEWS => "VIEW",
            SECTION_TRIGGERS => "TRIGGER",
            _ => continue,
        };
        let is_create = s
            .sql
            .get(..7)
            .is_some_and(|h| h.eq_ignore_ascii_case("CREATE "));
        if let Some(name) = object_name(&s.sql, kw).filter(|_| is_create) {
            plan.push(format!("create {} {name}", kw.to_ascii_lowercase()));
        }
    }
    let mut load_plan = Vec::new();
    for t in &req.tables {
        load_plan.push(format!("load {} parts into {}", t.parts.len(), t.name));
    }
    // Put the loads between the tables and the views/triggers, where they run.
    let tables_created = plan
        .iter()
        .rposition(|p| p.starts_with("create table "))
        .map_or(plan.len(), |i| i + 1);
    plan.splice(tables_created..tables_created, load_plan);
    for e in &req.expected {
        plan.push(format!("verify {}: {} rows", e.name, e.rows));
    }

    if req.dry_run {
        let _ = ddl.disconnect().await;
        return Ok(RestoreReport {
            source: req.source.clone(),
            database: req.database,
            target,
            dry_run: true,
            plan,
            tables: Vec::new(),
        });
    }

    // Replace what is there (force) or create the database.
    if !existing.is_empty() {
        ddl.query_drop("SET FOREIGN_KEY_CHECKS=0")
            .await
            .map_err(|e| qerr("dropping existing tables", &e))?;
        for r in &existing {
            let name = cell_or_empty(r, 0);
            let what = if cell_or_empty(r, 1) == "VIEW" {
                "VIEW"
            } else {
                "TABLE"
            };
            ddl.query_drop(format!(
                "DROP {what} IF EXISTS {}.{}",
                qi(&target),
                qi(&name)
            ))
            .await
            .map_err(|e| query_err("dropping existing tables", &target, Some(&name), &e))?;
        }
    }
    if exists.is_none() {
        let mut sql = format!("CREATE DATABASE {} CHARACTER SET {charset}", qi(&target));
        if !collation.is_empty() {
            let _ = write!(sql, " COLLATE {collation}");
        }
        ddl.query_drop(sql)
            .await
            .map_err(|e| qerr("CREATE DATABASE", &e))?;
    }
    // From here on the target holds what this restore put there: a failure (or a stop
    // request) must not leave it behind unannounced.
    let created = exists.is_none();
    let filled = tokio::select! {
        r = fill(conn, ddl, &target, &req, jobs, &before_data, &after_data) => r,
        sig = crate::interrupt::wait() => Err(DbError::Interrupted(sig)),
    };
    let found = match filled {
        Ok(found) => found,
        Err(e) => return Err(abandon(conn, &target, created, e).await),
    };

    Ok(RestoreReport {
        source: req.source.clone(),
        database: req.database,
        target,
        dry_run: false,
        plan,
        tables: found,
    })
}

/// Fills the created or emptied target: schema, data, views and triggers, then reads every
/// table back; returns what was found, already compared with the manifest.
pub(super) async fn fill(
    conn: &Connection,
    mut ddl: Conn,
    target: &str,
    req: &RestoreRequest,
    jobs: usize,
    before_data: &[Statement],
    after_data: &[Statement],
) -> Result<Vec<TableEntry>, DbError> {
    let target = target.to_string();
    let qerr = |what: &str, e: &mysql_async::Error| query_err(what, &target, None, e);
    ddl.query_drop(format!("USE {}", qi(&target)))
        .await
        .map_err(|e| qerr("USE", &e))?;
    // Tables reference each other in any order; schema.sql says so too, but do not rely on it.
    ddl.query_drop("SET FOREIGN_KEY_CHECKS=0")
        .await
        .map_err(|e| qerr("session setup", &e))?;
    run_statements(&mut ddl, &target, before_data).await?;

    // Load, largest tables first, over `jobs` connections.
    let infos: HashMap<String, TableInfo> = table_infos(&mut ddl, &target)
        .await
        .map_err(|e| qerr("reading table metadata", &e))?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let mut loads = Vec::new();
    for t in &req.tables {
        let info = infos
            .get(&t.name)
            .filter(|i| i.is_data())
            .ok_or_else(|| DbError::Query {
                what: "LOAD DATA".into(),
                database: target.clone(),
                table: Some(t.name.clone()),
                detail: "schema.sql does not create this table".into(),
            })?;
        loads.push((t.clone(), info.clone()));
    }
    loads.sort_by_key(|(t, _)| std::cmp::Reverse(t.parts.len()));
    let mut conns = Vec::with_capacity(jobs);
    for _ in 0..jobs.min(loads.len().max(1)) {
        let mut c = connect(conn).await?;
        load_session(&mut c, &target).await?;
        conns.push(c);
    }
    let fetch = req.fetch.clone();
    let db = target.clone();
    let conns = parallel(conns, loads, move |mut c, (table, info)| {
        let fetch = fetch.clone();
        let db = db.clone();
        async move {
            let r = load_table(&mut c, &db, &table, &info, fetch).await;
            (c, r)
        }
    })
    .await?
    .0;

    run_statements(&mut ddl, &target, after_data).await?;
    let _ = ddl.disconnect().await;

    // Verify: every restored or expected table, read back as the dump reads it.
    let expected: HashMap<&str, &TableEntry> =
        req.expected.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut names: Vec<String> = req.tables.iter().map(|t| t.name.clone()).collect();
    for e in &req.expected {
        if !names.contains(&e.name) {
            names.push(e.name.clone());
        }
    }
    let mut checks = Vec::new();
    for name in names {
        let info = infos.get(&name).cloned().ok_or_else(|| DbError::Verify {
            database: target.clone(),
            table: name.clone(),
            expected_rows: expected.get(name.as_str()).map_or(0, |e| e.rows),
            rows: 0,
            expected: expected
                .get(name.as_str())
                .map_or("-".into(), |e| e.checksum.clone()),
            found: "no such table".into(),
        })?;
        checks.push(info);
    }
    let mut conns = conns;
    for c in &mut conns {
        // Read back exactly as the dump read: unconverted.
        c.query_drop("SET character_set_results = NULL")
            .await
            .map_err(|e| qerr("session setup", &e))?;
    }
    let db = target.clone();
    let (conns, found) = parallel(conns, checks, move |mut c, info| {
        let db = db.clone();
        async move {
            let r = match read_table(&mut c, &db, &info, VERIFY_CHUNK, None).await {
                Ok(entry) => Ok(entry),
                Err(ReadError::Sql(e)) => Err(query_err("verify", &db, Some(&info.name), &e)),
                Err(ReadError::Closed) => unreachable_closed(&db, &info.name),
            };
            (c, r)
        }
    })
    .await?;
    for c in conns {
        let _ = c.disconnect().await;
    }
    for f in &found {
        let (rows, sum) = expected
            .get(f.name.as_str())
            .map_or((0, "(not in the manifest)".to_string()), |e| {
                (e.rows, e.checksum.clone())
            });
        if f.rows != rows || f.checksum != sum {
            return Err(DbError::Verify {
                database: target,
                table: f.name.clone(),
                expected_rows: rows,
                rows: f.rows,
                expected: sum,
                found: f.checksum.clone(),
            });
        }
    }

    Ok(found)
}

/// After a failed fill: drops the target if this restore created it (never one that existed
/// before), and says what became of it.
pub(super) async fn abandon(
    conn: &Connection,
    target: &str,
    created: bool,
    cause: DbError,
) -> DbError {
    if !created {
        return abandoned(target, cause, Left::Existed);
    }
    let dropped = async {
        let mut c = connect(conn).await?;
        let r = c
            .query_drop(format!("DROP DATABASE IF EXISTS {}", qi(target)))
            .await
            .map_err(|e| query_err("DROP DATABASE", target, None, &e));
        let _ = c.disconnect().await;
        r
    };
    let left = match dropped.await {
        Ok(()) => Left::Dropped,
        Err(e) => Left::DropFailed(e),
    };
    abandoned(target, cause, left)
}

/// Verification has no consumer to go away; kept as an error rather than a panic.
pub(super) fn unreachable_closed(db: &str, table: &str) -> Result<TableEntry, DbError> {
    Err(DbError::Query {
        what: "verify".into(),
        database: db.to_string(),
        table: Some(table.to_string()),
        detail: "internal: verification sink closed".into(),
    })
}

pub(super) async fn run_statements(
    c: &mut Conn,
    db: &str,
    statements: &[Statement],
) -> Result<(), DbError> {
    for s in statements {
        c.query_drop(s.sql.as_str()).await.map_err(|e| {
            query_err(
                &format!("schema statement `{}`", statement_head(&s.sql)),
                db,
                None,
                &e,
            )
        })?;
    }
    Ok(())
}

/// A loading session: no constraint checks (the data was consistent when dumped).
pub(super) async fn load_session(c: &mut Conn, db: &str) -> Result<(), DbError> {
    let e = |e: mysql_async::Error| query_err("session setup", db, None, &e);
    setup_session(c).await.map_err(e)?;
    c.query_drop("SET FOREIGN_KEY_CHECKS=0, UNIQUE_CHECKS=0")
        .await
        .map_err(e)?;
    c.query_drop(format!("USE {}", qi(db))).await.map_err(e)?;
    Ok(())
}

pub(super) fn load_sql(db: &str, info: &TableInfo, file: &str) -> String {
    let mut cols = Vec::new();
    let mut sets = Vec::new();
    for (i, c) in info.columns.iter().enumerate() {
        if c.json {
            cols.push(format!("@kfguard_{i}"));
            sets.push(format!(
                "{} = CONVERT(@kfguard_{i} USING utf8mb4)",
                qi(&c.name)
            ));
        } else {
            cols.push(qi(&c.name));
        }
    }
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE {} INTO TABLE {}.{} {LOAD_FORMAT} ({})",
        qs(file),
        qi(db),
        qi(&info.name),
        cols.join(", ")
    );
    if !sets.is_empty() {
        let _ = write!(sql, " SET {}", sets.join(", "));
    }
    sql
}

pub(super) async fn load_table(
    c: &mut Conn,
    db: &str,
    table: &RestoreTable,
    info: &TableInfo,
    fetch: Fetch,
) -> Result<(), DbError> {
    for path in &table.parts {
        let f = fetch.clone();
        let p = path.clone();
        let bytes = tokio::task::spawn_blocking(move || f(&p))
            .await
            .map_err(|e| DbError::Fetch {
                path: path.clone(),
                detail: one_line(&e.to_string()),
            })?
            .map_err(|e| DbError::Fetch {
                path: path.clone(),
                detail: one_line(&e.to_string()),
            })?;
        if bytes.is_empty() {
            continue;
        }
        let data = bytes::Bytes::from(bytes);
        c.set_infile_handler(
            async move { Ok(futures::stream::once(async move { Ok(data) }).boxed()) },
        );
        tracing::debug!(database = %db, table = %table.name, part = %path, "loading");
        if let Err(e) = c.query_drop(load_sql(db, info, path)).await {
            let disabled = matches!(server_code(&e), Some(1148 | 3948 | 4166))
                || e.to_string().to_ascii_lowercase().contains("not allowed");
            return Err(if disabled {
                DbError::LocalInfileDisabled
            } else {
                query_err("LOAD DATA", db, Some(&table.name), &e)
            });
        }
    }
    Ok(())
}

/// Runs `work` over `items` on the given connections, one item at a time per connection,
/// in the items' order. Stops handing out items after the first error, which it returns.
pub(super) async fn parallel<I, R, F, Fut>(
    conns: Vec<Conn>,
    items: Vec<I>,
    work: F,
) -> Result<(Vec<Conn>, Vec<R>), DbError>
where
    I: Send + 'static,
    R: Send + 'static,
    F: Fn(Conn, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (Conn, Result<R, DbError>)> + Send + 'static,
{
    if conns.is_empty() && !items.is_empty() {
        return Err(DbError::Query {
            what: "restore".into(),
            database: String::new(),
            table: None,
            detail: "internal: no connection to work with".into(),
        });
    }
    let queue = Arc::new(Mutex::new(
        items.into_iter().enumerate().collect::<VecDeque<_>>(),
    ));
    let failed = Arc::new(AtomicBool::new(false));
    let work = Arc::new(work);
    let mut handles = Vec::new();
    for conn in conns {
        let (queue, failed, work) = (queue.clone(), failed.clone(), work.clone());
        handles.push(tokio::spawn(async move {
            let mut conn = conn;
            let mut done = Vec::new();
            while !failed.load(Ordering::SeqCst) {
                let next = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop_front();
                let Some((i, item)) = next else { break };
                let (c, r) = work(conn, item).await;
                conn = c;
                match r {
                    Ok(r) => done.push((i, r)),
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        return (conn, Err(e));
                    }
                }
            }
            (conn, Ok(done))
        }));
    }
    let mut conns = Vec::new();
    let mut results = Vec::new();
    let mut first_err = None;
    for h in handles {
        match h.await {
            Ok((c, Ok(done))) => {
                conns.push(c);
                results.extend(done);
            }
            Ok((_, Err(e))) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(DbError::Query {
                    what: "restore worker".into(),
                    database: String::new(),
                    table: None,
                    detail: one_line(&e.to_string()),
                });
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    results.sort_by_key(|(i, _)| *i);
    Ok((conns, results.into_iter().map(|(_, r)| r).collect()))
}
