//! Bucket sources in a backup: list every configured bucket, then turn each object into a
//! snapshot file under `buckets/<source>/<bucket>/objects/<escaped key>` that is downloaded only
//! when the archiver needs its content, plus `buckets/<source>/<bucket>/index.jsonl`.
//!
//! **Incremental.** Each object's node carries size = object size, mtime = last-modified and
//! ctime = a value derived from the ETag ([`etag_time`]). The archiver reuses the parent
//! snapshot's content when all three match, and then never opens the file: the object is not
//! downloaded. A rewrite of the same size within the same second changes the ETag, so it is
//! still read.
//!
//! Content-type and user metadata come from a HEAD per object (`--transfers` at a time), sent
//! only for objects that are new or changed since the parent snapshot's `index.jsonl`. Those
//! objects are then downloaded through [`crate::buckets::Fetcher`]: `--transfers` GETs at a time over
//! every source, small ones ahead of the archiver, large ones as ranged GETs.
//!
//! An object deleted between LIST and GET is recorded as vanished (see
//! [`crate::snapshot::tree::Vanished`]): it is absent from the snapshot, listed in the manifest,
//! and the backup completes with a warning.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use rustic_core::jiff::Timestamp;
use rustic_core::repofile::{Metadata, SnapshotFile};

use crate::config::BucketSource;

use crate::buckets::{
    connect, escape_key, etag_time, unescape, Downloads, Fetcher, Head, Limits, Listed, Stats,
    LEAF_SUFFIX,
};
use crate::repo::{Repo, RepoError};
use crate::snapshot::layout::{bucket_dir, IndexLine, BUCKET_INDEX as INDEX};
use crate::snapshot::manifest::BucketEntry;
use crate::snapshot::read;
use crate::snapshot::shard::Shard;
use crate::snapshot::tree::{stream_meta, Ledger, VirtualFile};

/// The objects of all bucket sources, ready to archive.
pub struct BucketFiles {
    pub files: Vec<VirtualFile>,
    pub warnings: Vec<String>,
    entries: Vec<Tracked>,
}

/// A bucket's manifest entry while the archiver runs.
struct Tracked {
    entry: BucketEntry,
    /// Objects read, i.e. not reused from the parent snapshot, and ranged GETs.
    stats: Arc<Stats>,
    /// Snapshot path -> object size, to account for objects that vanish.
    sizes: BTreeMap<String, u64>,
}

/// Each bucket's `index.jsonl` from the previous snapshot, by key, keyed by bucket folder.
pub type ParentIndex = BTreeMap<String, HashMap<String, IndexLine>>;

/// Reads the bucket indexes of the buckets part's parent (see [`crate::snapshot::select::Parents`]), the same
/// snapshot the archiver reuses object content from, so that unchanged objects need no HEAD. A
/// parent without a bucket's index only means that its objects are all HEADed. Hands the
/// repository back.
pub fn parent_index(
    repo: Repo,
    location: &str,
    parent: Option<&SnapshotFile>,
    sources: &[BucketSource],
) -> Result<(Repo, ParentIndex), RepoError> {
    let mut out = ParentIndex::new();
    let Some(parent) = parent else {
        return Ok((repo, out));
    };
    let repo = repo
        .to_indexed()
        .map_err(|e| RepoError::rustic("reading the index", location, &e))?;
    for src in sources {
        let dir = bucket_dir(&src.name, &src.bucket);
        let Ok(raw) = read::read(&repo, parent, &format!("{dir}/{INDEX}"), location) else {
            continue;
        };
        let lines = raw
            .split(|&b| b == b'\n')
            .filter_map(|l| serde_json::from_slice::<IndexLine>(l).ok())
            .map(|l| (l.key.clone(), l))
            .collect();
        out.insert(dir, lines);
    }
    Ok((repo.drop_index(), out))
}

