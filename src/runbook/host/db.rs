//! `db::`: the configured `[[databases]]` sources, through `engines::query`: a ping, and one
//! reading statement at a time in a read-only transaction, with a row limit.

use std::sync::Arc;

use rhai::{Array, Dynamic, Map, Module};

use super::{func, known_options, opt_count, to_dynamic, to_map, Host, Res};
use crate::engines::query::{self, DEFAULT_ROW_LIMIT};
use crate::engines::Connection;
use crate::runbook::steps::error;

pub(super) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    func(
        "ping",
        &["source: &str", "Map"],
        "Connects to a `[[databases]]` source by its name and returns `engine`, \
         `server_version`, `connect_ms` (connecting and logging in) and `latency_ms` (one \
         round trip). Fails the step when the server cannot be reached or refuses the login.",
        r#"let p = db::ping("kfp"); info(`${p.engine} ${p.server_version}: ${p.latency_ms} ms`);"#,
    )
    .set_into_module(&mut m, move |source: &str| ping(&h, source));
    let h = host.clone();
    func(
        "query",
        &["source: &str", "database: &str", "sql: &str", "Array"],
        "Runs one statement that reads (`SELECT`, `WITH`, `SHOW`, `EXPLAIN`, `DESCRIBE`, \
         `VALUES`, `TABLE`) in `database` (empty: the server's default) inside a READ ONLY \
         transaction, and returns its rows as maps of column name to value: a number, a bool \
         (PostgreSQL), a string (decimals, dates and text), or `()` for NULL. Several \
         statements, a statement that does not read, and a write the server refuses fail the \
         step. At most 1000 rows are returned; when there were more, the step's journal says \
         so. For a guarantee, give the source a user that may only read.",
        r#"let n = db::query("kfp", "mlpipeline", "SELECT COUNT(*) AS n FROM run_details")[0].n;"#,
    )
    .set_into_module(&mut m, move |source: &str, database: &str, sql: &str| {
        run_query(&h, source, database, sql, &Map::new())
    });
    let h = host.clone();
    func(
        "query",
        &[
            "source: &str",
            "database: &str",
            "sql: &str",
            "options: Map",
            "Array",
        ],
        "A query with options: `limit`, the most rows to return (1000 by default).",
        r#"let runs = db::query("kfp", "mlpipeline", "SELECT UUID, State FROM run_details", #{ limit: 50 });"#,
    )
    .set_into_module(
        &mut m,
        move |source: &str, database: &str, sql: &str, o: Map| {
            run_query(&h, source, database, sql, &o)
        },
    );
    let h = host.clone();
    func(
        "drop_scratch",
        &["source: &str", "database: &str", "bool"],
        "Drops a scratch database of a `[[databases]]` source, one whose name starts with \
         `kfguard_restore_test_` (a restore test's `into`), and returns whether it existed. Any \
         other name is refused: a runbook can clean up after a restore test, never drop the \
         cluster's data. A dry run drops nothing and plans the drop.",
        r#"db::drop_scratch("kfp", "kfguard_restore_test_mlpipeline");"#,
    )
    .set_into_module(&mut m, move |source: &str, database: &str| {
        drop_scratch(&h, source, database)
    });
    m
}

/// The connection settings of a configured source, its password read as a backup reads it.
fn connection(h: &Host, call: &str, source: &str) -> Res<Connection> {
    let sources = &h.config().databases;
    let src = sources.iter().find(|d| d.name == source).ok_or_else(|| {
        let names: Vec<&str> = sources.iter().map(|d| d.name.as_str()).collect();
        error(format!(
            "{call}: no [[databases]] source `{source}` in the config; it has: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))
    })?;
    Connection::from_config(src).map_err(|e| error(format!("{call}: {e}")))
}

fn ping(h: &Host, source: &str) -> Res<Map> {
    let conn = connection(h, "db::ping", source)?;
    let answer = h.block(async { query::ping(&conn).await })?;
    to_map(&answer)
}

fn run_query(h: &Host, source: &str, database: &str, sql: &str, o: &Map) -> Res<Array> {
    known_options("db::query", o, &["limit"])?;
    let limit = opt_count(o, "limit")?.unwrap_or(DEFAULT_ROW_LIMIT);
    let conn = connection(h, "db::query", source)?;
    let rows = h.block(async { query::query(&conn, database, sql, limit).await })?;
    if rows.truncated {
        h.note(format!(
            "db::query on {source}/{database}: the query has more than {limit} rows; only the first {limit} are returned (raise `limit` in its options)"
        ));
    }
    rows.rows
        .iter()
        .map(|cells| {
            let mut row = Map::new();
            for (name, cell) in rows.columns.iter().zip(cells) {
                row.insert(name.as_str().into(), to_dynamic(cell)?);
            }
            Ok(Dynamic::from_map(row))
        })
        .collect()
}

fn drop_scratch(h: &Host, source: &str, database: &str) -> Res<bool> {
    let conn = connection(h, "db::drop_scratch", source)?;
    // Checked before the change is announced, so that a dry run refuses a wrong name too.
    query::check_scratch(&conn, database).map_err(|e| error(e.to_string()))?;
    if h.change(
        "db::drop_scratch",
        &format!("drop scratch database {source}/{database}"),
    )? {
        return Ok(false);
    }
    h.block(async { query::drop_scratch(&conn, database).await })
}
