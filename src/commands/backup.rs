//! `kfguard backup`: gather every configured source into one snapshot.

use rustic_core::jiff::Timestamp;

use super::Context;
use crate::cli::BackupArgs;
use crate::output::{emit, human_bytes};
use crate::snapshot::manifest::{FileEntry, Manifest};
use crate::snapshot::tree::VirtualFile;
use crate::snapshot::writer::{self, Request};
use crate::sources;
use crate::Outcome;

pub fn run(ctx: &Context, args: &BackupArgs) -> anyhow::Result<Outcome> {
    let started = Timestamp::now();
    let mut warnings = Vec::new();
    let mut files: Vec<VirtualFile> = Vec::new();
    for dir in &args.from_dir {
        files.extend(sources::dir::files(dir, &mut warnings)?);
    }
    for spec in &args.from_command {
        files.push(sources::command::file(spec, started)?);
    }
    let cfg = &ctx.config;
    for (what, n) in [
        ("databases", cfg.databases.len()),
        ("buckets", cfg.buckets.len()),
        ("kubernetes", usize::from(cfg.kubernetes.enabled)),
    ] {
        if n > 0 {
            warnings.push(format!(
                "{what} are configured but this kfguard version cannot back them up yet; they are not in this snapshot"
            ));
        }
    }
    if files.is_empty() {
        warnings.push("no source produced any file: the snapshot holds only its manifest".into());
    }
    let mut paths = std::collections::BTreeMap::new();
    for f in &files {
        if paths.insert(f.path.clone(), f.size).is_some() {
            anyhow::bail!(
                "two sources write the same snapshot path `{}`; give them different paths",
                f.path
            );
        }
    }

    let mut manifest = Manifest::new(&cfg.cluster, started.to_string());
    manifest.warnings = warnings.clone();
    let (repo, location) = ctx.open()?;
    let written = writer::write(
        repo,
        &location.display,
        Request {
            cluster: cfg.cluster.clone(),
            tags: args.tags.clone(),
            files,
            manifest,
            finalize: Box::new(move |ledger, m| {
                // The ledger knows the size of every stream that was read; files reused from
                // the parent snapshot were not read and keep their recorded size.
                m.files = paths
                    .into_iter()
                    .map(|(path, size)| FileEntry {
                        bytes: ledger.bytes_of(&path).or(size).unwrap_or(0),
                        path,
                    })
                    .collect();
            }),
            dry_run: args.dry_run,
        },
    )?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    emit(ctx.global.output, &written, |w| {
        let mut s = match &w.id {
            Some(id) => format!("snapshot {id} saved"),
            None => "dry run: no snapshot saved".to_string(),
        };
        s.push_str(&format!(
            "\n  files: {}, processed: {}, added: {} ({} stored)",
            w.files,
            human_bytes(w.bytes_processed),
            human_bytes(w.bytes_added),
            human_bytes(w.bytes_added_packed)
        ));
        if let Some(p) = &w.parent {
            s.push_str(&format!("\n  parent: {p}"));
        }
        for warning in &w.manifest.warnings {
            s.push_str(&format!("\n  warning: {warning}"));
        }
        s
    });
    Ok(if warnings.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Warnings(warnings)
    })
}
