//! Restoring buckets from a snapshot: read each bucket's `index.jsonl`, choose the objects
//! (`--prefix`, `--existing`), and hand them to [`crate::buckets::upload_all`], which uploads
//! every one with its content-type and user metadata and verifies it.
//!
//! - The snapshot's trees below the bucket's folder are read once per restore.
//! - Which objects exist already comes from one LIST of the target, not a HEAD per object.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use rustic_core::repofile::SnapshotFile;
use serde::Serialize;
use tokio::runtime::Handle;

use crate::buckets::{self, connect};
use crate::config::Config;
use crate::restore::Existing;
use crate::snapshot::layout::{bucket_dir, IndexLine, BUCKET_INDEX as INDEX};
use crate::snapshot::manifest::{BucketEntry, Manifest};
use crate::snapshot::read::{self, IndexedRepo};
use crate::Usage;

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("`--bucket {0}` matches nothing in the snapshot; it holds: {1}")]
    NoMatch(String, String),
    #[error("--into needs exactly one bucket, but {0} are selected; add --bucket SRC/BUCKET")]
    IntoNeedsOne(usize),
    #[error("the snapshot's bucket source `{0}` is not in the config: add a [[buckets]] entry named `{0}` that points at the endpoint to restore into")]
    SourceNotConfigured(String),
    #[error("the snapshot holds no buckets")]
    NoBuckets,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{count} object(s) already exist in bucket `{bucket}`, e.g. {examples}; choose --existing skip or --existing overwrite")]
    Exists {
        bucket: String,
        count: usize,
        examples: String,
    },
    #[error("`{path}` in the snapshot is not a valid bucket index: {detail}")]
    BadIndex { path: String, detail: String },
}

/// What to restore, from `--bucket`, `--into`, `--prefix`, `--existing` and `--dry-run`.
pub struct Selection<'a> {
    pub buckets: &'a [String],
    pub into: Option<&'a str>,
    pub prefix: Option<&'a str>,
    pub existing: Existing,
    pub dry_run: bool,
    /// Objects uploaded (read, sent and verified) at once.
    pub transfers: usize,
}

/// What one bucket's restore did (or, on a dry run, would do).
#[derive(Debug, Serialize)]
pub struct BucketReport {
    pub source: String,
    pub bucket: String,
    pub target: String,
    /// Objects uploaded (or to upload, on a dry run).
    pub objects: u64,
    pub bytes: u64,
    /// Objects left alone because they already existed (`--existing skip`).
    pub skipped: u64,
    /// Objects that already existed and were replaced (`--existing overwrite`).
    pub overwritten: u64,
    /// Objects sent as multipart uploads.
    pub multipart: u64,
}

/// The manifest entries that `--bucket` selects (all when none is given).
pub fn select<'m>(
    manifest: &'m Manifest,
    sel: &Selection,
) -> Result<Vec<&'m BucketEntry>, SelectError> {
    if manifest.buckets.is_empty() {
        return Err(SelectError::NoBuckets);
    }
    let chosen = super::pick(&manifest.buckets, sel.buckets, |e| (&e.source, &e.bucket))
        .map_err(|(want, all)| SelectError::NoMatch(want, all))?;
    if sel.into.is_some() && chosen.len() != 1 {
        return Err(SelectError::IntoNeedsOne(chosen.len()));
    }
    Ok(chosen)
}

/// The longest prefix that all keys share (on a character boundary).
fn common_prefix<'k>(mut keys: impl Iterator<Item = &'k str>) -> &'k str {
    let Some(mut prefix) = keys.next() else {
        return "";
    };
    for k in keys {
        let n = prefix
            .char_indices()
            .zip(k.chars())
            .find(|((_, a), b)| a != b)
            .map_or(prefix.len().min(k.len()), |((i, _), _)| i);
        prefix = &prefix[..n];
        if prefix.is_empty() {
            break;
        }
    }
    prefix
}

