//! kfguard: backup, restore and runbooks for Kubeflow clusters.

pub mod backup;
pub mod buckets;
pub mod cli;
pub mod commands;
pub mod config;
pub mod discover;
pub mod drift;
pub mod engines;
pub mod interrupt;
pub mod kube;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod progress;
pub mod redact;
pub mod repo;
pub mod restore;
pub mod runbook;
pub mod snapshot;
pub mod sources;
pub mod support;

/// How a command ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Done, but something needs attention (exit code 3).
    Warnings(Vec<String>),
}

/// Marks an error as the user's to fix (exit code 2): a bad flag or config, or asking for what
/// the snapshot or the config does not hold. It is put on where that is known; the error
/// inside keeps its type, its message and its causes.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Usage(pub anyhow::Error);

impl Usage {
    pub fn new(err: impl Into<anyhow::Error>) -> Self {
        Self(err.into())
    }

    /// A command line that parses but makes no sense, e.g. a missing retention policy.
    pub fn msg(message: impl Into<String>) -> Self {
        Self(anyhow::Error::msg(message.into()))
    }

    /// `err` as an `anyhow::Error`, marked as the user's when `is_usage` says so.
    pub fn mark_if<E>(err: E, is_usage: impl FnOnce(&E) -> bool) -> anyhow::Error
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        if is_usage(&err) {
            Self::new(err).into()
        } else {
            err.into()
        }
    }
}

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

/// The exit code a command's result ends the process with: 0 or 3 when it finished (130/143
/// when a signal came after its end), else that of its error.
pub fn result_code(result: &anyhow::Result<Outcome>) -> i32 {
    match (result, interrupt::requested()) {
        (Ok(_), Some(sig)) => sig.exit_code(),
        (Ok(Outcome::Ok), None) => exit::OK,
        (Ok(Outcome::Warnings(_)), None) => exit::WARNINGS,
        (Err(err), sig) => sig.map_or_else(|| exit_code(err), interrupt::Signal::exit_code),
    }
}

/// Maps an error to its exit code: a stop by a signal is 128 + its number (130, 143),
/// problems of usage or configuration (marked [`Usage`]) are 2, the rest 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(i) = cause.downcast_ref::<interrupt::Interrupted>() {
            return i.signal.exit_code();
        }
        if cause.is::<Usage>() {
            return exit::USAGE;
        }
    }
    exit::FAILURE
}
