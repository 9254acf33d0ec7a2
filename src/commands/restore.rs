//! `kfguard restore`: bring parts of a snapshot back, with a plan first on `--dry-run`.

use std::sync::Arc;

use serde::Serialize;

use super::Context;
use crate::cli::{Component, RestoreArgs};
use crate::output::emit;
use crate::restore::buckets;
use crate::restore::databases::{self, Selection};
use crate::restore::kubernetes;
use crate::snapshot::{full_id, read};
use crate::sources::database::RestoreReport;
use crate::Outcome;

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
    let (repo, snap, location) = ctx.open_snapshot(&args.snapshot)?;
    let repo = Arc::new(repo);
    let manifest = read::manifest(&repo, &snap, &location.display)?.ok_or_else(|| {
        super::UsageError(format!(
            "snapshot {} has no kfguard.json: it was not written by kfguard",
            full_id(&snap.id)
        ))
    })?;

    let mut warnings = Vec::new();
    let mut result = Restored {
        snapshot: full_id(&snap.id),
        dry_run: args.dry_run,
        databases: Vec::new(),
        buckets: Vec::new(),
        kubernetes: None,
        warnings: Vec::new(),
    };
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
        result.databases = databases::restore(
            ctx.rt.handle(),
            &ctx.config,
            repo.clone(),
            &snap,
            &entries,
            &sel,
        )?;
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
            transfers: usize::from(args.transfers),
        };
        let entries = buckets::select(&manifest, &sel)?;
        result.buckets = buckets::restore(
            ctx.rt.handle(),
            &ctx.config,
            repo.clone(),
            &snap,
            &entries,
            &sel,
        )?;
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
        let objects = crate::snapshot::kubernetes::objects(&repo, &snap, &location.display)?;
        let sel = kubernetes::Selection {
            namespace_map: &args.namespace_map,
            include_kinds: &args.include_kinds,
            existing: args.existing.unwrap_or(crate::cli::Existing::Skip),
            resume_schedules: args.resume_schedules,
            dry_run: args.dry_run,
            jobs: usize::from(args.jobs) * 4,
        };
        let report = kubernetes::restore(ctx.rt.handle(), &ctx.config.kubernetes, objects, &sel)?;
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
