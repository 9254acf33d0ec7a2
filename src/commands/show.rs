//! `kfguard show` and `kfguard dump`: read one snapshot's manifest, file list and file content.

use std::io::Write;

use rustic_core::LsOptions;
use serde::Serialize;

use super::snapshots::SnapshotSummary;
use super::Context;
use crate::cli::{DumpArgs, ShowArgs};
use crate::output::{emit, human_bytes};
use crate::repo::RepoError;
use crate::snapshot::manifest::{Manifest, MANIFEST_PATH};
use crate::snapshot::select;
use crate::Outcome;

#[derive(Serialize)]
struct Shown {
    snapshot: SnapshotSummary,
    manifest: Option<Manifest>,
    files: Vec<ShownFile>,
}

#[derive(Serialize)]
struct ShownFile {
    path: String,
    bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    #[error(
        "`{path}` is not in snapshot {snapshot}; list its files with `kfguard show {snapshot}`"
    )]
    NoSuchPath { path: String, snapshot: String },
    #[error("`{path}` in snapshot {snapshot} is a folder, not a file")]
    IsDir { path: String, snapshot: String },
}

pub fn run(ctx: &Context, args: &ShowArgs) -> anyhow::Result<Outcome> {
    let (repo, location) = ctx.open()?;
    let loc = location.display.as_str();
    let snap = select::one(&repo, loc, &args.snapshot)?;
    let repo = repo
        .to_indexed()
        .map_err(|e| RepoError::rustic("reading the index", loc, &e))?;
    let root = repo
        .node_from_snapshot_and_path(&snap, "")
        .map_err(|e| RepoError::rustic("reading the snapshot tree", loc, &e))?;
    let mut files = Vec::new();
    for item in repo
        .ls(&root, &LsOptions::default().recursive(true))
        .map_err(|e| RepoError::rustic("listing the snapshot", loc, &e))?
    {
        let (path, node) = item.map_err(|e| RepoError::rustic("listing the snapshot", loc, &e))?;
        if !node.is_dir() {
            files.push(ShownFile {
                path: path.to_string_lossy().into_owned(),
                bytes: node.meta.size,
            });
        }
    }
    let manifest = match repo.node_from_snapshot_and_path(&snap, MANIFEST_PATH) {
        Ok(node) => {
            let mut buf = Vec::new();
            repo.dump(&node, &mut buf)
                .map_err(|e| RepoError::rustic("reading the manifest", loc, &e))?;
            match serde_json::from_slice(&buf) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(error = %e, "the snapshot's kfguard.json cannot be parsed");
                    None
                }
            }
        }
        Err(_) => None,
    };
    // The listing is the truth; rustic's merged summary counts differently.
    let mut summary = SnapshotSummary::of(&snap);
    summary.files = files.len() as u64;
    summary.bytes = files.iter().map(|f| f.bytes).sum();
    let shown = Shown {
        snapshot: summary,
        manifest,
        files,
    };
    emit(ctx.global.output, &shown, |s| {
        let mut out = format!(
            "snapshot {}\n  time:     {}\n  cluster:  {}\n  size:     {} in {} files\n",
            s.snapshot.id,
            s.snapshot.time,
            s.snapshot.cluster,
            human_bytes(s.snapshot.bytes),
            s.snapshot.files
        );
        if !s.snapshot.tags.is_empty() {
            out.push_str(&format!("  tags:     {}\n", s.snapshot.tags.join(", ")));
        }
        match &s.manifest {
            Some(m) => {
                out.push_str(&format!(
                    "  kfguard:  {} (format {})\n  taken:    {} .. {}\n",
                    m.kfguard_version, m.format_version, m.started_at, m.finished_at
                ));
                for db in &m.databases {
                    let rows: u64 = db.tables.iter().map(|t| t.rows).sum();
                    out.push_str(&format!(
                        "  database: {}/{} ({} {}): {} tables, {rows} rows\n",
                        db.source,
                        db.database,
                        db.engine,
                        db.server_version,
                        db.tables.len()
                    ));
                }
                for w in &m.warnings {
                    out.push_str(&format!("  warning:  {w}\n"));
                }
            }
            None => out.push_str("  manifest: none (not written by kfguard)\n"),
        }
        out.push_str("files:\n");
        for f in &s.files {
            out.push_str(&format!("  {:>10}  /{}\n", human_bytes(f.bytes), f.path));
        }
        out
    });
    Ok(Outcome::Ok)
}

pub fn dump(ctx: &Context, args: &DumpArgs) -> anyhow::Result<Outcome> {
    let (repo, location) = ctx.open()?;
    let loc = location.display.as_str();
    let snap = select::one(&repo, loc, &args.snapshot)?;
    let repo = repo
        .to_indexed()
        .map_err(|e| RepoError::rustic("reading the index", loc, &e))?;
    let path = args.path.trim_start_matches('/');
    let node =
        repo.node_from_snapshot_and_path(&snap, path)
            .map_err(|_| ShowError::NoSuchPath {
                path: args.path.clone(),
                snapshot: crate::snapshot::full_id(&snap.id),
            })?;
    if node.is_dir() {
        return Err(ShowError::IsDir {
            path: args.path.clone(),
            snapshot: crate::snapshot::full_id(&snap.id),
        }
        .into());
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    repo.dump(&node, &mut out)
        .map_err(|e| RepoError::rustic("reading the file", loc, &e))?;
    out.flush()?;
    Ok(Outcome::Ok)
}
