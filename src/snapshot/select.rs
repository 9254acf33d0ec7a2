//! Finding snapshots: complete ones, `latest` of a cluster and its parts, ids or unique id
//! prefixes, and the parent of each part of a backup.

use std::collections::BTreeMap;

use rustic_core::repofile::SnapshotFile;

use super::read::IndexedRepo;
use super::{shard, Component, INCOMPLETE_TAG, SCOPE_TAG_PREFIX};
use crate::repo::{Repo, RepoError};

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("no snapshot in the repository at {location}; run `kfguard backup` first")]
    Empty { location: String },
    #[error("no snapshot of cluster `{cluster}` in the repository at {location}, which holds snapshots of {others}; name one with --cluster NAME or pick a snapshot by id")]
    OtherClusters {
        cluster: String,
        location: String,
        others: String,
    },
    #[error("no snapshot of cluster `{cluster}` holds {parts}; take one with `kfguard backup --only {only}`, or pick a snapshot by id (see `kfguard snapshots`)")]
    NoPart {
        cluster: String,
        parts: String,
        only: String,
    },
    #[error("no snapshot matches `{id}` in the repository at {location}; list them with `kfguard snapshots`")]
    NotFound { id: String, location: String },
    #[error("`{id}` matches {count} snapshots; give more characters of the id")]
    Ambiguous { id: String, count: usize },
    #[error(
        "snapshot {id} is incomplete (its backup failed or was interrupted); choose another one"
    )]
    Incomplete { id: String },
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// What `latest` means for one command: the newest complete snapshot of `cluster` that holds
/// every one of `parts` (any snapshot of the cluster when `parts` is empty).
#[derive(Debug, Clone)]
pub struct Latest<'a> {
    pub cluster: &'a str,
    /// Scope parts: `buckets`, `databases`, `kubernetes`, `files`.
    pub parts: Vec<&'static str>,
}

impl<'a> Latest<'a> {
    pub fn of(cluster: &'a str, parts: &[Component]) -> Self {
        Self {
            cluster,
            parts: parts.iter().map(|c| c.part()).collect(),
        }
    }
}

/// [`one`], then the repository's full index, to read the chosen snapshot's files.
pub fn open_one(
    repo: Repo,
    location: &str,
    id: &str,
    latest: &Latest<'_>,
) -> Result<(IndexedRepo, SnapshotFile), SelectError> {
    let snap = one(&repo, location, id, latest)?;
    let repo = repo
        .to_indexed()
        .map_err(|e| RepoError::rustic("reading the index", location, &e))?;
    Ok((repo, snap))
}

/// Every snapshot, oldest first.
pub fn all<S: rustic_core::Open>(
    repo: &rustic_core::Repository<S>,
    location: &str,
) -> Result<Vec<SnapshotFile>, RepoError> {
    let mut snaps = repo
        .get_all_snapshots()
        .map_err(|e| RepoError::rustic("listing snapshots", location, &e))?;
    snaps.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    Ok(snaps)
}

pub fn is_complete(s: &SnapshotFile) -> bool {
    !s.tags.contains(INCOMPLETE_TAG)
}

/// Complete snapshots, oldest first.
pub fn complete<S: rustic_core::Open>(
    repo: &rustic_core::Repository<S>,
    location: &str,
) -> Result<Vec<SnapshotFile>, RepoError> {
    Ok(all(repo, location)?
        .into_iter()
        .filter(is_complete)
        .collect())
}

/// Whether the snapshot's scope tag (e.g. `kfguard-scope=buckets+files`) names `part`.
pub fn holds(s: &SnapshotFile, part: &str) -> bool {
    s.tags
        .iter()
        .filter_map(|t| t.strip_prefix(SCOPE_TAG_PREFIX))
        .any(|scope| scope.split('+').any(|p| p == part))
}

