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

/// Decodes the `%XX` escapes of a path segment (a table file stem, a bucket key segment);
/// `None` if an escape is malformed or the bytes are not UTF-8, so that a segment kfguard did
/// not write is never taken for one it did.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let hex = |i: usize| b.get(i).is_some_and(u8::is_ascii_hexdigit);
    let well_formed = (0..b.len()).all(|i| b[i] != b'%' || (hex(i + 1) && hex(i + 2)));
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decode_refuses_what_kfguard_never_writes() {
        assert_eq!(percent_decode("a%2Fb%25").as_deref(), Some("a/b%"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("ab%4"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
