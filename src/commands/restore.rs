//! `kfguard restore`: bring parts of a snapshot back, with a plan first on `--dry-run`.

use std::sync::Arc;

use serde::Serialize;

use super::Context;
use crate::cli::{Component, RestoreArgs};
use crate::engines::{DbError, RestoreReport};
use crate::interrupt::{self, Interrupted};
use crate::output::emit;
use crate::restore::buckets;
use crate::restore::databases::{self, Selection};
use crate::restore::kubernetes;
use crate::snapshot::{full_id, read};
use crate::Outcome;

/// What a restore has done so far, for the summary of an interrupted one.
#[derive(Default)]
struct Progress {
    done: Vec<String>,
    pending: Vec<String>,
}

impl Progress {
    fn finish(&mut self, what: String) {
        self.pending.retain(|p| p != &what);
        self.done.push(what);
    }

    /// The stop, as an error; `err` is what the stop cut short, if anything, and `partly`
    /// what that step leaves behind.
    fn stopped(&self, err: Option<anyhow::Error>, partly: Option<&str>) -> anyhow::Error {
        let list = |v: &[String]| {
            if v.is_empty() {
                "nothing".to_string()
            } else {
                v.join(", ")
            }
        };
        let mut summary = format!(
            "restore stopped; restored: {}; not restored: {}",
            list(&self.done),
            list(&self.pending)
        );
        // What the engine did with the database it was filling.
        match err.as_ref().and_then(|e| e.downcast_ref::<DbError>()) {
            Some(DbError::Abandoned { left, .. }) => summary.push_str(&format!("; {left}")),
            _ => {
                if let Some(e) = &err {
                    tracing::debug!(error = %format!("{e:#}"), "restore step stopped");
                }
                if let (Some(_), Some(p)) = (&err, partly) {
                    summary.push_str(&format!("; {p}"));
                }
            }
        }
        let signal = interrupt::requested().unwrap_or(interrupt::Signal::Term);
        Interrupted { signal, summary }.into()
    }

    /// An error of a step, explained by the stop request when there is one.
    fn step<T>(&self, r: anyhow::Result<T>, partly: Option<&str>) -> anyhow::Result<T> {
        r.map_err(|e| match interrupt::requested() {
            Some(_) => self.stopped(Some(e), partly),
            None => e,
        })
    }

    /// Between steps: stop here when asked to.
    fn checkpoint(&self) -> anyhow::Result<()> {
        match interrupt::requested() {
            Some(_) => Err(self.stopped(None, None)),
            None => Ok(()),
        }
    }
}

#[derive(Serialize)]
struct Restored {
    snapshot: String,
    dry_run: bool,
    databases: Vec<RestoreReport>,
    buckets: Vec<buckets::BucketReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kubernetes: Option<kubernetes::Report>,
    warnings: Vec<String>,
}

