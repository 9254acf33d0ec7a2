//! Reading a large table in key ranges: how many ranges a table gets, where they are cut, and
//! how the ranges' readers feed one forwarder in key order, so the output is that of one stream.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::connect::{query_err, Lease};
use super::copy::{PartCutter, TablePlan};
use super::dump::{finish_table, PartSender, Results};
use crate::engines::DbError;

/// A table with an integer key larger than this many parts is read in key ranges.
const SPLIT_PARTS: usize = 4;
/// Chunks waiting between a key range's reader and its table's forwarder.
const RANGE_CHANNEL_CAPACITY: usize = 1;

/// How many key ranges each table may be read in, at most: 1, or for a table with an integer
/// key larger than [`SPLIT_PARTS`] parts, one range per `SPLIT_PARTS / 2` parts, up to `jobs`.
/// Sizes (with TOAST) come from `pg_table_size`; the tables are locked already.
pub(super) async fn max_ranges(
    coordinator: &Client,
    db: &str,
    tables: &[TablePlan],
    jobs: usize,
    part_bytes: usize,
) -> Result<Vec<usize>, DbError> {
    let keyed: Vec<String> = tables
        .iter()
        .filter(|t| t.int_key)
        .map(|t| t.qname.clone())
        .collect();
    let mut sizes = HashMap::new();
    if jobs > 1 && !keyed.is_empty() {
        let rows = coordinator
            .query(
                "SELECT t, pg_catalog.pg_table_size(t::pg_catalog.regclass) \
                 FROM pg_catalog.unnest($1::text[]) AS t",
                &[&keyed],
            )
            .await
            .map_err(|e| query_err("read table sizes", db, None, &e))?;
        for r in rows {
            let size: i64 = r.get(1);
            sizes.insert(r.get::<_, String>(0), usize::try_from(size).unwrap_or(0));
        }
    }
    let per_range = (SPLIT_PARTS / 2).saturating_mul(part_bytes).max(1);
    Ok(tables
        .iter()
        .map(|t| match sizes.get(&t.qname) {
            Some(&size) if size > SPLIT_PARTS.saturating_mul(part_bytes) => {
                (size / per_range).clamp(1, jobs)
            }
            _ => 1,
        })
        .collect())
}

/// What a key range's reader hands its table's forwarder.
enum RangeMsg {
    /// `COPY` bytes in order (the range's output ends at a row boundary).
    Chunk(Vec<u8>),
    /// The range is complete; the permit (of an extra reader) is freed once this is taken.
    Done(Option<tokio::sync::OwnedSemaphorePermit>),
    Failed(DbError),
}

/// Reads a large table in key ranges, one per worker: the first on `lease`, one more on each
/// of `extra`. Each range streams into its own bounded channel; the forwarder (this task)
/// takes the ranges in key order, so the bytes, parts and checksum are those of
/// [`run_table`]'s single stream. A range whose reader fails or vanishes fails the table.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_split_table(
    database: String,
    plan: TablePlan,
    lease: Lease,
    mut extra: Vec<(Lease, tokio::sync::OwnedSemaphorePermit)>,
    tx: PartSender,
    permit: tokio::sync::OwnedSemaphorePermit,
    coordinator: Arc<Client>,
    part_bytes: usize,
    results: Results,
) {
    let outcome = async {
        let bounds = key_bounds(lease.client(), &database, &plan, extra.len() + 1).await?;
        // Readers not needed (a small key span) go back at once.
        extra.truncate(bounds.len());
        let mut readers = Vec::new();
        let mut lo = None;
        let mut leases =
            std::iter::once((lease, None)).chain(extra.into_iter().map(|(l, p)| (l, Some(p))));
        for i in 0..=bounds.len() {
            let hi = bounds.get(i).copied();
            let Some((lease, permit)) = leases.next() else {
                break;
            };
            let (rtx, rrx) = mpsc::channel(RANGE_CHANNEL_CAPACITY);
            let sql = plan.copy_out_range_sql(lo, hi);
            tokio::spawn(read_range(
                database.clone(),
                plan.name.clone(),
                sql,
                lease,
                permit,
                part_bytes,
                rtx,
            ));
            readers.push(rrx);
            lo = hi;
        }
        let stopped = |detail: &str| DbError::Query {
            what: "COPY TO".into(),
            database: database.clone(),
            table: Some(plan.name.clone()),
            detail: detail.into(),
        };
        let mut cutter = PartCutter::new(&plan.name, part_bytes);
        let mut full = Vec::new();
        for mut rrx in readers {
            loop {
                match rrx.recv().await {
                    Some(RangeMsg::Chunk(chunk)) => {
                        cutter.push(&chunk, &mut full);
                        for part in full.drain(..) {
                            if tx.send(Ok(part)).await.is_err() {
                                return Err(stopped("the snapshot writer stopped reading"));
                            }
                        }
                    }
                    Some(RangeMsg::Done(permit)) => {
                        drop(permit);
                        break;
                    }
                    Some(RangeMsg::Failed(e)) => return Err(e),
                    None => return Err(stopped("a key range reader stopped")),
                }
            }
        }
        cutter.finish().map_err(|detail| stopped(&detail))
    }
    .await;
    finish_table(database, &plan, outcome, &tx, &results).await;
    drop(permit);
    drop(coordinator);
}

