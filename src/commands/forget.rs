//! `kfguard forget`: apply a retention policy per cluster, and optionally prune unused data.

use rustic_core::jiff::{Timestamp, ToSpan, Zoned};
use rustic_core::{ForgetGroups, Grouped, PruneOptions, SnapshotGroupCriterion};
use serde::Serialize;

use super::Context;
use crate::cli::ForgetArgs;
use crate::output::{emit, human_bytes};
use crate::repo::RepoError;
use crate::snapshot::select;
use crate::snapshot::summary::Summary;
use crate::{Outcome, Usage};

#[derive(Serialize)]
struct Forgotten {
    dry_run: bool,
    keep: Vec<Summary>,
    remove: Vec<Summary>,
    /// Incomplete snapshots older than a day: left by a failed or interrupted backup.
    remove_incomplete: Vec<Summary>,
    prune: Option<Pruned>,
}

#[derive(Serialize)]
struct Pruned {
    packs_removed: u64,
    packs_repacked: u64,
    bytes_removed: u64,
}

pub(super) fn run(ctx: &Context, args: &ForgetArgs) -> anyhow::Result<Outcome> {
    // The flags replace `[retention]` as a whole when any is given.
    let policy = if !args.keep.is_empty() {
        &args.keep
    } else if !ctx.config.retention.is_empty() {
        &ctx.config.retention
    } else {
        return Err(Usage::msg(
            "no retention policy: give at least one --keep-* flag, or set [retention] in kfguard.toml",
        )
        .into());
    };
    // A policy that keeps nothing would delete every snapshot: refuse it, as restic does.
    if policy.keeps_nothing() {
        return Err(Usage::msg(
            "the retention policy keeps no snapshot (every --keep-* is 0): give at least one positive --keep-* value",
        )
        .into());
    }
    let keep = policy.keep_options();

    let (repo, location) = ctx.open()?;
    let loc = location.display.as_str();
    let all = select::all(&repo, loc)?;
    let cutoff = Timestamp::now() - 24.hours();
    let (complete, incomplete): (Vec<_>, Vec<_>) = all.into_iter().partition(select::is_complete);
    // A recent incomplete snapshot may belong to a backup that is still running.
    let stale: Vec<_> = incomplete
        .into_iter()
        .filter(|s| s.time.timestamp() < cutoff)
        .collect();

    // Retention is per cluster and per scope: hourly bucket-only snapshots must not push the
    // nightly database dumps out of `--keep-daily`.
    let mut by_scope: std::collections::BTreeMap<String, Vec<_>> = Default::default();
    for s in complete {
        let scope = s
            .tags
            .iter()
            .find(|t| t.starts_with(crate::snapshot::SCOPE_TAG_PREFIX))
            .cloned()
            .unwrap_or_default();
        by_scope.entry(scope).or_default().push(s);
    }
    let (mut kept, mut removed) = (Vec::new(), Vec::new());
    for snaps in by_scope.into_values() {
        let grouped = Grouped::from_items(snaps, SnapshotGroupCriterion::new().hostname(true));
        let groups =
            ForgetGroups::from_grouped_snapshots_with_retention(grouped, &keep, &Zoned::now())
                .map_err(|e| RepoError::rustic("applying the retention policy", loc, &e))?;
        for group in &groups.0 {
            for item in &group.items {
                if item.keep {
                    kept.push(item.snapshot.clone());
                } else {
                    removed.push(item.snapshot.clone());
                }
            }
        }
    }
    let mut result = Forgotten {
        dry_run: args.dry_run,
        keep: kept.iter().map(Summary::of).collect(),
        remove: removed.iter().map(Summary::of).collect(),
        remove_incomplete: stale.iter().map(Summary::of).collect(),
        prune: None,
    };
    let ids: Vec<_> = removed.iter().chain(&stale).map(|s| s.id).collect();
    if !args.dry_run && !ids.is_empty() {
        repo.delete_snapshots(&ids)
            .map_err(|e| RepoError::rustic("removing snapshots", loc, &e))?;
    }
    if args.prune {
        let opts = PruneOptions::default();
        let plan = repo
            .prune_plan(&opts)
            .map_err(|e| RepoError::rustic("planning the prune", loc, &e))?;
        let stats = &plan.stats;
        result.prune = Some(Pruned {
            packs_removed: stats.packs_to_delete.remove,
            packs_repacked: stats.packs.repack,
            bytes_removed: stats.size_to_delete.remove,
        });
        if !args.dry_run {
            repo.prune(&opts, plan)
                .map_err(|e| RepoError::rustic("prune", loc, &e))?;
        }
    }
    emit(ctx.global.output, &result, |f| {
        let verb = if f.dry_run { "would remove" } else { "removed" };
        let mut s = format!(
            "kept {} snapshot(s), {verb} {}",
            f.keep.len(),
            f.remove.len() + f.remove_incomplete.len()
        );
        for r in f.remove.iter().chain(&f.remove_incomplete) {
            s.push_str(&format!("\n  {verb} {} {}", r.short_id, r.time));
        }
        if let Some(p) = &f.prune {
            let repack = if f.dry_run {
                "would repack"
            } else {
                "repacked"
            };
            s.push_str(&format!(
                "\nprune: {verb} {} pack(s), {}; {repack} {}",
                p.packs_removed,
                human_bytes(p.bytes_removed),
                p.packs_repacked
            ));
        }
        s
    });
    Ok(Outcome::Ok)
}
