//! Restoring buckets from a snapshot: read each bucket's `index.jsonl`, upload every selected
//! object with its content-type and user metadata, and verify it.
//!
//! - Objects up to the multipart threshold (64 MiB; `KFGUARD_MULTIPART_THRESHOLD` in bytes
//!   overrides it, for tests) are read into memory and sent with one PUT. Larger objects stream
//!   from the repository into a multipart upload with parts of at least 8 MiB and of
//!   `size / 9000`, so that they stay under S3's 10,000 parts; memory holds one part.
//! - Verification: the restored object's size (HEAD) always; its content through the ETag when
//!   both the original and the restored object were single-part uploads (their ETag is the
//!   MD5 of the bytes), otherwise by reading it back and comparing SHA-256 digests.
//! - The snapshot's trees below the bucket's folder are read once per restore; then
//!   `--transfers` objects at a time are read, uploaded and verified, within a memory budget.
//! - Which objects exist already comes from one LIST of the target, not a HEAD per object.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use rustic_core::repofile::{Node, SnapshotFile};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;

use crate::config::Config;
use crate::restore::Existing;
use crate::snapshot::layout::{bucket_dir, IndexLine, BUCKET_INDEX as INDEX};
use crate::snapshot::manifest::{BucketEntry, Manifest};
use crate::snapshot::read::{self, IndexedRepo};
use crate::sources::bucket::connect;
use crate::sources::bucket::Bucket;
use crate::Usage;

const DEFAULT_MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;
const MIN_PART: u64 = 8 * 1024 * 1024;

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
    #[error("restored object `{key}` in bucket `{bucket}` does not match the snapshot: {detail}")]
    Mismatch {
        bucket: String,
        key: String,
        detail: String,
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

fn multipart_threshold() -> u64 {
    std::env::var("KFGUARD_MULTIPART_THRESHOLD")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(DEFAULT_MULTIPART_THRESHOLD)
}

/// Part size for an object: at least 8 MiB, and large enough to stay under 10,000 parts.
pub fn part_size(size: u64) -> u64 {
    MIN_PART.max(size.div_ceil(9000))
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

/// Memory that the uploads in flight may hold, so that `--transfers` objects of up to the
/// multipart threshold cannot all sit in memory at once.
const MEMORY_BUDGET: u64 = 160 * 1024 * 1024;
/// The largest blob rustic writes: one is held while an object is read from the repository.
const MAX_BLOB: u64 = 8 * 1024 * 1024;

/// A count of bytes that uploads take before they start and give back when they end.
struct Budget {
    left: Mutex<u64>,
    freed: Condvar,
}

impl Budget {
    /// Waits until `want` bytes (at most the whole budget: a larger object runs alone) are free.
    fn take(&self, want: u64) -> Held<'_> {
        let want = want.min(MEMORY_BUDGET);
        let mut left = self.left.lock().expect("budget lock");
        while *left < want {
            left = self.freed.wait(left).expect("budget lock");
        }
        *left -= want;
        Held {
            budget: self,
            n: want,
        }
    }
}

struct Held<'a> {
    budget: &'a Budget,
    n: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        *self.budget.left.lock().expect("budget lock") += self.n;
        self.budget.freed.notify_all();
    }
}

