//! The database engines, both directions (dump and restore), and what they share. Connection settings, the
//! files of a dump, part streaming with bounded memory, the canonical row checksum, and errors.
//!
//! A dump is a set of files under `databases/<source>/<db>/`: `schema.sql`, `post.sql`
//! (PostgreSQL), and `data/<table stem>.<n>.<ext>` parts of at most `part_bytes` each, rows in
//! primary-key order. The archiver consumes files in path order, so every table streams its
//! parts through a bounded channel, and tables are started in the order they are consumed.

use secrecy::SecretString;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::config::{self, ConfigError, DatabaseSource, Engine, TableFilter};
use crate::snapshot::manifest::TableEntry;

pub mod mysql;
pub mod postgres;
pub mod query;

/// MySQL/MariaDB's own schemas: never dumped with the user's databases.
pub const MYSQL_SYSTEM_DATABASES: [&str; 4] =
    ["information_schema", "mysql", "performance_schema", "sys"];
/// PostgreSQL's template databases.
pub const POSTGRES_TEMPLATE_DATABASES: [&str; 2] = ["template0", "template1"];

/// A server's own schema, on either engine: a restore into one would replace the server's
/// users, grants or templates.
pub fn is_system_database(name: &str) -> bool {
    MYSQL_SYSTEM_DATABASES
        .iter()
        .chain(&POSTGRES_TEMPLATE_DATABASES)
        .any(|s| s.eq_ignore_ascii_case(name))
}

/// Connection settings of one database source, with its password resolved.
#[derive(Clone)]
pub struct Connection {
    /// The source name from the config, used in snapshot paths and messages.
    pub source: String,
    pub engine: Engine,
    /// Server URL without a password, e.g. `mysql://root@127.0.0.1:3306`.
    pub url: String,
    /// Exposed only where it is sent to the server.
    pub password: Option<SecretString>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("source", &self.source)
            .field("engine", &self.engine)
            .field("url", &config::redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Connection {
    pub fn from_config(src: &DatabaseSource) -> Result<Self, ConfigError> {
        let password = config::read_secret(
            &format!("databases.{}.password", src.name),
            src.password_env.as_deref(),
            src.password_file.as_deref(),
        )?
        .map(SecretString::from);
        Ok(Self {
            source: src.name.clone(),
            engine: src.engine,
            url: src.url.clone(),
            password,
        })
    }

    /// `host:port` for messages, without credentials.
    pub fn address(&self) -> String {
        let Some((_, rest)) = self.url.split_once("://") else {
            return key_value_address(&self.url);
        };
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        rest.split(['/', '?']).next().unwrap_or(rest).to_string()
    }
}

/// `host:port` of libpq's `host=h port=p password=...` form. The config refuses that form, but
/// a `Connection` built in code may still carry it; only host and port may reach a message.
fn key_value_address(conn: &str) -> String {
    let value = |key: &str| {
        conn.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim_matches('\'').to_string())
    };
    let host = value("host").unwrap_or_else(|| "localhost".into());
    match value("port") {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// What to dump and how.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// Parallel connections; tables are dumped concurrently.
    pub jobs: usize,
    /// Maximum size of one data part; a part ends at a row boundary.
    pub part_bytes: usize,
    /// Databases to dump; empty means every non-system database.
    pub databases: Vec<String>,
    /// The `include_tables` / `exclude_tables` globs, compiled by the config.
    pub tables: TableFilter,
}

impl Default for DumpOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            part_bytes: 8 * 1024 * 1024,
            databases: Vec::new(),
            tables: TableFilter::default(),
        }
    }
}

impl DumpOptions {
    /// Whether a table is selected by the include/exclude globs.
    pub fn selects(&self, table: &str) -> bool {
        self.tables.selects(table)
    }
}

/// One file of a dump, complete in memory. `path` is relative to `databases/<source>/<db>/`.
#[derive(Debug, Clone)]
pub struct DumpFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// One table's parts, in order. The channel closes after the last part; an error ends the
/// table and fails the backup.
#[derive(Debug)]
pub struct TableStream {
    pub name: String,
    pub parts: tokio::sync::mpsc::Receiver<Result<DumpFile, DbError>>,
}

#[derive(Debug)]
pub struct DatabaseDump {
    pub database: String,
    /// `schema.sql`, and `post.sql` on PostgreSQL.
    pub files: Vec<DumpFile>,
    /// Sorted by file stem: the order in which they are consumed and must be started.
    pub tables: Vec<TableStream>,
}

