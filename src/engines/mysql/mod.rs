//! The MySQL / MariaDB engine: a consistent, parallel, streaming dump into `schema.sql` plus
//! `LOAD DATA` text parts, and a verified restore through `LOAD DATA LOCAL INFILE`.
//!
//! **Consistency.** `jobs` connections are opened; one of them takes `FLUSH TABLES WITH READ
//! LOCK`, every connection starts `START TRANSACTION WITH CONSISTENT SNAPSHOT`, the binlog
//! position is recorded, and the lock is released: all connections then read the same point in
//! time. Where FTWRL is not permitted, one consistent-snapshot connection does everything and
//! the session says so (`consistency["mode"] = "single-connection"` and a warning).
//!
//! **Schema.** `schema.sql` replays in order into an empty database with the stock `mysql`
//! client: a preamble of `SET`s, then tables (`SHOW CREATE TABLE`), views (definer removed,
//! ordered by dependency) and triggers (between `DELIMITER ;;` lines, as mysqldump writes
//! them). `-- kfguard:section NAME` comment lines mark the parts, so a restore can create views
//! and triggers after the data is loaded (triggers must not fire during the load).
//!
//! **Data.** Rows are read in primary-key order through the binary protocol (doubles arrive as
//! IEEE bits, not as server-formatted text) and written in the format that
//! `LOAD DATA ... CHARACTER SET binary FIELDS TERMINATED BY '\t' ESCAPED BY '\\'
//! LINES TERMINATED BY '\n'` reads back: tab-separated, `\N` for NULL, and `\\ \t \n \r \0`
//! escaped. Strings are read unconverted (`character_set_results = NULL`) and loaded as
//! `binary`, so every column keeps its own bytes whatever its charset. The same reader, with no
//! parts kept, re-reads restored tables to verify their checksums.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use mysql_async::consts::ColumnType;
use mysql_async::prelude::*;
use mysql_async::{Column, Conn, Opts, OptsBuilder, Row, Value};
use tokio::sync::mpsc;

use super::{
    abandoned, part_path, Connection, DatabaseDump, DbError, DumpFile, DumpOptions, DumpSession,
    Left, RestoreReport, RestoreRequest, RowChecksum, TableStream,
};
use crate::snapshot::manifest::TableEntry;

const ENGINE: &str = "MySQL";
/// An unreachable server must fail fast rather than hang the backup.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A worker may wait a long time for the archiver with a half-read result set, or sit idle in
/// its snapshot before its first table: keep the server from timing the session out.
const SESSION_TIMEOUT_SECS: u32 = 86_400;
const SYSTEM_DATABASES: [&str; 4] = ["information_schema", "mysql", "performance_schema", "sys"];
/// The longest a dump waits for FLUSH TABLES WITH READ LOCK before falling back.
const FTWRL_WAIT_SECS: u32 = 30;
/// Parts start this small and grow, so small tables do not each pin `part_bytes` of memory.
const INITIAL_PART_CAPACITY: usize = 256 * 1024;
/// Verification hashes in chunks of this size.
const VERIFY_CHUNK: usize = 1024 * 1024;
/// Marks the parts of `schema.sql`; a comment, so the file stays plain SQL.
const SECTION_MARKER: &str = "-- kfguard:section ";
const SECTION_PREAMBLE: &str = "preamble";
const SECTION_TABLES: &str = "tables";
const SECTION_VIEWS: &str = "views";
const SECTION_TRIGGERS: &str = "triggers";
const SECTION_END: &str = "end";
/// The session sql_mode of dumps and restores, as mysqldump uses: explicit zero ids stay zero,
/// backslash escapes work, and quoting is the default backquotes.
const SQL_MODE: &str = "NO_AUTO_VALUE_ON_ZERO";
/// The `LOAD DATA` format clauses; they must match [`escape_into`].
const LOAD_FORMAT: &str =
    r"CHARACTER SET binary FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'";

type PartSender = mpsc::Sender<Result<DumpFile, DbError>>;

// ---------------------------------------------------------------------------------------------
// Connections and errors

