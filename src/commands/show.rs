//! `kfguard show` and `kfguard dump`: read one snapshot's manifest, file list and file content.

use std::io::Write;

use super::Context;
use crate::cli::{DumpArgs, ShowArgs};
use crate::output::{emit, human_bytes};
use crate::snapshot::{read, show};
use crate::Outcome;

pub(super) fn run(ctx: &Context, args: &ShowArgs) -> anyhow::Result<Outcome> {
    let (repo, snap, location) = ctx.open_snapshot(&args.snapshot, &[])?;
    let shown = show::show(&repo, &snap, &location.display)?;
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
