//! The backup itself: every source the plan asks for, read into one snapshot, Kubernetes
//! objects first, then buckets, then databases, with the cross-check between the last two.

use rustic_core::jiff::Timestamp;

use super::{buckets, crosscheck, databases, kubernetes, merge, Plan, Report};
use crate::interrupt;
use crate::repo;
use crate::snapshot::manifest::{FileEntry, Manifest};
use crate::snapshot::select;
use crate::snapshot::shard;
use crate::snapshot::tree::VirtualFile;
use crate::snapshot::writer::{self, Request};
use crate::snapshot::Component;
use crate::sources;
use crate::Usage;

/// What an interrupted backup leaves: nothing that looks like a snapshot.
fn not_saved() -> String {
    "backup stopped; no snapshot was saved (one is kept only whole; `forget --prune` frees the data read so far)".into()
}

/// Backs up what the plan asks for into one snapshot, or on a dry run, reads it all and writes none.
pub fn run(plan: Plan) -> anyhow::Result<Report> {
    let started = Timestamp::now();
    let cfg = plan.config;
    let wanted = |c: Component| plan.wants(c);
    let mut warnings = Vec::new();
    let mut files: Vec<VirtualFile> = Vec::new();
    for dir in &plan.from_dir {
        files.extend(
            sources::dir::files(dir, &mut warnings)
                .map_err(|e| Usage::mark_if(e, sources::SourceError::is_usage))?,
        );
    }
    for spec in &plan.from_command {
        files.push(
            sources::command::file(spec, started)
                .map_err(|e| Usage::mark_if(e, sources::SourceError::is_usage))?,
        );
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
    if plan.only.contains(&Component::Databases) && cfg.databases.is_empty() {
        return Err(
            Usage::msg("--only databases, but no [[databases]] source is configured").into(),
        );
    }

    if let Some(sh) = &plan.shard {
        if plan.only != [Component::Buckets] {
            return Err(Usage::msg(
                "--shard backs up one part of the buckets only: add --only buckets (the merge job backs up the databases and Kubernetes)",
            )
            .into());
        }
        shard::check_run(&sh.run).map_err(Usage::msg)?;
    }
    if let Some(r) = plan.merge.as_ref().and_then(|m| m.run.as_deref()) {
        shard::check_run(r).map_err(Usage::msg)?;
    }
    let mut merge_plan = plan.merge.clone();
    if let Some(m) = &mut merge_plan {
        // Wait for the shards before anything is read, so that the databases and Kubernetes
        // objects are captured as the shards finish, not when the merge job started.
        if m.wait.is_some() {
            let (repo, location) = repo::open(&cfg.repository, plan.rt, plan.quiet)
                .map_err(|e| Usage::mark_if(e, repo::RepoError::is_usage))?;
            let (run, _) = merge::find(&repo, &location.display, &cfg.cluster, m)
                .map_err(|e| Usage::mark_if(e, merge::MergeError::is_usage))?;
            m.run = Some(run);
            m.wait = None;
        }
    }
    let started = if merge_plan.is_some() {
        Timestamp::now()
    } else {
        started
    };

    if plan.only.contains(&Component::Buckets) && cfg.buckets.is_empty() && merge_plan.is_none() {
        return Err(Usage::msg("--only buckets, but no [[buckets]] source is configured").into());
    }

    // Kubernetes objects are captured first, into memory, while the repository key is derived:
    // they are small, and an unreachable API server fails the backup before any dump starts.
    // `--only kubernetes` asks for them even when the config leaves them off.
    let kube_task = (plan.only.contains(&Component::Kubernetes)
        || (cfg.kubernetes.enabled && wanted(Component::Kubernetes)))
    .then(|| {
        plan.rt
            .spawn(kubernetes::capture(cfg.kubernetes.clone(), started))
    });
    let (mut repo, location) = repo::open(&cfg.repository, plan.rt, plan.quiet)
        .map_err(|e| Usage::mark_if(e, repo::RepoError::is_usage))?;
    interrupt::check(not_saved)?;
    // What the snapshot will cover, known before any source is read, so that each part's
    // parent is chosen once, for both the HEADs and the archiver.
    // A merge takes the buckets from the shards, whatever `--only` says.
    let with_buckets =
        merge_plan.is_some() || (wanted(Component::Buckets) && !cfg.buckets.is_empty());
    let with_databases = wanted(Component::Databases) && !cfg.databases.is_empty();
    let mut parts = Vec::new();
    if with_buckets {
        parts.push(Component::Buckets.part());
    }
    if with_databases {
        parts.push(Component::Databases.part());
    }
    if kube_task.is_some() {
        parts.push(Component::Kubernetes.part());
    }
    if !plan.from_dir.is_empty() || !plan.from_command.is_empty() {
        parts.push("files");
    }
    let scope = if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join("+")
    };
    let parents = match (&plan.shard, &merge_plan) {
        (Some(sh), _) => {
            select::Parents::for_shard(&repo, &location.display, &cfg.cluster, sh.shard)?
        }
        // The merge's own pass holds no bucket object: only its other parts need parents.
        (None, Some(_)) => {
            let own: Vec<&str> = parts.iter().copied().filter(|p| *p != "buckets").collect();
            select::Parents::choose(&repo, &location.display, &cfg.cluster, &own)?
        }
        (None, None) => select::Parents::choose(&repo, &location.display, &cfg.cluster, &parts)?,
    };
    let mut merged = None;
    if let Some(m) = &merge_plan {
        let (run, set) = merge::find(&repo, &location.display, &cfg.cluster, m)
            .map_err(|e| Usage::mark_if(e, merge::MergeError::is_usage))?;
        let joined;
        (repo, joined) = merge::join(repo, &location.display, run, set)?;
        tracing::info!(
            "merging {} shards of run `{}`",
            joined.record.count,
            joined.record.run
        );
        merged = Some(joined);
    }
    let kube = match kube_task {
        Some(task) => {
            let k = plan
                .rt
                .block_on(task)?
                .map_err(|e| Usage::mark_if(e, crate::kube::KubeError::is_usage))?;
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
    let mut bkts = if with_buckets && merged.is_none() {
        let parent;
        (repo, parent) =
            buckets::parent_index(repo, &location.display, parents.of("buckets"), &cfg.buckets)?;
        Some(buckets::start(
            plan.rt,
            &cfg.buckets,
            &parent,
            plan.transfers,
            started,
            plan.shard.as_ref().map(|s| s.shard),
        )?)
    } else {
        None
    };
    interrupt::check(not_saved)?;
    // Databases are dumped at their consistent point now; their data streams into the archive.
    let mut dbs = if with_databases {
        Some(databases::start(
            plan.rt,
            &cfg.databases,
            plan.jobs,
            started,
        )?)
    } else {
        None
    };
    // With both databases and buckets, the cross-check reads the dump and the bucket indexes
    // as they are archived, and reports in the manifest.
    let check = (dbs.is_some() && (bkts.is_some() || merged.is_some()))
        .then(|| crosscheck::Collector::new(&cfg.buckets));
    let mut streams = Vec::new();
    if let Some(d) = &mut dbs {
        if let Some(c) = &check {
            files.extend(d.files.drain(..).map(|f| c.tap_file(f)));
            streams.extend(d.streams.drain(..).map(|(dir, s)| (dir, c.tap_stream(s))));
        } else {
            files.append(&mut d.files);
            streams.append(&mut d.streams);
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
    let mut merge_with = Vec::new();
    let mut merged_part = None;
    if let Some(m) = merged {
        match &check {
            Some(c) => files.extend(m.files.into_iter().map(|f| c.tap_file(f))),
            None => files.extend(m.files),
        }
        warnings.extend(m.warnings);
        merge_with = m.shards;
        merged_part = Some((m.entries, m.record));
    }
    let mut system_tags = Vec::new();
    if let Some(sh) = &plan.shard {
        system_tags.push(sh.shard.tag());
        system_tags.push(shard::run_tag(&sh.run));
    }
    if let Some((_, r)) = &merged_part {
        system_tags.push(shard::run_tag(&r.run));
        system_tags.push(format!("kfguard-shards={}", r.count));
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
    manifest.shard = plan.shard.as_ref().map(|s| shard::ShardRecord {
        index: s.shard.index,
        count: s.shard.count,
        run: s.run.clone(),
    });
    let written = writer::write(
        repo,
        &location.display,
        Request {
            cluster: cfg.cluster.clone(),
            scope,
            parents,
            tags: plan.tags,
            system_tags,
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
                if let Some((entries, record)) = merged_part {
                    m.buckets = entries;
                    m.merged_shards = Some(record);
                }
                if let Some(c) = &check {
                    let report = c.report(&m.buckets);
                    m.warnings.extend(report.warning());
                    m.crosscheck = Some(report);
                }
            }),
            dry_run: plan.dry_run,
            merge_with,
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
        None => Usage::mark_if(e, writer::WriteError::is_usage),
    })?;
    // Objects that vanished while being read are only known once the archive is done.
    for w in &written.manifest.warnings {
        tracing::warn!("{w}");
    }
    Ok(Report { written })
}
