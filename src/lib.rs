//! kfguard: backup, restore and runbooks for Kubeflow clusters.

pub mod backup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod discover;
pub mod drift;
pub mod engines;
pub mod interrupt;
pub mod kube;
pub mod logging;
pub mod output;
pub mod progress;
pub mod repo;
pub mod restore;
pub mod runbook;
pub mod snapshot;
pub mod sources;

/// How a command ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Done, but something needs attention (exit code 3).
    Warnings(Vec<String>),
}

/// A command line that parses but makes no sense, e.g. a missing retention policy.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Exit codes, as documented in README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const WARNINGS: i32 = 3;
}

/// Runs a parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<Outcome> {
    // Two TLS crypto providers are linked (the S3 and the Kubernetes clients bring one each);
    // rustls needs the process to pick one. An error only means one is already installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    commands::dispatch(cli)
}

/// Maps an error to its exit code: a stop by a signal is 128 + its number (130, 143),
/// problems of usage or configuration are 2, the rest 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(i) = cause.downcast_ref::<interrupt::Interrupted>() {
            return i.signal.exit_code();
        }
        if cause.downcast_ref::<config::ConfigError>().is_some()
            || cause.downcast_ref::<commands::UsageError>().is_some()
            || cause
                .downcast_ref::<sources::SourceError>()
                .is_some_and(sources::SourceError::is_usage)
            || cause
                .downcast_ref::<snapshot::writer::WriteError>()
                .is_some_and(|e| {
                    matches!(
                        e,
                        snapshot::writer::WriteError::BadTag(_)
                            | snapshot::writer::WriteError::ReservedTag(_)
                    )
                })
            || cause
                .downcast_ref::<repo::RepoError>()
                .is_some_and(repo::RepoError::is_usage)
            // Selecting what is not in the snapshot, or not in the config, is a usage error.
            || cause.downcast_ref::<restore::databases::SelectError>().is_some()
            || cause.downcast_ref::<restore::buckets::SelectError>().is_some()
            || cause
                .downcast_ref::<restore::kubernetes::RestoreError>()
                .is_some_and(restore::kubernetes::RestoreError::is_usage)
            || cause
                .downcast_ref::<crate::kube::KubeError>()
                .is_some_and(crate::kube::KubeError::is_usage)
        {
            return exit::USAGE;
        }
    }
    exit::FAILURE
}
