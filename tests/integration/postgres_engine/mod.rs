//! The PostgreSQL engine against a real server (`KFGUARD_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432`, trust auth): dump through the library API, consume the
//! part channels from a plain thread as the archiver does, restore into a new database, and
//! compare source and copy row by row with SQL of their own, not kfguard's checksum alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kfguard::engines::postgres;
use kfguard::engines::{
    Connection, DbError, DumpOptions, Fetch, RestoreReport, RestoreRequest, RestoreTable,
};
use kfguard::snapshot::manifest::TableEntry;

use crate::common::db::{pg_connection, pg_db_url, Db};

mod bad_input;
mod consistency;
mod fidelity;
mod kfp;
mod other_objects;
mod ranges;
mod refusals;
const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// A finished dump of one database, as the archiver would have stored it.
#[derive(Default, Clone)]
struct Dumped {
    files: HashMap<String, Vec<u8>>,
    /// Table -> part paths, in order.
    tables: BTreeMap<String, Vec<String>>,
    entries: BTreeMap<String, TableEntry>,
}

struct DumpResult {
    dbs: BTreeMap<String, Dumped>,
    warnings: Vec<String>,
    consistency: BTreeMap<String, String>,
    server_version: String,
    /// Database order and table order as handed to the consumer.
    order: Vec<(String, Vec<String>)>,
}

/// Dumps, then consumes every channel from this (non-runtime) thread with `blocking_recv`.
fn dump(pg: &Db, opts: &DumpOptions) -> DumpResult {
    let session = pg
        .rt()
        .block_on(postgres::dump(&pg_connection(), opts))
        .unwrap_or_else(|e| panic!("dump: {e}"));
    let mut dbs = BTreeMap::new();
    let mut order = Vec::new();
    for db in session.databases {
        let mut d = Dumped::default();
        for f in db.files {
            d.files.insert(f.path, f.bytes);
        }
        let mut names = Vec::new();
        for mut t in db.tables {
            names.push(t.name.clone());
            let mut paths = Vec::new();
            while let Some(part) = t.parts.blocking_recv() {
                let part = part.unwrap_or_else(|e| panic!("table {}: {e}", t.name));
                paths.push(part.path.clone());
                d.files.insert(part.path, part.bytes);
            }
            d.tables.insert(t.name, paths);
        }
        order.push((db.database.clone(), names));
        dbs.insert(db.database, d);
    }
    let results = session.results.lock().expect("results").clone();
    for (db, tables) in results {
        if let Some(d) = dbs.get_mut(&db) {
            d.entries = tables;
        }
    }
    DumpResult {
        dbs,
        warnings: session.warnings,
        consistency: session.consistency,
        server_version: session.server_version,
        order,
    }
}

fn request(d: &Dumped, database: &str, target: &str) -> RestoreRequest {
    let files = Arc::new(d.files.clone());
    let fetch: Fetch = Arc::new(move |path: &str| {
        files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, path.to_string()))
    });
    let text = |p: &str| String::from_utf8(d.files[p].clone()).expect("utf-8 script");
    RestoreRequest {
        source: "test".into(),
        database: database.into(),
        target: target.into(),
        schema_sql: text("schema.sql"),
        post_sql: Some(text("post.sql")),
        tables: d
            .tables
            .iter()
            .map(|(name, parts)| RestoreTable {
                name: name.clone(),
                parts: parts.clone(),
            })
            .collect(),
        expected: d.entries.values().cloned().collect(),
        fetch,
        jobs: 3,
        force: false,
        dry_run: false,
    }
}

fn entry(e: &TableEntry) -> (String, u64, String) {
    (e.name.clone(), e.rows, e.checksum.clone())
}

fn restore(pg: &Db, req: RestoreRequest) -> Result<RestoreReport, DbError> {
    pg.rt().block_on(postgres::restore(&pg_connection(), req))
}

/// Compares every table of `src` with `dst` using plain SQL: row count, an md5 over all rows'
/// text, and the rows themselves, in one order computed by the server on each side.
fn assert_same_rows(pg: &Db, src: &str, dst: &str, tables: &[&str]) {
    for t in tables {
        let q = format!(
            "SELECT count(*), md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text COLLATE \"C\"), '')) \
             FROM {t} AS r"
        );
        let a = pg.pg_sql(src, &q);
        let b = pg.pg_sql(dst, &q);
        assert_eq!(a, b, "count/md5 of {t}");
        let q = format!("SELECT r::text FROM {t} AS r ORDER BY r::text COLLATE \"C\"");
        let a = pg.pg_sql(src, &q);
        let b = pg.pg_sql(dst, &q);
        assert_eq!(a.len(), b.len(), "rows of {t}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(x == y, "{t}: row {i} differs");
        }
    }
}
