//! Pings, read-only queries and scratch-database drops of a database source, as runbooks'
//! `db::` calls them.
//!
//! A query is one statement that reads. Guards keep it so, before and on the server:
//! - the engine's own statement splitter refuses a string of several statements, and the
//!   server parses the query as one prepared statement, which cannot hold more;
//! - on MySQL, executable comments (`/*! … */`, MariaDB's `/*M! … */`) are refused: the
//!   splitter would read them as comments and the server run them as code;
//! - the first keyword must be one that reads (`SELECT`, `WITH`, `SHOW`, `EXPLAIN`,
//!   `DESCRIBE`, `VALUES`, `TABLE`), which also keeps out what a read-only transaction lets
//!   through on MariaDB (`SET GLOBAL`, `FLUSH`, `KILL`), and `SELECT … INTO OUTFILE` is refused;
//! - the statement runs in a `READ ONLY` transaction of a session that is read-only too, so
//!   that the server refuses a write hidden in a function or a CTE.
//!
//! A user that may only read is still the one guarantee: a function can do anything its
//! owner may.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::{mysql, postgres, Connection, DbError};
use crate::config::Engine;

/// The rows a query returns unless told otherwise.
pub const DEFAULT_ROW_LIMIT: usize = 1000;

/// The first keywords of a statement that reads.
const READS: &[&str] = &[
    "SELECT", "WITH", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "VALUES", "TABLE",
];

/// A server's answer to a ping.
#[derive(Debug, Clone, Serialize)]
pub struct Ping {
    pub engine: &'static str,
    pub server_version: String,
    /// Connecting, with the handshake and authentication.
    pub connect_ms: u64,
    /// One round trip on the open connection.
    pub latency_ms: u64,
}

/// What a query returned: its columns, and at most `limit` rows of cells, each `null`, a
/// number, a bool (PostgreSQL's `boolean`) or text (decimals stay text, to keep their digits).
#[derive(Debug, Clone, Serialize)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// The query had more rows than the limit; only the first `limit` are here.
    pub truncated: bool,
}

/// Connects to the source and asks for its version.
pub async fn ping(conn: &Connection) -> Result<Ping, DbError> {
    match conn.engine {
        Engine::Mysql => mysql::query::ping(conn).await,
        Engine::Postgres => postgres::query::ping(conn).await,
    }
}

/// Runs one reading statement in `database` (empty: the server's default) inside a read-only
/// transaction, and returns at most `limit` rows.
pub async fn query(
    conn: &Connection,
    database: &str,
    sql: &str,
    limit: usize,
) -> Result<Rows, DbError> {
    let statements = match conn.engine {
        Engine::Mysql => mysql::query::statements(sql),
        Engine::Postgres => postgres::query::statements(sql),
    };
    check_read(conn, database, sql, &statements)?;
    match conn.engine {
        Engine::Mysql => mysql::query::query(conn, database, sql, limit).await,
        Engine::Postgres => postgres::query::query(conn, database, sql, limit).await,
    }
}

/// The prefix of the scratch databases a runbook restores into to test a backup, and the
/// only databases `drop_scratch` drops.
pub const SCRATCH_PREFIX: &str = "kfguard_restore_test_";

/// Drops a scratch database (its name starts with [`SCRATCH_PREFIX`]) and says whether it
/// existed. The prefix is the guard: a runbook can drop what it restored to test a backup,
/// never a database that holds the cluster's data.
pub async fn drop_scratch(conn: &Connection, database: &str) -> Result<bool, DbError> {
    check_scratch(conn, database)?;
    match conn.engine {
        Engine::Mysql => mysql::query::drop_database(conn, database).await,
        Engine::Postgres => postgres::query::drop_database(conn, database).await,
    }
}

/// Refuses a name that is not a scratch database's: [`SCRATCH_PREFIX`] and more.
pub fn check_scratch(conn: &Connection, database: &str) -> Result<(), DbError> {
    if database.len() > SCRATCH_PREFIX.len() && database.starts_with(SCRATCH_PREFIX) {
        return Ok(());
    }
    Err(DbError::NotScratch {
        source_name: conn.source.clone(),
        database: database.to_string(),
        prefix: SCRATCH_PREFIX,
    })
}

/// Refuses anything but one statement that reads: `sql` as given, `statements` as the
/// engine's splitter reads it.
fn check_read(
    conn: &Connection,
    database: &str,
    sql: &str,
    statements: &[String],
) -> Result<(), DbError> {
    let refuse = |reason: String| DbError::NotARead {
        source_name: conn.source.clone(),
        database: database.to_string(),
        reason,
    };
    if conn.engine == Engine::Mysql
        && words_outside_quotes(sql, conn.engine).contains(&"/*!".into())
    {
        return Err(refuse(
            "it holds an executable comment (`/*! … */` or `/*M! … */`), which the server runs as SQL".into(),
        ));
    }
    let statement = match statements {
        [] => return Err(refuse("the query is empty".into())),
        [one] => one,
        many => {
            let heads: Vec<String> = many.iter().map(|s| format!("`{}`", head(s))).collect();
            return Err(refuse(format!(
                "it holds {} statements ({}); send one statement per query",
                many.len(),
                heads.join(", ")
            )));
        }
    };
    let words = words_outside_quotes(statement, conn.engine);
    let first = words.first().map(String::as_str).unwrap_or_default();
    if !READS.contains(&first) {
        return Err(refuse(format!(
            "`{first}` does not read; a query starts with {}, and data is changed through a restore",
            READS.join(", ")
        )));
    }
    if conn.engine == Engine::Mysql
        && words
            .windows(2)
            .any(|w| w[0] == "INTO" && matches!(w[1].as_str(), "OUTFILE" | "DUMPFILE"))
    {
        return Err(refuse(
            "`INTO OUTFILE` and `INTO DUMPFILE` write files on the server".into(),
        ));
    }
    Ok(())
}

