//! Restore: bring parts of a snapshot back, in dependency order, with a plan shown first on `--dry-run`.

pub mod buckets;
pub mod databases;
