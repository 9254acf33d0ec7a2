//! Backup sources: each turns one kind of state into files of the virtual snapshot tree.

pub mod command;
pub mod dir;

pub use crate::snapshot::layout::FILES_ROOT;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read folder {path}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid snapshot path `{path}`: {why}")]
    BadPath { path: String, why: &'static str },
    #[error(
        "invalid --from-command `{0}`: expected PATH=COMMAND, e.g. dumps/db.sql=\"mysqldump db\""
    )]
    BadCommandSpec(String),
}

impl SourceError {
    /// Bad arguments rather than a failing source.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::BadPath { .. } | Self::BadCommandSpec(_))
    }
}

/// Checks a relative, `/`-separated snapshot path written by the user.
pub fn check_rel_path(path: &str) -> Result<(), SourceError> {
    let bad = |why| SourceError::BadPath {
        path: path.into(),
        why,
    };
    if path.is_empty() {
        return Err(bad("it is empty"));
    }
    if path.starts_with('/') {
        return Err(bad("it must be relative"));
    }
    for seg in path.split('/') {
        match seg {
            "" => return Err(bad("it has an empty segment")),
            "." | ".." => return Err(bad("`.` and `..` are not allowed")),
            s if s.len() > 255 => return Err(bad("a segment is longer than 255 bytes")),
            _ => {}
        }
    }
    Ok(())
}