/// Up to `ranges - 1` strictly increasing key values inside the table's key span `(min, max]`
/// (read in the snapshot). The first range is open below and the last open above, so the
/// ranges cover every row whatever the boundaries are; these only balance the work. They are
/// taken from the key's histogram in `pg_stats` when `ANALYZE` left one (equal row counts
/// even for sparse keys), else they cut `[min, max]` evenly (fine for dense serial ids).
async fn key_bounds(
    client: &Client,
    db: &str,
    plan: &TablePlan,
    ranges: usize,
) -> Result<Vec<i64>, DbError> {
    let key = plan.pk.first().map_or("", String::as_str);
    let row = client
        .query_one(
            &format!(
                "SELECT min({key})::int8, max({key})::int8 FROM ONLY {}",
                plan.qname
            ),
            &[],
        )
        .await
        .map_err(|e| query_err("read key range", db, Some(&plan.name), &e))?;
    let (Some(min), Some(max)) = (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
    else {
        return Ok(Vec::new());
    };
    // Statistics only steer the balance: ignore them if they cannot be read.
    let histogram: Vec<i64> = client
        .query_opt(
            "SELECT s.histogram_bounds::text::int8[] FROM pg_catalog.pg_stats s \
             WHERE pg_catalog.quote_ident(s.schemaname) || '.' || \
                   pg_catalog.quote_ident(s.tablename) = $1 \
               AND pg_catalog.quote_ident(s.attname) = $2 AND NOT s.inherited",
            &[&plan.qname, &key],
        )
        .await
        .ok()
        .flatten()
        .and_then(|r| r.get::<_, Option<Vec<i64>>>(0))
        .unwrap_or_default();
    let n = ranges.max(1);
    let candidates: Vec<i128> = if histogram.len() > n {
        (1..n)
            .map(|i| i128::from(histogram[i * (histogram.len() - 1) / n]))
            .collect()
    } else {
        let span = i128::from(max) - i128::from(min);
        let n = i128::try_from(n).unwrap_or(1);
        (1..n).map(|i| i128::from(min) + span * i / n).collect()
    };
    let mut bounds: Vec<i64> = Vec::new();
    for b in candidates {
        if let Ok(b) = i64::try_from(b) {
            if b > min && b <= max && bounds.last().is_none_or(|&l| b > l) {
                bounds.push(b);
            }
        }
    }
    Ok(bounds)
}

/// Streams one key range into `out` as chunks of up to `part_bytes`, then `Done`
/// (carrying `permit`, so it is held until the forwarder has taken everything) or `Failed`.
async fn read_range(
    database: String,
    table: String,
    sql: String,
    lease: Lease,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    part_bytes: usize,
    out: mpsc::Sender<RangeMsg>,
) {
    let err = |e: &tokio_postgres::Error| query_err("COPY TO", &database, Some(&table), e);
    let read = async {
        let stream = lease.client().copy_out(&sql).await.map_err(|e| err(&e))?;
        futures::pin_mut!(stream);
        let mut chunk = Vec::new();
        while let Some(data) = stream.next().await {
            let data = data.map_err(|e| err(&e))?;
            if !chunk.is_empty() && chunk.len() + data.len() > part_bytes {
                let full = std::mem::take(&mut chunk);
                if out.send(RangeMsg::Chunk(full)).await.is_err() {
                    // The forwarder is gone (the table failed or was abandoned).
                    return Ok(false);
                }
            }
            if chunk.capacity() == 0 {
                // At most `part_bytes` unless one message is larger: no reallocation.
                chunk.reserve_exact(part_bytes.max(data.len()));
            }
            chunk.extend_from_slice(&data);
        }
        if !chunk.is_empty() && out.send(RangeMsg::Chunk(chunk)).await.is_err() {
            return Ok(false);
        }
        Ok::<_, DbError>(true)
    }
    .await;
    // The connection is free for the next table of this database; the permit is not yet.
    drop(lease);
    let _ = match read {
        Ok(true) => out.send(RangeMsg::Done(permit)).await,
        Ok(false) => Ok(()),
        Err(e) => out.send(RangeMsg::Failed(e)).await,
    };
}