/// Lists every bucket source and prepares its files. Fails on the first bucket that cannot be
/// listed (missing, denied, unreachable), before anything is written.
pub fn start(
    rt: &tokio::runtime::Handle,
    sources: &[BucketSource],
    parent: &ParentIndex,
    transfers: usize,
    started: Timestamp,
    shard: Option<Shard>,
) -> anyhow::Result<BucketFiles> {
    let mut out = BucketFiles {
        files: Vec::new(),
        warnings: Vec::new(),
        entries: Vec::new(),
    };
    // One set of GET permits and one prefetch budget for the whole backup.
    let downloads = Downloads::new(rt.clone(), Limits::new(transfers));
    for src in sources {
        let bucket = Arc::new(connect(rt, src, &src.bucket)?);
        let listed = rt.block_on(bucket.list(&src.prefixes))?;
        let dir = bucket_dir(&src.name, &src.bucket);
        tracing::info!(source = %src.name, bucket = %src.bucket, objects = listed.len(), "bucket listed");
        // Folders come from the whole listing, so that a shard names each object by the same
        // path as a single backup, and the shards' trees merge without a file/folder clash.
        let folders = folders_of(listed.iter().map(|o| escape_key(&o.key)));
        let listed: Vec<Listed> = match shard {
            Some(sh) => listed.into_iter().filter(|o| sh.contains(&o.key)).collect(),
            None => listed,
        };

        // HEAD for content-type and user metadata, unless the parent's index has the object
        // with the same size, ETag and last-modified time.
        let known = parent.get(&dir);
        let heads_sent = Arc::new(AtomicU64::new(0));
        let heads: Vec<(Listed, bool, Option<Result<Head, _>>)> = rt.block_on(
            futures::stream::iter(listed.into_iter().map(|o| {
                let bucket = bucket.clone();
                let heads_sent = heads_sent.clone();
                let reuse = known.and_then(|k| k.get(&o.key)).and_then(|p| {
                    (p.size == o.size
                        && p.etag == o.etag
                        && p.last_modified == o.last_modified.to_string())
                    .then(|| Head {
                        content_type: p.content_type.clone(),
                        metadata: p.metadata.clone(),
                    })
                });
                async move {
                    if let Some(h) = reuse {
                        return (o, false, Some(Ok(h)));
                    }
                    heads_sent.fetch_add(1, Ordering::Relaxed);
                    let head = bucket.head(&o.key).await;
                    (o, true, head)
                }
            }))
            .buffered(transfers.max(1))
            .collect::<Vec<_>>(),
        );
        let mut objects = Vec::new();
        let mut vanished = Vec::new();
        for (o, changed, h) in heads {
            match h {
                Some(Ok(h)) => objects.push((o, changed, h)),
                Some(Err(e)) => return Err(e.into()),
                None => vanished.push(o.key),
            }
        }

        // Paths: escaped keys; an object whose path is also needed as a folder gets a suffix.
        let paths: Vec<String> = objects.iter().map(|(o, _, _)| escape_key(&o.key)).collect();
        let count = objects.len() as u64;
        let fetcher = Fetcher::new(downloads.clone(), bucket.clone());

        let mut sizes = BTreeMap::new();
        let mut index = Vec::new();
        let mut bytes = 0u64;
        for ((o, changed, h), mut path) in objects.into_iter().zip(paths) {
            if folders.contains(&path) {
                path.push_str(LEAF_SUFFIX);
            }
            let line = IndexLine {
                key: o.key.clone(),
                path: path.clone(),
                size: o.size,
                etag: o.etag.clone(),
                last_modified: o.last_modified.to_string(),
                content_type: h.content_type,
                metadata: h.metadata,
            };
            serde_json::to_writer(&mut index, &line).expect("index line serialises");
            index.push(b'\n');
            bytes += o.size;
            let full = format!("{dir}/objects/{path}");
            sizes.insert(full.clone(), o.size);
            out.files.push(VirtualFile {
                path: full.clone(),
                meta: Metadata {
                    mode: Some(0o644),
                    mtime: Some(o.last_modified),
                    ctime: Some(etag_time(&o.etag)),
                    size: o.size,
                    ..Metadata::default()
                },
                size: Some(o.size),
                open: fetcher.opener(o, full, changed),
            });
        }
        out.files.push(VirtualFile::bytes(
            format!("{dir}/{INDEX}"),
            stream_meta(started),
            index,
        ));
        for key in &vanished {
            out.warnings.push(format!(
                "{dir}: object `{key}` vanished before it could be read"
            ));
        }
        out.entries.push(Tracked {
            entry: BucketEntry {
                source: src.name.clone(),
                bucket: src.bucket.clone(),
                objects: count,
                bytes,
                prefixes: src.prefixes.clone(),
                fetched: 0,
                heads: heads_sent.load(Ordering::Relaxed),
                ranged_gets: 0,
                vanished,
            },
            stats: fetcher.stats.clone(),
            sizes,
        });
    }
    Ok(out)
}

/// Every folder the snapshot paths need.
fn folders_of(paths: impl Iterator<Item = String>) -> BTreeSet<String> {
    let mut folders = BTreeSet::new();
    for p in paths {
        let mut rest = p.as_str();
        while let Some((parent, _)) = rest.rsplit_once('/') {
            if !folders.insert(parent.to_string()) {
                break;
            }
            rest = parent;
        }
    }
    folders
}

impl BucketFiles {
    /// Manifest entries, once the archiver has read (or reused) every object.
    pub fn manifest_entries(&self, ledger: &Ledger) -> (Vec<BucketEntry>, Vec<String>) {
        let vanished = ledger.vanished_entries();
        let mut warnings = Vec::new();
        let entries = self
            .entries
            .iter()
            .map(|t| {
                let mut e = t.entry.clone();
                e.fetched = t.stats.fetched.load(Ordering::Relaxed);
                e.ranged_gets = t.stats.ranged_gets.load(Ordering::Relaxed);
                let prefix = format!("{}/objects/", bucket_dir(&e.source, &e.bucket));
                for p in &vanished {
                    if let Some(rest) = p.strip_prefix(&prefix) {
                        e.bytes = e.bytes.saturating_sub(t.sizes.get(p).copied().unwrap_or(0));
                        let key = unescape(rest).unwrap_or_else(|| rest.to_string());
                        warnings.push(format!(
                            "{}: object `{key}` vanished before it could be read",
                            bucket_dir(&e.source, &e.bucket)
                        ));
                        e.objects = e.objects.saturating_sub(1);
                        e.vanished.push(key);
                    }
                }
                e
            })
            .collect();
        (entries, warnings)
    }
}
