//! `COPY` text, both directions: how a table is read (`COPY … TO STDOUT` in key order, cut
//! into parts at row boundaries and checksummed) and how its parts are fed back
//! (`COPY … FROM STDIN`). The dump and the restore's verification share the reading path, so
//! the same rows always give the same bytes.

use std::collections::BTreeMap;
use std::future::Future;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio_postgres::Client;

use super::catalog::not_extension;
use super::connect::{one_line, query_err};
use super::USER_NS;
use crate::engines::{part_path, DbError, DumpFile, Fetch, RowChecksum};
use crate::snapshot::manifest::TableEntry;

/// Extension of data parts: PostgreSQL `COPY` text format.
const PART_EXT: &str = "copy";
/// Alias of the table in the dump query, for the whole-row ordering of tables without a key.
const ROW_ALIAS: &str = "kfguard_row";

/// How one table is read: shared by the dump and the restore's verification, so both produce
/// the same bytes for the same rows.
#[derive(Debug, Clone)]
pub(super) struct TablePlan {
    /// Name in files and the manifest: `table`, or `schema.table` outside `public`.
    pub(super) name: String,
    /// Quoted `schema.table`.
    pub(super) qname: String,
    /// Quoted stored columns (not generated), in column order.
    pub(super) columns: Vec<String>,
    /// Quoted primary-key columns, in key order; empty without a primary key.
    pub(super) pk: Vec<String>,
    /// The primary key is one `int2`/`int4`/`int8` column: the table can be read in key ranges.
    pub(super) int_key: bool,
}

impl TablePlan {
    pub(super) fn copy_out_sql(&self) -> String {
        self.copy_out_range_sql(None, None)
    }

    /// `COPY` of the rows with `lo <= key < hi` (a missing bound is open) of a table with an
    /// integer key: the same column list and order as [`Self::copy_out_sql`], so the ranges'
    /// outputs, concatenated in order, are the bytes of the whole table.
    pub(super) fn copy_out_range_sql(&self, lo: Option<i64>, hi: Option<i64>) -> String {
        let cols = self.columns.join(", ");
        let key = self.pk.first().map_or("", String::as_str);
        let mut filter = Vec::new();
        if let Some(lo) = lo {
            filter.push(format!("{key} >= {lo}"));
        }
        if let Some(hi) = hi {
            filter.push(format!("{key} < {hi}"));
        }
        let filter = if filter.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filter.join(" AND "))
        };
        let order = if self.pk.is_empty() {
            // No key: the row's text in the "C" collation is a total, locale-free order.
            format!("(ROW({ROW_ALIAS}.*)::text) COLLATE \"C\"")
        } else {
            self.pk.join(", ")
        };
        format!(
            "COPY (SELECT {cols} FROM ONLY {} AS {ROW_ALIAS}{filter} ORDER BY {order}) TO STDOUT",
            self.qname
        )
    }

    pub(super) fn copy_in_sql(&self) -> String {
        if self.columns.is_empty() {
            format!("COPY {} FROM STDIN", self.qname)
        } else {
            format!(
                "COPY {} ({}) FROM STDIN",
                self.qname,
                self.columns.join(", ")
            )
        }
    }
}

/// Name of a table in files and the manifest.
pub(super) fn table_name(schema: &str, table: &str) -> String {
    if schema == "public" {
        table.to_string()
    } else {
        format!("{schema}.{table}")
    }
}

/// Every ordinary user table of the connected database, by oid.
pub(super) async fn table_plans(c: &Client, db: &str) -> Result<BTreeMap<u32, TablePlan>, DbError> {
    let sql = format!(
        "SELECT c.oid, n.nspname::text, c.relname::text, \
           quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
           ARRAY(SELECT quote_ident(a.attname) FROM pg_attribute a \
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                   AND a.attgenerated = '' ORDER BY a.attnum), \
           ARRAY(SELECT quote_ident(a.attname) FROM pg_constraint co \
                 CROSS JOIN LATERAL unnest(co.conkey) WITH ORDINALITY AS k(attnum, ord) \
                 JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum \
                 WHERE co.conrelid = c.oid AND co.contype = 'p' ORDER BY k.ord), \
           coalesce((SELECT count(*) = 1 AND bool_and(a.atttypid IN (20, 21, 23)) \
                 FROM pg_constraint co CROSS JOIN LATERAL unnest(co.conkey) AS k(attnum) \
                 JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum \
                 WHERE co.conrelid = c.oid AND co.contype = 'p'), false) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND {USER_NS} AND {}",
        not_extension("pg_class", "c.oid")
    );
    let rows = c
        .query(&sql, &[])
        .await
        .map_err(|e| query_err("list tables", db, None, &e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let schema: String = r.get(1);
            let rel: String = r.get(2);
            (
                r.get(0),
                TablePlan {
                    name: table_name(&schema, &rel),
                    qname: r.get(3),
                    columns: r.get(4),
                    pk: r.get(5),
                    int_key: r.get(6),
                },
            )
        })
        .collect())
}

/// Streams one table through `COPY … TO STDOUT`, handing full parts to `emit` (false: the
/// consumer is gone) and returning the last part with the table's rows and checksum.
pub(super) async fn stream_table<F, Fut>(
    client: &Client,
    db: &str,
    plan: &TablePlan,
    part_bytes: usize,
    mut emit: F,
) -> Result<(DumpFile, TableEntry), DbError>
where
    F: FnMut(DumpFile) -> Fut,
    Fut: Future<Output = bool>,
{
    let err = |e: &tokio_postgres::Error| query_err("COPY TO", db, Some(&plan.name), e);
    let stream = client
        .copy_out(&plan.copy_out_sql())
        .await
        .map_err(|e| err(&e))?;
    futures::pin_mut!(stream);
    let mut cutter = PartCutter::new(&plan.name, part_bytes);
    let mut full = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| err(&e))?;
        cutter.push(&chunk, &mut full);
        for part in full.drain(..) {
            if !emit(part).await {
                return Err(DbError::Query {
                    what: "COPY TO".into(),
                    database: db.into(),
                    table: Some(plan.name.clone()),
                    detail: "the snapshot writer stopped reading".into(),
                });
            }
        }
    }
    cutter.finish().map_err(|detail| DbError::Query {
        what: "COPY TO".into(),
        database: db.into(),
        table: Some(plan.name.clone()),
        detail,
    })
}

