//! The restore itself: the snapshot's parts in dependency order, databases, buckets, then
//! Kubernetes objects, each step stopping cleanly on a stop request.

use std::sync::Arc;

use super::databases::{self, Selection};
use super::stop::Progress;
use super::{buckets, kubernetes, Existing, Plan, Report};
use crate::repo;
use crate::snapshot::manifest::DatabaseEntry;
use crate::snapshot::{full_id, read, select, Component};
use crate::Usage;

/// Restores what the plan selects from one snapshot, or on a dry run, plans it.
pub fn run(plan: Plan) -> anyhow::Result<Report> {
    // Selecting a database or a bucket narrows the restore to that kind, so that
    // `--database kfp/mlpipeline --into x` never touches a live bucket.
    let mut only = plan.only.clone();
    if only.is_empty() {
        if !plan.databases.is_empty() {
            only.push(Component::Databases);
        }
        if !plan.buckets.is_empty() || plan.prefix.is_some() {
            only.push(Component::Buckets);
        }
    }
    let wanted = |c: Component| only.is_empty() || only.contains(&c);
    // `latest` is the newest snapshot of the cluster that holds every part asked for; with
    // only Kubernetes selectors, that means the objects.
    let mut parts = only.clone();
    if parts.is_empty() && (!plan.namespace_map.is_empty() || !plan.include_kinds.is_empty()) {
        parts.push(Component::Kubernetes);
    }
    let (repo, location) = repo::open(&plan.config.repository, plan.rt, plan.quiet)
        .map_err(|e| Usage::mark_if(e, repo::RepoError::is_usage))?;
    let latest = select::Latest::of(&plan.config.cluster, &parts);
    let (repo, snap) = select::open_one(repo, &location.display, &plan.snapshot, &latest)?;
    let repo = Arc::new(repo);
    let manifest = read::manifest(&repo, &snap, &location.display)?.ok_or_else(|| {
        Usage::msg(format!(
            "snapshot {} has no kfguard.json: it was not written by kfguard",
            full_id(&snap.id)
        ))
    })?;
    kinds_in_snapshot(&plan.include_kinds, &manifest.kubernetes)?;

    let mut progress = Progress::default();
    for (part, present, label) in [
        (
            Component::Databases,
            !manifest.databases.is_empty(),
            "databases",
        ),
        (Component::Buckets, !manifest.buckets.is_empty(), "buckets"),
        (
            Component::Kubernetes,
            !manifest.kubernetes.is_empty(),
            "Kubernetes objects",
        ),
    ] {
        if wanted(part) && present {
            progress.pending.push(label.to_string());
        }
    }
    progress.checkpoint()?;

    let mut warnings = Vec::new();
    let mut result = Report {
        snapshot: full_id(&snap.id),
        dry_run: plan.dry_run,
        databases: Vec::new(),
        buckets: Vec::new(),
        kubernetes: None,
        warnings: Vec::new(),
    };
    // A mistaken --namespace-map is refused before any part is restored.
    let mut kube_objects = None;
    if !plan.namespace_map.is_empty() && wanted(Component::Kubernetes) {
        let objects = crate::kube::read::objects(&repo, &snap, &location.display)?;
        kubernetes::namespace_map::check(&objects, &plan.namespace_map).map_err(Usage::new)?;
        kube_objects = Some(objects);
    }
    // `--into` names a bucket when buckets, and not databases, are restored.
    let into_bucket = (only.contains(&Component::Buckets) && !only.contains(&Component::Databases))
        || (only.is_empty() && manifest.databases.is_empty() && !manifest.buckets.is_empty());
    let db_into = if into_bucket {
        None
    } else {
        plan.into.as_deref()
    };
    // Dependency order: databases before the artifacts and objects that refer to them.
    if wanted(Component::Databases)
        && (!manifest.databases.is_empty() || only.contains(&Component::Databases))
    {
        let sel = Selection {
            databases: &plan.databases,
            into: db_into,
            jobs: plan.jobs,
            force: plan.force,
            dry_run: plan.dry_run,
        };
        let entries = databases::select(&manifest, &sel).map_err(Usage::new)?;
        let label = |e: &DatabaseEntry| format!("database {}/{}", e.source, e.database);
        progress.pending.retain(|p| p != "databases");
        progress
            .pending
            .splice(0..0, entries.iter().map(|e| label(e)));
        // One at a time, so that a stop request is honoured between databases.
        for entry in &entries {
            progress.checkpoint()?;
            let report = progress.step(
                databases::restore(plan.rt, plan.config, repo.clone(), &snap, &[entry], &sel),
                None,
            )?;
            result.databases.extend(report);
            progress.finish(label(entry));
        }
    } else if !plan.databases.is_empty() || db_into.is_some() {
        return Err(Usage::msg(
            "--database and --into apply to databases, which this restore does not include",
        )
        .into());
    }
    if wanted(Component::Buckets)
        && (!manifest.buckets.is_empty() || only.contains(&Component::Buckets))
    {
        let sel = buckets::Selection {
            buckets: &plan.buckets,
            into: if into_bucket {
                plan.into.as_deref()
            } else {
                None
            },
            prefix: plan.prefix.as_deref(),
            existing: plan.existing.unwrap_or(Existing::Fail),
            dry_run: plan.dry_run,
            transfers: plan.transfers,
        };
        let entries = buckets::select(&manifest, &sel).map_err(Usage::new)?;
        progress.checkpoint()?;
        result.buckets = progress.step(
            buckets::restore(plan.rt, plan.config, repo.clone(), &snap, &entries, &sel),
            Some("the objects uploaded before the stop stay; run the restore again with --existing skip to finish"),
        )?;
        progress.finish("buckets".into());
    } else if !plan.buckets.is_empty() || plan.prefix.is_some() {
        return Err(Usage::msg(
            "--bucket and --prefix apply to buckets, which this restore does not include",
        )
        .into());
    }
    // Kubernetes objects come last: KFP's controllers and schedules expect their databases and
    // artifacts to be back first.
    let kube_selected = !plan.namespace_map.is_empty() || !plan.include_kinds.is_empty();
    if wanted(Component::Kubernetes)
        && (!manifest.kubernetes.is_empty()
            || only.contains(&Component::Kubernetes)
            || kube_selected)
    {
        let objects = match kube_objects.take() {
            Some(objects) => objects,
            None => crate::kube::read::objects(&repo, &snap, &location.display)?,
        };
        let sel = kubernetes::Selection {
            namespace_map: &plan.namespace_map,
            include_kinds: &plan.include_kinds,
            existing: plan.existing.unwrap_or(Existing::Skip),
            resume_schedules: plan.resume_schedules,
            dry_run: plan.dry_run,
            jobs: plan.jobs * 4,
        };
        progress.checkpoint()?;
        let report = progress.step(
            kubernetes::restore(plan.rt, &plan.config.kubernetes, objects, &sel)
                .map_err(|e| Usage::mark_if(e, kubernetes::RestoreError::is_usage)),
            Some("the objects applied before the stop stay; run the restore again to finish"),
        )?;
        progress.finish("Kubernetes objects".into());
        warnings.extend(report.warnings.iter().cloned());
        result.kubernetes = Some(report);
    } else if kube_selected {
        return Err(Usage::msg(
            "--namespace-map and --include-kinds apply to Kubernetes objects, which this restore does not include",
        )
        .into());
    }
    result.warnings = warnings;
    Ok(result)
}

/// Every `--include-kinds` entry must select a kind the snapshot holds: one that selects none is
/// a typo, refused before anything is restored rather than silently ignored.
fn kinds_in_snapshot(
    kinds: &[String],
    held: &std::collections::BTreeMap<String, u64>,
) -> Result<(), Usage> {
    if held.is_empty() {
        // Nothing to choose from; the Kubernetes restore says so itself.
        return Ok(());
    }
    let keys: Vec<crate::kube::object::ObjectKey> = held
        .keys()
        .filter_map(|k| {
            let (group, kind) = k.rsplit_once('/')?;
            Some(crate::kube::object::ObjectKey {
                group: if group == "core" { "" } else { group }.into(),
                kind: kind.into(),
                namespace: None,
                name: String::new(),
            })
        })
        .collect();
    let missing: Vec<&str> = kinds
        .iter()
        .filter(|want| {
            !keys
                .iter()
                .any(|k| kubernetes::order::kind_selected(std::slice::from_ref(*want), k))
        })
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let held: Vec<&str> = held.keys().map(String::as_str).collect();
    Err(Usage::msg(format!(
        "--include-kinds {}: the snapshot holds no such kind; it holds {}",
        missing.join(","),
        held.join(", ")
    )))
}
