//! What a restore did, or on a dry run would do: one entry per database, bucket and object.

use serde::Serialize;

use super::{buckets, kubernetes};
use crate::engines::RestoreReport;

/// The result of [`super::run`], as the CLI prints it.
#[derive(Debug, Serialize)]
pub struct Report {
    pub snapshot: String,
    pub dry_run: bool,
    pub databases: Vec<RestoreReport>,
    pub buckets: Vec<buckets::BucketReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<kubernetes::Report>,
    pub warnings: Vec<String>,
}

impl Report {
    /// One line per change the restore made, or on a dry run would make: each database, each
    /// bucket with its counts, each Kubernetes object created or updated.
    pub fn changes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for db in &self.databases {
            out.push(format!(
                "restore database {} into {}",
                db.database, db.target
            ));
        }
        for b in &self.buckets {
            out.push(format!(
                "restore bucket {}/{} into {}: upload {} objects ({} bytes), skip {}, overwrite {}",
                b.source, b.bucket, b.target, b.objects, b.bytes, b.skipped, b.overwritten
            ));
        }
        if let Some(k) = &self.kubernetes {
            for step in &k.steps {
                if matches!(
                    step.action,
                    kubernetes::Action::Create | kubernetes::Action::Update
                ) {
                    out.push(format!("{} {}", step.action.as_str(), step.object));
                }
            }
        }
        out
    }
}
