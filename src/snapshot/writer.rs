//! Writes one snapshot: archive the virtual tree, then publish it only if every stream finished.
//!
//! Two traps of rustic_core's archiver shape this code:
//! - It reuses a parent's content for an entry whose type, size and mtime match. Streams carry
//!   an mtime of the backup's start, so they never match (see `tree::stream_meta`).
//! - It skips entries whose reads fail and saves the snapshot anyway. The data is therefore
//!   archived into a snapshot tagged `kfguard-incomplete`. Only when the ledger holds no failure
//!   is the manifest archived and merged with it into the published, untagged snapshot; the
//!   intermediate snapshots are then deleted.

use std::path::PathBuf;

use rustic_core::jiff::Timestamp;
use rustic_core::repofile::SnapshotId;
use rustic_core::{BackupOptions, ParentOptions, SnapshotOptions};

use super::manifest::{Manifest, MANIFEST_PATH};
use super::tree::{FileStream, Ledger, VirtualFile, VirtualTree};
use super::{select, INCOMPLETE_TAG, KFGUARD_TAG};
use crate::repo::{Repo, RepoError};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("backup failed: {} source(s) did not finish, so no snapshot was kept: {}", .0.len(), first_few(.0))]
    SourceFailed(Vec<String>),
    #[error("invalid tag `{0}`: tags may not contain commas")]
    BadTag(String),
    #[error("invalid tag `{0}`: tags starting with `kfguard` are reserved for kfguard's own")]
    ReservedTag(String),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl WriteError {
    /// A tag the user gave that cannot be written, rather than a failing backup.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::BadTag(_) | Self::ReservedTag(_))
    }
}

/// The first failures, in the order seen: after a dead endpoint, hundreds of objects fail
/// for the same reason, and one line must stay readable.
fn first_few(failures: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut s = failures
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    if failures.len() > SHOWN {
        s.push_str(&format!("; and {} more", failures.len() - SHOWN));
    }
    s
}

/// Fills in the manifest once every other file has been read; sees the stream ledger.
pub type Finalize = Box<dyn FnOnce(&Ledger, &mut Manifest) + Send>;

pub struct Request {
    pub cluster: String,
    /// What the snapshot covers, e.g. `buckets+databases`: retention groups are chosen among
    /// snapshots of the same scope.
    pub scope: String,
    /// The parent of each part (see [`select::Parents`]), chosen before any source is read.
    pub parents: select::Parents,
    pub tags: Vec<String>,
    /// kfguard's own tags beyond kind, scope and completeness (a shard and its run).
    pub system_tags: Vec<String>,
    pub files: Vec<VirtualFile>,
    /// Files produced while the backup runs, each stream below its own folder.
    pub streams: Vec<(String, FileStream)>,
    pub manifest: Manifest,
    pub finalize: Finalize,
    pub dry_run: bool,
    /// Saved snapshots whose trees join the published one (the shards of a merge): their
    /// subtrees and blobs are referenced, not read. Where a path is in both, the newer file
    /// (by mtime) wins, so the files of this backup must be newer than these snapshots.
    pub merge_with: Vec<rustic_core::repofile::SnapshotFile>,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    /// None on a dry run.
    pub id: Option<String>,
    /// The newest of `parents`.
    pub parent: Option<String>,
    /// One per part at most: the newest earlier snapshot holding that part.
    pub parents: Vec<String>,
    pub files: u64,
    pub bytes_processed: u64,
    pub bytes_added: u64,
    pub bytes_added_packed: u64,
    pub manifest: Manifest,
}

