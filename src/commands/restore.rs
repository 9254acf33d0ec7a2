//! `kfguard restore`: bring parts of a snapshot back, with a plan first on `--dry-run`.

use super::metrics::Recorder;
use super::Context;
use crate::cli::RestoreArgs;
use crate::output::emit;
use crate::restore::{self, kubernetes, Plan, Report};
use crate::Outcome;

pub(super) fn run(ctx: &Context, args: &RestoreArgs) -> anyhow::Result<Outcome> {
    let metrics = Recorder::new(ctx, &args.metrics, args.dry_run)?;
    let report = restore::run(Plan {
        config: &ctx.config,
        snapshot: args.snapshot.clone(),
        only: args.only.clone(),
        databases: args.databases.clone(),
        into: args.into.clone(),
        buckets: args.buckets.clone(),
        prefix: args.prefix.clone(),
        existing: args.existing,
        namespace_map: args.namespace_map.clone(),
        include_kinds: args.include_kinds.clone(),
        resume_schedules: args.resume_schedules,
        jobs: usize::from(args.jobs),
        transfers: usize::from(args.transfers),
        force: args.force,
        dry_run: args.dry_run,
        quiet: ctx.global.quiet,
        rt: ctx.rt.handle(),
    });
    metrics.finish_report(ctx, report, render, crate::metrics::Run::restore)
}

/// Prints what the restore did or would do; its warnings make the outcome.
fn render(ctx: &Context, result: &Report) -> Outcome {
    emit(ctx.global.output, result, |r| {
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
    if result.warnings.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Warnings(result.warnings.clone())
    }
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
