//! What a backup is asked to do: the parts, the extra files, the tags, how hard to push.

use std::path::PathBuf;

use tokio::runtime::Handle;

use crate::config::Config;
use crate::snapshot::shard::Shard;
use crate::snapshot::Component;

/// Parallel connections per database source when none is asked for (`--jobs`).
pub const DEFAULT_JOBS: usize = 4;
/// Bucket requests in flight when none is asked for (`--transfers`).
pub const DEFAULT_TRANSFERS: usize = 8;

/// One backup, as the CLI's flags or a runbook describe it.
pub struct Plan<'a> {
    /// The effective config: the cluster, the repository and the sources.
    pub config: &'a Config,
    /// Back up only these parts; empty: every configured part.
    pub only: Vec<Component>,
    /// The user's tags on the snapshot.
    pub tags: Vec<String>,
    /// Parallel connections per database source.
    pub jobs: usize,
    /// Bucket requests in flight at once.
    pub transfers: usize,
    /// Read the sources, write no snapshot.
    pub dry_run: bool,
    /// Local folders, stored under `/files/`.
    pub from_dir: Vec<PathBuf>,
    /// `PATH=COMMAND`: a command's stdout, stored at PATH.
    pub from_command: Vec<String>,
    /// Hide the repository's progress.
    pub quiet: bool,
    /// Back up one shard of the bucket keys as a partial snapshot (`--shard I/N`).
    pub shard: Option<ShardPlan>,
    /// Join a run's shard snapshots into one snapshot (`--merge-shards`).
    pub merge: Option<super::merge::MergePlan>,
    /// The runtime that the S3, database and Kubernetes clients run on.
    pub rt: &'a Handle,
}

/// One shard of a sharded bucket backup.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    pub shard: Shard,
    /// Shared by the shards of one run, e.g. the Indexed Job's uid.
    pub run: String,
}

impl Plan<'_> {
    /// Whether the plan asks for this part (every part, without `only`).
    pub(crate) fn wants(&self, c: Component) -> bool {
        self.only.is_empty() || self.only.contains(&c)
    }
}
