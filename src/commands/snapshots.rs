//! `kfguard snapshots`: list the snapshots of the repository.

use rustic_core::repofile::SnapshotFile;
use serde::Serialize;

use super::Context;
use crate::cli::SnapshotsArgs;
use crate::output::{emit, human_bytes};
use crate::snapshot::{select, INCOMPLETE_TAG, KFGUARD_TAG, SCOPE_TAG_PREFIX};
use crate::Outcome;

#[derive(Debug, Serialize)]
pub(super) struct SnapshotSummary {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub cluster: String,
    pub tags: Vec<String>,
    /// What the snapshot covers, e.g. `buckets+databases`.
    pub scope: String,
    pub complete: bool,
    pub files: u64,
    pub bytes: u64,
}

impl SnapshotSummary {
    pub(super) fn of(s: &SnapshotFile) -> Self {
        let summary = s.summary.clone().unwrap_or_default();
        let id = crate::snapshot::full_id(&s.id);
        Self {
            short_id: id.chars().take(8).collect(),
            id,
            time: s.time.timestamp().to_string(),
            cluster: s.hostname.clone(),
            tags: s
                .tags
                .iter()
                .filter(|t| {
                    *t != KFGUARD_TAG && *t != INCOMPLETE_TAG && !t.starts_with(SCOPE_TAG_PREFIX)
                })
                .cloned()
                .collect(),
            scope: s
                .tags
                .iter()
                .find_map(|t| t.strip_prefix(SCOPE_TAG_PREFIX))
                .unwrap_or_default()
                .to_string(),
            complete: select::is_complete(s),
            files: summary.total_files_processed,
            bytes: summary.total_bytes_processed,
        }
    }
}

pub(super) fn run(ctx: &Context, args: &SnapshotsArgs) -> anyhow::Result<Outcome> {
    let (repo, location) = ctx.open()?;
    let snaps = if args.all {
        select::all(&repo, &location.display)?
    } else {
        select::complete(&repo, &location.display)?
    };
    let list: Vec<_> = snaps.iter().map(SnapshotSummary::of).collect();
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
