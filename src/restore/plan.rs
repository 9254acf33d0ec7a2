//! What a restore is asked to do: the snapshot, the parts and the selectors, how hard to push.

use tokio::runtime::Handle;

use super::Existing;
use crate::config::Config;
use crate::snapshot::Component;

/// Parallel connections per database source when none is asked for (`--jobs`).
pub const DEFAULT_JOBS: usize = 4;
/// Bucket requests in flight when none is asked for (`--transfers`).
pub const DEFAULT_TRANSFERS: usize = 8;

/// One restore, as the CLI's flags or a runbook describe it.
pub struct Plan<'a> {
    /// The effective config: the repository, and the targets of databases, buckets and objects.
    pub config: &'a Config,
    /// Snapshot id (or a unique prefix), or `latest`.
    pub snapshot: String,
    /// Restore only these parts; empty: every part the snapshot holds, narrowed by the selectors.
    pub only: Vec<Component>,
    /// `SRC/DB` or `SRC` selectors.
    pub databases: Vec<String>,
    /// The database's new name, or with only buckets, the bucket to upload into.
    pub into: Option<String>,
    /// `SRC/BUCKET` or `SRC` selectors.
    pub buckets: Vec<String>,
    /// Only bucket objects whose key starts with this.
    pub prefix: Option<String>,
    /// What to do with what exists [default: fail for bucket objects, skip for Kubernetes objects].
    pub existing: Option<Existing>,
    /// Kubernetes namespaces FROM → TO.
    pub namespace_map: Vec<(String, String)>,
    /// Kubernetes kinds: `Kind` or `group/Kind`.
    pub include_kinds: Vec<String>,
    /// Bring schedules back enabled.
    pub resume_schedules: bool,
    /// Parallel connections per database (and four times as many Kubernetes requests).
    pub jobs: usize,
    /// Bucket objects restored at a time (`--transfers`).
    pub transfers: usize,
    /// Replace the tables of a database that already has some.
    pub force: bool,
    /// Show what would be restored, change nothing.
    pub dry_run: bool,
    /// Hide the repository's progress.
    pub quiet: bool,
    /// The runtime that the S3, database and Kubernetes clients run on.
    pub rt: &'a Handle,
}