pub fn write(repo: Repo, location: &str, req: Request) -> Result<Written, WriteError> {
    let rustic_err = |op: &'static str| {
        move |e: Box<rustic_core::RusticError>| RepoError::rustic(op, location, &e)
    };
    for tag in &req.tags {
        if tag.contains(',') || tag.is_empty() {
            return Err(WriteError::BadTag(tag.clone()));
        }
        if super::is_reserved_tag(tag) {
            return Err(WriteError::ReservedTag(tag.clone()));
        }
    }

    let scope_tag = super::scope_tag(&req.scope);
    let parents: Vec<String> = req
        .parents
        .distinct()
        .into_iter()
        .map(|p| super::full_id(&p.id))
        .collect();
    let mut tags = format!("{KFGUARD_TAG},{INCOMPLETE_TAG},{scope_tag}");
    for t in req.system_tags.iter().chain(&req.tags) {
        tags.push(',');
        tags.push_str(t);
    }
    let template = SnapshotOptions::default()
        .host(req.cluster.clone())
        .add_tags(&tags)
        .and_then(|o| o.to_snapshot())
        .map_err(rustic_err("preparing the snapshot"))?;
    let repo = repo
        .to_indexed_ids()
        .map_err(rustic_err("reading the index"))?;

    // Pass 1: the data. The archiver saves it as a snapshot tagged incomplete.
    let ledger = Ledger::default();
    let parent_opts = if parents.is_empty() {
        ParentOptions::default().force(true)
    } else {
        ParentOptions::default().parents(parents.clone())
    };
    let opts = BackupOptions::default()
        .parent_opts(parent_opts)
        .dry_run(req.dry_run);
    let tree = VirtualTree::with_streams(req.files, req.streams, ledger.clone());
    let result = repo.archive(&opts, &tree, template.clone(), &[PathBuf::from("/")]);
    let failures = ledger.failures();
    let data = match result {
        Ok(snap) => snap,
        Err(e) if !failures.is_empty() => {
            tracing::debug!(error = %e.display_log(), "archive failed after a source failure");
            return Err(WriteError::SourceFailed(failures));
        }
        Err(e) => return Err(rustic_err("backup")(e).into()),
    };
    if !failures.is_empty() {
        if !req.dry_run {
            discard(&repo, &[data.id]);
        }
        return Err(WriteError::SourceFailed(failures));
    }

    // The manifest needs what the data pass learned, so it is archived second and merged in.
    let mut manifest = req.manifest;
    (req.finalize)(&ledger, &mut manifest);
    manifest.finished_at = Timestamp::now().to_string();
    let summary = data.summary.clone().unwrap_or_default();
    let mut written = Written {
        id: None,
        parent: parents.first().cloned(),
        parents,
        files: summary.total_files_processed + 1,
        bytes_processed: summary.total_bytes_processed,
        bytes_added: summary.data_added,
        bytes_added_packed: summary.data_added_packed,
        manifest,
    };
    if req.dry_run {
        return Ok(written);
    }
    let manifest_bytes = serde_json::to_vec_pretty(&written.manifest).expect("manifest serialises");
    let manifest_tree = VirtualTree::new(
        vec![VirtualFile::bytes(
            MANIFEST_PATH,
            super::tree::stream_meta(Timestamp::now()),
            manifest_bytes,
        )],
        ledger.clone(),
    );
    let opts = BackupOptions::default().parent_opts(ParentOptions::default().force(true));
    let meta = match repo.archive(
        &opts,
        &manifest_tree,
        template.clone(),
        &[PathBuf::from("/")],
    ) {
        Ok(snap) => snap,
        Err(e) => {
            discard(&repo, &[data.id]);
            return Err(rustic_err("saving the manifest")(e).into());
        }
    };

    // The in-memory index predates both passes; the merge must see their trees.
    let repo = repo
        .drop_index()
        .to_indexed_ids()
        .map_err(rustic_err("reading the index"))?;

    // Only now, with every stream finished, is a snapshot without the incomplete tag saved.
    let mut done = template;
    done.remove_tags(&[INCOMPLETE_TAG.parse().expect("tag list")]);
    done.parent = data.parent;
    done.parents = data.parents.clone();
    // The merge counts every file and folder of the merged tree into the summary it is given;
    // starting from the data pass's counts would count them twice.
    done.summary = data.summary.clone().map(|mut s| {
        s.files_new = 0;
        s.files_changed = 0;
        s.files_unmodified = 0;
        s.total_files_processed = 0;
        s.total_bytes_processed = 0;
        s.dirs_new = 0;
        s.dirs_changed = 0;
        s.dirs_unmodified = 0;
        s.total_dirs_processed = 0;
        s.total_dirsize_processed = 0;
        s
    });
    // Nodes of one name conflict only in a merge of shards (their `kfguard.json` and
    // `index.jsonl` against this backup's): the newest wins.
    let newest = |a: &rustic_core::repofile::Node, b: &rustic_core::repofile::Node| {
        a.meta.mtime.cmp(&b.meta.mtime)
    };
    let mut sources = vec![data.clone(), meta.clone()];
    sources.extend(req.merge_with.iter().cloned());
    let merged = repo.merge_snapshots(&sources, &newest, done);
    discard(&repo, &[data.id, meta.id]);
    let merged = merged.map_err(rustic_err("saving the snapshot"))?;
    if !req.merge_with.is_empty() {
        if let Some(s) = &merged.summary {
            written.files = s.total_files_processed;
        }
    }
    written.id = Some(super::full_id(&merged.id));
    Ok(written)
}

/// Removes intermediate snapshots; one left behind stays tagged incomplete, hidden, and is
/// removed by `forget`.
fn discard<S: rustic_core::Open>(repo: &rustic_core::Repository<S>, ids: &[SnapshotId]) {
    if let Err(e) = repo.delete_snapshots(ids) {
        tracing::warn!(error = %e.display_log(), "could not delete an intermediate snapshot; `forget` will remove it");
    }
}
