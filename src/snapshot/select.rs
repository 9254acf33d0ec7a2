//! Finding snapshots: complete ones, `latest`, and ids or unique id prefixes.

use rustic_core::repofile::SnapshotFile;

use super::INCOMPLETE_TAG;
use crate::repo::RepoError;

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("no snapshot in the repository at {location}; run `kfguard backup` first")]
    Empty { location: String },
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

/// Resolves `latest`, a full id or a unique prefix to one complete snapshot.
pub fn one<S: rustic_core::Open>(
    repo: &rustic_core::Repository<S>,
    location: &str,
    id: &str,
) -> Result<SnapshotFile, SelectError> {
    let snaps = all(repo, location)?;
    if id == "latest" {
        return snaps
            .into_iter()
            .rfind(is_complete)
            .ok_or_else(|| SelectError::Empty {
                location: location.into(),
            });
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
