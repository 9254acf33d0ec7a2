//! One snapshot in full, as `kfguard show` prints it and runbooks' `snapshot::show` return it:
//! its summary, its manifest, and every file with its size.

use rustic_core::repofile::SnapshotFile;
use rustic_core::LsOptions;
use serde::Serialize;

use super::manifest::Manifest;
use super::read::{self, IndexedRepo};
use super::summary::Summary;
use crate::repo::RepoError;

#[derive(Debug, Serialize)]
pub struct Shown {
    pub snapshot: Summary,
    /// `None` for a snapshot kfguard did not write, or whose manifest cannot be read (logged).
    pub manifest: Option<Manifest>,
    pub files: Vec<ShownFile>,
}

#[derive(Debug, Serialize)]
pub struct ShownFile {
    pub path: String,
    pub bytes: u64,
}

/// Lists the snapshot's files and reads its manifest.
pub fn show(repo: &IndexedRepo, snap: &SnapshotFile, location: &str) -> Result<Shown, RepoError> {
    let root = repo
        .node_from_snapshot_and_path(snap, "")
        .map_err(|e| RepoError::rustic("reading the snapshot tree", location, &e))?;
    let mut files = Vec::new();
    for item in repo
        .ls(&root, &LsOptions::default().recursive(true))
        .map_err(|e| RepoError::rustic("listing the snapshot", location, &e))?
    {
        let (path, node) =
            item.map_err(|e| RepoError::rustic("listing the snapshot", location, &e))?;
        if !node.is_dir() {
            files.push(ShownFile {
                path: path.to_string_lossy().into_owned(),
                bytes: node.meta.size,
            });
        }
    }
    let manifest = match read::manifest(repo, snap, location) {
        Ok(m) => m,
        Err(e) => {
            // With its causes: the JSON error says where the manifest is broken.
            let e = anyhow::Error::from(e);
            tracing::warn!(error = %format!("{e:#}"), "the snapshot's manifest cannot be read");
            None
        }
    };
    // The listing is the truth; rustic's merged summary counts differently.
    let mut snapshot = Summary::of(snap);
    snapshot.files = files.len() as u64;
    snapshot.bytes = files.iter().map(|f| f.bytes).sum();
    Ok(Shown {
        snapshot,
        manifest,
        files,
    })
}
