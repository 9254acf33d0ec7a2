//! Reading a table in row order into parts (dump) or into a checksum only (verify).

use mysql_async::prelude::*;
use mysql_async::Conn;
use tokio::sync::mpsc;

use super::catalog::{select_sql, TableInfo};
use super::encode::{encode_row, PART_EXT};
use crate::engines::{part_path, DbError, DumpFile, RowChecksum};
use crate::snapshot::manifest::TableEntry;

/// Parts start this small and grow, so small tables do not each pin `part_bytes` of memory.
pub(super) const INITIAL_PART_CAPACITY: usize = 256 * 1024;

pub(super) type PartSender = mpsc::Sender<Result<DumpFile, DbError>>;

pub(super) enum ReadError {
    Sql(mysql_async::Error),
    /// The consumer dropped the table's receiver.
    Closed,
}

pub(super) struct PartSink<'a> {
    pub(super) table: &'a str,
    pub(super) tx: Option<&'a PartSender>,
    pub(super) sum: RowChecksum,
    pub(super) parts: usize,
}

impl PartSink<'_> {
    pub(super) async fn emit(&mut self, bytes: Vec<u8>) -> Result<(), ReadError> {
        self.sum.update(&bytes);
        self.parts += 1;
        if let Some(tx) = self.tx {
            let file = DumpFile {
                path: part_path(self.table, self.parts, PART_EXT),
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
pub(super) async fn read_table(
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
