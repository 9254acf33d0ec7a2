//! The dump: one consistent point over `jobs` connections, the binlog position, and the schema
//! captured before the table workers start.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mysql_async::prelude::*;
use mysql_async::{Conn, Row};
use tokio::sync::mpsc;

use super::connect::{
    cell, cell_or_empty, connect, one_line, query_err, server_code, setup_session,
};
use super::pool::{schedule, TableJob};
use super::schema::capture_schema;
use crate::engines::{
    file_stem, Connection, DatabaseDump, DbError, DumpFile, DumpOptions, DumpSession, TableStream,
};

/// The longest a dump waits for FLUSH TABLES WITH READ LOCK before falling back.
const FTWRL_WAIT_SECS: u32 = 30;

/// Starts a dump of the selected databases at one consistent point. Returns once the schema is
/// captured and the table workers are spawned on the current (multi-threaded) tokio runtime;
/// table data then streams through each [`TableStream`] as the consumer reads them in order.
pub async fn dump(conn: &Connection, opts: &DumpOptions) -> Result<DumpSession, DbError> {
    let jobs = opts.jobs.max(1);
    let part_bytes = opts.part_bytes.max(1);
    let mut coord = connect(conn).await?;
    // Server-wide steps name the source where a database would go.
    let source = conn.source.clone();
    let q = |what: &'static str| {
        let source = source.clone();
        move |e: mysql_async::Error| query_err(what, &source, None, &e)
    };
    setup_session(&mut coord)
        .await
        .map_err(q("session setup"))?;

    let server_version: String = coord
        .query_first("SELECT VERSION()")
        .await
        .map_err(q("SELECT VERSION()"))?
        .unwrap_or_default();
    let mariadb = server_version.to_ascii_lowercase().contains("mariadb");

    let schemata: Vec<Row> = coord
        .query(
            "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA",
        )
        .await
        .map_err(q("listing databases"))?;
    let charsets: BTreeMap<String, (String, String)> = schemata
        .iter()
        .map(|r| {
            (
                cell_or_empty(r, 0),
                (cell_or_empty(r, 1), cell_or_empty(r, 2)),
            )
        })
        .collect();
    let databases: Vec<String> = if opts.databases.is_empty() {
        charsets
            .keys()
            .filter(|d| {
                !crate::engines::MYSQL_SYSTEM_DATABASES.contains(&d.to_ascii_lowercase().as_str())
            })
            .cloned()
            .collect()
    } else {
        for d in &opts.databases {
            if !charsets.contains_key(d) {
                return Err(DbError::NoDatabase {
                    source_name: conn.source.clone(),
                    database: d.clone(),
                });
            }
        }
        opts.databases.clone()
    };

    // Open the workers before taking the global lock, to hold it as briefly as possible.
    let mut conns = vec![coord];
    for _ in 1..jobs {
        let mut c = connect(conn).await?;
        setup_session(&mut c).await.map_err(q("session setup"))?;
        conns.push(c);
    }

    let mut consistency = BTreeMap::new();
    let mut warnings = Vec::new();
    // On MySQL a pending FTWRL waits for running statements and meanwhile blocks every writer:
    // bound the wait, and fall back rather than stall the server.
    conns[0]
        .query_drop(format!("SET SESSION lock_wait_timeout = {FTWRL_WAIT_SECS}"))
        .await
        .map_err(q("session setup"))?;
    let ftwrl = conns[0].query_drop("FLUSH TABLES WITH READ LOCK").await;
    conns[0]
        .query_drop("SET SESSION lock_wait_timeout = @@GLOBAL.lock_wait_timeout")
        .await
        .map_err(q("session setup"))?;
    match ftwrl {
        Ok(()) => {
            for c in &mut conns {
                start_snapshot(c).await.map_err(q("START TRANSACTION"))?;
            }
            record_binlog(&mut conns[0], mariadb, &mut consistency, &mut warnings).await;
            conns[0]
                .query_drop("UNLOCK TABLES")
                .await
                .map_err(q("UNLOCK TABLES"))?;
            consistency.insert("mode".into(), "ftwrl".into());
        }
        Err(e) if matches!(server_code(&e), Some(1044 | 1045 | 1142 | 1205 | 1227)) => {
            for c in conns.drain(1..) {
                let _ = c.disconnect().await;
            }
            start_snapshot(&mut conns[0])
                .await
                .map_err(q("START TRANSACTION"))?;
            // MariaDB reports the binlog position of the snapshot itself.
            if mariadb {
                record_snapshot_binlog(&mut conns[0], &mut consistency).await;
            }
            consistency.insert("mode".into(), "single-connection".into());
            let why = if server_code(&e) == Some(1205) {
                format!(
                    "timed out after {FTWRL_WAIT_SECS} s behind a long-running statement; \
                     retry when the server is quieter for the parallel mode"
                )
            } else {
                "grant RELOAD for the parallel mode".to_string()
            };
            warnings.push(format!(
                "FLUSH TABLES WITH READ LOCK failed ({}): dumped over one consistent-snapshot \
                 connection instead of {jobs}; non-transactional tables are not covered and the \
                 binlog position may be missing; {why}",
                one_line(&e.to_string())
            ));
        }
        Err(e) => return Err(q("FLUSH TABLES WITH READ LOCK")(e)),
    }

    // The schema, read inside the first connection's snapshot.
    let mut dumps = Vec::new();
    let mut table_jobs = Vec::new();
    for db in &databases {
        let (charset, collation) = charsets.get(db).cloned().unwrap_or_default();
        let captured = capture_schema(
            &mut conns[0],
            db,
            &charset,
            &collation,
            &server_version,
            opts,
            &mut warnings,
        )
        .await?;
        let mut tables = captured.tables;
        tables.sort_by_key(|t| file_stem(&t.name));
        let mut streams = Vec::new();
        for info in tables {
            let (tx, rx) = mpsc::channel(1);
            streams.push(TableStream {
                name: info.name.clone(),
                parts: rx,
            });
            table_jobs.push(TableJob {
                db: db.clone(),
                info,
                tx,
            });
        }
        dumps.push(DatabaseDump {
            database: db.clone(),
            files: vec![DumpFile {
                path: "schema.sql".into(),
                bytes: captured.sql.into_bytes(),
            }],
            tables: streams,
        });
    }

    // Data is read unconverted, in each column's own charset; see the module docs.
    for c in &mut conns {
        c.query_drop("SET character_set_results = NULL")
            .await
            .map_err(q("session setup"))?;
    }

    let results = Arc::new(Mutex::new(BTreeMap::new()));
    tokio::spawn(schedule(conns, table_jobs, part_bytes, results.clone()));
    Ok(DumpSession {
        server_version,
        consistency,
        warnings,
        databases: dumps,
        results,
    })
}