/// The statement's keywords and identifiers, upper-cased, outside quotes and comments, as
/// `engine` reads them (a MySQL `/*! … */` is kept: the server runs it); `(` counts as
/// nothing, so that `(SELECT 1) UNION (SELECT 2)` starts with `SELECT`.
fn words_outside_quotes(sql: &str, engine: Engine) -> Vec<String> {
    let mysql = engine == Engine::Mysql;
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = sql.chars().peekable();
    let end_word = |word: &mut String, words: &mut Vec<String>| {
        if !word.is_empty() {
            words.push(std::mem::take(word).to_ascii_uppercase());
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                end_word(&mut word, &mut words);
                // A quoted name or string is one opaque word.
                let mut escaped = false;
                for d in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' && c != '`' {
                        escaped = true;
                    } else if d == c {
                        break;
                    }
                }
                words.push("\u{0}".into());
            }
            // MySQL's `--` comment needs a space after it: `1--1` is two minus signs.
            '-' if chars.peek() == Some(&'-')
                && (!mysql || chars.clone().nth(1).is_none_or(char::is_whitespace)) =>
            {
                end_word(&mut word, &mut words);
                chars.by_ref().find(|&d| d == '\n');
            }
            '#' if mysql => {
                end_word(&mut word, &mut words);
                chars.by_ref().find(|&d| d == '\n');
            }
            '/' if chars.peek() == Some(&'*') => {
                end_word(&mut word, &mut words);
                chars.next();
                let mut ahead = chars.clone();
                let executable = match ahead.next() {
                    Some('!') => true,
                    Some('M' | 'm') => ahead.next() == Some('!'),
                    _ => false,
                };
                if mysql && executable {
                    // MySQL runs the inside of `/*! … */` (MariaDB of `/*M! … */` too).
                    words.push("/*!".into());
                    continue;
                }
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => word.push(c),
            _ => end_word(&mut word, &mut words),
        }
    }
    end_word(&mut word, &mut words);
    words
}

/// The first line of a statement, shortened, for messages.
fn head(sql: &str) -> String {
    let line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

/// Milliseconds since `at`, for pings.
pub(super) fn millis_since(at: Instant) -> u64 {
    u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A number cell from the text of an integer column, or the text when it does not fit.
pub(super) fn int_cell(text: String) -> Value {
    text.parse::<i64>().map_or(Value::String(text), Value::from)
}

/// A number cell from a float; NaN and infinities, which JSON lacks, as text.
pub(super) fn float_cell(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(engine: Engine) -> Connection {
        Connection {
            source: "kfp".into(),
            engine,
            url: String::new(),
            password: None,
        }
    }

    fn check(engine: Engine, sql: &str) -> Result<(), String> {
        let stmts = match engine {
            Engine::Mysql => mysql::query::statements(sql),
            Engine::Postgres => postgres::query::statements(sql),
        };
        check_read(&conn(engine), "db", sql, &stmts).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_pass_and_the_rest_is_refused_before_it_is_sent() {
        for engine in [Engine::Mysql, Engine::Postgres] {
            for ok in [
                "SELECT 1",
                "  select * from t where x = 'DROP TABLE t; --'",
                "-- why\nWITH a AS (SELECT 1) SELECT * FROM a;",
                "(SELECT 1) UNION (SELECT 2)",
                "show tables",
                "EXPLAIN SELECT 1",
            ] {
                assert_eq!(check(engine, ok), Ok(()), "{engine:?} {ok}");
            }
            let two = check(engine, "SELECT 1; DROP TABLE t").unwrap_err();
            assert!(
                two.contains("2 statements") && two.contains("`DROP TABLE t`"),
                "{two}"
            );
            let write = check(engine, "UPDATE t SET x = 1").unwrap_err();
            assert!(write.contains("`UPDATE` does not read"), "{write}");
            assert!(check(engine, "  ;  ").unwrap_err().contains("empty"));
        }
        let file = check(Engine::Mysql, "SELECT * FROM t INTO OUTFILE '/tmp/x'").unwrap_err();
        assert!(file.contains("OUTFILE"), "{file}");
        for hidden in [
            "/*!40000 DROP TABLE t */",
            "SELECT 1 /*!10000 ; SET GLOBAL max_connections = 1 */",
            "/*M!SET GLOBAL max_connections = 1, @x = */ (SELECT 1)",
        ] {
            let e = check(Engine::Mysql, hidden).unwrap_err();
            assert!(e.contains("executable comment"), "{hidden}: {e}");
        }
        assert_eq!(check(Engine::Mysql, "SELECT '/*!' AS x"), Ok(()));
        assert!(check(Engine::Mysql, "SET GLOBAL read_only = 0").is_err());
    }
}
