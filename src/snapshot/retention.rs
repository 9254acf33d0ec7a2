//! Retention: which snapshots a keep policy removes, per cluster and scope, and the prune of
//! the data they alone held. `kfguard forget` and the runbooks' `snapshot::forget` run it.

use rustic_core::jiff::{Timestamp, ToSpan, Zoned};
use rustic_core::{ForgetGroups, Grouped, PruneOptions, SnapshotGroupCriterion};
use serde::Serialize;

use super::select;
use super::summary::Summary;
use crate::config::KeepPolicy;
use crate::repo::{Repo, RepoError};

/// What a forget kept and removed, or on a dry run would remove.
#[derive(Debug, Serialize)]
pub struct Forgotten {
    pub dry_run: bool,
    pub keep: Vec<Summary>,
    pub remove: Vec<Summary>,
    /// Incomplete snapshots older than a day: left by a failed or interrupted backup.
    pub remove_incomplete: Vec<Summary>,
    pub prune: Option<Pruned>,
}

#[derive(Debug, Serialize)]
pub struct Pruned {
    pub packs_removed: u64,
    pub packs_repacked: u64,
    pub bytes_removed: u64,
}

/// Applies `policy` to the repository at `loc`, then prunes when asked; a dry run removes
/// nothing and reports what it would. The caller refuses a policy that keeps nothing.
pub fn forget(
    repo: &Repo,
    loc: &str,
    policy: &KeepPolicy,
    prune: bool,
    dry_run: bool,
) -> Result<Forgotten, RepoError> {
    let keep = policy.keep_options();
    let all = select::all(repo, loc)?;
    let cutoff = Timestamp::now() - 24.hours();
    let (complete, incomplete): (Vec<_>, Vec<_>) = all.into_iter().partition(select::is_complete);
    // A recent incomplete snapshot may belong to a backup that is still running.
    let stale: Vec<_> = incomplete
        .into_iter()
        .filter(|s| s.time.timestamp() < cutoff)
        .collect();

    // Retention is per cluster and per scope: hourly bucket-only snapshots must not push the
    // nightly database dumps out of `--keep-daily`.
    let (partial, complete): (Vec<_>, Vec<_>) =
        complete.into_iter().partition(super::shard::is_partial);
    let (kept_shards, removed_shards) = shards_to_keep(partial);
    let mut by_scope: std::collections::BTreeMap<String, Vec<_>> = Default::default();
    for s in complete {
        let scope = s
            .tags
            .iter()
            .find(|t| t.starts_with(super::SCOPE_TAG_PREFIX))
            .cloned()
            .unwrap_or_default();
        by_scope.entry(scope).or_default().push(s);
    }
    let (mut kept, mut removed) = (kept_shards, removed_shards);
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
        dry_run,
        keep: kept.iter().map(Summary::of).collect(),
        remove: removed.iter().map(Summary::of).collect(),
        remove_incomplete: stale.iter().map(Summary::of).collect(),
        prune: None,
    };
    let ids: Vec<_> = removed.iter().chain(&stale).map(|s| s.id).collect();
    if !dry_run && !ids.is_empty() {
        repo.delete_snapshots(&ids)
            .map_err(|e| RepoError::rustic("removing snapshots", loc, &e))?;
    }
    if prune {
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
        if !dry_run {
            repo.prune(&opts, plan)
                .map_err(|e| RepoError::rustic("prune", loc, &e))?;
        }
    }
    Ok(result)
}

/// Shard snapshots are not kept by the policy: a merged snapshot holds their data, and only
/// the newest of each shard (cluster and I/N) is needed, as the next night's parent.
/// `partial` is oldest first.
fn shards_to_keep(
    partial: Vec<rustic_core::repofile::SnapshotFile>,
) -> (
    Vec<rustic_core::repofile::SnapshotFile>,
    Vec<rustic_core::repofile::SnapshotFile>,
) {
    let mut newest = std::collections::BTreeMap::new();
    for (i, s) in partial.iter().enumerate() {
        newest.insert((s.hostname.clone(), super::shard::shard_of(s)), i);
    }
    let keep: std::collections::BTreeSet<usize> = newest.into_values().collect();
    let (k, r): (Vec<_>, Vec<_>) = partial
        .into_iter()
        .enumerate()
        .partition(|(i, _)| keep.contains(i));
    (
        k.into_iter().map(|(_, s)| s).collect(),
        r.into_iter().map(|(_, s)| s).collect(),
    )
}