/// A running dump of one server, at one consistent point.
#[derive(Debug)]
pub struct DumpSession {
    pub server_version: String,
    /// MySQL binlog file/position/GTID, or the PostgreSQL snapshot id and LSN.
    pub consistency: BTreeMap<String, String>,
    /// Anything not captured (e.g. a routine type) or not guaranteed (e.g. a table without a
    /// primary key has no stable row order).
    pub warnings: Vec<String>,
    pub databases: Vec<DatabaseDump>,
    /// Filled as tables finish: database -> (table -> rows and checksum).
    pub results: Arc<Mutex<BTreeMap<String, BTreeMap<String, TableEntry>>>>,
}

/// Reads one file of the snapshot, by path relative to `databases/<source>/<db>/`. Blocking:
/// call it through `tokio::task::spawn_blocking`.
pub type Fetch = Arc<dyn Fn(&str) -> std::io::Result<Vec<u8>> + Send + Sync>;

/// One table to restore: its parts, in order, as paths for [`Fetch`].
#[derive(Debug, Clone)]
pub struct RestoreTable {
    pub name: String,
    pub parts: Vec<String>,
}

pub struct RestoreRequest {
    /// The database source it was backed up from (`[[databases]] name`).
    pub source: String,
    /// The database's name in the snapshot.
    pub database: String,
    /// The database to create and fill (`--into`, or the same name).
    pub target: String,
    pub schema_sql: String,
    pub post_sql: Option<String>,
    pub tables: Vec<RestoreTable>,
    /// From the manifest; every restored table is re-read and compared with it.
    pub expected: Vec<TableEntry>,
    pub fetch: Fetch,
    pub jobs: usize,
    /// Restore into a database that already has tables (its tables are dropped first).
    pub force: bool,
    /// Report what would be done; change nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    /// The database source it was backed up from.
    pub source: String,
    pub database: String,
    pub target: String,
    pub dry_run: bool,
    /// Dry run: the actions that would be taken, in order.
    pub plan: Vec<String>,
    pub tables: Vec<TableEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to {engine} source `{source_name}` at {address}: {detail}; check the url and that the server is running")]
    Connect {
        engine: &'static str,
        source_name: String,
        address: String,
        detail: String,
    },
    #[error("{engine} source `{source_name}` at {address} refused the credentials: {detail}; check password_env / password_file")]
    Auth {
        engine: &'static str,
        source_name: String,
        address: String,
        detail: String,
    },
    #[error("database `{database}` does not exist on source `{source_name}`; check `databases` in the config")]
    NoDatabase {
        source_name: String,
        database: String,
    },
    #[error("{what} failed on `{database}`{}: {detail}", table.as_ref().map(|t| format!(".`{t}`")).unwrap_or_default())]
    Query {
        what: String,
        database: String,
        table: Option<String>,
        detail: String,
    },
    /// A query refused before it was sent: not one statement, or not one that reads.
    #[error("query on source `{source_name}`, database `{database}` refused: {reason}")]
    NotARead {
        source_name: String,
        database: String,
        reason: String,
    },
    /// A drop of a database that is not a runbook's scratch database.
    #[error("refusing to drop `{database}` on source `{source_name}`: only scratch databases, named `{prefix}…`, may be dropped; restore into such a name with `into`")]
    NotScratch {
        source_name: String,
        database: String,
        prefix: &'static str,
    },
    /// The server refused a write inside a read-only query's transaction.
    #[error("query on source `{source_name}`, database `{database}` tried to write, and the server refused it in the read-only transaction ({detail}); queries only read")]
    WriteRefused {
        source_name: String,
        database: String,
        detail: String,
    },
    #[error("database `{database}` already has {tables} table(s); restore into another with --into NAME, or replace them with --force")]
    NotEmpty { database: String, tables: usize },
    #[error("the MySQL server refuses LOAD DATA LOCAL INFILE: set `local_infile = 1` (SET GLOBAL local_infile = 1) on the server, then run the restore again")]
    LocalInfileDisabled,
    #[error("restored table `{database}`.`{table}` does not match the snapshot: expected {expected_rows} rows with checksum {expected}, found {rows} rows with checksum {found}")]
    Verify {
        database: String,
        table: String,
        expected_rows: u64,
        rows: u64,
        expected: String,
        found: String,
    },
    #[error("cannot read `{path}` from the snapshot: {detail}")]
    Fetch { path: String, detail: String },
    #[error("interrupted by {0}")]
    Interrupted(crate::interrupt::Signal),
    /// A restore that failed or was stopped part-way; `left` says what became of its target.
    #[error("{left}")]
    Abandoned {
        left: String,
        #[source]
        cause: Box<DbError>,
    },
}

