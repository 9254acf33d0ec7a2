//! `kfguard backup`: gather every configured source into one snapshot.

use super::metrics::Recorder;
use super::Context;
use crate::backup::{self, MergePlan, Plan, Report, ShardPlan};
use crate::cli::BackupArgs;
use crate::output::{emit, human_bytes};
use crate::{Outcome, Usage};

pub(super) fn run(ctx: &Context, args: &BackupArgs) -> anyhow::Result<Outcome> {
    let shard = match (args.shard, &args.shard_run) {
        (Some(shard), Some(run)) => Some(ShardPlan {
            shard,
            run: run.clone(),
        }),
        (Some(_), None) => {
            return Err(Usage::msg(
                "--shard needs the run it belongs to: --shard-run ID or KFGUARD_SHARD_RUN (the same for every shard of the night, e.g. the Job's uid)",
            )
            .into())
        }
        (None, _) => None,
    };
    let merge = args.merge_shards.then(|| MergePlan {
        run: args.shard_run.clone(),
        wait: args.wait,
    });
    let metrics = Recorder::new(ctx, &args.metrics, args.dry_run)?;
    let report = backup::run(Plan {
        config: &ctx.config,
        only: args.only.clone(),
        tags: args.tags.clone(),
        jobs: usize::from(args.jobs),
        transfers: usize::from(args.transfers),
        dry_run: args.dry_run,
        from_dir: args.from_dir.clone(),
        from_command: args.from_command.clone(),
        shard,
        merge,
        quiet: ctx.global.quiet,
        rt: ctx.rt.handle(),
    });
    metrics.finish_report(ctx, report, render, crate::metrics::Run::backup)
}

/// Prints what the backup wrote; its warnings make the outcome.
fn render(ctx: &Context, report: &Report) -> Outcome {
    emit(ctx.global.output, report, |r| {
        let w = &r.written;
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
        if let Some(sh) = &w.manifest.shard {
            s.push_str(&format!(
                "\n  shard {}/{} of run {}",
                sh.index, sh.count, sh.run
            ));
        }
        if let Some(m) = &w.manifest.merged_shards {
            s.push_str(&format!("\n  merged {} shards of run {}", m.count, m.run));
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
    if report.warnings().is_empty() {
        Outcome::Ok
    } else {
        Outcome::Warnings(report.warnings().to_vec())
    }
}
