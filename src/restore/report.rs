//! What a restore did, or on a dry run would do: one entry per database, bucket and object.

use serde::Serialize;

use super::{buckets, kubernetes};
use crate::engines::RestoreReport;

/// The result of [`super::run`], as the CLI prints it.
#[derive(Serialize)]
pub struct Report {
    pub snapshot: String,
    pub dry_run: bool,
    pub databases: Vec<RestoreReport>,
    pub buckets: Vec<buckets::BucketReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<kubernetes::Report>,
    pub warnings: Vec<String>,
}
