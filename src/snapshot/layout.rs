//! Every path of the snapshot format, in one place: the manifest, the roots of each part, a
//! database's and a bucket's folder, and the bucket index format. Writers and readers both use
//! these, so the two cannot drift apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest, at the root of every snapshot.
pub const MANIFEST_PATH: &str = "kfguard.json";
/// Root of database dumps: `databases/<source>/<db stem>/`.
pub const DATABASES_ROOT: &str = "databases";
/// Root of bucket copies: `buckets/<source>/<bucket>/`.
pub const BUCKETS_ROOT: &str = "buckets";
/// Root of Kubernetes objects: `kubernetes/cluster/…` and `kubernetes/namespaces/<ns>/…`.
pub const KUBERNETES_ROOT: &str = "kubernetes";
/// Root of ad-hoc files (folders and command streams).
pub const FILES_ROOT: &str = "files";
/// Name of each bucket's index file, beside its `objects/` folder.
pub const BUCKET_INDEX: &str = "index.jsonl";

/// The folder of one database's dump; `stem` is the database name as a file stem.
pub fn database_dir(source: &str, stem: &str) -> String {
    format!("{DATABASES_ROOT}/{source}/{stem}")
}

/// The folder of one bucket inside the snapshot.
pub fn bucket_dir(source: &str, bucket: &str) -> String {
    format!("{BUCKETS_ROOT}/{source}/{bucket}")
}

/// One line of a bucket's `index.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexLine {
    /// The exact object key.
    pub key: String,
    /// The file below `objects/` that holds its content.
    pub path: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}
