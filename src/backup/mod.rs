//! Backup: gather the configured sources into one snapshot request.

pub mod buckets;
pub mod crosscheck;
pub mod databases;
pub mod downloads;
pub mod kubernetes;