pub fn run(ctx: &Context, args: &RestoreArgs) -> anyhow::Result<Outcome> {
    // Selecting a database or a bucket narrows the restore to that kind, so that
    // `--database kfp/mlpipeline --into x` never touches a live bucket.
    let mut only = args.only.clone();
    if only.is_empty() {
        if !args.databases.is_empty() {
            only.push(Component::Databases);
        }
        if !args.buckets.is_empty() || args.prefix.is_some() {
            only.push(Component::Buckets);
        }
    }
    let wanted = |c: Component| only.is_empty() || only.contains(&c);
    // `latest` is the newest snapshot of the cluster that holds every part asked for; with
    // only Kubernetes selectors, that means the objects.
    let mut parts = only.clone();
    if parts.is_empty() && (!args.namespace_map.is_empty() || !args.include_kinds.is_empty()) {
        parts.push(Component::Kubernetes);
    }
    let (repo, snap, location) = ctx.open_snapshot(&args.snapshot, &parts)?;
    let repo = Arc::new(repo);
    let manifest = read::manifest(&repo, &snap, &location.display)?.ok_or_else(|| {
        super::UsageError(format!(
            "snapshot {} has no kfguard.json: it was not written by kfguard",
            full_id(&snap.id)
        ))
    })?;
    kinds_in_snapshot(&args.include_kinds, &manifest.kubernetes)?;

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
    let mut result = Restored {
        snapshot: full_id(&snap.id),
        dry_run: args.dry_run,
        databases: Vec::new(),
        buckets: Vec::new(),
        kubernetes: None,
        warnings: Vec::new(),
    };
    // A mistaken --namespace-map is refused before any part is restored.
    let mut kube_objects = None;
    if !args.namespace_map.is_empty() && wanted(Component::Kubernetes) {
        let objects = crate::kube::read::objects(&repo, &snap, &location.display)?;
        kubernetes::namespace_map::check(&objects, &args.namespace_map)
            .map_err(kubernetes::RestoreError::from)?;
        kube_objects = Some(objects);
    }
    // `--into` names a bucket when buckets, and not databases, are restored.
    let into_bucket = (only.contains(&Component::Buckets) && !only.contains(&Component::Databases))
        || (only.is_empty() && manifest.databases.is_empty() && !manifest.buckets.is_empty());
    let db_into = if into_bucket {
        None
    } else {
        args.into.as_deref()
    };
    // Dependency order: databases before the artifacts and objects that refer to them.
    if wanted(Component::Databases)
        && (!manifest.databases.is_empty() || only.contains(&Component::Databases))
    {
        let sel = Selection {
            databases: &args.databases,
            into: db_into,
            jobs: usize::from(args.jobs),
            force: args.force,
            dry_run: args.dry_run,
        };
        let entries = databases::select(&manifest, &sel)?;
        let label = |e: &crate::snapshot::manifest::DatabaseEntry| {
            format!("database {}/{}", e.source, e.database)
        };
        progress.pending.retain(|p| p != "databases");
        progress
            .pending
            .splice(0..0, entries.iter().map(|e| label(e)));
        // One at a time, so that a stop request is honoured between databases.
        for entry in &entries {
            progress.checkpoint()?;
            let report = progress.step(
                databases::restore(
                    ctx.rt.handle(),
                    &ctx.config,
                    repo.clone(),
                    &snap,
                    &[entry],
                    &sel,
                ),
                None,
            )?;
            result.databases.extend(report);
            progress.finish(label(entry));
        }
    } else if !args.databases.is_empty() || db_into.is_some() {
        return Err(super::UsageError(
            "--database and --into apply to databases, which this restore does not include".into(),
        )
        .into());
    }
    if wanted(Component::Buckets)
        && (!manifest.buckets.is_empty() || only.contains(&Component::Buckets))
    {
        let sel = buckets::Selection {
            buckets: &args.buckets,
            into: if into_bucket {
                args.into.as_deref()
            } else {
                None
            },
            prefix: args.prefix.as_deref(),
            existing: args.existing.unwrap_or(crate::cli::Existing::Fail),
            dry_run: args.dry_run,
        };
        let entries = buckets::select(&manifest, &sel)?;
        progress.checkpoint()?;
        result.buckets = progress.step(
            buckets::restore(
                ctx.rt.handle(),
                &ctx.config,
                repo.clone(),
                &snap,
                &entries,
                &sel,
            ),
            Some("the objects uploaded before the stop stay; run the restore again with --existing skip to finish"),
        )?;
        progress.finish("buckets".into());
    } else if !args.buckets.is_empty() || args.prefix.is_some() {
        return Err(super::UsageError(
            "--bucket and --prefix apply to buckets, which this restore does not include".into(),
        )
        .into());
    }
    // Kubernetes objects come last: KFP's controllers and schedules expect their databases and
    // artifacts to be back first.
    let kube_selected = !args.namespace_map.is_empty() || !args.include_kinds.is_empty();
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
            namespace_map: &args.namespace_map,
            include_kinds: &args.include_kinds,
            existing: args.existing.unwrap_or(crate::cli::Existing::Skip),
            resume_schedules: args.resume_schedules,
            dry_run: args.dry_run,
            jobs: usize::from(args.jobs) * 4,
        };
        progress.checkpoint()?;
        let report = progress.step(
            kubernetes::restore(ctx.rt.handle(), &ctx.config.kubernetes, objects, &sel)
                .map_err(anyhow::Error::from),
            Some("the objects applied before the stop stay; run the restore again to finish"),
        )?;
        progress.finish("Kubernetes objects".into());
        warnings.extend(report.warnings.iter().cloned());
        result.kubernetes = Some(report);
    } else if kube_selected {
        return Err(super::UsageError(
            "--namespace-map and --include-kinds apply to Kubernetes objects, which this restore does not include".into(),
        )
        .into());
    }
    result.warnings = warnings.clone();
    emit(ctx.global.output, &result, |r| {
        let mut s = String::new();
        for db in &r.databases {
            if r.dry_run {
                s.push_str(&format!("plan for {} -> {}:\n", db.database, db.target));
                for step in &db.plan {
                    s.push_str(&format!("  {step}\n"));
                }
            } else {
                let rows: u64 = db.tables.iter().map(|t| t.rows).sum();
                s.push_str(&format!(
                    "restored {} into {}: {} tables, {rows} rows, checksums verified\n",
                    db.database,
                    db.target,
                    db.tables.len()
                ));
            }
        }
        for b in &r.buckets {
            if r.dry_run {
                s.push_str(&format!(
                    "plan for bucket {}/{} -> {}: upload {} objects ({} bytes, {} multipart), skip {}, overwrite {}\n",
                    b.source, b.bucket, b.target, b.objects, b.bytes, b.multipart, b.skipped, b.overwritten
                ));
            } else {
                s.push_str(&format!(
                    "restored bucket {}/{} into {}: {} objects, {} bytes, verified; {} skipped, {} overwritten\n",
                    b.source, b.bucket, b.target, b.objects, b.bytes, b.skipped, b.overwritten
                ));
            }
        }
        if let Some(k) = &r.kubernetes {
            s.push_str(&kube_text(k, r.dry_run));
        }
        for w in &r.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        if s.is_empty() {
            s = "nothing to restore".into();
        }
        s
    });
    Ok(if warnings.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Warnings(warnings)
    })
}

