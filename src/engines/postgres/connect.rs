//! Connections to a PostgreSQL server: settings from the source's URL, connect with timeouts,
//! errors mapped to [`DbError`] in one line, and worker connections lent out of a pool.

use secrecy::ExposeSecret;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

use crate::engines::{Connection, DbError};

const ENGINE: &str = "PostgreSQL";
/// Bounds one connection attempt (TCP connect); the whole handshake gets [`HANDSHAKE_TIMEOUT`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// A source's connection settings; every connection is to one database.
pub(super) struct Server {
    pub(super) config: Config,
    pub(super) source: String,
    pub(super) address: String,
    /// The database to connect to for server-wide queries: the URL's, or `postgres`.
    pub(super) maintenance: String,
    /// Whether the maintenance database came from the URL (no fallback then).
    pub(super) explicit_maintenance: bool,
}

impl Server {
    pub(super) fn new(conn: &Connection) -> Result<Self, DbError> {
        let address = conn.address();
        let mut config: Config =
            conn.url
                .parse()
                .map_err(|e: tokio_postgres::Error| DbError::Connect {
                    engine: ENGINE,
                    source_name: conn.source.clone(),
                    address: address.clone(),
                    detail: format!("invalid url: {}", error_chain(&e)),
                })?;
        if let Some(pw) = &conn.password {
            config.password(pw.expose_secret());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("kfguard");
        }
        let explicit_maintenance = config.get_dbname().is_some();
        let maintenance = config.get_dbname().unwrap_or("postgres").to_string();
        Ok(Self {
            config,
            source: conn.source.clone(),
            address,
            maintenance,
            explicit_maintenance,
        })
    }

    /// Connects to the maintenance database; without one in the URL, falls back to
    /// `template1` on servers without a `postgres` database.
    pub(super) async fn connect_maintenance(&self) -> Result<(Client, String), DbError> {
        match self.connect(&self.maintenance).await {
            Err(DbError::NoDatabase { .. }) if !self.explicit_maintenance => {
                let c = self.connect("template1").await?;
                Ok((c, "template1".into()))
            }
            r => r.map(|c| (c, self.maintenance.clone())),
        }
    }

    pub(super) async fn connect(&self, db: &str) -> Result<Client, DbError> {
        Ok(self.connect_with_handle(db).await?.0)
    }

    /// Also returns the connection task, which ends once the client is dropped and the
    /// session closed.
    pub(super) async fn connect_with_handle(
        &self,
        db: &str,
    ) -> Result<(Client, tokio::task::JoinHandle<()>), DbError> {
        let mut config = self.config.clone();
        config.dbname(db);
        let (client, connection) =
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, config.connect(NoTls)).await {
                Err(_) => {
                    return Err(self.connect_error(format!(
                        "no answer within {} s",
                        HANDSHAKE_TIMEOUT.as_secs()
                    )))
                }
                Ok(Err(e)) => return Err(self.map_connect_error(db, &e)),
                Ok(Ok(pair)) => pair,
            };
        let handle = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %error_chain(&e), "PostgreSQL connection ended");
            }
        });
        Ok((client, handle))
    }

    fn connect_error(&self, detail: String) -> DbError {
        DbError::Connect {
            engine: ENGINE,
            source_name: self.source.clone(),
            address: self.address.clone(),
            detail,
        }
    }

    fn map_connect_error(&self, db: &str, e: &tokio_postgres::Error) -> DbError {
        let auth = |detail| DbError::Auth {
            engine: ENGINE,
            source_name: self.source.clone(),
            address: self.address.clone(),
            detail,
        };
        if let Some(code) = e.code() {
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                return auth(detail(e));
            }
            if *code == SqlState::INVALID_CATALOG_NAME {
                return DbError::NoDatabase {
                    source_name: self.source.clone(),
                    database: db.into(),
                };
            }
        }
        let chain = error_chain(e);
        if chain.contains("password missing") || chain.starts_with("authentication error") {
            return auth(chain);
        }
        self.connect_error(chain)
    }
}

pub(super) fn query_err(
    what: &str,
    db: &str,
    table: Option<&str>,
    e: &tokio_postgres::Error,
) -> DbError {
    DbError::Query {
        what: what.into(),
        database: db.into(),
        table: table.map(Into::into),
        detail: detail(e),
    }
}

/// One line: the server's message and SQLSTATE, or the client error with its causes.
pub(super) fn detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; {d}"));
            }
            one_line(&s)
        }
        None if e.is_closed() => "the connection was closed (the server went away, or the \
                                  session was terminated)"
            .into(),
        None => one_line(&error_chain(e)),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = c.source();
    }
    s
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A worker connection on loan; it goes back to its pool when dropped, even on error paths.
pub(super) struct Lease {
    pub(super) client: Option<Client>,
    pub(super) pool: mpsc::Sender<Client>,
}

impl Lease {
    pub(super) fn client(&self) -> &Client {
        // Only `Drop` takes the client.
        self.client
            .as_ref()
            .expect("lease holds its client until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            // The pool has room for all its clients; if it is gone the connection just closes.
            let _ = self.pool.try_send(c);
        }
    }
}
