//! The integration suite, one test binary: each module is one area of kfguard, driven as a user would
//! (the CLI binary, the real databases, a real S3 server and the stand-in Kubernetes API server).
//! One binary instead of one per area keeps link time, the longest step of a cold build, down.

mod common;

mod archive;
mod buckets;
mod cli;
mod crosscheck;
mod databases;
mod deploy;
mod discover;
mod drift;
mod kubernetes;
mod metrics;
mod mysql_engine;
mod postgres_engine;
mod repository;
mod restic_interop;
mod runbook_cluster;
mod runbook_data;
mod runbook_health;
mod runbook_html;
mod runbook_ops;
mod runbook_reports;
mod runbook_restore;
mod runbook_tenancy;
mod runbooks;
mod s3;
mod shards;
mod support_bundle;
