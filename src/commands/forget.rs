//! `kfguard forget`: apply a retention policy per cluster, and optionally prune unused data.

use super::Context;
use crate::cli::ForgetArgs;
use crate::output::{emit, human_bytes};
use crate::snapshot::retention;
use crate::{Outcome, Usage};

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
    let (repo, location) = ctx.open()?;
    let result = retention::forget(&repo, &location.display, policy, args.prune, args.dry_run)?;
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