/// Restores each selected bucket in turn.
pub fn restore(
    rt: &Handle,
    config: &Config,
    repo: Arc<IndexedRepo>,
    snap: &SnapshotFile,
    entries: &[&BucketEntry],
    sel: &Selection,
) -> anyhow::Result<Vec<BucketReport>> {
    let mut reports = Vec::new();
    for entry in entries {
        let src = config
            .buckets
            .iter()
            .find(|b| b.name == entry.source)
            .ok_or_else(|| Usage::new(SelectError::SourceNotConfigured(entry.source.clone())))?;
        let target = sel.into.unwrap_or(&entry.bucket).to_string();
        let bucket = connect(rt, src, &target)?;
        let dir = bucket_dir(&entry.source, &entry.bucket);
        let index_path = format!("{dir}/{INDEX}");
        let raw = read::read(&repo, snap, &index_path, "the repository")?;
        let vanished: BTreeSet<&str> = entry.vanished.iter().map(String::as_str).collect();
        let mut lines = Vec::new();
        for (n, line) in raw.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let l: IndexLine =
                serde_json::from_slice(line).map_err(|e| RestoreError::BadIndex {
                    path: index_path.clone(),
                    detail: format!("line {}: {e}", n + 1),
                })?;
            if vanished.contains(l.key.as_str()) {
                continue;
            }
            if sel.prefix.is_some_and(|p| !l.key.starts_with(p)) {
                continue;
            }
            lines.push(l);
        }

        // Which objects exist already: one LIST below the keys' common prefix, which also fails
        // clearly, before anything is uploaded, when the target bucket does not exist.
        let present: HashSet<String> = if lines.is_empty() {
            rt.block_on(bucket.probe())?;
            HashSet::new()
        } else {
            let prefix = common_prefix(lines.iter().map(|l| l.key.as_str()));
            rt.block_on(bucket.list(&[prefix.to_string()]))?
                .into_iter()
                .map(|o| o.key)
                .collect()
        };
        let exists: Vec<bool> = lines.iter().map(|l| present.contains(&l.key)).collect();
        let existing: Vec<&str> = lines
            .iter()
            .zip(&exists)
            .filter(|(_, e)| **e)
            .map(|(l, _)| l.key.as_str())
            .collect();
        if sel.existing == Existing::Fail && !existing.is_empty() {
            let examples: Vec<String> = existing.iter().take(3).map(|k| format!("`{k}`")).collect();
            return Err(RestoreError::Exists {
                bucket: target,
                count: existing.len(),
                examples: examples.join(", "),
            }
            .into());
        }

        let mut report = BucketReport {
            source: entry.source.clone(),
            bucket: entry.bucket.clone(),
            target: target.clone(),
            objects: 0,
            bytes: 0,
            skipped: 0,
            overwritten: 0,
            multipart: 0,
        };
        let threshold = buckets::multipart_threshold();
        tracing::info!(source = %entry.source, bucket = %entry.bucket, into = %target, objects = lines.len(), dry_run = sel.dry_run, "restoring bucket");
        let mut todo = Vec::new();
        for (l, exists) in lines.iter().zip(exists) {
            if exists && sel.existing == Existing::Skip {
                report.skipped += 1;
                continue;
            }
            if exists {
                report.overwritten += 1;
            }
            report.objects += 1;
            report.bytes += l.size;
            if l.size > threshold {
                report.multipart += 1;
            }
            todo.push(l);
        }
        if !sel.dry_run && !todo.is_empty() {
            // One walk of the bucket's trees, instead of one lookup from the root per object.
            let files =
                read::files_under(&repo, snap, &format!("{dir}/objects"), "the repository")?;
            buckets::upload_all(rt, &bucket, &repo, &files, &todo, sel.transfers, threshold)?;
        }
        reports.push(report);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn common_prefix_of_keys_stops_at_the_first_difference() {
        assert_eq!(
            common_prefix(["v2/a/x", "v2/a/y", "v2/b"].into_iter()),
            "v2/"
        );
        assert_eq!(common_prefix(["ünï/a", "ünï/b"].into_iter()), "ünï/");
        assert_eq!(common_prefix(["ab", "a"].into_iter()), "a");
        assert_eq!(common_prefix(["é", "è"].into_iter()), "");
        assert_eq!(common_prefix(["only"].into_iter()), "only");
        assert_eq!(common_prefix(std::iter::empty()), "");
    }
}
