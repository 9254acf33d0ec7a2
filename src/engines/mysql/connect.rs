//! Connecting to MySQL / MariaDB: session setup, quoting, result cells, and the errors of a
//! failed connection or query.

use secrecy::ExposeSecret;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Row, Value};

use super::encode::encode_value;
use crate::engines::{Connection, DbError};

pub(super) const ENGINE: &str = "MySQL";
/// An unreachable server must fail fast rather than hang the backup.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A worker may wait a long time for the archiver with a half-read result set, or sit idle in
/// its snapshot before its first table: keep the server from timing the session out.
const SESSION_TIMEOUT_SECS: u32 = 86_400;
/// The session sql_mode of dumps and restores, as mysqldump uses: explicit zero ids stay zero,
/// backslash escapes work, and quoting is the default backquotes.
pub(super) const SQL_MODE: &str = "NO_AUTO_VALUE_ON_ZERO";

/// Connects with the source's URL and password, in at most [`CONNECT_TIMEOUT`].
pub(super) async fn connect(conn: &Connection) -> Result<Conn, DbError> {
    // mysql_async only knows `mysql://`; accept the MariaDB spelling too.
    let url = match conn.url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => conn.url.clone(),
    };
    let opts = Opts::from_url(&url).map_err(|e| DbError::Connect {
        engine: ENGINE,
        source_name: conn.source.clone(),
        address: conn.address(),
        detail: one_line(&format!("invalid url: {e}")),
    })?;
    let database = opts.db_name().map(str::to_string);
    let mut builder = OptsBuilder::from_opts(opts);
    if let Some(password) = &conn.password {
        builder = builder.pass(Some(password.expose_secret()));
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(builder)).await {
        Err(_) => Err(DbError::Connect {
            engine: ENGINE,
            source_name: conn.source.clone(),
            address: conn.address(),
            detail: format!("timed out after {} s", CONNECT_TIMEOUT.as_secs()),
        }),
        Ok(Err(e)) => Err(connect_error(conn, database, &e)),
        Ok(Ok(c)) => Ok(c),
    }
}

pub(super) fn connect_error(
    conn: &Connection,
    database: Option<String>,
    e: &mysql_async::Error,
) -> DbError {
    match e {
        // Access denied (to the server, to a database, via auth_socket) and auth plugin refusal.
        mysql_async::Error::Server(s) if matches!(s.code, 1044 | 1045 | 1698 | 1251) => {
            DbError::Auth {
                engine: ENGINE,
                source_name: conn.source.clone(),
                address: conn.address(),
                detail: one_line(&s.message),
            }
        }
        mysql_async::Error::Server(s) if s.code == 1049 => DbError::NoDatabase {
            source_name: conn.source.clone(),
            database: database.unwrap_or_default(),
        },
        _ => DbError::Connect {
            engine: ENGINE,
            source_name: conn.source.clone(),
            address: conn.address(),
            detail: one_line(&e.to_string()),
        },
    }
}

pub(super) fn query_err(
    what: &str,
    database: &str,
    table: Option<&str>,
    e: &mysql_async::Error,
) -> DbError {
    DbError::Query {
        what: what.to_string(),
        database: database.to_string(),
        table: table.map(str::to_string),
        detail: one_line(&e.to_string()),
    }
}

pub(super) fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// Messages are one line.
pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Session settings shared by dumps and restores: utf8mb4 for statements, UTC so TIMESTAMPs
/// round-trip unchanged, a fixed sql_mode, and no server-side timeouts.
pub(super) async fn setup_session(c: &mut Conn) -> Result<(), mysql_async::Error> {
    c.query_drop("SET NAMES utf8mb4").await?;
    c.query_drop("SET SESSION time_zone = '+00:00'").await?;
    c.query_drop(format!("SET SESSION sql_mode = '{SQL_MODE}'"))
        .await?;
    c.query_drop(format!(
        "SET SESSION net_write_timeout = {SESSION_TIMEOUT_SECS}, net_read_timeout = {SESSION_TIMEOUT_SECS}, wait_timeout = {SESSION_TIMEOUT_SECS}"
    ))
    .await?;
    // Statement time limits differ by server (MariaDB / MySQL); unknown ones are fine to skip.
    let _ = c.query_drop("SET SESSION max_statement_time = 0").await;
    let _ = c.query_drop("SET SESSION max_execution_time = 0").await;
    Ok(())
}

/// Quotes an identifier with backquotes.
pub(super) fn qi(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quotes a string literal (backslash escapes are on: see [`SQL_MODE`]).
pub(super) fn qs(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for ch in s.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            _ => out.push(ch),
        }
    }
    out.push('\'');
    out
}

/// A result cell as text; NULL is `None`.
pub(super) fn cell(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(v) => Some(v.to_string()),
        Value::UInt(v) => Some(v.to_string()),
        other => {
            let mut out = Vec::new();
            encode_value(&mut out, other, None);
            Some(String::from_utf8_lossy(&out).into_owned())
        }
    }
}

pub(super) fn cell_or_empty(row: &Row, i: usize) -> String {
    cell(row, i).unwrap_or_default()
}
