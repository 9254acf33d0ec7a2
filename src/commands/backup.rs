//! `kfguard backup`: gather every configured source into one snapshot.

use rustic_core::jiff::Timestamp;

use super::Context;
use crate::backup::{buckets, crosscheck, databases, kubernetes};
use crate::cli::{BackupArgs, Component};
use crate::interrupt;
use crate::output::{emit, human_bytes};
use crate::snapshot::manifest::{FileEntry, Manifest};
use crate::snapshot::select;
use crate::snapshot::tree::VirtualFile;
use crate::snapshot::writer::{self, Request};
use crate::sources;
use crate::Outcome;

/// What an interrupted backup leaves: nothing that looks like a snapshot.
fn not_saved() -> String {
    "backup stopped; no snapshot was saved (one is kept only whole; `forget --prune` frees the data read so far)".into()
}

pub fn run(ctx: &Context, args: &BackupArgs) -> anyhow::Result<Outcome> {
    let started = Timestamp::now();
    let cfg = &ctx.config;
    let wanted = |c: Component| args.only.is_empty() || args.only.contains(&c);
    let mut warnings = Vec::new();
    let mut files: Vec<VirtualFile> = Vec::new();
    for dir in &args.from_dir {
        files.extend(sources::dir::files(dir, &mut warnings)?);
    }
    for spec in &args.from_command {
        files.push(sources::command::file(spec, started)?);
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
    if args.only.contains(&Component::Databases) && cfg.databases.is_empty() {
        return Err(super::UsageError(
            "--only databases, but no [[databases]] source is configured".into(),
        )
        .into());
    }

    if args.only.contains(&Component::Buckets) && cfg.buckets.is_empty() {
        return Err(super::UsageError(
            "--only buckets, but no [[buckets]] source is configured".into(),
        )
        .into());
    }

    // Kubernetes objects are captured first, into memory, while the repository key is derived:
    // they are small, and an unreachable API server fails the backup before any dump starts.
    // `--only kubernetes` asks for them even when the config leaves them off.
    let kube_task = (args.only.contains(&Component::Kubernetes)
        || (cfg.kubernetes.enabled && wanted(Component::Kubernetes)))
    .then(|| {
        ctx.rt
            .spawn(kubernetes::capture(cfg.kubernetes.clone(), started))
    });
    let (mut repo, location) = ctx.open()?;
    interrupt::check(not_saved)?;
    // What the snapshot will cover, known before any source is read, so that each part's
    // parent is chosen once, for both the HEADs and the archiver.
    let with_buckets = wanted(Component::Buckets) && !cfg.buckets.is_empty();
    let with_databases = wanted(Component::Databases) && !cfg.databases.is_empty();
    let mut parts = Vec::new();
    if with_buckets {
        parts.push("buckets");
    }
    if with_databases {
        parts.push("databases");
    }
    if kube_task.is_some() {
        parts.push("kubernetes");
    }
    if !args.from_dir.is_empty() || !args.from_command.is_empty() {
        parts.push("files");
    }
    let scope = if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join("+")
    };
    let parents = select::Parents::choose(&repo, &location.display, &cfg.cluster, &parts)?;
    let kube = match kube_task {
        Some(task) => {
            let k = ctx.rt.block_on(task)??;
            tracing::info!(
                "kubernetes: {} objects of {} kinds in {} namespaces",
                k.files.len(),
                k.counts.len(),
                k.namespaces.len()
            );
            Some(k)
        }
        None => None,
    };
    // Buckets are listed first: a missing bucket or bad credentials fail before any dump starts.
    let mut bkts = if with_buckets {
        let parent;
        (repo, parent) =
            buckets::parent_index(repo, &location.display, parents.of("buckets"), &cfg.buckets)?;
        Some(buckets::start(
            ctx.rt.handle(),
            &cfg.buckets,
            &parent,
            usize::from(args.transfers),
            started,
        )?)
    } else {
        None
    };
    interrupt::check(not_saved)?;
    // Databases are dumped at their consistent point now; their data streams into the archive.
    let mut dbs = if with_databases {
        Some(databases::start(
            ctx.rt.handle(),
            &cfg.databases,
            usize::from(args.jobs),
            started,
        )?)
    } else {
        None
    };
    // With both databases and buckets, the cross-check reads the dump and the bucket indexes
    // as they are archived, and reports in the manifest.
    let check = (dbs.is_some() && bkts.is_some()).then(|| crosscheck::Collector::new(&cfg.buckets));
    let mut streams = Vec::new();
    if let Some(d) = &mut dbs {
        match &check {
            Some(c) => {
                files.extend(d.files.drain(..).map(|f| c.tap_file(f)));
                streams.extend(d.streams.drain(..).map(|(dir, s)| (dir, c.tap_stream(s))));
            }
            None => {
                files.append(&mut d.files);
                streams.append(&mut d.streams);
            }
        }
        warnings.append(&mut d.warnings);
    }
    if let Some(b) = &mut bkts {
        match &check {
            Some(c) => files.extend(b.files.drain(..).map(|f| c.tap_file(f))),
            None => files.append(&mut b.files),
        }
        warnings.append(&mut b.warnings);
    }
    let mut kube_counts = Default::default();
    let mut kube_skipped = Default::default();
    let mut versions = Default::default();
    if let Some(k) = kube {
        files.extend(k.files);
        kube_counts = k.counts;
        kube_skipped = k.skipped;
        versions = k.versions;
    }
    if files.is_empty() && streams.is_empty() {
        warnings.push("no source produced any file: the snapshot holds only its manifest".into());
    }

    let mut manifest = Manifest::new(&cfg.cluster, started.to_string());
    manifest.warnings = warnings.clone();
    manifest.kubernetes = kube_counts;
    manifest.kubernetes_skipped = kube_skipped;
    manifest.versions = versions;
    let written = writer::write(
        repo,
        &location.display,
        Request {
            cluster: cfg.cluster.clone(),
            scope,
            parents,
            tags: args.tags.clone(),
            files,
            streams,
            manifest,
            finalize: Box::new(move |ledger, m| {
                // Files reused from the parent were not read and keep their known size.
                m.files = paths
                    .into_iter()
                    .map(|(path, size)| FileEntry {
                        bytes: ledger.bytes_of(&path).or(size).unwrap_or(0),
                        path,
                    })
                    .collect();
                if let Some(d) = &dbs {
                    m.databases = d.manifest_entries();
                }
                if let Some(b) = &bkts {
                    let (entries, vanished) = b.manifest_entries(ledger);
                    m.buckets = entries;
                    m.warnings.extend(vanished);
                }
                if let Some(c) = &check {
                    let report = c.report(&m.buckets);
                    m.warnings.extend(report.warning());
                    m.crosscheck = Some(report);
                }
            }),
            dry_run: args.dry_run,
        },
    )
    .map_err(|e| match interrupt::requested() {
        // The failure the stop caused (every unread source) says nothing new.
        Some(signal) => {
            tracing::debug!(error = %e, "archive stopped");
            anyhow::Error::new(interrupt::Interrupted {
                signal,
                summary: not_saved(),
            })
        }
        None => e.into(),
    })?;
    // Objects that vanished while being read are only known once the archive is done.
    let warnings = written.manifest.warnings.clone();
    for w in &warnings {
        tracing::warn!("{w}");
    }
    emit(ctx.global.output, &written, |w| {
        let mut s = match &w.id {
            Some(id) => format!("snapshot {} saved", &id[..8.min(id.len())]),
            None => "dry run: no snapshot saved".to_string(),
        };
        s.push_str(&format!(
            "\n  files: {}, processed: {}, added: {} ({} stored)",
            w.files,
            human_bytes(w.bytes_processed),
            human_bytes(w.bytes_added),
            human_bytes(w.bytes_added_packed)
        ));
        for db in &w.manifest.databases {
            let rows: u64 = db.tables.iter().map(|t| t.rows).sum();
            s.push_str(&format!(
                "\n  database {}/{}: {} tables, {rows} rows",
                db.source,
                db.database,
                db.tables.len()
            ));
        }
        for b in &w.manifest.buckets {
            s.push_str(&format!(
                "\n  bucket {}/{}: {} objects, {}, {} downloaded",
                b.source,
                b.bucket,
                b.objects,
                human_bytes(b.bytes),
                b.fetched
            ));
        }
        if !w.manifest.kubernetes.is_empty() {
            let total: u64 = w.manifest.kubernetes.values().sum();
            s.push_str(&format!(
                "\n  kubernetes: {total} objects of {} kinds",
                w.manifest.kubernetes.len()
            ));
            for (why, n) in &w.manifest.kubernetes_skipped {
                s.push_str(&format!("\n  kubernetes: skipped {n} {why}"));
            }
        }
        if let Some(c) = &w.manifest.crosscheck {
            s.push('\n');
            s.push_str(c.text("  ").trim_end());
        }
        if !w.parents.is_empty() {
            let short: Vec<&str> = w.parents.iter().map(|p| &p[..8.min(p.len())]).collect();
            let label = if short.len() == 1 {
                "parent"
            } else {
                "parents"
            };
            s.push_str(&format!("\n  {label}: {}", short.join(", ")));
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
