//! `[runbooks]`: where runbooks and their run journals live, and the sandbox's limits.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunbooksConfig {
    /// The team's runbooks; `kfguard runbook run NAME` looks here, then in the shipped ones.
    pub dir: PathBuf,
    /// One folder per run, holding its journal: `<state_dir>/<RUN_ID>/journal.jsonl`.
    pub state_dir: PathBuf,
    /// `[runbooks.limits]`.
    pub limits: RunbookLimits,
}

impl Default for RunbooksConfig {
    fn default() -> Self {
        Self {
            dir: "./runbooks".into(),
            state_dir: "./.kfguard/runs".into(),
            limits: RunbookLimits::default(),
        }
    }
}

/// The sandbox's limits. rhai's own defaults leave sizes and operations unlimited, so a runbook
/// with a runaway loop or string would otherwise hold the run, or the pod's memory, forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunbookLimits {
    pub max_operations: u64,
    pub max_call_depth: usize,
    pub max_expr_depth: usize,
    /// Bytes.
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    pub max_variables: usize,
    pub max_functions: usize,
    pub max_modules: usize,
}

impl Default for RunbookLimits {
    fn default() -> Self {
        Self {
            max_operations: 50_000_000,
            max_call_depth: 64,
            max_expr_depth: 64,
            max_string_size: 16 << 20,
            max_array_size: 1_000_000,
            max_map_size: 1_000_000,
            max_variables: 10_000,
            max_functions: 10_000,
            max_modules: 64,
        }
    }
}
