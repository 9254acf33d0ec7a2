//! The MySQL/MariaDB engine against the real server on loopback (`KFGUARD_TEST_MYSQL_URL`,
//! default `mysql://root@127.0.0.1:3306`): dump through the library API, consume the table
//! streams as the archiver does (a plain thread, outside the runtime), restore `--into` a new
//! name, then compare source and copy row by row with independent SQL and `CHECKSUM TABLE`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kfguard::engines::mysql;
use kfguard::engines::{
    Connection, DbError, DumpOptions, Fetch, RestoreReport, RestoreRequest, RestoreTable,
};
use kfguard::snapshot::manifest::TableEntry;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, Row, Value};
use tokio::runtime::Runtime;

use crate::common::db::{mysql_connection, mysql_url, Db};

mod bad_input;
mod fidelity;
mod kfp;
mod ranges;
mod refusals;
mod server_limits;
fn exec(rt: &Runtime, c: &mut Conn, sql: &str) {
    rt.block_on(c.query_drop(sql))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

trait IntoParams {
    fn into_params(self) -> mysql_async::Params;
}

impl<T: Into<mysql_async::Params>> IntoParams for T {
    fn into_params(self) -> mysql_async::Params {
        self.into()
    }
}

/// One database of a finished dump, held in memory like a snapshot.
#[derive(Clone)]
struct DbFiles {
    files: HashMap<String, Vec<u8>>,
    tables: Vec<RestoreTable>,
    expected: Vec<TableEntry>,
}

struct Dumped {
    warnings: Vec<String>,
    consistency: BTreeMap<String, String>,
    server_version: String,
    dbs: BTreeMap<String, DbFiles>,
}

/// Runs a dump and consumes it from this thread, in order, as the archiver does.
fn dump_all(rt: &Runtime, conn: &Connection, opts: &DumpOptions) -> Result<Dumped, DbError> {
    let mut session = rt.block_on(mysql::dump(conn, opts))?;
    let mut dbs = BTreeMap::new();
    let mut order = Vec::new();
    for d in &mut session.databases {
        let mut files: HashMap<String, Vec<u8>> = d
            .files
            .iter()
            .map(|f| (f.path.clone(), f.bytes.clone()))
            .collect();
        let mut tables = Vec::new();
        for t in &mut d.tables {
            let mut parts = Vec::new();
            while let Some(item) = t.parts.blocking_recv() {
                let f = item?;
                parts.push(f.path.clone());
                assert!(files.insert(f.path, f.bytes).is_none(), "duplicate part");
            }
            tables.push(RestoreTable {
                name: t.name.clone(),
                parts,
            });
        }
        order.push(d.database.clone());
        dbs.insert(
            d.database.clone(),
            DbFiles {
                files,
                tables,
                expected: Vec::new(),
            },
        );
    }
    let results = session.results.lock().unwrap().clone();
    for (db, files) in &mut dbs {
        let r = results.get(db).cloned().unwrap_or_default();
        for t in &files.tables {
            assert!(r.contains_key(&t.name), "no result for {db}.{}", t.name);
        }
        files.expected = r.into_values().collect();
    }
    Ok(Dumped {
        warnings: session.warnings.clone(),
        consistency: session.consistency.clone(),
        server_version: session.server_version.clone(),
        dbs,
    })
}

fn restore_db(
    rt: &Runtime,
    dump: &DbFiles,
    source_db: &str,
    target: &str,
    jobs: usize,
    force: bool,
    dry_run: bool,
) -> Result<RestoreReport, DbError> {
    let files = Arc::new(dump.files.clone());
    let fetch: Fetch = Arc::new(move |p: &str| {
        files
            .get(p)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, p.to_string()))
    });
    let req = RestoreRequest {
        source: "test".into(),
        database: source_db.into(),
        target: target.into(),
        schema_sql: String::from_utf8(dump.files["schema.sql"].clone()).unwrap(),
        post_sql: None,
        tables: dump.tables.clone(),
        expected: dump.expected.clone(),
        fetch,
        jobs,
        force,
        dry_run,
    };
    rt.block_on(mysql::restore(&mysql_connection(), req))
}

