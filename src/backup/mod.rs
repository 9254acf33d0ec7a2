//! Backup: gather the configured sources into one snapshot request.

pub mod buckets;
pub mod crosscheck;
pub mod databases;
pub mod kubernetes;
pub mod merge;
mod plan;
mod report;
mod run;

pub use merge::MergePlan;
pub use plan::{Plan, ShardPlan, DEFAULT_JOBS, DEFAULT_TRANSFERS};
pub use report::Report;
pub use run::run;
