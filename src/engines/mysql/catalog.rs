//! The catalog of a database: its tables and views, their dumped columns and row order;
//! shared by the dump and the verification of a restore.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use mysql_async::prelude::*;
use mysql_async::{Conn, Row};

use super::connect::{cell, cell_or_empty, qi};

#[derive(Debug, Clone)]
pub(super) struct ColumnInfo {
    pub(super) name: String,
    /// MySQL 8 JSON refuses `binary` input; such columns load through a converted variable.
    pub(super) json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RowOrder {
    PrimaryKey(Vec<String>),
    /// No primary key, but a unique key over NOT NULL columns: still a total order.
    UniqueKey(Vec<String>),
    /// Neither: every column, which is not a stable order for equal or long values.
    AllColumns,
}

#[derive(Debug, Clone)]
pub(super) struct TableInfo {
    pub(super) name: String,
    /// `BASE TABLE`, `VIEW`, `SYSTEM VERSIONED`, `SEQUENCE`, ...
    pub(super) kind: String,
    pub(super) engine: Option<String>,
    /// The columns dumped and loaded, in ordinal order; generated columns are left out.
    pub(super) columns: Vec<ColumnInfo>,
    pub(super) order: RowOrder,
    /// The primary key when it is one integer column: large tables split into ranges of it.
    pub(super) split_key: Option<String>,
    /// The server's estimate of the data size (`DATA_LENGTH`), for deciding to split.
    pub(super) data_length: u64,
}

impl TableInfo {
    pub(super) fn is_data(&self) -> bool {
        matches!(self.kind.as_str(), "BASE TABLE" | "SYSTEM VERSIONED")
    }
    pub(super) fn is_view(&self) -> bool {
        self.kind == "VIEW"
    }
}

/// An index, as far as row order is concerned.
pub(super) struct IndexInfo {
    pub(super) unique: bool,
    /// Every part is a NOT NULL column, so a unique index orders all rows totally.
    pub(super) total: bool,
    pub(super) columns: Vec<String>,
}

pub(super) fn is_generated(extra: &str) -> bool {
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
pub(super) async fn table_infos(
    c: &mut Conn,
    db: &str,
) -> Result<Vec<TableInfo>, mysql_async::Error> {
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

pub(super) fn select_sql(db: &str, t: &TableInfo) -> String {
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