/// Uploads and verifies the objects on `transfers` threads; after the first failure no new
/// upload starts, and that failure is returned.
fn upload_all(
    rt: &Handle,
    bucket: &Bucket,
    repo: &IndexedRepo,
    files: &HashMap<String, Node>,
    todo: &[&IndexLine],
    transfers: usize,
    threshold: u64,
) -> anyhow::Result<()> {
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let budget = Budget {
        left: Mutex::new(MEMORY_BUDGET),
        freed: Condvar::new(),
    };
    let one = |l: &IndexLine| -> anyhow::Result<()> {
        let node = files.get(&l.path).ok_or_else(|| RestoreError::Mismatch {
            bucket: bucket.bucket.clone(),
            key: l.key.clone(),
            detail: format!(
                "the index names `{}`, which the snapshot does not hold",
                l.path
            ),
        })?;
        if l.size > threshold {
            let _held = budget.take(part_size(l.size) + MAX_BLOB);
            upload_multipart(rt, bucket, repo, node, l)
        } else {
            let _held = budget.take(l.size + MAX_BLOB);
            upload_single(rt, bucket, repo, node, l)
        }
    };
    std::thread::scope(|s| {
        for _ in 0..transfers.clamp(1, todo.len().max(1)) {
            s.spawn(|| loop {
                if failed.lock().expect("failure lock").is_some() {
                    break;
                }
                let Some(l) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                if let Err(e) = one(l) {
                    failed.lock().expect("failure lock").get_or_insert(e);
                    break;
                }
            });
        }
    });
    match failed.into_inner().expect("failure lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
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
            rt.block_on(
                bucket
                    .client
                    .list_objects_v2()
                    .bucket(&bucket.bucket)
                    .max_keys(1)
                    .send(),
            )
            .map_err(|e| bucket.error("list", "", &e))?;
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
        let threshold = multipart_threshold();
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
            upload_all(rt, &bucket, &repo, &files, &todo, sel.transfers, threshold)?;
        }
        reports.push(report);
    }
    Ok(reports)
}

fn metadata(l: &IndexLine) -> Option<std::collections::HashMap<String, String>> {
    (!l.metadata.is_empty()).then(|| l.metadata.clone().into_iter().collect())
}

/// A plain MD5 ETag (a single-part upload's), lower-case, without quotes.
fn md5_etag(etag: &str) -> Option<String> {
    let e = etag.trim_matches('"');
    (e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit())).then(|| e.to_ascii_lowercase())
}

fn upload_single(
    rt: &Handle,
    bucket: &Bucket,
    repo: &IndexedRepo,
    node: &Node,
    l: &IndexLine,
) -> anyhow::Result<()> {
    let mut bytes = Vec::with_capacity(l.size as usize);
    read::node_into(repo, node, "the repository", &mut bytes)?;
    if bytes.len() as u64 != l.size {
        return Err(RestoreError::Mismatch {
            bucket: bucket.bucket.clone(),
            key: l.key.clone(),
            detail: format!(
                "the snapshot holds {} bytes, the index {}",
                bytes.len(),
                l.size
            ),
        }
        .into());
    }
    let digest = Sha256::digest(&bytes);
    let put = rt
        .block_on(
            bucket
                .client
                .put_object()
                .bucket(&bucket.bucket)
                .key(&l.key)
                .set_content_type(l.content_type.clone())
                .set_metadata(metadata(l))
                .body(ByteStream::from(bytes))
                .send(),
        )
        .map_err(|e| bucket.error("put", &l.key, &e))?;
    let by_etag = match (md5_etag(&l.etag), put.e_tag().and_then(md5_etag)) {
        (Some(want), Some(got)) => {
            if want != got {
                return Err(RestoreError::Mismatch {
                    bucket: bucket.bucket.clone(),
                    key: l.key.clone(),
                    detail: format!("ETag {got}, the snapshot's {want}"),
                }
                .into());
            }
            true
        }
        _ => false,
    };
    verify(rt, bucket, l, (!by_etag).then_some(digest.into()))
}

