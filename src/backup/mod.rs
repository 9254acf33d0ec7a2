//! Backup: gather the configured sources into one snapshot request.

pub mod databases;
