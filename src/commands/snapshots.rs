//! `kfguard snapshots`: list the snapshots of the repository.

use super::Context;
use crate::cli::SnapshotsArgs;
use crate::output::{emit, human_bytes};
use crate::snapshot::select;
use crate::snapshot::summary::Summary;
use crate::Outcome;

pub(super) fn run(ctx: &Context, args: &SnapshotsArgs) -> anyhow::Result<Outcome> {
    let (repo, location) = ctx.open()?;
    let snaps = if args.all {
        select::all(&repo, &location.display)?
    } else {
        select::complete(&repo, &location.display)?
    };
    let list: Vec<_> = snaps.iter().map(Summary::of).collect();
    emit(ctx.global.output, &list, |list| {
        if list.is_empty() {
            return format!("no snapshots in {}", location.display);
        }
        let mut out = format!(
            "{:<10} {:<22} {:<20} {:>10} {:>8}  {}\n",
            "ID", "TIME (UTC)", "CLUSTER", "SIZE", "FILES", "TAGS"
        );
        for s in list {
            let mut tags = s.tags.join(",");
            if !s.complete {
                tags = format!("INCOMPLETE {tags}");
            }
            out.push_str(&format!(
                "{:<10} {:<22} {:<20} {:>10} {:>8}  {}\n",
                s.short_id,
                s.time
                    .chars()
                    .take(19)
                    .collect::<String>()
                    .replace('T', " "),
                s.cluster,
                human_bytes(s.bytes),
                s.files,
                tags
            ));
        }
        out.push_str(&format!("{} snapshot(s)", list.len()));
        out
    });
    Ok(Outcome::Ok)
}