/// Checks the restored object's size and, when given, its SHA-256 by reading it back.
fn verify(
    rt: &Handle,
    bucket: &Bucket,
    l: &IndexLine,
    digest: Option<[u8; 32]>,
) -> anyhow::Result<()> {
    let mismatch = |detail: String| RestoreError::Mismatch {
        bucket: bucket.bucket.clone(),
        key: l.key.clone(),
        detail,
    };
    let head = rt
        .block_on(
            bucket
                .client
                .head_object()
                .bucket(&bucket.bucket)
                .key(&l.key)
                .send(),
        )
        .map_err(|e| bucket.error("head", &l.key, &e))?;
    let size = head.content_length().unwrap_or(-1);
    if size != l.size as i64 {
        return Err(mismatch(format!("size {size}, the snapshot's {}", l.size)).into());
    }
    if let Some(want) = digest {
        let got: [u8; 32] = rt.block_on(async {
            let (_, mut body) = bucket
                .get(&l.key, None)
                .await?
                .ok_or_else(|| anyhow::anyhow!(mismatch("it is gone after the upload".into())))?;
            let mut h = Sha256::new();
            while let Some(chunk) = body.next().await {
                h.update(chunk.map_err(|e| mismatch(format!("reading it back failed: {e}")))?);
            }
            anyhow::Ok(h.finalize().into())
        })?;
        if got != want {
            return Err(mismatch("its SHA-256 differs from the snapshot's bytes".into()).into());
        }
    }
    Ok(())
}

/// Streams the snapshot file into a multipart upload, one part in memory at a time.
struct PartWriter<'a> {
    rt: &'a Handle,
    bucket: &'a Bucket,
    key: &'a str,
    upload_id: String,
    part_size: usize,
    buf: Vec<u8>,
    parts: Vec<CompletedPart>,
    hash: Sha256,
}

impl PartWriter<'_> {
    fn send_part(&mut self) -> io::Result<()> {
        let number = self.parts.len() as i32 + 1;
        let body = std::mem::take(&mut self.buf);
        let out = self
            .rt
            .block_on(
                self.bucket
                    .client
                    .upload_part()
                    .bucket(&self.bucket.bucket)
                    .key(self.key)
                    .upload_id(&self.upload_id)
                    .part_number(number)
                    .body(ByteStream::from(body))
                    .send(),
            )
            .map_err(|e| io::Error::other(self.bucket.error("upload part", self.key, &e)))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
        self.buf = Vec::with_capacity(self.part_size);
        Ok(())
    }
}

impl Write for PartWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.part_size - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.hash.update(&data[..n]);
        if self.buf.len() == self.part_size {
            self.send_part()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn upload_multipart(
    rt: &Handle,
    bucket: &Bucket,
    repo: &IndexedRepo,
    node: &Node,
    l: &IndexLine,
) -> anyhow::Result<()> {
    let created = rt
        .block_on(
            bucket
                .client
                .create_multipart_upload()
                .bucket(&bucket.bucket)
                .key(&l.key)
                .set_content_type(l.content_type.clone())
                .set_metadata(metadata(l))
                .send(),
        )
        .map_err(|e| bucket.error("create multipart upload", &l.key, &e))?;
    let upload_id = created.upload_id().unwrap_or_default().to_string();
    let part_size = part_size(l.size) as usize;
    let mut w = PartWriter {
        rt,
        bucket,
        key: &l.key,
        upload_id: upload_id.clone(),
        part_size,
        buf: Vec::with_capacity(part_size),
        parts: Vec::new(),
        hash: Sha256::new(),
    };
    let result = (|| -> anyhow::Result<[u8; 32]> {
        read::node_into(repo, node, "the repository", &mut w)?;
        if !w.buf.is_empty() || w.parts.is_empty() {
            w.send_part()?;
        }
        let parts = std::mem::take(&mut w.parts);
        rt.block_on(
            bucket
                .client
                .complete_multipart_upload()
                .bucket(&bucket.bucket)
                .key(&l.key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send(),
        )
        .map_err(|e| bucket.error("complete multipart upload", &l.key, &e))?;
        Ok(std::mem::take(&mut w.hash).finalize().into())
    })();
    match result {
        Ok(digest) => verify(rt, bucket, l, Some(digest)),
        Err(e) => {
            let _ = rt.block_on(
                bucket
                    .client
                    .abort_multipart_upload()
                    .bucket(&bucket.bucket)
                    .key(&l.key)
                    .upload_id(&upload_id)
                    .send(),
            );
            Err(e)
        }
    }
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
