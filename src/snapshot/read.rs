//! Reading files back out of a snapshot.

use std::collections::HashMap;

use rustic_core::repofile::{Node, SnapshotFile};
use rustic_core::{IndexedFullStatus, LsOptions, Repository};

use super::manifest::{Manifest, MANIFEST_PATH};
use crate::repo::RepoError;

/// A repository with its full index loaded, so that file contents can be read.
pub type IndexedRepo = Repository<IndexedFullStatus>;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(
        "`{path}` is not in snapshot {snapshot}; list its files with `kfguard show {snapshot}`"
    )]
    NoSuchPath { path: String, snapshot: String },
    #[error("`{path}` in snapshot {snapshot} is a folder, not a file")]
    IsDir { path: String, snapshot: String },
    #[error("`{path}` in snapshot {snapshot} is a file, not a folder")]
    NotDir { path: String, snapshot: String },
    #[error("snapshot {snapshot} has a kfguard.json that cannot be read")]
    BadManifest {
        snapshot: String,
        source: serde_json::Error,
    },
    #[error("`{path}` in snapshot {snapshot} cannot be read: {detail}")]
    BadFile {
        path: String,
        snapshot: String,
        detail: String,
    },
    #[error("interrupted by {0}")]
    Interrupted(crate::interrupt::Signal),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Writes one file of the snapshot to `out`.
pub fn read_into(
    repo: &IndexedRepo,
    snap: &SnapshotFile,
    path: &str,
    location: &str,
    out: &mut impl std::io::Write,
) -> Result<(), ReadError> {
    let path = path.trim_start_matches('/');
    let snapshot = super::full_id(&snap.id);
    let node = repo
        .node_from_snapshot_and_path(snap, path)
        .map_err(|_| ReadError::NoSuchPath {
            path: path.into(),
            snapshot: snapshot.clone(),
        })?;
    if node.is_dir() {
        return Err(ReadError::IsDir {
            path: path.into(),
            snapshot,
        });
    }
    node_into(repo, &node, location, out)
}

/// Every file below the folder `dir` of the snapshot, by its path relative to `dir`, from one
/// walk of the folder's trees: looking each file up from the root would read every tree on its
/// path again, per file.
pub fn files_under(
    repo: &IndexedRepo,
    snap: &SnapshotFile,
    dir: &str,
    location: &str,
) -> Result<HashMap<String, Node>, ReadError> {
    let dir = dir.trim_start_matches('/').trim_end_matches('/');
    let snapshot = super::full_id(&snap.id);
    let top = repo
        .node_from_snapshot_and_path(snap, dir)
        .map_err(|_| ReadError::NoSuchPath {
            path: dir.into(),
            snapshot: snapshot.clone(),
        })?;
    if !top.is_dir() {
        return Err(ReadError::NotDir {
            path: dir.into(),
            snapshot,
        });
    }
    let failed =
        |e: Box<rustic_core::RusticError>| RepoError::rustic("reading a tree", location, &e);
    let mut out = HashMap::new();
    for item in repo.ls(&top, &LsOptions::default()).map_err(failed)? {
        let (path, node) = item.map_err(failed)?;
        if !node.is_dir() {
            out.insert(path.to_string_lossy().into_owned(), node);
        }
    }
    Ok(out)
}

/// Writes the content of a file node (e.g. one from [`files_under`]) to `out`.
pub fn node_into(
    repo: &IndexedRepo,
    node: &Node,
    location: &str,
    out: &mut impl std::io::Write,
) -> Result<(), ReadError> {
    // Restores read file by file: a stop request ends them between two files.
    if let Some(sig) = crate::interrupt::requested() {
        return Err(ReadError::Interrupted(sig));
    }
    repo.dump(node, out)
        .map_err(|e| RepoError::rustic("reading a file", location, &e))?;
    Ok(())
}

/// One file of the snapshot, in memory.
pub fn read(
    repo: &IndexedRepo,
    snap: &SnapshotFile,
    path: &str,
    location: &str,
) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    read_into(repo, snap, path, location, &mut buf)?;
    Ok(buf)
}

/// The snapshot's manifest; `None` for a snapshot not written by kfguard.
pub fn manifest(
    repo: &IndexedRepo,
    snap: &SnapshotFile,
    location: &str,
) -> Result<Option<Manifest>, ReadError> {
    match read(repo, snap, MANIFEST_PATH, location) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| ReadError::BadManifest {
                    snapshot: super::full_id(&snap.id),
                    source,
                })
        }
        Err(ReadError::NoSuchPath { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
