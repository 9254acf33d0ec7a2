//! Portable snapshot archives: one snapshot as a self-contained tar, written and read as a stream.
//!
//! The format (version 1), entry by entry:
//! 1. `kfguard-archive/ARCHIVE.json`: the format, its version and the source snapshot
//!    (id, time, cluster, tags, paths), so that a foreign tar is refused at its first entry.
//! 2. The snapshot's files at their snapshot paths, in the snapshot's tree order.
//! 3. `kfguard-archive/SHA256SUMS`: the SHA-256 of every file, in `sha256sum -c` format. It
//!    comes last because export streams: a file's digest is known only once it is written.
//!
//! Each entry's PAX `comment` record (the one record every tar reader ignores silently)
//! announces the next file: its path and its restic node. Import needs this lookahead because
//! rustic_core's archiver asks for the next entry before it reads the current one's content,
//! while a tar stream can only reach the next header after that content.

pub mod export;
pub mod import;

use serde::{Deserialize, Serialize};

pub use export::{export, Exported};
pub use import::{import, Imported};

/// The value of [`Header::format`].
pub const FORMAT: &str = "kfguard-archive";
/// The version written, and the only one read.
pub const VERSION: u32 = 1;
/// The first entry.
pub const HEADER_PATH: &str = "kfguard-archive/ARCHIVE.json";
/// The last entry.
pub const SUMS_PATH: &str = "kfguard-archive/SHA256SUMS";
/// Prefix of the PAX `comment` record that announces the next file.
const NEXT_PREFIX: &str = "kfguard-next ";

/// The archive's first entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// The kfguard version that wrote the archive.
    pub kfguard_version: String,
    pub snapshot: Source,
}

/// The exported snapshot, as the source repository recorded it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Source {
    pub id: String,
    /// RFC 3339 with its time zone, as jiff prints a `Zoned`.
    pub time: String,
    /// The cluster (restic's hostname).
    pub hostname: String,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// The file announced by the previous entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Next {
    path: String,
    /// The restic node, without content: name, type, size, mode and times.
    node: rustic_core::repofile::Node,
}

impl Next {
    fn comment(next: Option<&Next>) -> Option<String> {
        next.map(|n| {
            format!(
                "{NEXT_PREFIX}{}",
                serde_json::to_string(n).expect("node serialises")
            )
        })
    }

    fn parse(comment: &str) -> Option<Result<Next, serde_json::Error>> {
        comment.strip_prefix(NEXT_PREFIX).map(serde_json::from_str)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("this is not a kfguard archive: its first entry is `{first}`, not `{HEADER_PATH}`; import only archives written by `kfguard export`")]
    NotKfguard { first: String },
    #[error(
        "this is not a kfguard archive: {detail}; import only archives written by `kfguard export`"
    )]
    BadHeader { detail: String },
    #[error("the archive is format {format} version {version}, and this kfguard reads {FORMAT} version {VERSION}; import it with the kfguard that exported it")]
    Version { format: String, version: u32 },
    #[error("the archive is truncated: it ends {at}; copy or export it again")]
    Truncated { at: String },
    #[error("archive entry `{entry}` is altered: {detail}; copy or export the archive again")]
    Altered { entry: String, detail: String },
    #[error("cannot read the archive at entry `{entry}`: {source}")]
    Read {
        entry: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the archive: {0}")]
    Write(#[source] std::io::Error),
    #[error("`{path}` in snapshot {snapshot} is a {kind}, which kfguard archives do not hold")]
    Unsupported {
        path: String,
        snapshot: String,
        kind: String,
    },
    #[error("`{path}` in snapshot {snapshot} cannot be read: {detail}")]
    Content {
        path: String,
        snapshot: String,
        detail: String,
    },
    #[error("import failed: {} file(s) did not load: {}", .0.len(), .0.iter().take(3).cloned().collect::<Vec<_>>().join("; "))]
    Load(Vec<String>),
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
}

impl ArchiveError {
    /// The archive given is not one kfguard can import: the user's input, not a failure.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::NotKfguard { .. } | Self::BadHeader { .. } | Self::Version { .. }
        )
    }
}

/// One line of `SHA256SUMS`, as `sha256sum` writes it.
fn sums_line(digest: &[u8], path: &str) -> String {
    format!("{}  {path}\n", hex::encode(digest))
}
