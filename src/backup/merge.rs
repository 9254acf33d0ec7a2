//! Joining the shards of one run (`backup --merge-shards`): find the run's complete set of
//! shard snapshots, waiting for it if asked, and turn their manifests and bucket indexes into
//! the bucket part of the merged snapshot. No object is read here: the writer joins the
//! shards' trees into the merged one by reference (see `snapshot::writer`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rustic_core::jiff::{Timestamp, ToSpan};
use rustic_core::repofile::SnapshotFile;

use crate::interrupt;
use crate::repo::{Repo, RepoError};
use crate::snapshot::layout::{bucket_dir, IndexLine, BUCKET_INDEX};
use crate::snapshot::manifest::BucketEntry;
use crate::snapshot::shard::{self, MergedRecord, ShardSetError};
use crate::snapshot::tree::{stream_meta, VirtualFile};
use crate::snapshot::{full_id, read, select};

/// How often a waiting merge looks for the missing shards.
const POLL: Duration = Duration::from_secs(10);

/// Which run to merge, and how long to wait for its shards.
#[derive(Debug, Clone, Default)]
pub struct MergePlan {
    /// The run id; none: the newest run of the cluster that has shards and no merged snapshot.
    pub run: Option<String>,
    /// Wait up to this long for the run's shards to be complete; none: refuse at once.
    pub wait: Option<Duration>,
}

/// The bucket part of a merged snapshot.
pub struct Merged {
    pub record: MergedRecord,
    /// The shard snapshots, by shard index, whose trees join the merged one.
    pub shards: Vec<SnapshotFile>,
    /// One merged `index.jsonl` per bucket, newer than every shard's.
    pub files: Vec<VirtualFile>,
    pub entries: Vec<BucketEntry>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Set(#[from] ShardSetError),
    #[error("shard snapshot {id} has no kfguard manifest; it was not written by `kfguard backup --shard`")]
    NoManifest { id: String },
    #[error("shards of run `{run}` hold different buckets ({first} in shard {a}, {second} in shard {b}); they ran with different configs; rerun the shards")]
    DifferentBuckets {
        run: String,
        a: String,
        first: String,
        b: String,
        second: String,
    },
    #[error(transparent)]
    Read(#[from] read::ReadError),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl MergeError {
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Set(e) if e.is_usage())
    }
}

/// The run's complete set of shards, by shard index. With `wait`, an incomplete set (or none
/// yet) is looked for again every few seconds until the deadline; a mixed set fails at once.
pub fn find(
    repo: &Repo,
    location: &str,
    cluster: &str,
    plan: &MergePlan,
) -> Result<(String, Vec<SnapshotFile>), MergeError> {
    let deadline = plan.wait.map(|w| Instant::now() + w);
    loop {
        let snaps: Vec<_> = select::complete(repo, location)?
            .into_iter()
            .filter(|s| s.hostname == cluster)
            .collect();
        let found = shard::pick_run(&snaps, cluster, plan.run.as_deref())
            .and_then(|run| shard::set_of(&snaps, cluster, &run).map(|set| (run, set)));
        match found {
            Ok(found) => return Ok(found),
            Err(e) if e.is_usage() => return Err(e.into()),
            Err(e) => match deadline {
                Some(d) if Instant::now() + POLL < d => {
                    tracing::info!("waiting for shards: {e}");
                    let until = Instant::now() + POLL;
                    while Instant::now() < until {
                        if interrupt::requested().is_some() {
                            return Err(e.into());
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
                _ => return Err(e.into()),
            },
        }
    }
}

/// Reads the shards' manifests and bucket indexes, and joins them. Hands the repository back.
pub fn join(
    repo: Repo,
    location: &str,
    run: String,
    shards: Vec<SnapshotFile>,
) -> Result<(Repo, Merged), MergeError> {
    let repo = repo
        .to_indexed()
        .map_err(|e| RepoError::rustic("reading the index", location, &e))?;
    // In the shards' (the config's) order.
    let mut entries: Vec<BucketEntry> = Vec::new();
    let mut lines: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut first: Option<(String, Vec<String>)> = None;
    for snap in &shards {
        let id = full_id(&snap.id);
        let label = shard::shard_of(snap).map_or_else(|| id.clone(), |s| s.to_string());
        let m = read::manifest(&repo, snap, location)?
            .ok_or_else(|| MergeError::NoManifest { id: id.clone() })?;
        let names: Vec<String> = m
            .buckets
            .iter()
            .map(|b| format!("{}/{}", b.source, b.bucket))
            .collect();
        match &first {
            None => first = Some((label.clone(), names.clone())),
            Some((a, f)) if *f != names => {
                return Err(MergeError::DifferentBuckets {
                    run,
                    a: a.clone(),
                    first: f.join(","),
                    b: label,
                    second: names.join(","),
                })
            }
            Some(_) => {}
        }
        warnings.extend(m.warnings.iter().map(|w| format!("shard {label}: {w}")));
        for b in m.buckets {
            let dir = bucket_dir(&b.source, &b.bucket);
            let raw = read::read(&repo, snap, &format!("{dir}/{BUCKET_INDEX}"), location)?;
            let mine = lines.entry(dir).or_default();
            for l in raw.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                let key = serde_json::from_slice::<IndexLine>(l).map_or_else(
                    |_| String::from_utf8_lossy(l).into_owned(),
                    |parsed| parsed.key,
                );
                mine.push((key, l.to_vec()));
            }
            let at = entries
                .iter()
                .position(|e| e.source == b.source && e.bucket == b.bucket)
                .unwrap_or_else(|| {
                    entries.push(BucketEntry {
                        source: b.source.clone(),
                        bucket: b.bucket.clone(),
                        prefixes: b.prefixes.clone(),
                        ..BucketEntry::default()
                    });
                    entries.len() - 1
                });
            let e = &mut entries[at];
            e.objects += b.objects;
            e.bytes += b.bytes;
            e.fetched += b.fetched;
            e.heads += b.heads;
            e.ranged_gets += b.ranged_gets;
            e.vanished.extend(b.vanished);
        }
    }
    // The merged files must win over the shards' files of the same path (newest wins).
    let newest_shard = shards.iter().map(|s| s.time.timestamp()).max();
    let mtime = newest_shard
        .map(|t| t + 1.second())
        .filter(|t| *t > Timestamp::now())
        .unwrap_or_else(Timestamp::now);
    let files = lines
        .into_iter()
        .map(|(dir, mut ls)| {
            // Keys in byte order: the order of an S3 listing of the whole bucket.
            ls.sort_by(|a, b| a.0.cmp(&b.0));
            let mut bytes = Vec::new();
            for (_, l) in ls {
                bytes.extend_from_slice(&l);
                bytes.push(b'\n');
            }
            VirtualFile::bytes(format!("{dir}/{BUCKET_INDEX}"), stream_meta(mtime), bytes)
        })
        .collect();
    let count = shards
        .first()
        .and_then(shard::shard_of)
        .map_or(0, |s| s.count);
    let record = MergedRecord {
        run,
        count,
        snapshots: shards.iter().map(|s| full_id(&s.id)).collect(),
    };
    Ok((
        repo.drop_index(),
        Merged {
            record,
            shards,
            files,
            entries,
            warnings,
        },
    ))
}
