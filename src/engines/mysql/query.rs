//! Pings and read-only queries on MySQL / MariaDB; the guards are in `engines::query`.

use std::time::Instant;

use futures::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{Column, Conn, Row};
use serde_json::Value;

use super::connect::{connect, qi, query_err, server_code, setup_session, ENGINE};
use super::encode::encode_value;
use super::sql_split::split_sql;
use crate::engines::query::{float_cell, millis_since, Ping, Rows};
use crate::engines::{Connection, DbError};

/// ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
const READ_ONLY_REFUSED: u16 = 1792;
/// ER_BAD_DB_ERROR.
const NO_DATABASE: u16 = 1049;

/// The statements of `sql`, split as the `mysql` client splits them.
pub(crate) fn statements(sql: &str) -> Vec<String> {
    split_sql(sql).into_iter().map(|s| s.sql).collect()
}

pub(crate) async fn ping(conn: &Connection) -> Result<Ping, DbError> {
    let started = Instant::now();
    let mut c = connect(conn).await?;
    let connect_ms = millis_since(started);
    let at = Instant::now();
    let version: Option<String> = c
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| query_err("a ping", &conn.address(), None, &e))?;
    let latency_ms = millis_since(at);
    let _ = c.disconnect().await;
    Ok(Ping {
        engine: ENGINE,
        server_version: version.unwrap_or_default(),
        connect_ms,
        latency_ms,
    })
}

pub(crate) async fn query(
    conn: &Connection,
    database: &str,
    sql: &str,
    limit: usize,
) -> Result<Rows, DbError> {
    let label = if database.is_empty() {
        "(none)"
    } else {
        database
    };
    let err = |what: &str, e: &mysql_async::Error| match server_code(e) {
        Some(READ_ONLY_REFUSED) => DbError::WriteRefused {
            source_name: conn.source.clone(),
            database: label.to_string(),
            detail: super::connect::one_line(&e.to_string()),
        },
        Some(NO_DATABASE) => DbError::NoDatabase {
            source_name: conn.source.clone(),
            database: label.to_string(),
        },
        _ => query_err(what, label, None, e),
    };
    let mut c = connect(conn).await?;
    setup_session(&mut c)
        .await
        .map_err(|e| err("configure session", &e))?;
    if !database.is_empty() {
        c.query_drop(format!("USE {}", qi(database)))
            .await
            .map_err(|e| err("USE", &e))?;
    }
    // A read-only session as well as a read-only transaction: on MySQL a statement that
    // commits implicitly (DDL) would otherwise end the transaction and run outside it. The
    // server stops a SELECT after one row more than the limit, which says it was cut.
    for setup in [
        format!("SET SESSION sql_select_limit = {}", limit.saturating_add(1)),
        "SET SESSION TRANSACTION READ ONLY".to_string(),
        "START TRANSACTION READ ONLY".to_string(),
    ] {
        c.query_drop(&setup)
            .await
            .map_err(|e| err("start the read-only transaction", &e))?;
    }
    let rows = read(&mut c, sql, limit)
        .await
        .map_err(|e| err("the query", &e))?;
    // The session, and whatever it set, ends with the query.
    let _ = c.disconnect().await;
    Ok(rows)
}

async fn read(c: &mut Conn, sql: &str, limit: usize) -> Result<Rows, mysql_async::Error> {
    // A prepared statement: the server parses one statement, never several.
    let mut result = c.exec_iter(sql, ()).await?;
    let mut out = Rows {
        columns: Vec::new(),
        rows: Vec::new(),
        truncated: false,
    };
    if let Some(mut stream) = result.stream::<Row>().await? {
        let columns = stream.columns();
        out.columns = columns.iter().map(|c| c.name_str().into_owned()).collect();
        while let Some(row) = stream.next().await {
            let row = row?;
            if out.rows.len() == limit {
                out.truncated = true;
                break;
            }
            out.rows.push(
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, col)| typed(row.as_ref(i), col))
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// A cell of the binary protocol: numbers as numbers, dates and times as MySQL prints them,
/// everything else (decimals too, to keep their digits) as text.
fn typed(v: Option<&mysql_async::Value>, col: &Column) -> Value {
    use mysql_async::Value as My;
    match v {
        None | Some(My::NULL) => Value::Null,
        Some(My::Int(i)) => Value::from(*i),
        Some(My::UInt(u)) => {
            i64::try_from(*u).map_or_else(|_| Value::String(u.to_string()), Value::from)
        }
        Some(My::Float(f)) => float_cell(f64::from(*f)),
        Some(My::Double(d)) => float_cell(*d),
        Some(My::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Some(other) => {
            let mut out = Vec::new();
            encode_value(&mut out, other, Some(col));
            Value::String(String::from_utf8_lossy(&out).into_owned())
        }
    }
}

/// Drops `database` when it exists, and says whether it did. Only a runbook's scratch
/// databases come here; `engines::query::drop_scratch` checks the name.
pub(crate) async fn drop_database(conn: &Connection, database: &str) -> Result<bool, DbError> {
    let mut c = connect(conn).await?;
    let found: Option<String> = c
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (database,),
        )
        .await
        .map_err(|e| query_err("a database lookup", database, None, &e))?;
    if found.is_some() {
        c.query_drop(format!("DROP DATABASE IF EXISTS {}", qi(database)))
            .await
            .map_err(|e| query_err("DROP DATABASE", database, None, &e))?;
    }
    let _ = c.disconnect().await;
    Ok(found.is_some())
}