/// Cuts a `COPY` text stream into parts at row boundaries (rows end with `\n`; newlines inside
/// values are escaped), checksumming every byte in order.
pub(super) struct PartCutter {
    table: String,
    part_bytes: usize,
    part: Vec<u8>,
    /// The start of a row split across chunks.
    pending: Vec<u8>,
    parts: usize,
    sum: RowChecksum,
}

impl PartCutter {
    pub(super) fn new(table: &str, part_bytes: usize) -> Self {
        Self {
            table: table.to_string(),
            part_bytes: part_bytes.max(1),
            part: Vec::new(),
            pending: Vec::new(),
            parts: 0,
            sum: RowChecksum::default(),
        }
    }

    pub(super) fn push(&mut self, mut data: &[u8], full: &mut Vec<DumpFile>) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            let (row, rest) = data.split_at(i + 1);
            let len = self.pending.len() + row.len();
            if !self.part.is_empty() && self.part.len() + len > self.part_bytes {
                full.push(self.cut());
            }
            if self.part.capacity() == 0 {
                // Exact capacity: a part never reallocates unless one row exceeds it.
                self.part.reserve_exact(self.part_bytes.max(len));
            }
            self.part.extend_from_slice(&self.pending);
            self.pending.clear();
            self.part.extend_from_slice(row);
            self.sum.add_rows(1);
            data = rest;
        }
        self.pending.extend_from_slice(data);
    }

    fn cut(&mut self) -> DumpFile {
        self.sum.update(&self.part);
        self.parts += 1;
        if self.part.len() < self.part.capacity() / 2 {
            // A small last part should not pin a whole part's worth of memory downstream.
            self.part.shrink_to_fit();
        }
        DumpFile {
            path: part_path(&self.table, self.parts, PART_EXT),
            bytes: std::mem::take(&mut self.part),
        }
    }

    /// The last part (the only, empty one for an empty table) and the table's entry.
    pub(super) fn finish(mut self) -> Result<(DumpFile, TableEntry), String> {
        if !self.pending.is_empty() {
            return Err(format!(
                "COPY data ended inside a row ({} bytes without a newline)",
                self.pending.len()
            ));
        }
        let last = self.cut();
        let rows = self.sum.rows;
        let entry = TableEntry {
            name: self.table,
            rows,
            checksum: self.sum.finish(),
        };
        Ok((last, entry))
    }
}

/// Feeds a table's parts to `COPY … FROM STDIN`, fetching the next part while sending one.
pub(super) async fn load_table(
    client: &Client,
    db: &str,
    plan: &TablePlan,
    parts: &[String],
    fetch: Fetch,
) -> Result<(), DbError> {
    let err = |e: &tokio_postgres::Error| query_err("COPY FROM", db, Some(&plan.name), e);
    let sink = client
        .copy_in::<_, Bytes>(&plan.copy_in_sql())
        .await
        .map_err(|e| err(&e))?;
    futures::pin_mut!(sink);
    let spawn_fetch = |path: &String| {
        let (fetch, path) = (fetch.clone(), path.clone());
        tokio::task::spawn_blocking(move || {
            let r = fetch(&path);
            (path, r)
        })
    };
    let mut next = parts.first().map(spawn_fetch);
    let mut i = 0;
    while let Some(handle) = next.take() {
        let (path, data) = handle.await.map_err(|e| DbError::Fetch {
            path: parts[i].clone(),
            detail: one_line(&e.to_string()),
        })?;
        let data = data.map_err(|e| DbError::Fetch {
            path,
            detail: one_line(&e.to_string()),
        })?;
        i += 1;
        next = parts.get(i).map(spawn_fetch);
        if !data.is_empty() {
            sink.send(Bytes::from(data)).await.map_err(|e| err(&e))?;
        }
    }
    sink.as_mut().finish().await.map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_end_at_rows_and_checksum_everything() {
        let mut c = PartCutter::new("t", 10);
        let mut full = Vec::new();
        // Rows split across chunks; one row longer than a part.
        c.push(b"aaaa\nbb", &mut full);
        c.push(b"bb\ncccccccccccccc\nd\n", &mut full);
        let (last, entry) = c.finish().expect("complete rows");
        full.push(last);
        let parts: Vec<&[u8]> = full.iter().map(|p| p.bytes.as_slice()).collect();
        assert_eq!(
            parts,
            vec![&b"aaaa\nbbbb\n"[..], b"cccccccccccccc\n", b"d\n"]
        );
        assert_eq!(full[0].path, "data/t.000001.copy");
        assert_eq!(entry.rows, 4);
        let mut sum = RowChecksum::default();
        sum.update(b"aaaa\nbbbb\ncccccccccccccc\nd\n");
        assert_eq!(entry.checksum, sum.finish());

        let (last, entry) = PartCutter::new("e", 10).finish().expect("empty");
        assert_eq!(
            (last.path.as_str(), last.bytes.len(), entry.rows),
            ("data/e.000001.copy", 0, 0)
        );
        let mut c = PartCutter::new("x", 10);
        c.push(b"no newline", &mut Vec::new());
        assert!(c.finish().is_err());
    }
}
