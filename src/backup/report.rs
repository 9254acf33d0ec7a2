//! What a backup wrote: the snapshot, its parents, the counts and bytes, and the manifest.

use serde::Serialize;

use crate::snapshot::writer::Written;

/// The result of [`super::run`], as the CLI prints it.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Report {
    /// The snapshot (none on a dry run), its parents, counts, bytes and manifest, whose
    /// warnings include those known only once the archive was done.
    pub written: Written,
}

impl Report {
    /// What needs attention: the manifest's warnings.
    pub fn warnings(&self) -> &[String] {
        &self.written.manifest.warnings
    }
}
