//! `kfguard show` and `kfguard dump`: read one snapshot's manifest, file list and file content.

use std::io::Write;

use rustic_core::LsOptions;
use serde::Serialize;

use super::snapshots::SnapshotSummary;
use super::Context;
use crate::cli::{DumpArgs, ShowArgs};
use crate::output::{emit, human_bytes};
use crate::repo::RepoError;
use crate::snapshot::manifest::Manifest;
use crate::snapshot::read;
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

pub(super) fn run(ctx: &Context, args: &ShowArgs) -> anyhow::Result<Outcome> {
    let (repo, snap, location) = ctx.open_snapshot(&args.snapshot, &[])?;
    let loc = location.display.as_str();
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
    let manifest = match read::manifest(&repo, &snap, loc) {
        Ok(m) => m,
        Err(e) => {
            // With its causes: the JSON error says where the manifest is broken.
            let e = anyhow::Error::from(e);
            tracing::warn!(error = %format!("{e:#}"), "the snapshot's manifest cannot be read");
            None
        }
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
                for b in &m.buckets {
                    out.push_str(&format!(
                        "  bucket:   {}/{}: {} objects, {}\n",
                        b.source,
                        b.bucket,
                        b.objects,
                        human_bytes(b.bytes)
                    ));
                }
                if !m.versions.is_empty() {
                    let v: Vec<String> =
                        m.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    out.push_str(&format!("  versions: {}\n", v.join(", ")));
                }
                if !m.kubernetes.is_empty() {
                    let total: u64 = m.kubernetes.values().sum();
                    out.push_str(&format!(
                        "  kubernetes: {total} objects of {} kinds\n",
                        m.kubernetes.len()
                    ));
                    for (kind, n) in &m.kubernetes {
                        out.push_str(&format!("    {n:>6}  {kind}\n"));
                    }
                    for (why, n) in &m.kubernetes_skipped {
                        out.push_str(&format!("    skipped {n} {why}\n"));
                    }
                }
                if let Some(c) = &m.crosscheck {
                    out.push_str(&c.text("  "));
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

pub(super) fn dump(ctx: &Context, args: &DumpArgs) -> anyhow::Result<Outcome> {
    let (repo, snap, location) = ctx.open_snapshot(&args.snapshot, &[])?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    read::read_into(&repo, &snap, &args.path, &location.display, &mut out)?;
    out.flush()?;
    Ok(Outcome::Ok)
}