/// Every `--include-kinds` entry must select a kind the snapshot holds: one that selects none is
/// a typo, refused before anything is restored rather than silently ignored.
fn kinds_in_snapshot(
    kinds: &[String],
    held: &std::collections::BTreeMap<String, u64>,
) -> Result<(), super::UsageError> {
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
    Err(super::UsageError(format!(
        "--include-kinds {}: the snapshot holds no such kind; it holds {}",
        missing.join(","),
        held.join(", ")
    )))
}

/// The Kubernetes plan or result, one line per object, in restore order.
fn kube_text(k: &kubernetes::Report, dry_run: bool) -> String {
    let mut s = format!(
        "{} Kubernetes objects on {}:\n",
        if dry_run { "plan for" } else { "restored" },
        k.server
    );
    let mut stage = 0;
    for step in &k.steps {
        if step.stage != stage {
            stage = step.stage;
            s.push_str(&format!("  {stage}. {}\n", step.stage_name));
        }
        let action = step.action.as_str();
        s.push_str(&format!("    {action:<9} {}\n", step.object));
        for c in &step.changes {
            s.push_str(&format!("        {}\n", c.line()));
        }
        for n in &step.notes {
            s.push_str(&format!("        note: {n}\n"));
        }
        if let Some(e) = &step.error {
            s.push_str(&format!("        error: {e}\n"));
        }
    }
    let counts: Vec<String> = k.counts.iter().map(|(a, n)| format!("{n} {a}")).collect();
    s.push_str(&format!("  total: {}\n", counts.join(", ")));
    s
}
