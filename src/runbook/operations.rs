//! The backups and restores a run's host calls made (`backup::run`, `restore::databases`, …),
//! kept beside the steps so that the run's metrics count them as `kfguard backup` and
//! `kfguard restore` count theirs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::{backup, restore};

/// One backup or restore a host call ran to its end, or that failed.
#[derive(Debug, Clone)]
pub struct Operation {
    pub ended: SystemTime,
    pub duration: Duration,
    pub result: Ran,
}

/// What the call returned: its report, or `None` when it failed.
#[derive(Debug, Clone)]
pub enum Ran {
    Backup(Option<Arc<backup::Report>>),
    Restore(Option<Arc<restore::Report>>),
}
