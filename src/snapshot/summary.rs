//! One snapshot as `kfguard snapshots` lists it and runbooks' `snapshot::list` return it.

use rustic_core::repofile::SnapshotFile;
use serde::Serialize;

use super::{select, INCOMPLETE_TAG, KFGUARD_TAG, SCOPE_TAG_PREFIX};

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub cluster: String,
    /// The user's tags; kfguard's own are left out.
    pub tags: Vec<String>,
    /// What the snapshot covers, e.g. `buckets+databases`.
    pub scope: String,
    pub complete: bool,
    pub files: u64,
    pub bytes: u64,
}

impl Summary {
    pub fn of(s: &SnapshotFile) -> Self {
        let summary = s.summary.clone().unwrap_or_default();
        let id = super::full_id(&s.id);
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

    /// The parts of the scope: `buckets`, `databases`, `kubernetes`, `files`.
    pub fn parts(&self) -> Vec<String> {
        self.scope
            .split('+')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    }
}