fn opts(databases: &[&str], jobs: usize, part_bytes: usize) -> DumpOptions {
    DumpOptions {
        jobs,
        part_bytes,
        databases: databases
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        ..DumpOptions::default()
    }
}

fn strings(rt: &Runtime, c: &mut Conn, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows: Vec<Row> = rt
        .block_on(c.query(sql))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    Value::NULL => None,
                    Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    other => Some(other.as_sql(false)),
                })
                .collect()
        })
        .collect()
}

fn base_tables(rt: &Runtime, c: &mut Conn, db: &str) -> Vec<String> {
    strings(
        rt,
        c,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
             AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
        ),
    )
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

/// Values equal, doubles and floats bit for bit (so -0.0 differs from 0.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x.to_bits() == y.to_bits(),
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// All rows of a table through the binary protocol, in a canonical order of our own.
fn rows_of(rt: &Runtime, c: &mut Conn, db: &str, table: &str) -> Vec<Vec<Value>> {
    let sql = format!("SELECT * FROM `{db}`.`{}`", table.replace('`', "``"));
    let rows: Vec<Row> = rt
        .block_on(c.exec(sql.as_str(), ()))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows: Vec<Vec<Value>> = rows.into_iter().map(mysql_async::Row::unwrap).collect();
    rows.sort_by_cached_key(|r| r.iter().map(|v| v.as_sql(false)).collect::<Vec<_>>());
    rows
}

/// Compares every base table of two databases: definitions, every row and value, and the
/// server's own CHECKSUM TABLE. Returns the number of rows compared.
fn assert_same_databases(rt: &Runtime, c: &mut Conn, a: &str, b: &str) -> usize {
    let tables = base_tables(rt, c, a);
    assert_eq!(tables, base_tables(rt, c, b), "tables of {a} and {b}");
    let mut total = 0;
    for t in &tables {
        let q = t.replace('`', "``");
        let show = |db: &str, c: &mut Conn| {
            strings(rt, c, &format!("SHOW CREATE TABLE `{db}`.`{q}`"))[0][1].clone()
        };
        assert_eq!(show(a, c), show(b, c), "definition of {t}");
        let ra = rows_of(rt, c, a, t);
        let rb = rows_of(rt, c, b, t);
        assert_eq!(ra.len(), rb.len(), "row count of {t}");
        for (i, (x, y)) in ra.iter().zip(&rb).enumerate() {
            assert_eq!(x.len(), y.len());
            for (j, (u, v)) in x.iter().zip(y).enumerate() {
                assert!(same(u, v), "{t} row {i} column {j}: {u:?} != {v:?}");
            }
        }
        total += ra.len();
        let sum = |db: &str, c: &mut Conn| {
            strings(rt, c, &format!("CHECKSUM TABLE `{db}`.`{q}`"))[0][1].clone()
        };
        assert_eq!(sum(a, c), sum(b, c), "CHECKSUM TABLE {t}");
    }
    total
}

fn auto_increment(rt: &Runtime, c: &mut Conn, db: &str, table: &str) -> Option<String> {
    strings(
        rt,
        c,
        &format!(
            "SELECT AUTO_INCREMENT FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}'"
        ),
    )[0][0]
        .clone()
}

/// Runs `;`-separated DDL; the trigger (last in MLPIPELINE) is sent whole.
fn run_ddl(rt: &Runtime, c: &mut Conn, db: &str, ddl: &str) {
    exec(rt, c, &format!("CREATE DATABASE `{db}`"));
    exec(rt, c, &format!("USE `{db}`"));
    let (plain, trigger) = match ddl.find("CREATE TRIGGER") {
        Some(i) => (&ddl[..i], Some(&ddl[i..])),
        None => (ddl, None),
    };
    for stmt in plain.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        exec(rt, c, stmt);
    }
    if let Some(t) = trigger {
        exec(rt, c, t.trim());
    }
}
