//! Writes one snapshot: archive the virtual tree, then publish it only if every stream finished.
//!
//! Two traps of rustic_core's archiver shape this code:
//! - It reuses a parent's content for an entry whose type, size and mtime match. Streams carry
//!   an mtime of the backup's start, so they never match (see `tree::stream_meta`).
//! - It skips entries whose reads fail and saves the snapshot anyway. The snapshot is therefore
//!   saved tagged `kfguard-incomplete`; it is re-saved without the tag only when the ledger holds
//!   no failure, and deleted otherwise.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustic_core::jiff::Timestamp;
use rustic_core::repofile::{SnapshotFile, SnapshotId, StringList};
use rustic_core::{BackupOptions, ParentOptions, SnapshotOptions};

use super::manifest::{Manifest, MANIFEST_PATH};
use super::tree::{Ledger, VirtualFile, VirtualTree};
use super::{select, INCOMPLETE_TAG, KFGUARD_TAG};
use crate::repo::{Repo, RepoError};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("backup failed: {} source(s) did not finish, so no snapshot was kept: {}", .0.len(), .0.join("; "))]
    SourceFailed(Vec<String>),
    #[error("invalid tag `{0}`: tags may not contain commas")]
    BadTag(String),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Fills in the manifest once every other file has been read; sees the stream ledger.
pub type Finalize = Box<dyn FnOnce(&Ledger, &mut Manifest) + Send>;

pub struct Request {
    pub cluster: String,
    pub tags: Vec<String>,
    pub files: Vec<VirtualFile>,
    pub manifest: Manifest,
    pub finalize: Finalize,
    pub dry_run: bool,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    /// None on a dry run.
    pub id: Option<String>,
    pub parent: Option<String>,
    pub files: u64,
    pub bytes_processed: u64,
    pub bytes_added: u64,
    pub bytes_added_packed: u64,
    pub manifest: Manifest,
}

pub fn write(repo: Repo, location: &str, req: Request) -> Result<Written, WriteError> {
    let rustic_err = |op: &'static str| move |e: Box<rustic_core::RusticError>| RepoError::rustic(op, location, &e);
    for tag in &req.tags {
        if tag.contains(',') || tag.is_empty() {
            return Err(WriteError::BadTag(tag.clone()));
        }
    }

    let ledger = Ledger::default();
    let manifest = Arc::new(Mutex::new(req.manifest));
    let mut files = req.files;
    files.push(manifest_file(manifest.clone(), ledger.clone(), req.finalize));
    let tree = VirtualTree::new(files, ledger.clone());

    // Choose the parent ourselves: the newest complete kfguard snapshot of this cluster.
    let parent = select::complete(&repo, location)?
        .into_iter()
        .filter(|s| s.hostname == req.cluster)
        .max_by(|a, b| a.time.cmp(&b.time));
    let parent_opts = match &parent {
        Some(p) => ParentOptions::default().parents(vec![p.id.to_string()]),
        None => ParentOptions::default().force(true),
    };
    let opts = BackupOptions::default()
        .parent_opts(parent_opts)
        .dry_run(req.dry_run)
        .no_scan(false);

    let mut tags = format!("{KFGUARD_TAG},{INCOMPLETE_TAG}");
    for t in &req.tags {
        tags.push(',');
        tags.push_str(t);
    }
    let snap = SnapshotOptions::default()
        .host(req.cluster.clone())
        .add_tags(&tags)
        .and_then(|o| o.to_snapshot())
        .map_err(rustic_err("preparing the snapshot"))?;

    let repo = repo.to_indexed_ids().map_err(rustic_err("reading the index"))?;
    let result = repo.archive(&opts, &tree, snap, &[PathBuf::from("/")]);
    let failures = ledger.failures();
    let snap = match result {
        Ok(snap) => snap,
        Err(e) if !failures.is_empty() => {
            tracing::debug!(error = %e.display_log(), "archive failed after a source failure");
            return Err(WriteError::SourceFailed(failures));
        }
        Err(e) => return Err(rustic_err("backup")(e).into()),
    };
    if !failures.is_empty() {
        if !req.dry_run {
            if let Err(e) = repo.delete_snapshots(&[snap.id]) {
                tracing::warn!(snapshot = %snap.id, error = %e.display_log(), "could not delete the incomplete snapshot; it stays tagged kfguard-incomplete and `forget` removes it");
            }
        }
        return Err(WriteError::SourceFailed(failures));
    }

    let summary = snap.summary.clone().unwrap_or_default();
    let manifest = manifest.lock().expect("manifest lock").clone();
    let id = if req.dry_run {
        None
    } else {
        Some(publish(&repo, snap, location)?)
    };
    Ok(Written {
        id: id.map(|i| i.to_string()),
        parent: parent.map(|p| p.id.to_string()),
        files: summary.total_files_processed,
        bytes_processed: summary.total_bytes_processed,
        bytes_added: summary.data_added,
        bytes_added_packed: summary.data_added_packed,
        manifest,
    })
}

/// Re-saves a verified snapshot without the incomplete tag and removes the tagged one.
fn publish<S: rustic_core::IndexedIds>(
    repo: &rustic_core::Repository<S>,
    snap: SnapshotFile,
    location: &str,
) -> Result<SnapshotId, RepoError> {
    let old_id = snap.id;
    let mut done = snap;
    done.remove_tags(&[StringList::from_iter_str(INCOMPLETE_TAG)]);
    repo.save_snapshots(vec![done.clone()])
        .map_err(|e| RepoError::rustic("saving the snapshot", location, &e))?;
    repo.delete_snapshots(&[old_id])
        .map_err(|e| RepoError::rustic("removing the incomplete snapshot", location, &e))?;
    let saved = repo
        .get_all_snapshots()
        .map_err(|e| RepoError::rustic("listing snapshots", location, &e))?
        .into_iter()
        .find(|s| s.tree == done.tree && s.time == done.time && !s.tags.contains(INCOMPLETE_TAG))
        .ok_or_else(|| RepoError::Rustic {
            op: "saving the snapshot",
            location: location.into(),
            detail: "the saved snapshot could not be found again".into(),
        })?;
    Ok(saved.id)
}

fn manifest_file(manifest: Arc<Mutex<Manifest>>, ledger: Ledger, finalize: Finalize) -> VirtualFile {
    VirtualFile {
        path: MANIFEST_PATH.into(),
        meta: super::tree::stream_meta(Timestamp::now(), 0),
        expected_size: None,
        last: true,
        open: Box::new(move || {
            let mut m = manifest.lock().expect("manifest lock");
            finalize(&ledger, &mut m);
            m.finished_at = Timestamp::now().to_string();
            let bytes = serde_json::to_vec_pretty(&*m).map_err(std::io::Error::other)?;
            Ok(Box::new(std::io::Cursor::new(bytes)))
        }),
    }
}

trait FromIterStr {
    fn from_iter_str(s: &str) -> Self;
}
impl FromIterStr for StringList {
    fn from_iter_str(s: &str) -> Self {
        s.parse().unwrap_or_default()
    }
}
