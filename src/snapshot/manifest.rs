//! The snapshot manifest, `/kfguard.json`: what a snapshot holds and how it was taken.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Path of the manifest inside every snapshot.
pub use super::layout::MANIFEST_PATH;
/// Bumped when the snapshot layout changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Manifest {
    pub kfguard_version: String,
    pub format_version: u32,
    pub cluster: String,
    pub started_at: String,
    pub finished_at: String,
    /// Kubeflow, KFP, Argo and MLMD versions, where they could be detected.
    pub versions: BTreeMap<String, String>,
    pub databases: Vec<DatabaseEntry>,
    pub buckets: Vec<BucketEntry>,
    /// Object count per Kubernetes kind, `<group>/<Kind>` (`core` for the core group).
    pub kubernetes: BTreeMap<String, u64>,
    /// Kubernetes objects left out on purpose, per reason, e.g. finished Argo Workflows.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kubernetes_skipped: BTreeMap<String, u64>,
    /// Ad-hoc files (folders and command streams) and their sizes.
    pub files: Vec<FileEntry>,
    pub warnings: Vec<String>,
    /// Artifact references of the databases resolved against the buckets of this snapshot;
    /// present when the snapshot holds both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crosscheck: Option<CrossCheck>,
    /// On a partial snapshot: the shard of the bucket keys it holds, and its run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<super::shard::ShardRecord>,
    /// On a snapshot merged from shards: the run and the shard snapshots it joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_shards: Option<super::shard::MergedRecord>,
}

/// The cross-check of database artifact references against bucket objects
/// (see `backup::crosscheck`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CrossCheck {
    /// Tables scanned, `<source>/<db>/<table>`.
    pub tables: Vec<String>,
    /// References found in those tables.
    pub references: u64,
    /// References to an object (or a folder of objects) of the snapshot.
    pub resolved: u64,
    /// References into a backed-up bucket and prefix whose object is not in the snapshot.
    pub dangling: u64,
    /// References that cannot be checked: bucket not configured, other scheme, other prefix.
    pub unresolvable: u64,
    /// Objects in the snapshot's buckets.
    pub objects: u64,
    /// Objects that no reference names.
    pub orphans: u64,
    pub dangling_examples: Vec<Reference>,
    pub unresolvable_examples: Vec<Reference>,
    /// `<bucket>/<key>`.
    pub orphan_examples: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Reference {
    /// `<source>/<db>/<table>.<column>`.
    pub column: String,
    /// The URI or key as stored.
    pub reference: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseEntry {
    pub source: String,
    pub database: String,
    pub engine: String,
    pub server_version: String,
    /// Binlog/GTID position, or the PostgreSQL snapshot and LSN.
    pub consistency: BTreeMap<String, String>,
    pub tables: Vec<TableEntry>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TableEntry {
    pub name: String,
    pub rows: u64,
    pub checksum: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BucketEntry {
    pub source: String,
    pub bucket: String,
    pub objects: u64,
    pub bytes: u64,
    /// Prefixes backed up; empty: the whole bucket.
    pub prefixes: Vec<String>,
    /// Objects downloaded by this backup; the others were reused from the parent snapshot.
    pub fetched: u64,
    /// HEAD requests sent; objects unchanged since the parent snapshot need none.
    pub heads: u64,
    /// Ranged GETs sent, for objects large enough to be read in parts.
    pub ranged_gets: u64,
    /// Keys listed but deleted before they could be read: not in the snapshot.
    pub vanished: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
}

impl Manifest {
    pub fn new(cluster: &str, started_at: String) -> Self {
        Self {
            kfguard_version: env!("CARGO_PKG_VERSION").into(),
            format_version: FORMAT_VERSION,
            cluster: cluster.into(),
            started_at,
            ..Self::default()
        }
    }
}
