//! Pings and read-only queries on PostgreSQL; the guards are in `engines::query`.

use std::time::Instant;

use futures::StreamExt;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::SimpleQueryMessage;

use super::connect::{detail, query_err, Server};
use super::sql_split::split_sql;
use crate::engines::query::{float_cell, int_cell, millis_since, Ping, Rows};
use crate::engines::{Connection, DbError};

/// The statements of `sql`, split as psql splits them.
pub(crate) fn statements(sql: &str) -> Vec<String> {
    split_sql(sql)
}

pub(crate) async fn ping(conn: &Connection) -> Result<Ping, DbError> {
    let server = Server::new(conn)?;
    let started = Instant::now();
    let (client, db) = server.connect_maintenance().await?;
    let connect_ms = millis_since(started);
    let at = Instant::now();
    let row = client
        .query_one("SELECT current_setting('server_version')", &[])
        .await
        .map_err(|e| query_err("a ping", &db, None, &e))?;
    let latency_ms = millis_since(at);
    Ok(Ping {
        engine: "PostgreSQL",
        server_version: row.get(0),
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
    let server = Server::new(conn)?;
    let (client, db) = if database.is_empty() {
        server.connect_maintenance().await?
    } else {
        (server.connect(database).await?, database.to_string())
    };
    let err = |what: &str, e: &tokio_postgres::Error| {
        if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
            DbError::WriteRefused {
                source_name: conn.source.clone(),
                database: db.clone(),
                detail: detail(e),
            }
        } else {
            query_err(what, &db, None, e)
        }
    };
    client
        .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; BEGIN READ ONLY")
        .await
        .map_err(|e| err("start the read-only transaction", &e))?;
    // The simple protocol returns text without types; parsing the statement first gives the
    // columns' types (and the server parses one statement only).
    let prepared = client
        .prepare(sql)
        .await
        .map_err(|e| err("the query", &e))?;
    let types: Vec<Type> = prepared
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    let mut out = Rows {
        columns: prepared
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect(),
        rows: Vec::new(),
        truncated: false,
    };
    let stream = client
        .simple_query_raw(sql)
        .await
        .map_err(|e| err("the query", &e))?;
    let mut stream = std::pin::pin!(stream);
    while let Some(message) = stream.next().await {
        if let SimpleQueryMessage::Row(row) = message.map_err(|e| err("the query", &e))? {
            if out.rows.len() == limit {
                out.truncated = true;
                break;
            }
            out.rows.push(
                (0..row.len())
                    .map(|i| typed(row.get(i), types.get(i)))
                    .collect(),
            );
        }
    }
    // A cut query's remaining rows are never read: the session closes with the client.
    if !out.truncated {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    Ok(out)
}

/// A text cell as a number or a bool where its column's type is one; numerics stay text.
fn typed(text: Option<&str>, ty: Option<&Type>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    match ty {
        Some(t) if [Type::INT2, Type::INT4, Type::INT8, Type::OID].contains(t) => {
            int_cell(text.to_string())
        }
        // NaN and the infinities, which JSON lacks, stay as PostgreSQL writes them.
        Some(t) if [Type::FLOAT4, Type::FLOAT8].contains(t) => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map_or_else(|| Value::String(text.to_string()), float_cell),
        Some(t) if *t == Type::BOOL => Value::Bool(text == "t"),
        _ => Value::String(text.to_string()),
    }
}

/// Drops `database` when it exists, and says whether it did. Only a runbook's scratch
/// databases come here; `engines::query::drop_scratch` checks the name.
pub(crate) async fn drop_database(conn: &Connection, database: &str) -> Result<bool, DbError> {
    let server = Server::new(conn)?;
    let (client, db) = server.connect_maintenance().await?;
    let found = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .map_err(|e| query_err("a database lookup", &db, None, &e))?
        .is_some();
    if found {
        // FORCE: a session left open by the restore's verification must not block the drop.
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                super::quote::ident(database)
            ))
            .await
            .map_err(|e| query_err("drop database", database, None, &e))?;
    }
    Ok(found)
}