pub(super) async fn start_snapshot(c: &mut Conn) -> Result<(), mysql_async::Error> {
    c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await?;
    c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await
}

/// Binlog file, position and GTID at the locked point; missing ones become a warning.
pub(super) async fn record_binlog(
    c: &mut Conn,
    mariadb: bool,
    consistency: &mut BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) {
    // MySQL 8.4 renamed the statement.
    let status = match c.query::<Row, _>("SHOW MASTER STATUS").await {
        Ok(rows) => Ok(rows),
        Err(_) => c.query::<Row, _>("SHOW BINARY LOG STATUS").await,
    };
    match status {
        Ok(rows) => {
            if let Some(r) = rows.first() {
                if let Some(file) = cell(r, 0).filter(|f| !f.is_empty()) {
                    consistency.insert("binlog_file".into(), file);
                }
                if let Some(pos) = cell(r, 1) {
                    consistency.insert("binlog_position".into(), pos);
                }
            }
        }
        Err(e) => warnings.push(format!(
            "binlog position not recorded: {}",
            one_line(&e.to_string())
        )),
    }
    let gtid_sql = if mariadb {
        "SELECT @@GLOBAL.gtid_binlog_pos"
    } else {
        "SELECT @@GLOBAL.gtid_executed"
    };
    if let Ok(Some(Some(gtid))) = c.query_first::<Option<String>, _>(gtid_sql).await {
        if !gtid.is_empty() {
            consistency.insert("gtid".into(), gtid);
        }
    }
}

pub(super) async fn record_snapshot_binlog(
    c: &mut Conn,
    consistency: &mut BTreeMap<String, String>,
) {
    if let Ok(rows) = c
        .query::<Row, _>("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
    {
        for r in &rows {
            let key = match cell(r, 0).as_deref() {
                Some("Binlog_snapshot_file") => "binlog_file",
                Some("Binlog_snapshot_position") => "binlog_position",
                _ => continue,
            };
            if let Some(v) = cell(r, 1).filter(|v| !v.is_empty() && v != "0") {
                consistency.insert(key.into(), v);
            }
        }
    }
}