/// Connects with the source's URL and password, in at most [`CONNECT_TIMEOUT`].
async fn connect(conn: &Connection) -> Result<Conn, DbError> {
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
        builder = builder.pass(Some(password.clone()));
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

fn connect_error(conn: &Connection, database: Option<String>, e: &mysql_async::Error) -> DbError {
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

fn query_err(what: &str, database: &str, table: Option<&str>, e: &mysql_async::Error) -> DbError {
    DbError::Query {
        what: what.to_string(),
        database: database.to_string(),
        table: table.map(str::to_string),
        detail: one_line(&e.to_string()),
    }
}

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// Messages are one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Session settings shared by dumps and restores: utf8mb4 for statements, UTC so TIMESTAMPs
/// round-trip unchanged, a fixed sql_mode, and no server-side timeouts.
async fn setup_session(c: &mut Conn) -> Result<(), mysql_async::Error> {
    c.query_drop("SET NAMES utf8mb4").await?;
    c.query_drop("SET SESSION time_zone = '+00:00'").await?;
    c.query_drop(format!("SET SESSION sql_mode = '{SQL_MODE}'"))
        .await?;
    c.query_drop(format!(
        "SET SESSION net_write_timeout = {t}, net_read_timeout = {t}, wait_timeout = {t}",
        t = SESSION_TIMEOUT_SECS
    ))
    .await?;
    // Statement time limits differ by server (MariaDB / MySQL); unknown ones are fine to skip.
    let _ = c.query_drop("SET SESSION max_statement_time = 0").await;
    let _ = c.query_drop("SET SESSION max_execution_time = 0").await;
    Ok(())
}

/// Quotes an identifier with backquotes.
fn qi(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quotes a string literal (backslash escapes are on: see [`SQL_MODE`]).
fn qs(s: &str) -> String {
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
fn cell(row: &Row, i: usize) -> Option<String> {
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

fn cell_or_empty(row: &Row, i: usize) -> String {
    cell(row, i).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Table metadata, shared by the dump and the verification of a restore

#[derive(Debug, Clone)]
struct ColumnInfo {
    name: String,
    /// MySQL 8 JSON refuses `binary` input; such columns load through a converted variable.
    json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RowOrder {
    PrimaryKey(Vec<String>),
    /// No primary key, but a unique key over NOT NULL columns: still a total order.
    UniqueKey(Vec<String>),
    /// Neither: every column, which is not a stable order for equal or long values.
    AllColumns,
}

#[derive(Debug, Clone)]
struct TableInfo {
    name: String,
    /// `BASE TABLE`, `VIEW`, `SYSTEM VERSIONED`, `SEQUENCE`, ...
    kind: String,
    engine: Option<String>,
    /// The columns dumped and loaded, in ordinal order; generated columns are left out.
    columns: Vec<ColumnInfo>,
    order: RowOrder,
    /// The primary key when it is one integer column: large tables split into ranges of it.
    split_key: Option<String>,
    /// The server's estimate of the data size (`DATA_LENGTH`), for deciding to split.
    data_length: u64,
}

impl TableInfo {
    fn is_data(&self) -> bool {
        matches!(self.kind.as_str(), "BASE TABLE" | "SYSTEM VERSIONED")
    }
    fn is_view(&self) -> bool {
        self.kind == "VIEW"
    }
}

/// An index, as far as row order is concerned.
struct IndexInfo {
    unique: bool,
    /// Every part is a NOT NULL column, so a unique index orders all rows totally.
    total: bool,
    columns: Vec<String>,
}

fn is_generated(extra: &str) -> bool {
    let x = extra.to_ascii_uppercase();
    // MySQL: VIRTUAL/STORED GENERATED (DEFAULT_GENERATED is only a default); MariaDB: also
    // PERSISTENT, and the ROW START/END columns of system-versioned tables.
    x.contains("VIRTUAL")
        || x.contains("STORED GENERATED")
        || x.contains("PERSISTENT")
        || x.contains("ROW START")
        || x.contains("ROW END")
}

/// Every table and view of `db`, sorted by name, with its dumped columns and row order.
async fn table_infos(c: &mut Conn, db: &str) -> Result<Vec<TableInfo>, mysql_async::Error> {
    let tables: Vec<Row> = c
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE, ENGINE, DATA_LENGTH FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ?",
            (db,),
        )
        .await?;
    let columns: Vec<Row> = c
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (db,),
        )
        .await?;
    let stats: Vec<Row> = c
        .exec(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, NULLABLE \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
             ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
            (db,),
        )
        .await?;

    let mut cols: HashMap<String, Vec<ColumnInfo>> = HashMap::new();
    let mut all_cols: HashMap<String, Vec<String>> = HashMap::new();
    let mut integer_cols: HashSet<(String, String)> = HashSet::new();
    for r in &columns {
        let table = cell_or_empty(r, 0);
        let name = cell_or_empty(r, 1);
        let data_type = cell_or_empty(r, 2).to_ascii_lowercase();
        let extra = cell_or_empty(r, 3);
        if ["tinyint", "smallint", "mediumint", "int", "bigint"].contains(&data_type.as_str()) {
            integer_cols.insert((table.clone(), name.clone()));
        }
        all_cols
            .entry(table.clone())
            .or_default()
            .push(name.clone());
        if !is_generated(&extra) {
            cols.entry(table).or_default().push(ColumnInfo {
                name,
                json: data_type == "json",
            });
        }
    }

    let mut indexes: HashMap<String, BTreeMap<String, IndexInfo>> = HashMap::new();
    for r in &stats {
        let index = indexes
            .entry(cell_or_empty(r, 0))
            .or_default()
            .entry(cell_or_empty(r, 1))
            .or_insert_with(|| IndexInfo {
                unique: cell(r, 2).as_deref() == Some("0"),
                total: true,
                columns: Vec::new(),
            });
        match cell(r, 3) {
            Some(column) => {
                index.total &= cell(r, 4).as_deref() != Some("YES");
                index.columns.push(column);
            }
            // An expression part (MySQL 8) has no column: unusable for ordering.
            None => index.total = false,
        }
    }

    let mut out = Vec::with_capacity(tables.len());
    for r in &tables {
        let name = cell_or_empty(r, 0);
        let kind = cell_or_empty(r, 1);
        let engine = cell(r, 2);
        let data_length = cell(r, 3).and_then(|v| v.parse().ok()).unwrap_or(0);
        let idx = indexes.remove(&name).unwrap_or_default();
        let order = if let Some(pk) = idx.get("PRIMARY").filter(|i| !i.columns.is_empty()) {
            RowOrder::PrimaryKey(pk.columns.clone())
        } else if let Some(uk) = idx
            .values()
            .filter(|i| i.unique && i.total && !i.columns.is_empty())
            .min_by_key(|i| i.columns.len())
        {
            RowOrder::UniqueKey(uk.columns.clone())
        } else {
            RowOrder::AllColumns
        };
        let split_key = match &order {
            RowOrder::PrimaryKey(k) if k.len() == 1 => {
                Some(k[0].clone()).filter(|k| integer_cols.contains(&(name.clone(), k.clone())))
            }
            _ => None,
        };
        out.push(TableInfo {
            columns: cols.remove(&name).unwrap_or_default(),
            split_key,
            data_length,
            name,
            kind,
            engine,
            order,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn select_sql(db: &str, t: &TableInfo) -> String {
    let cols: Vec<String> = t.columns.iter().map(|c| qi(&c.name)).collect();
    let order: Vec<String> = match &t.order {
        RowOrder::PrimaryKey(k) | RowOrder::UniqueKey(k) => k.iter().map(|c| qi(c)).collect(),
        RowOrder::AllColumns => cols.clone(),
    };
    let mut sql = format!("SELECT {} FROM {}.{}", cols.join(", "), qi(db), qi(&t.name));
    if !order.is_empty() {
        let _ = write!(sql, " ORDER BY {}", order.join(", "));
    }
    sql
}

// ---------------------------------------------------------------------------------------------
// Row encoding: the LOAD DATA text format

/// Appends `b` with the escapes `LOAD DATA ... ESCAPED BY '\\'` undoes.
fn escape_into(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(b.len());
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc = match c {
            b'\\' => b'\\',
            b'\t' => b't',
            b'\n' => b'n',
            b'\r' => b'r',
            0 => b'0',
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.push(b'\\');
        out.push(esc);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

/// Shortest text that parses back to the same bits; exponent form outside the usual range so
/// 1e-300 is not 300 zeros. Servers parse decimal text with correctly rounded strtod.
fn write_double(out: &mut Vec<u8>, v: f64) {
    // Writing into a Vec cannot fail.
    let a = v.abs();
    if a == 0.0 || (1e-5..1e16).contains(&a) {
        let _ = write!(out, "{v}");
    } else {
        let _ = write!(out, "{v:e}");
    }
}

/// Fractional seconds with the column's precision (all six digits when it is unknown).
fn write_fraction(out: &mut Vec<u8>, micros: u32, col: Option<&Column>) {
    let fsp = match col.map(|c| c.decimals()) {
        Some(d @ 0..=6) => usize::from(d),
        _ => 6,
    };
    // Never drop digits a value has, whatever the metadata says.
    let fsp = if fsp == 0 && micros != 0 { 6 } else { fsp };
    if fsp > 0 {
        let digits = format!("{micros:06}");
        out.push(b'.');
        out.extend_from_slice(&digits.as_bytes()[..fsp]);
    }
}

fn encode_value(out: &mut Vec<u8>, v: &Value, col: Option<&Column>) {
    let ty = col.map(|c| c.column_type());
    match v {
        Value::NULL => out.extend_from_slice(b"\\N"),
        Value::Bytes(b) => escape_into(out, b),
        // YEAR(4) 0000 must stay 0000: the text `0` would load as 2000.
        Value::Int(i) if ty == Some(ColumnType::MYSQL_TYPE_YEAR) => {
            let _ = write!(out, "{i:04}");
        }
        Value::UInt(i) if ty == Some(ColumnType::MYSQL_TYPE_YEAR) => {
            let _ = write!(out, "{i:04}");
        }
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(i) => {
            let _ = write!(out, "{i}");
        }
        // A float widens exactly; its shortest f64 text parses back to the same float.
        Value::Float(f) => write_double(out, f64::from(*f)),
        Value::Double(d) => write_double(out, *d),
        Value::Date(y, m, d, h, mi, s, us) => {
            let _ = write!(out, "{y:04}-{m:02}-{d:02}");
            let date_only = matches!(
                ty,
                Some(ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE)
            );
            if !date_only {
                let _ = write!(out, " {h:02}:{mi:02}:{s:02}");
                write_fraction(out, *us, col);
            }
        }
        Value::Time(neg, days, h, mi, s, us) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let sign = if *neg { "-" } else { "" };
            let _ = write!(out, "{sign}{hours:02}:{mi:02}:{s:02}");
            write_fraction(out, *us, col);
        }
    }
}

fn encode_row(out: &mut Vec<u8>, row: Row) {
    let columns = row.columns();
    for (i, v) in row.unwrap_raw().into_iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        encode_value(out, v.as_ref().unwrap_or(&Value::NULL), columns.get(i));
    }
    out.push(b'\n');
}

// ---------------------------------------------------------------------------------------------
// Reading a table into parts (dump) or into a checksum only (verify)

enum ReadError {
    Sql(mysql_async::Error),
    /// The consumer dropped the table's receiver.
    Closed,
}

struct PartSink<'a> {
    table: &'a str,
    tx: Option<&'a PartSender>,
    sum: RowChecksum,
    parts: usize,
}

impl PartSink<'_> {
    async fn emit(&mut self, bytes: Vec<u8>) -> Result<(), ReadError> {
        self.sum.update(&bytes);
        self.parts += 1;
        if let Some(tx) = self.tx {
            let file = DumpFile {
                path: part_path(self.table, self.parts, "tsv"),
                bytes,
            };
            tx.send(Ok(file)).await.map_err(|_| ReadError::Closed)?;
        }
        Ok(())
    }
}

/// Streams one table in row order, cut at row boundaries into parts of at most `part_bytes`
/// (a larger row is a part of its own), and returns its row count and checksum. An empty table
/// still yields one empty part, so it is restored.
async fn read_table(
    c: &mut Conn,
    db: &str,
    t: &TableInfo,
    part_bytes: usize,
    tx: Option<&PartSender>,
) -> Result<TableEntry, ReadError> {
    let part_bytes = part_bytes.max(1);
    let mut sink = PartSink {
        table: &t.name,
        tx,
        sum: RowChecksum::default(),
        parts: 0,
    };
    // Parts grow to at most `part_bytes` of capacity (no doubling past it); once a table has
    // filled one, the next ones are allocated whole.
    let mut next_capacity = part_bytes.min(INITIAL_PART_CAPACITY);
    let mut part: Vec<u8> = Vec::with_capacity(next_capacity);
    let mut row_buf: Vec<u8> = Vec::new();
    // The binary protocol: exact doubles, typed temporals, no server-side number formatting.
    let mut result = c
        .exec_iter(select_sql(db, t), ())
        .await
        .map_err(ReadError::Sql)?;
    while let Some(row) = result.next().await.map_err(ReadError::Sql)? {
        row_buf.clear();
        encode_row(&mut row_buf, row);
        sink.sum.add_rows(1);
        if !part.is_empty() && part.len() + row_buf.len() > part_bytes {
            // The row does not fit: close the part before it.
            next_capacity = part_bytes;
            let full = std::mem::replace(&mut part, Vec::with_capacity(next_capacity));
            sink.emit(full).await?;
        }
        if part.is_empty() && row_buf.len() >= part_bytes {
            // A row of at least a part's size is a part of its own, sent without a copy.
            sink.emit(std::mem::take(&mut row_buf)).await?;
            continue;
        }
        let need = part.len() + row_buf.len();
        if need > part.capacity() {
            let target = (part.capacity() * 2).clamp(need, part_bytes.max(need));
            part.reserve_exact(target - part.len());
        }
        part.extend_from_slice(&row_buf);
        if row_buf.capacity() > INITIAL_PART_CAPACITY {
            // Do not keep a huge row's buffer for the rest of the table.
            row_buf = Vec::new();
        }
    }
    drop(result);
    if !part.is_empty() || sink.parts == 0 {
        sink.emit(part).await?;
    }
    let rows = sink.sum.rows;
    Ok(TableEntry {
        name: t.name.clone(),
        rows,
        checksum: sink.sum.finish(),
    })
}

// ---------------------------------------------------------------------------------------------
// Dump

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
            .filter(|d| !SYSTEM_DATABASES.contains(&d.to_ascii_lowercase().as_str()))
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
            for c in conns.iter_mut() {
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
        tables.sort_by_key(|t| super::file_stem(&t.name));
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
    for c in conns.iter_mut() {
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

async fn start_snapshot(c: &mut Conn) -> Result<(), mysql_async::Error> {
    c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await?;
    c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await
}

/// Binlog file, position and GTID at the locked point; missing ones become a warning.
async fn record_binlog(
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

async fn record_snapshot_binlog(c: &mut Conn, consistency: &mut BTreeMap<String, String>) {
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

struct CapturedSchema {
    sql: String,
    /// The selected base tables.
    tables: Vec<TableInfo>,
}

/// Writes `schema.sql` for one database and collects its warnings.
async fn capture_schema(
    c: &mut Conn,
    db: &str,
    charset: &str,
    collation: &str,
    server_version: &str,
    opts: &DumpOptions,
    warnings: &mut Vec<String>,
) -> Result<CapturedSchema, DbError> {
    let err =
        |what: &str, table: Option<&str>, e: mysql_async::Error| query_err(what, db, table, &e);
    // Views print references to their own database unqualified only from inside it.
    c.query_drop(format!("USE {}", qi(db)))
        .await
        .map_err(|e| err("USE", None, e))?;
    let infos = table_infos(c, db)
        .await
        .map_err(|e| err("reading table metadata", None, e))?;

    let mut sql = String::new();
    let _ = writeln!(
        sql,
        "-- kfguard schema of database {} (server {server_version})\n\
         -- Replays in order into an empty database: mysql NEWNAME < schema.sql\n\
         SET @kfguard_saved_sql_mode = @@SESSION.sql_mode;\n\
         SET FOREIGN_KEY_CHECKS=0;\n\
         SET NAMES utf8mb4;\n\
         SET SESSION sql_mode = '{SQL_MODE}';",
        qi(db)
    );
    if is_word(charset) && is_word(collation) {
        let _ = writeln!(
            sql,
            "ALTER DATABASE CHARACTER SET {charset} COLLATE {collation};"
        );
    }

    let mut tables = Vec::new();
    let _ = writeln!(sql, "\n{SECTION_MARKER}{SECTION_TABLES}");
    for t in infos
        .iter()
        .filter(|t| !t.is_view() && opts.selects(&t.name))
    {
        let full = format!("{}.{}", qi(db), qi(&t.name));
        if !t.is_data() {
            warnings.push(format!(
                "{} `{db}`.`{}` not captured",
                t.kind.to_ascii_lowercase(),
                t.name
            ));
            continue;
        }
        let row: Option<Row> = c
            .query_first(format!("SHOW CREATE TABLE {full}"))
            .await
            .map_err(|e| err("SHOW CREATE TABLE", Some(&t.name), e))?;
        let create = row.as_ref().and_then(|r| cell(r, 1)).unwrap_or_default();
        let _ = writeln!(sql, "\n{create};");
        if t.kind == "SYSTEM VERSIONED" {
            warnings.push(format!(
                "table `{db}`.`{}` is system-versioned: only its current rows are captured, \
                 not its history",
                t.name
            ));
        }
        if let Some(engine) = &t.engine {
            if !["innodb", "rocksdb", "tokudb"].contains(&engine.to_ascii_lowercase().as_str()) {
                warnings.push(format!(
                    "table `{db}`.`{}` uses the non-transactional engine {engine}: it is not \
                     covered by the consistent snapshot",
                    t.name
                ));
            }
        }
        if t.order == RowOrder::AllColumns {
            warnings.push(format!(
                "table `{db}`.`{}` has no primary key: row order is not guaranteed stable",
                t.name
            ));
        }
        tables.push(t.clone());
    }

    // Views, ordered so that a view comes after the views it reads.
    let _ = writeln!(sql, "\n{SECTION_MARKER}{SECTION_VIEWS}");
    let mut views = Vec::new();
    for t in infos
        .iter()
        .filter(|t| t.is_view() && opts.selects(&t.name))
    {
        let row: Option<Row> = c
            .query_first(format!("SHOW CREATE VIEW {}.{}", qi(db), qi(&t.name)))
            .await
            .map_err(|e| err("SHOW CREATE VIEW", Some(&t.name), e))?;
        let create = row.as_ref().and_then(|r| cell(r, 1)).unwrap_or_default();
        views.push((t.name.clone(), strip_definer(&create)));
    }
    for (_, create) in order_views(views) {
        let _ = writeln!(sql, "\n{create};");
    }

    // Triggers of the selected tables, in their firing order.
    let _ = writeln!(sql, "\n{SECTION_MARKER}{SECTION_TRIGGERS}");
    let selected: HashSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let triggers: Vec<Row> = c
        .exec(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = ? \
             ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
            (db,),
        )
        .await
        .map_err(|e| err("listing triggers", None, e))?;
    for r in &triggers {
        let name = cell_or_empty(r, 0);
        if !selected.contains(cell_or_empty(r, 1).as_str()) {
            continue;
        }
        let row: Option<Row> = c
            .query_first(format!("SHOW CREATE TRIGGER {}.{}", qi(db), qi(&name)))
            .await
            .map_err(|e| err("SHOW CREATE TRIGGER", None, e))?;
        let Some(row) = row else { continue };
        let mode = cell_or_empty(&row, 1);
        let create = strip_definer(&cell_or_empty(&row, 2));
        let _ = writeln!(
            sql,
            "\nSET SESSION sql_mode = {};\nDELIMITER ;;\n{create};;\nDELIMITER ;",
            qs(&mode)
        );
    }

    let _ = writeln!(
        sql,
        "\n{SECTION_MARKER}{SECTION_END}\n\
         SET SESSION sql_mode = @kfguard_saved_sql_mode;\n\
         SET FOREIGN_KEY_CHECKS=1;"
    );

    // Stored routines and events are not captured: say so, one by one.
    let routines: Vec<Row> = c
        .exec(
            "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
            (db,),
        )
        .await
        .map_err(|e| err("listing routines", None, e))?;
    for r in &routines {
        warnings.push(format!(
            "stored {} `{db}`.`{}` not captured",
            cell_or_empty(r, 0).to_ascii_lowercase(),
            cell_or_empty(r, 1)
        ));
    }
    // EVENTS needs the EVENT privilege on some servers; a refusal is itself worth a warning.
    match c
        .exec::<Row, _, _>(
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? \
             ORDER BY EVENT_NAME",
            (db,),
        )
        .await
    {
        Ok(events) => {
            for r in &events {
                warnings.push(format!(
                    "event `{db}`.`{}` not captured",
                    cell_or_empty(r, 0)
                ));
            }
        }
        Err(e) => warnings.push(format!(
            "events of `{db}` could not be listed ({}); any events are not captured",
            one_line(&e.to_string())
        )),
    }

    Ok(CapturedSchema { sql, tables })
}

/// A charset or collation name, safe to write into SQL unquoted.
fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Removes `DEFINER=user@host` from the head of a CREATE VIEW/TRIGGER: the restoring account
/// becomes the definer, so a restore does not need SUPER or the original account.
fn strip_definer(create: &str) -> String {
    let upper = create.to_ascii_uppercase();
    let Some(start) = upper.find("DEFINER=") else {
        return create.to_string();
    };
    // Only in the head, before anything quoted.
    if create[..start].contains(['`', '\'', '"']) {
        return create.to_string();
    }
    let b = create.as_bytes();
    let mut i = start + "DEFINER=".len();
    // user, then optional @host; each quoted or bare.
    for part in 0..2 {
        if part == 1 {
            if b.get(i) != Some(&b'@') {
                break;
            }
            i += 1;
        }
        match b.get(i) {
            Some(&q @ (b'`' | b'\'' | b'"')) => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
            }
            _ => {
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'@' {
                    i += 1;
                }
            }
        }
    }
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    format!("{}{}", &create[..start], &create[i..])
}

/// Sorts views so that each comes after the views it mentions (by quoted name); a cycle, which
/// the server would not allow anyway, keeps name order.
fn order_views(views: Vec<(String, String)>) -> Vec<(String, String)> {
    let names: Vec<String> = views.iter().map(|(n, _)| n.clone()).collect();
    let deps: Vec<Vec<usize>> = views
        .iter()
        .enumerate()
        .map(|(i, (_, sql))| {
            let body = sql.split_once(" AS ").map_or(sql.as_str(), |(_, b)| b);
            names
                .iter()
                .enumerate()
                .filter(|(j, n)| *j != i && body.contains(&qi(n)))
                .map(|(j, _)| j)
                .collect()
        })
        .collect();
    let mut done = vec![false; views.len()];
    let mut order = Vec::with_capacity(views.len());
    while order.len() < views.len() {
        let next = (0..views.len())
            .find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]))
            .or_else(|| (0..views.len()).find(|&i| !done[i]));
        let Some(i) = next else { break };
        done[i] = true;
        order.push(i);
    }
    let mut slots: Vec<Option<(String, String)>> = views.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

struct TableJob {
    db: String,
    info: TableInfo,
    tx: PartSender,
}

type Results = Arc<Mutex<BTreeMap<String, BTreeMap<String, TableEntry>>>>;

/// The snapshot connections not in use, handed out one at a time in consumption order.
struct Pool {
    /// Connections that exist: free, or in use and to be given back.
    alive: usize,
    back_tx: mpsc::UnboundedSender<Option<Conn>>,
    back_rx: mpsc::UnboundedReceiver<Option<Conn>>,
}

impl Pool {
    /// The next free connection, waiting for one to be given back; `None` once none is left.
    async fn acquire(&mut self) -> Option<Conn> {
        while self.alive > 0 {
            match self.back_rx.recv().await {
                Some(Some(c)) => return Some(c),
                Some(None) => self.alive -= 1,
                None => self.alive = 0,
            }
        }
        None
    }
}

/// A connection in use by a range reader. It goes back to the pool as soon as the range is
/// read (before its last rows are forwarded), or as lost when the reader fails or panics.
struct Lease {
    back: mpsc::UnboundedSender<Option<Conn>>,
    returned: bool,
}

impl Lease {
    fn give_back(&mut self, c: Option<Conn>) {
        if !self.returned {
            self.returned = true;
            let _ = self.back.send(c);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.give_back(None);
    }
}

fn no_connection_left(job: &TableJob) -> DbError {
    DbError::Query {
        what: "dump".into(),
        database: job.db.clone(),
        table: Some(job.info.name.clone()),
        detail: "no snapshot connection left after an earlier table failed".into(),
    }
}

/// Starts tables in consumption order, each on the next free snapshot connection, so the
/// earliest unfinished table always has one. A connection that failed is not reused (its
/// snapshot or stream is gone); when none is left, the remaining tables get an error.
///
/// A large table with an integer primary key is split into key ranges (see [`plan_ranges`]),
/// each read on its own connection into a bounded channel, and forwarded in order as one
/// stream. Why this cannot deadlock: connections are handed out strictly in consumption order
/// (table by table, and range by range within a table), and a connection is only ever waited
/// for by the scheduler, on behalf of the next item in that order. So every connection in use
/// belongs to an item before the one the scheduler waits for. The earliest unfinished item
/// (the consumer's table, and within it the range its forwarder is reading) therefore holds a
/// connection, or is the item being served when every earlier item has given its connection
/// back. Each blocked reader waits only on its own bounded channel, which its forwarder
/// drains once the earlier ranges are done, and the forwarder waits only on the consumer,
/// which is on that table: the earliest item always progresses, finishes, and frees its
/// connection. Later ranges may run ahead but only as far as their bounded channels allow.
async fn schedule(conns: Vec<Conn>, jobs: Vec<TableJob>, part_bytes: usize, results: Results) {
    let (back_tx, back_rx) = mpsc::unbounded_channel::<Option<Conn>>();
    let mut pool = Pool {
        alive: conns.len(),
        back_tx,
        back_rx,
    };
    for c in conns {
        let _ = pool.back_tx.send(Some(c));
    }
    for job in jobs {
        if job.tx.is_closed() {
            continue;
        }
        let Some(mut conn) = pool.acquire().await else {
            let e = no_connection_left(&job);
            let _ = job.tx.send(Err(e)).await;
            continue;
        };
        let bounds = match plan_ranges(&mut conn, &job, part_bytes, pool.alive).await {
            Ok(bounds) => bounds,
            Err(e) => {
                let e = query_err("planning key ranges", &job.db, Some(&job.info.name), &e);
                let _ = job.tx.send(Err(e)).await;
                pool.alive -= 1;
                continue;
            }
        };
        if bounds.is_empty() {
            spawn_table(conn, job, part_bytes, results.clone(), pool.back_tx.clone());
        } else {
            split_table(conn, &mut pool, job, &bounds, part_bytes, results.clone()).await;
        }
    }
    // Close the snapshots once every table is done.
    let Pool {
        back_tx,
        mut back_rx,
        ..
    } = pool;
    drop(back_tx);
    while let Some(conn) = back_rx.recv().await {
        if let Some(c) = conn {
            let _ = c.disconnect().await;
        }
    }
}

/// Dumps one table as one stream on `conn`, which goes back to the pool when it is done.
fn spawn_table(
    conn: Conn,
    job: TableJob,
    part_bytes: usize,
    results: Results,
    back: mpsc::UnboundedSender<Option<Conn>>,
) {
    // A panicking worker must not look like a finished (short) table: this guard keeps the
    // channel open until it has reported the failure.
    let guard = job.tx.clone();
    let (db, name) = (job.db.clone(), job.info.name.clone());
    let worker = tokio::spawn(dump_table(conn, job, part_bytes, results));
    tokio::spawn(async move {
        let conn = match worker.await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = guard.send(Err(worker_failed(&db, &name, &e))).await;
                None
            }
        };
        drop(guard);
        let _ = back.send(conn);
    });
}

fn worker_failed(db: &str, table: &str, e: &tokio::task::JoinError) -> DbError {
    DbError::Query {
        what: "dump".into(),
        database: db.to_string(),
        table: Some(table.to_string()),
        detail: one_line(&format!("worker failed: {e}")),
    }
}

/// A table is split once it is estimated at this many parts or more.
const SPLIT_MIN_PARTS: u64 = 4;
/// Range readers hand rows to their table's forwarder in chunks of about this size.
const RANGE_CHUNK: usize = 1024 * 1024;

/// The inner boundaries of the key ranges of a table, in increasing order, or none to read it
/// as one stream. A table splits when it has an integer primary key, more than one connection
/// exists, and its estimated size is at least [`SPLIT_MIN_PARTS`] parts: into one range per
/// that many parts, at most one per connection. The boundaries divide `MIN..=MAX` of the key,
/// read inside the snapshot, evenly; the first range has no lower and the last no upper
/// bound, so the ranges cover every row whatever the key's distribution.
async fn plan_ranges(
    c: &mut Conn,
    job: &TableJob,
    part_bytes: usize,
    connections: usize,
) -> Result<Vec<i128>, mysql_async::Error> {
    let Some(key) = &job.info.split_key else {
        return Ok(Vec::new());
    };
    let threshold = (part_bytes as u64).saturating_mul(SPLIT_MIN_PARTS).max(1);
    let wanted = usize::try_from(job.info.data_length / threshold).unwrap_or(usize::MAX);
    let k = wanted.min(connections);
    if k < 2 {
        return Ok(Vec::new());
    }
    let row: Option<Row> = c
        .query_first(format!(
            "SELECT MIN({k}), MAX({k}) FROM {}.{}",
            qi(&job.db),
            qi(&job.info.name),
            k = qi(key)
        ))
        .await?;
    let bound = |i: usize| {
        row.as_ref()
            .and_then(|r| cell(r, i))
            .and_then(|v| v.parse::<i128>().ok())
    };
    let (Some(lo), Some(hi)) = (bound(0), bound(1)) else {
        return Ok(Vec::new());
    };
    let span = hi - lo + 1;
    let k = (k as i128).min(span);
    let mut bounds: Vec<i128> = (1..k).map(|i| lo + span * i / k).collect();
    bounds.dedup();
    tracing::debug!(database = %job.db, table = %job.info.name, ranges = bounds.len() + 1, "table split into key ranges");
    Ok(bounds)
}

/// What a range reader sends its forwarder.
enum RangeMsg {
    /// Whole encoded rows, and the length of each.
    Rows(Vec<u8>, Vec<usize>),
    /// The range is complete.
    Done,
    Failed(mysql_async::Error),
}

/// Dumps a table as key ranges: the first on `conn`, the others on connections taken from the
/// pool in order. Each range is read into its own bounded channel; one forwarder concatenates
/// them in key order into the table's parts.
async fn split_table(
    conn: Conn,
    pool: &mut Pool,
    job: TableJob,
    bounds: &[i128],
    part_bytes: usize,
    results: Results,
) {
    let key = qi(job.info.split_key.as_deref().unwrap_or_default());
    let cols: Vec<String> = job.info.columns.iter().map(|c| qi(&c.name)).collect();
    let base = format!(
        "SELECT {} FROM {}.{}",
        cols.join(", "),
        qi(&job.db),
        qi(&job.info.name)
    );
    let mut sqls = Vec::with_capacity(bounds.len() + 1);
    for i in 0..=bounds.len() {
        let mut cond = Vec::new();
        if i > 0 {
            cond.push(format!("{key} >= {}", bounds[i - 1]));
        }
        if let Some(hi) = bounds.get(i) {
            cond.push(format!("{key} < {hi}"));
        }
        sqls.push(format!(
            "{base} WHERE {} ORDER BY {key}",
            cond.join(" AND ")
        ));
    }
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in &sqls {
        let (tx, rx) = mpsc::channel(1);
        senders.push(tx);
        receivers.push(rx);
    }

    let guard = job.tx.clone();
    let (db, name) = (job.db.clone(), job.info.name.clone());
    let forwarder = tokio::spawn(forward_ranges(job, receivers, part_bytes, results));
    tokio::spawn(async move {
        if let Err(e) = forwarder.await {
            let _ = guard.send(Err(worker_failed(&db, &name, &e))).await;
        }
    });

    let mut first = Some(conn);
    for (sql, tx) in sqls.into_iter().zip(senders) {
        let conn = match first.take() {
            Some(c) => Some(c),
            // The forwarder has stopped (failure or consumer gone): read no further ranges.
            None if tx.is_closed() => None,
            None => pool.acquire().await,
        };
        let Some(conn) = conn else {
            let e = mysql_async::Error::Other("no snapshot connection left".into());
            let _ = tx.try_send(RangeMsg::Failed(e));
            continue;
        };
        let lease = Lease {
            back: pool.back_tx.clone(),
            returned: false,
        };
        tokio::spawn(read_range(conn, sql, tx, lease));
    }
}

/// Reads one key range into its channel, in chunks of whole rows.
async fn read_range(mut c: Conn, sql: String, tx: mpsc::Sender<RangeMsg>, mut lease: Lease) {
    let mut last = (Vec::new(), Vec::new());
    match read_range_rows(&mut c, &sql, &tx, &mut last).await {
        Ok(()) => {
            // The range is read: the connection is free before its last rows are forwarded.
            lease.give_back(Some(c));
            let (bytes, lens) = last;
            if !lens.is_empty() && tx.send(RangeMsg::Rows(bytes, lens)).await.is_err() {
                return;
            }
            let _ = tx.send(RangeMsg::Done).await;
        }
        // The forwarder stopped; the result set is half read, so the connection is not reused.
        Err(ReadError::Closed) => lease.give_back(None),
        Err(ReadError::Sql(e)) => {
            lease.give_back(None);
            let _ = tx.send(RangeMsg::Failed(e)).await;
        }
    }
}

async fn read_range_rows(
    c: &mut Conn,
    sql: &str,
    tx: &mpsc::Sender<RangeMsg>,
    last: &mut (Vec<u8>, Vec<usize>),
) -> Result<(), ReadError> {
    let mut result = c.exec_iter(sql, ()).await.map_err(ReadError::Sql)?;
    let mut bytes = Vec::with_capacity(RANGE_CHUNK);
    let mut lens = Vec::new();
    while let Some(row) = result.next().await.map_err(ReadError::Sql)? {
        let before = bytes.len();
        encode_row(&mut bytes, row);
        lens.push(bytes.len() - before);
        if bytes.len() >= RANGE_CHUNK {
            let full = std::mem::replace(&mut bytes, Vec::with_capacity(RANGE_CHUNK));
            tx.send(RangeMsg::Rows(full, std::mem::take(&mut lens)))
                .await
                .map_err(|_| ReadError::Closed)?;
        }
    }
    drop(result);
    *last = (bytes, lens);
    Ok(())
}

/// Concatenates a table's ranges in order and cuts the rows into parts exactly as
/// [`read_table`] does, so the files, row count and checksum are those of one stream.
async fn forward_ranges(
    job: TableJob,
    ranges: Vec<mpsc::Receiver<RangeMsg>>,
    part_bytes: usize,
    results: Results,
) {
    let fail = |detail: String| DbError::Query {
        what: "dump".into(),
        database: job.db.clone(),
        table: Some(job.info.name.clone()),
        detail,
    };
    match forward_rows(&job, ranges, part_bytes).await {
        Ok(entry) => {
            tracing::debug!(database = %job.db, table = %job.info.name, rows = entry.rows, "table dumped");
            record(&results, &job, entry);
        }
        Err(None) => {}
        Err(Some(Ok(e))) => {
            let _ = job
                .tx
                .send(Err(query_err("dump", &job.db, Some(&job.info.name), &e)))
                .await;
        }
        Err(Some(Err(detail))) => {
            let _ = job.tx.send(Err(fail(detail))).await;
        }
    }
}

/// `Err(None)`: the consumer went away; `Err(Some(..))`: a range failed, with the server's
/// error or a description.
async fn forward_rows(
    job: &TableJob,
    ranges: Vec<mpsc::Receiver<RangeMsg>>,
    part_bytes: usize,
) -> Result<TableEntry, Option<Result<mysql_async::Error, String>>> {
    let part_bytes = part_bytes.max(1);
    let closed = |_| None;
    let mut sink = PartSink {
        table: &job.info.name,
        tx: Some(&job.tx),
        sum: RowChecksum::default(),
        parts: 0,
    };
    let mut next_capacity = part_bytes.min(INITIAL_PART_CAPACITY);
    let mut part: Vec<u8> = Vec::with_capacity(next_capacity);
    for (n, mut rx) in ranges.into_iter().enumerate() {
        loop {
            let (bytes, lens) = match rx.recv().await {
                Some(RangeMsg::Rows(bytes, lens)) => (bytes, lens),
                Some(RangeMsg::Done) => break,
                Some(RangeMsg::Failed(e)) => return Err(Some(Ok(e))),
                None => {
                    return Err(Some(Err(format!(
                        "key range {} of the table ended without completing",
                        n + 1
                    ))))
                }
            };
            let mut start = 0;
            for len in lens {
                let row = &bytes[start..start + len];
                start += len;
                sink.sum.add_rows(1);
                if !part.is_empty() && part.len() + row.len() > part_bytes {
                    next_capacity = part_bytes;
                    let full = std::mem::replace(&mut part, Vec::with_capacity(next_capacity));
                    sink.emit(full).await.map_err(closed)?;
                }
                if part.is_empty() && row.len() >= part_bytes {
                    sink.emit(row.to_vec()).await.map_err(closed)?;
                    continue;
                }
                let need = part.len() + row.len();
                if need > part.capacity() {
                    let target = (part.capacity() * 2).clamp(need, part_bytes.max(need));
                    part.reserve_exact(target - part.len());
                }
                part.extend_from_slice(row);
            }
        }
    }
    if !part.is_empty() || sink.parts == 0 {
        sink.emit(part).await.map_err(closed)?;
    }
    let rows = sink.sum.rows;
    Ok(TableEntry {
        name: job.info.name.clone(),
        rows,
        checksum: sink.sum.finish(),
    })
}

/// Dumps one table; returns the connection if it is still usable.
/// Records a finished table's rows and checksum. Called before the table's channel closes
/// (the job holds its sender), so the consumer finds the result when the channel ends.
fn record(results: &Results, job: &TableJob, entry: TableEntry) {
    results
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(job.db.clone())
        .or_default()
        .insert(job.info.name.clone(), entry);
}

async fn dump_table(
    mut c: Conn,
    job: TableJob,
    part_bytes: usize,
    results: Results,
) -> Option<Conn> {
    match read_table(&mut c, &job.db, &job.info, part_bytes, Some(&job.tx)).await {
        Ok(entry) => {
            tracing::debug!(database = %job.db, table = %job.info.name, rows = entry.rows, "table dumped");
            record(&results, &job, entry);
            Some(c)
        }
        Err(ReadError::Closed) => None,
        Err(ReadError::Sql(e)) => {
            let e = query_err("dump", &job.db, Some(&job.info.name), &e);
            let _ = job.tx.send(Err(e)).await;
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Splitting schema.sql

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    section: String,
    sql: String,
}

/// Splits SQL as the `mysql` client does: `;` (or the current `DELIMITER`) outside quotes and
/// comments ends a statement. Comments are dropped except `/*! ... */`, which the server runs.
/// `-- kfguard:section NAME` lines between statements set the section of those that follow.
fn split_sql(text: &str) -> Vec<Statement> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut section = SECTION_PREAMBLE.to_string();
    let mut delim: Vec<u8> = b";".to_vec();
    let mut cur: Vec<u8> = Vec::new();
    let mut blank = true; // `cur` holds only whitespace
    let mut line_start = true;
    let mut i = 0;
    let line_end = |i: usize| {
        b[i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| i + p)
    };
    let finish = |cur: &mut Vec<u8>, section: &str, out: &mut Vec<Statement>| {
        let sql = String::from_utf8_lossy(cur).trim().to_string();
        if !sql.is_empty() {
            out.push(Statement {
                section: section.to_string(),
                sql,
            });
        }
        cur.clear();
    };
    while i < b.len() {
        if line_start && blank {
            let end = line_end(i);
            let line = text[i..end].trim();
            if let Some(name) = line.strip_prefix(SECTION_MARKER) {
                section = name.trim().to_string();
                i = end;
                continue;
            }
            let mut words = line.splitn(2, char::is_whitespace);
            if words
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("DELIMITER"))
            {
                if let Some(d) = words.next().map(str::trim).filter(|d| !d.is_empty()) {
                    delim = d.as_bytes().to_vec();
                }
                cur.clear();
                i = end;
                continue;
            }
        }
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' => {
                cur.push(c);
                i += 1;
                while i < b.len() {
                    let d = b[i];
                    cur.push(d);
                    i += 1;
                    if d == b'\\' && c != b'`' && i < b.len() {
                        cur.push(b[i]);
                        i += 1;
                    } else if d == c {
                        break;
                    }
                }
                blank = false;
                line_start = false;
                continue;
            }
            b'-' if b[i..].starts_with(b"--")
                && b.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) =>
            {
                i = line_end(i);
                continue;
            }
            b'#' => {
                i = line_end(i);
                continue;
            }
            b'/' if b[i..].starts_with(b"/*") => {
                let end = b[i + 2..]
                    .windows(2)
                    .position(|w| w == b"*/")
                    .map_or(b.len(), |p| i + 2 + p + 2);
                if b[i..].starts_with(b"/*!") {
                    cur.extend_from_slice(&b[i..end]);
                    blank = false;
                }
                i = end;
                line_start = false;
                continue;
            }
            _ => {}
        }
        if b[i..].starts_with(&delim) {
            finish(&mut cur, &section, &mut out);
            blank = true;
            line_start = false;
            i += delim.len();
            continue;
        }
        cur.push(c);
        blank &= c.is_ascii_whitespace();
        line_start = c == b'\n';
        i += 1;
    }
    finish(&mut cur, &section, &mut out);
    out
}

/// The name after `keyword` in a CREATE statement's head, for plans and messages.
fn object_name(sql: &str, keyword: &str) -> Option<String> {
    let upper = sql.to_ascii_uppercase();
    let pos = upper.find(&format!(" {keyword} "))? + keyword.len() + 2;
    let rest = sql[pos..].trim_start();
    if let Some(quoted) = rest.strip_prefix('`') {
        let mut name = String::new();
        let mut chars = quoted.chars().peekable();
        while let Some(ch) = chars.next() {
            if ch == '`' {
                if chars.peek() == Some(&'`') {
                    chars.next();
                } else {
                    break;
                }
            }
            name.push(ch);
        }
        Some(name)
    } else {
        rest.split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .map(str::to_string)
    }
}

/// The `ALTER DATABASE CHARACTER SET x COLLATE y` of a schema, if any.
fn schema_charset(statements: &[Statement]) -> Option<(String, String)> {
    statements.iter().find_map(|s| {
        let words: Vec<&str> = s.sql.split_whitespace().collect();
        match words.as_slice() {
            [a, d, c, s, cs, co, coll]
                if a.eq_ignore_ascii_case("ALTER")
                    && d.eq_ignore_ascii_case("DATABASE")
                    && c.eq_ignore_ascii_case("CHARACTER")
                    && s.eq_ignore_ascii_case("SET")
                    && co.eq_ignore_ascii_case("COLLATE")
                    && is_word(cs)
                    && is_word(coll) =>
            {
                Some((cs.to_string(), coll.to_string()))
            }
            _ => None,
        }
    })
}

fn statement_head(sql: &str) -> String {
    let line = one_line(sql);
    match line.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

// ---------------------------------------------------------------------------------------------
// Restore

/// Restores one database from a dump: refuses a database with tables unless `force`, creates
/// the tables, loads every table's parts with `LOAD DATA LOCAL INFILE` over `jobs` connections,
/// then creates views and triggers, and re-reads every table to compare it with the manifest.
pub async fn restore(conn: &Connection, req: RestoreRequest) -> Result<RestoreReport, DbError> {
    let jobs = req.jobs.max(1);
    let target = req.target.clone();
    let qerr = |what: &str, e: &mysql_async::Error| query_err(what, &target, None, e);
    let mut ddl = connect(conn).await?;
    setup_session(&mut ddl)
        .await
        .map_err(|e| qerr("session setup", &e))?;

    let statements = split_sql(&req.schema_sql);
    let (charset, collation) =
        schema_charset(&statements).unwrap_or_else(|| ("utf8mb4".to_string(), String::new()));

    let exists: Option<String> = ddl
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (&target,),
        )
        .await
        .map_err(|e| qerr("checking the target database", &e))?;
    let existing: Vec<Row> = ddl
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            (&target,),
        )
        .await
        .map_err(|e| qerr("checking the target database", &e))?;
    if !existing.is_empty() && !req.force {
        return Err(DbError::NotEmpty {
            database: target,
            tables: existing.len(),
        });
    }

    // Refuse early, before anything is created, if the data cannot be loaded.
    if !req.tables.is_empty() {
        if let Ok(Some(row)) = ddl
            .query_first::<Row, _>("SELECT @@GLOBAL.local_infile")
            .await
        {
            if cell(&row, 0).as_deref() == Some("0") {
                return Err(DbError::LocalInfileDisabled);
            }
        }
    }

    // The plan, in the order of the work below.
    let mut plan = Vec::new();
    if exists.is_none() {
        plan.push(format!("create database {target}"));
    } else if !existing.is_empty() {
        plan.push(format!(
            "drop {} tables and views in {target}",
            existing.len()
        ));
    }
    // Views and triggers go on after the data: triggers must not fire during the load.
    let (before_data, after_data): (Vec<Statement>, Vec<Statement>) = statements
        .iter()
        .cloned()
        .partition(|s| s.section == SECTION_PREAMBLE || s.section == SECTION_TABLES);
    for s in before_data.iter().chain(&after_data) {
        let kw = match s.section.as_str() {
            SECTION_TABLES => "TABLE",
            SECTION_VIEWS => "VIEW",
            SECTION_TRIGGERS => "TRIGGER",
            _ => continue,
        };
        let is_create = s
            .sql
            .get(..7)
            .is_some_and(|h| h.eq_ignore_ascii_case("CREATE "));
        if let Some(name) = object_name(&s.sql, kw).filter(|_| is_create) {
            plan.push(format!("create {} {name}", kw.to_ascii_lowercase()));
        }
    }
    let mut load_plan = Vec::new();
    for t in &req.tables {
        load_plan.push(format!("load {} parts into {}", t.parts.len(), t.name));
    }
    // Put the loads between the tables and the views/triggers, where they run.
    let tables_created = plan
        .iter()
        .rposition(|p| p.starts_with("create table "))
        .map_or(plan.len(), |i| i + 1);
    plan.splice(tables_created..tables_created, load_plan);
    for e in &req.expected {
        plan.push(format!("verify {}: {} rows", e.name, e.rows));
    }

    if req.dry_run {
        let _ = ddl.disconnect().await;
        return Ok(RestoreReport {
            database: req.database,
            target,
            dry_run: true,
            plan,
            tables: Vec::new(),
        });
    }

    // Replace what is there (force) or create the database.
    if !existing.is_empty() {
        ddl.query_drop("SET FOREIGN_KEY_CHECKS=0")
            .await
            .map_err(|e| qerr("dropping existing tables", &e))?;
        for r in &existing {
            let name = cell_or_empty(r, 0);
            let what = if cell_or_empty(r, 1) == "VIEW" {
                "VIEW"
            } else {
                "TABLE"
            };
            ddl.query_drop(format!(
                "DROP {what} IF EXISTS {}.{}",
                qi(&target),
                qi(&name)
            ))
            .await
            .map_err(|e| query_err("dropping existing tables", &target, Some(&name), &e))?;
        }
    }
    if exists.is_none() {
        let mut sql = format!("CREATE DATABASE {} CHARACTER SET {charset}", qi(&target));
        if !collation.is_empty() {
            let _ = write!(sql, " COLLATE {collation}");
        }
        ddl.query_drop(sql)
            .await
            .map_err(|e| qerr("CREATE DATABASE", &e))?;
    }
    // From here on the target holds what this restore put there: a failure (or a stop
    // request) must not leave it behind unannounced.
    let created = exists.is_none();
    let filled = tokio::select! {
        r = fill(conn, ddl, &target, &req, jobs, &before_data, &after_data) => r,
        sig = crate::interrupt::wait() => Err(DbError::Interrupted(sig)),
    };
    let found = match filled {
        Ok(found) => found,
        Err(e) => return Err(abandon(conn, &target, created, e).await),
    };

    Ok(RestoreReport {
        database: req.database,
        target,
        dry_run: false,
        plan,
        tables: found,
    })
}

/// Fills the created or emptied target: schema, data, views and triggers, then reads every
/// table back; returns what was found, already compared with the manifest.
async fn fill(
    conn: &Connection,
    mut ddl: Conn,
    target: &str,
    req: &RestoreRequest,
    jobs: usize,
    before_data: &[Statement],
    after_data: &[Statement],
) -> Result<Vec<TableEntry>, DbError> {
    let target = target.to_string();
    let qerr = |what: &str, e: &mysql_async::Error| query_err(what, &target, None, e);
    ddl.query_drop(format!("USE {}", qi(&target)))
        .await
        .map_err(|e| qerr("USE", &e))?;
    // Tables reference each other in any order; schema.sql says so too, but do not rely on it.
    ddl.query_drop("SET FOREIGN_KEY_CHECKS=0")
        .await
        .map_err(|e| qerr("session setup", &e))?;
    run_statements(&mut ddl, &target, before_data).await?;

    // Load, largest tables first, over `jobs` connections.
    let infos: HashMap<String, TableInfo> = table_infos(&mut ddl, &target)
        .await
        .map_err(|e| qerr("reading table metadata", &e))?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let mut loads = Vec::new();
    for t in &req.tables {
        let info = infos
            .get(&t.name)
            .filter(|i| i.is_data())
            .ok_or_else(|| DbError::Query {
                what: "LOAD DATA".into(),
                database: target.clone(),
                table: Some(t.name.clone()),
                detail: "schema.sql does not create this table".into(),
            })?;
        loads.push((t.clone(), info.clone()));
    }
    loads.sort_by_key(|(t, _)| std::cmp::Reverse(t.parts.len()));
    let mut conns = Vec::with_capacity(jobs);
    for _ in 0..jobs.min(loads.len().max(1)) {
        let mut c = connect(conn).await?;
        load_session(&mut c, &target).await?;
        conns.push(c);
    }
    let fetch = req.fetch.clone();
    let db = target.clone();
    let conns = parallel(conns, loads, move |mut c, (table, info)| {
        let fetch = fetch.clone();
        let db = db.clone();
        async move {
            let r = load_table(&mut c, &db, &table, &info, fetch).await;
            (c, r)
        }
    })
    .await?
    .0;

    run_statements(&mut ddl, &target, after_data).await?;
    let _ = ddl.disconnect().await;

    // Verify: every restored or expected table, read back as the dump reads it.
    let expected: HashMap<&str, &TableEntry> =
        req.expected.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut names: Vec<String> = req.tables.iter().map(|t| t.name.clone()).collect();
    for e in &req.expected {
        if !names.contains(&e.name) {
            names.push(e.name.clone());
        }
    }
    let mut checks = Vec::new();
    for name in names {
        let info = infos.get(&name).cloned().ok_or_else(|| DbError::Verify {
            database: target.clone(),
            table: name.clone(),
            expected_rows: expected.get(name.as_str()).map_or(0, |e| e.rows),
            rows: 0,
            expected: expected
                .get(name.as_str())
                .map_or("-".into(), |e| e.checksum.clone()),
            found: "no such table".into(),
        })?;
        checks.push(info);
    }
    let mut conns = conns;
    for c in conns.iter_mut() {
        // Read back exactly as the dump read: unconverted.
        c.query_drop("SET character_set_results = NULL")
            .await
            .map_err(|e| qerr("session setup", &e))?;
    }
    let db = target.clone();
    let (conns, found) = parallel(conns, checks, move |mut c, info| {
        let db = db.clone();
        async move {
            let r = match read_table(&mut c, &db, &info, VERIFY_CHUNK, None).await {
                Ok(entry) => Ok(entry),
                Err(ReadError::Sql(e)) => Err(query_err("verify", &db, Some(&info.name), &e)),
                Err(ReadError::Closed) => unreachable_closed(&db, &info.name),
            };
            (c, r)
        }
    })
    .await?;
    for c in conns {
        let _ = c.disconnect().await;
    }
    for f in &found {
        let (rows, sum) = expected
            .get(f.name.as_str())
            .map_or((0, "(not in the manifest)".to_string()), |e| {
                (e.rows, e.checksum.clone())
            });
        if f.rows != rows || f.checksum != sum {
            return Err(DbError::Verify {
                database: target,
                table: f.name.clone(),
                expected_rows: rows,
                rows: f.rows,
                expected: sum,
                found: f.checksum.clone(),
            });
        }
    }

    Ok(found)
}

/// After a failed fill: drops the target if this restore created it (never one that existed
/// before), and says what became of it.
async fn abandon(conn: &Connection, target: &str, created: bool, cause: DbError) -> DbError {
    if !created {
        return abandoned(target, cause, Left::Existed);
    }
    let dropped = async {
        let mut c = connect(conn).await?;
        let r = c
            .query_drop(format!("DROP DATABASE IF EXISTS {}", qi(target)))
            .await
            .map_err(|e| query_err("DROP DATABASE", target, None, &e));
        let _ = c.disconnect().await;
        r
    };
    let left = match dropped.await {
        Ok(()) => Left::Dropped,
        Err(e) => Left::DropFailed(e),
    };
    abandoned(target, cause, left)
}

/// Verification has no consumer to go away; kept as an error rather than a panic.
fn unreachable_closed(db: &str, table: &str) -> Result<TableEntry, DbError> {
    Err(DbError::Query {
        what: "verify".into(),
        database: db.to_string(),
        table: Some(table.to_string()),
        detail: "internal: verification sink closed".into(),
    })
}

async fn run_statements(c: &mut Conn, db: &str, statements: &[Statement]) -> Result<(), DbError> {
    for s in statements {
        c.query_drop(s.sql.as_str()).await.map_err(|e| {
            query_err(
                &format!("schema statement `{}`", statement_head(&s.sql)),
                db,
                None,
                &e,
            )
        })?;
    }
    Ok(())
}

/// A loading session: no constraint checks (the data was consistent when dumped).
async fn load_session(c: &mut Conn, db: &str) -> Result<(), DbError> {
    let e = |e: mysql_async::Error| query_err("session setup", db, None, &e);
    setup_session(c).await.map_err(e)?;
    c.query_drop("SET FOREIGN_KEY_CHECKS=0, UNIQUE_CHECKS=0")
        .await
        .map_err(e)?;
    c.query_drop(format!("USE {}", qi(db))).await.map_err(e)?;
    Ok(())
}

fn load_sql(db: &str, info: &TableInfo, file: &str) -> String {
    let mut cols = Vec::new();
    let mut sets = Vec::new();
    for (i, c) in info.columns.iter().enumerate() {
        if c.json {
            cols.push(format!("@kfguard_{i}"));
            sets.push(format!(
                "{} = CONVERT(@kfguard_{i} USING utf8mb4)",
                qi(&c.name)
            ));
        } else {
            cols.push(qi(&c.name));
        }
    }
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE {} INTO TABLE {}.{} {LOAD_FORMAT} ({})",
        qs(file),
        qi(db),
        qi(&info.name),
        cols.join(", ")
    );
    if !sets.is_empty() {
        let _ = write!(sql, " SET {}", sets.join(", "));
    }
    sql
}

async fn load_table(
    c: &mut Conn,
    db: &str,
    table: &super::RestoreTable,
    info: &TableInfo,
    fetch: super::Fetch,
) -> Result<(), DbError> {
    for path in &table.parts {
        let f = fetch.clone();
        let p = path.clone();
        let bytes = tokio::task::spawn_blocking(move || f(&p))
            .await
            .map_err(|e| DbError::Fetch {
                path: path.clone(),
                detail: one_line(&e.to_string()),
            })?
            .map_err(|e| DbError::Fetch {
                path: path.clone(),
                detail: one_line(&e.to_string()),
            })?;
        if bytes.is_empty() {
            continue;
        }
        let data = bytes::Bytes::from(bytes);
        c.set_infile_handler(
            async move { Ok(futures::stream::once(async move { Ok(data) }).boxed()) },
        );
        tracing::debug!(database = %db, table = %table.name, part = %path, "loading");
        if let Err(e) = c.query_drop(load_sql(db, info, path)).await {
            let disabled = matches!(server_code(&e), Some(1148 | 3948 | 4166))
                || e.to_string().to_ascii_lowercase().contains("not allowed");
            return Err(if disabled {
                DbError::LocalInfileDisabled
            } else {
                query_err("LOAD DATA", db, Some(&table.name), &e)
            });
        }
    }
    Ok(())
}

/// Runs `work` over `items` on the given connections, one item at a time per connection,
/// in the items' order. Stops handing out items after the first error, which it returns.
async fn parallel<I, R, F, Fut>(
    conns: Vec<Conn>,
    items: Vec<I>,
    work: F,
) -> Result<(Vec<Conn>, Vec<R>), DbError>
where
    I: Send + 'static,
    R: Send + 'static,
    F: Fn(Conn, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (Conn, Result<R, DbError>)> + Send + 'static,
{
    if conns.is_empty() && !items.is_empty() {
        return Err(DbError::Query {
            what: "restore".into(),
            database: String::new(),
            table: None,
            detail: "internal: no connection to work with".into(),
        });
    }
    let queue = Arc::new(Mutex::new(
        items.into_iter().enumerate().collect::<VecDeque<_>>(),
    ));
    let failed = Arc::new(AtomicBool::new(false));
    let work = Arc::new(work);
    let mut handles = Vec::new();
    for conn in conns {
        let (queue, failed, work) = (queue.clone(), failed.clone(), work.clone());
        handles.push(tokio::spawn(async move {
            let mut conn = conn;
            let mut done = Vec::new();
            while !failed.load(Ordering::SeqCst) {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                let Some((i, item)) = next else { break };
                let (c, r) = work(conn, item).await;
                conn = c;
                match r {
                    Ok(r) => done.push((i, r)),
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        return (conn, Err(e));
                    }
                }
            }
            (conn, Ok(done))
        }));
    }
    let mut conns = Vec::new();
    let mut results = Vec::new();
    let mut first_err = None;
    for h in handles {
        match h.await {
            Ok((c, Ok(done))) => {
                conns.push(c);
                results.extend(done);
            }
            Ok((_, Err(e))) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(DbError::Query {
                    what: "restore worker".into(),
                    database: String::new(),
                    table: None,
                    detail: one_line(&e.to_string()),
                });
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    results.sort_by_key(|(i, _)| *i);
    Ok((conns, results.into_iter().map(|(_, r)| r).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: Value) -> String {
        let mut out = Vec::new();
        encode_value(&mut out, &v, None);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_match_load_data() {
        let mut out = Vec::new();
        escape_into(&mut out, b"a\tb\nc\rd\\e\0f\\N");
        assert_eq!(out, b"a\\tb\\nc\\rd\\\\e\\0f\\\\N");
        assert_eq!(enc(Value::NULL), "\\N");
        assert_eq!(enc(Value::Bytes(Vec::new())), "");
    }

    #[test]
    fn doubles_are_shortest_round_trip() {
        for v in [
            0.1 + 0.2,
            1e-300,
            -0.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            123456.789,
            5e-324,
        ] {
            let s = enc(Value::Double(v));
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{s}");
        }
        assert_eq!(enc(Value::Double(1e-300)), "1e-300");
        assert_eq!(enc(Value::Double(0.5)), "0.5");
        let f = 0.1f32;
        assert_eq!(enc(Value::Float(f)).parse::<f64>().unwrap() as f32, f);
    }

    #[test]
    fn temporals() {
        assert_eq!(
            enc(Value::Date(2024, 2, 29, 23, 59, 58, 123456)),
            "2024-02-29 23:59:58.123456"
        );
        // Without column metadata, all six digits.
        assert_eq!(enc(Value::Time(true, 1, 2, 3, 4, 0)), "-26:03:04.000000");
    }

    #[test]
    fn definers_are_stripped() {
        assert_eq!(
            strip_definer("CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1"),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1"
        );
        assert_eq!(
            strip_definer("CREATE DEFINER=`a``b`@`localhost` trigger t before insert on x for each row set @a='DEFINER='"),
            "CREATE trigger t before insert on x for each row set @a='DEFINER='"
        );
        assert_eq!(
            strip_definer("CREATE VIEW v AS select 'DEFINER=x'"),
            "CREATE VIEW v AS select 'DEFINER=x'"
        );
    }

    #[test]
    fn splits_like_the_mysql_client() {
        let sql = "SET A=1; -- c\n-- kfguard:section tables\nCREATE TABLE `a;b` (x varchar(3) DEFAULT ';\\';');\n\
                   /*!40101 SET X=1 */;\n# note\n-- kfguard:section triggers\nDELIMITER ;;\n\
                   CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN SET @x = 1; SET @y = \"a;;b\"; END;;\nDELIMITER ;\nSELECT 1";
        let s = split_sql(sql);
        let got: Vec<(&str, &str)> = s
            .iter()
            .map(|s| (s.section.as_str(), s.sql.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("preamble", "SET A=1"),
                ("tables", "CREATE TABLE `a;b` (x varchar(3) DEFAULT ';\\';')"),
                ("tables", "/*!40101 SET X=1 */"),
                (
                    "triggers",
                    "CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN SET @x = 1; SET @y = \"a;;b\"; END"
                ),
                ("triggers", "SELECT 1"),
            ]
        );
        assert_eq!(object_name(&s[1].sql, "TABLE").as_deref(), Some("a;b"));
        assert_eq!(object_name(&s[3].sql, "TRIGGER").as_deref(), Some("t"));
    }

    #[test]
    fn views_follow_their_dependencies() {
        let v = vec![
            (
                "a".to_string(),
                "CREATE VIEW `a` AS select * from `b`".to_string(),
            ),
            (
                "b".to_string(),
                "CREATE VIEW `b` AS select * from `t`".to_string(),
            ),
        ];
        let names: Vec<String> = order_views(v).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["b", "a"]);
    }
}