/// Resolves `latest`, a full id or a unique prefix to one complete snapshot. An id names a
/// snapshot of any cluster; `latest` only those of `latest.cluster`.
pub fn one<S: rustic_core::Open>(
    repo: &rustic_core::Repository<S>,
    location: &str,
    id: &str,
    latest: &Latest<'_>,
) -> Result<SnapshotFile, SelectError> {
    let snaps = all(repo, location)?;
    if id == "latest" {
        return newest(snaps, location, latest);
    }
    let id_lower = id.to_ascii_lowercase();
    let mut matches: Vec<_> = snaps
        .into_iter()
        .filter(|s| !id_lower.is_empty() && crate::snapshot::full_id(&s.id).starts_with(&id_lower))
        .collect();
    match matches.len() {
        0 => Err(SelectError::NotFound {
            id: id.into(),
            location: location.into(),
        }),
        1 => {
            let s = matches.remove(0);
            if is_complete(&s) {
                Ok(s)
            } else {
                Err(SelectError::Incomplete {
                    id: crate::snapshot::full_id(&s.id),
                })
            }
        }
        count => Err(SelectError::Ambiguous {
            id: id.into(),
            count,
        }),
    }
}

/// `latest` among `snaps` (oldest first), with an error that says why nothing fits.
fn newest(
    snaps: Vec<SnapshotFile>,
    location: &str,
    latest: &Latest<'_>,
) -> Result<SnapshotFile, SelectError> {
    // A shard holds only part of the buckets: `latest` means a full snapshot.
    let complete: Vec<_> = snaps
        .into_iter()
        .filter(|s| is_complete(s) && !shard::is_partial(s))
        .collect();
    if complete.is_empty() {
        return Err(SelectError::Empty {
            location: location.into(),
        });
    }
    let (mine, others): (Vec<_>, Vec<_>) = complete
        .into_iter()
        .partition(|s| s.hostname == latest.cluster);
    if mine.is_empty() {
        let names: std::collections::BTreeSet<_> =
            others.iter().map(|s| format!("`{}`", s.hostname)).collect();
        return Err(SelectError::OtherClusters {
            cluster: latest.cluster.into(),
            location: location.into(),
            others: names.into_iter().collect::<Vec<_>>().join(", "),
        });
    }
    mine.into_iter()
        .rfind(|s| latest.parts.iter().all(|p| holds(s, p)))
        .ok_or_else(|| SelectError::NoPart {
            cluster: latest.cluster.into(),
            parts: latest.parts.join(" and "),
            only: latest.parts.join(","),
        })
}

/// The parent of each part of a backup: the newest complete snapshot of the cluster that holds
/// that part, whatever else it holds. The archiver gets them all, and the bucket backup reads
/// the index of the `buckets` one, so both decide from the same snapshot.
#[derive(Debug, Clone, Default)]
pub struct Parents {
    by_part: BTreeMap<String, SnapshotFile>,
}

impl Parents {
    pub fn choose<S: rustic_core::Open>(
        repo: &rustic_core::Repository<S>,
        location: &str,
        cluster: &str,
        parts: &[&str],
    ) -> Result<Self, RepoError> {
        let mine: Vec<_> = complete(repo, location)?
            .into_iter()
            .filter(|s| s.hostname == cluster && !shard::is_partial(s))
            .collect();
        let by_part = parts
            .iter()
            .filter_map(|part| {
                let p = mine.iter().rfind(|s| holds(s, part))?;
                Some(((*part).to_string(), p.clone()))
            })
            .collect();
        Ok(Self { by_part })
    }

    /// The parents of a shard's backup: last night's snapshot of the same shard (same I/N), so
    /// that its keys are all known; else the newest full snapshot holding buckets (the first
    /// sharded night, or after N changed).
    pub fn for_shard<S: rustic_core::Open>(
        repo: &rustic_core::Repository<S>,
        location: &str,
        cluster: &str,
        shard: shard::Shard,
    ) -> Result<Self, RepoError> {
        let mine: Vec<_> = complete(repo, location)?
            .into_iter()
            .filter(|s| s.hostname == cluster)
            .collect();
        let parent = mine
            .iter()
            .rfind(|s| shard::shard_of(s) == Some(shard))
            .or_else(|| {
                mine.iter()
                    .rfind(|s| !shard::is_partial(s) && holds(s, "buckets"))
            });
        Ok(Self {
            by_part: parent
                .map(|p| ("buckets".to_string(), p.clone()))
                .into_iter()
                .collect(),
        })
    }

    /// The parent of one part, if any earlier snapshot holds it.
    pub fn of(&self, part: &str) -> Option<&SnapshotFile> {
        self.by_part.get(part)
    }

    /// Each parent once, newest first.
    pub fn distinct(&self) -> Vec<&SnapshotFile> {
        let mut v: Vec<&SnapshotFile> = self.by_part.values().collect();
        v.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
        v.dedup_by(|a, b| a.id == b.id);
        v
    }
}