/// What became of a restore's target after it failed or was stopped part-way.
pub enum Left {
    /// This restore had created it, and dropped it again.
    Dropped,
    /// This restore had created it, but dropping it failed.
    DropFailed(DbError),
    /// It existed before this restore, and is never dropped.
    Existed,
}

/// The error of a restore that failed or was stopped part-way: what happened to its target,
/// and how to retry, with the cause as its source.
pub fn abandoned(target: &str, cause: DbError, left: Left) -> DbError {
    let (how, retry) = match cause {
        DbError::Interrupted(_) => ("stopped", "to finish it"),
        _ => ("failed", "once the cause is fixed"),
    };
    let left = match left {
        Left::Dropped => format!(
            "restore into `{target}` {how}, and `{target}`, which this restore had created, was dropped; run the restore again {retry}"
        ),
        Left::DropFailed(e) => format!(
            "restore into `{target}` {how} and left `{target}` behind, partly restored, because dropping it failed ({e}); drop it, or run the restore again with --force"
        ),
        Left::Existed => format!(
            "restore into `{target}` {how} and left `{target}`, which existed before, partly restored; run the restore again with --force to replace it"
        ),
    };
    DbError::Abandoned {
        left,
        cause: Box::new(cause),
    }
}

/// File-name stem of a table: reversible, safe as a path segment, and sorting like the name
/// for ordinary identifiers. Bytes outside `[A-Za-z0-9_.-]` become `%XX`.
pub fn file_stem(table: &str) -> String {
    let mut out = String::with_capacity(table.len());
    for b in table.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Inverse of [`file_stem`].
pub fn table_from_stem(stem: &str) -> Option<String> {
    crate::snapshot::layout::percent_decode(stem)
}

/// Path of part `n` (from 1) of a table: `data/<stem>.<n:06>.<ext>`.
pub fn part_path(table: &str, n: usize, ext: &str) -> String {
    format!("data/{}.{n:06}.{ext}", file_stem(table))
}

/// The canonical row checksum: SHA-256 over the table's dump bytes, all parts in order.
#[derive(Default, Clone)]
pub struct RowChecksum {
    hasher: Sha256,
    pub rows: u64,
}

impl RowChecksum {
    pub fn update(&mut self, row_bytes: &[u8]) {
        self.hasher.update(row_bytes);
    }
    pub fn add_rows(&mut self, n: u64) {
        self.rows += n;
    }
    pub fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_round_trip_and_stay_readable() {
        for name in [
            "pipelines",
            "run_details",
            "My Table",
            "a/b",
            "ü",
            "%",
            ".hidden",
            "x.y",
        ] {
            let stem = file_stem(name);
            assert!(!stem.contains('/') && !stem.starts_with('.'), "{stem}");
            assert_eq!(table_from_stem(&stem).as_deref(), Some(name));
        }
        assert_eq!(file_stem("run_details"), "run_details");
        assert_eq!(part_path("jobs", 3, "tsv"), "data/jobs.000003.tsv");
    }

    #[test]
    fn address_hides_credentials() {
        let c = Connection {
            source: "kfp".into(),
            engine: Engine::Mysql,
            url: "mysql://root:pw@db.kubeflow:3306/x".into(),
            password: None,
        };
        assert_eq!(c.address(), "db.kubeflow:3306");
        let c = Connection {
            url: "host=db.kubeflow port=5432 user=u password=hunter2".into(),
            ..c
        };
        assert_eq!(c.address(), "db.kubeflow:5432");
        assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
    }

    #[test]
    fn table_selection() {
        let o = DumpOptions {
            tables: TableFilter::new(&["run*".into()], &["run_metrics".into()]).unwrap(),
            ..DumpOptions::default()
        };
        assert!(o.selects("run_details"));
        assert!(!o.selects("run_metrics"));
        assert!(!o.selects("jobs"));
    }
}
