//! Prometheus metrics of a backup, restore or runbook run: the numbers taken from its report
//! (`Run`), encoded with `prometheus-client` (`encode.rs`), written as a textfile for
//! node-exporter (`textfile.rs`) and pushed to a Pushgateway (`push.rs`). A run that failed
//! keeps the last success it did not replace (`previous.rs`).
//!
//! The families and labels are those of `deploy/monitoring`'s alerts and dashboard; every
//! family is a gauge holding the last run's state.

mod encode;
mod previous;
mod push;
mod textfile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use encode::encode;
pub use previous::LastSuccess;
pub use push::Pushgateway;

use crate::runbook::{self, Ran, Severity, StepRecord};
use crate::{backup, exit, restore};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot write the metrics file {path}: {source}; check that its folder exists and is writable")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `url` is redacted.
    #[error("cannot push the metrics to the Pushgateway {url}: {detail}; check --pushgateway and that the Pushgateway is reachable")]
    Push { url: String, detail: String },
    #[error("--pushgateway: {0}")]
    BadUrl(String),
}

impl MetricsError {
    /// A URL the user gave that makes no sense (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::BadUrl(_))
    }
}

/// What a run was: the `operation` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Backup,
    Restore,
    Runbook,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Runbook => "runbook",
        }
    }
}

/// When a run ended and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ended: SystemTime,
    pub duration: Duration,
}

impl Timing {
    /// A run that began at `started` and ends now.
    pub fn since(started: std::time::Instant) -> Self {
        Self {
            ended: SystemTime::now(),
            duration: started.elapsed(),
        }
    }
}

/// One run's numbers: the samples of one (`operation`, `runbook`).
#[derive(Debug, Clone)]
pub struct Run {
    pub operation: Operation,
    /// The runbook's name (its file stem), for runbook runs.
    pub runbook: Option<String>,
    pub timing: Timing,
    /// 0, 1, 2 or 3 (130/143 after a signal).
    pub exit_code: i32,
    pub read_bytes: Option<u64>,
    pub added_bytes: Option<u64>,
    pub stored_bytes: Option<u64>,
    /// Objects per component (`bucket:SRC/BUCKET`, `kubernetes`).
    pub objects: BTreeMap<String, u64>,
    /// Rows per database (`SRC/DB`, as the snapshot names it).
    pub rows: BTreeMap<String, u64>,
    pub dangling: Option<u64>,
    /// Findings per (severity, code), for runbook runs.
    pub findings: BTreeMap<(Severity, String), u64>,
    /// Whether each component ended well: `database:SRC/DB`, `bucket:SRC/BUCKET`,
    /// `kubernetes`, and `step:NAME` for runbooks.
    pub components: BTreeMap<String, bool>,
}

impl Run {
    fn new(operation: Operation, timing: Timing, exit_code: i32) -> Self {
        Self::bare(operation, None, timing, exit_code)
    }

    /// A run known only by its outcome: one that failed before it had a report.
    pub fn bare(
        operation: Operation,
        runbook: Option<String>,
        timing: Timing,
        exit_code: i32,
    ) -> Self {
        Self {
            operation,
            runbook,
            timing,
            exit_code,
            read_bytes: None,
            added_bytes: None,
            stored_bytes: None,
            objects: BTreeMap::new(),
            rows: BTreeMap::new(),
            dangling: None,
            findings: BTreeMap::new(),
            components: BTreeMap::new(),
        }
    }

    /// Exit codes 0 and 3 (done, with warnings) are a success.
    pub fn succeeded(&self) -> bool {
        matches!(self.exit_code, exit::OK | exit::WARNINGS)
    }

    /// A backup: its report when it ran to its end, `None` when it failed (then only the run's
    /// outcome is known, not which source broke).
    pub fn backup(report: Option<&backup::Report>, timing: Timing, exit_code: i32) -> Self {
        let mut run = Self::new(Operation::Backup, timing, exit_code);
        let Some(r) = report else {
            return run;
        };
        let w = &r.written;
        // rustic_core counts every file of the snapshot as processed, objects it reused
        // unchanged from the parent included: that is the snapshot's size, and the most the
        // backup read from its sources.
        run.read_bytes = Some(w.bytes_processed);
        run.added_bytes = Some(w.bytes_added);
        run.stored_bytes = Some(w.bytes_processed);
        let m = &w.manifest;
        for db in &m.databases {
            let name = format!("{}/{}", db.source, db.database);
            run.rows
                .insert(name.clone(), db.tables.iter().map(|t| t.rows).sum());
            run.components.insert(format!("database:{name}"), true);
        }
        for b in &m.buckets {
            let name = format!("bucket:{}/{}", b.source, b.bucket);
            run.objects.insert(name.clone(), b.objects);
            run.components.insert(name, true);
        }
        if !m.kubernetes.is_empty() {
            run.objects
                .insert("kubernetes".into(), m.kubernetes.values().sum());
            run.components.insert("kubernetes".into(), true);
        }
        run.dangling = m.crosscheck.as_ref().map(|c| c.dangling);
        run
    }

    /// A restore: its report when it ran to its end, `None` when it failed.
    pub fn restore(report: Option<&restore::Report>, timing: Timing, exit_code: i32) -> Self {
        let mut run = Self::new(Operation::Restore, timing, exit_code);
        if let Some(r) = report {
            run.add_restore(r);
        }
        run
    }

    fn add_restore(&mut self, r: &restore::Report) {
        for db in &r.databases {
            // Named as the snapshot names it, whatever `--into` restored it as.
            let name = format!("{}/{}", db.source, db.database);
            *self.rows.entry(name.clone()).or_default() +=
                db.tables.iter().map(|t| t.rows).sum::<u64>();
            self.components.insert(format!("database:{name}"), true);
        }
        let mut read = self.read_bytes.unwrap_or(0);
        for b in &r.buckets {
            let name = format!("bucket:{}/{}", b.source, b.bucket);
            *self.objects.entry(name.clone()).or_default() += b.objects;
            read += b.bytes;
            self.components.insert(name, true);
        }
        // The bytes of the objects restored: the repository reads of databases are not
        // counted by the restore.
        self.read_bytes = Some(read);
        if let Some(k) = &r.kubernetes {
            let applied: u64 = ["create", "update", "unchanged"]
                .iter()
                .filter_map(|a| k.counts.get(*a))
                .sum();
            *self.objects.entry("kubernetes".into()).or_default() += applied;
            let ok = k.steps.iter().all(|s| s.error.is_none());
            let entry = self.components.entry("kubernetes".into()).or_insert(true);
            *entry &= ok;
        }
    }

    /// A runbook run, then the backups and restores its host calls made, as their own
    /// `operation="backup"` and `"restore"` runs: several restores (one per database of
    /// the nightly restore test) add up into one.
    pub fn runbook(report: &runbook::Report, timing: Timing, exit_code: i32) -> Vec<Self> {
        let mut run = Self::new(Operation::Runbook, timing, exit_code);
        run.runbook = Some(runbook_name(&report.runbook));
        for step in &report.steps {
            run.components
                .insert(format!("step:{}", step.name), step_ok(step));
        }
        for f in report.findings() {
            *run.findings
                .entry((f.severity, f.code.clone()))
                .or_default() += 1;
        }
        let mut runs = vec![run];
        let mut backup: Option<Self> = None;
        let mut restored: Option<Self> = None;
        for op in &report.operations {
            let timing = Timing {
                ended: op.ended,
                duration: op.duration,
            };
            match &op.result {
                // A later backup of the same run replaces an earlier one: the gauges hold the
                // last state.
                Ran::Backup(r) => {
                    backup = Some(Self::backup(r.as_deref(), timing, code_of(r.is_some())));
                }
                Ran::Restore(r) => {
                    let one = Self::restore(r.as_deref(), timing, code_of(r.is_some()));
                    restored = Some(match restored {
                        None => one,
                        Some(sum) => sum.merge(one),
                    });
                }
            }
        }
        runs.extend(backup);
        runs.extend(restored);
        runs
    }

    /// Two runs of one operation as one: the later end, the summed time and counts, the worse
    /// exit code.
    fn merge(mut self, other: Self) -> Self {
        self.timing.ended = self.timing.ended.max(other.timing.ended);
        self.timing.duration += other.timing.duration;
        if !other.succeeded() || (self.succeeded() && other.exit_code == exit::WARNINGS) {
            self.exit_code = other.exit_code;
        }
        let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        self.read_bytes = add(self.read_bytes, other.read_bytes);
        self.added_bytes = add(self.added_bytes, other.added_bytes);
        self.stored_bytes = add(self.stored_bytes, other.stored_bytes);
        self.dangling = add(self.dangling, other.dangling);
        for (k, v) in other.objects {
            *self.objects.entry(k).or_default() += v;
        }
        for (k, v) in other.rows {
            *self.rows.entry(k).or_default() += v;
        }
        for (k, v) in other.findings {
            *self.findings.entry(k).or_default() += v;
        }
        for (k, ok) in other.components {
            *self.components.entry(k).or_insert(true) &= ok;
        }
        self
    }
}

/// A step counts as a success when it ran and did not fail; one skipped because an earlier
/// step failed did not do its work.
fn step_ok(step: &StepRecord) -> bool {
    matches!(
        step.outcome,
        runbook::Outcome::Ok | runbook::Outcome::Warning
    )
}

/// A host call's backup or restore ended well (0) or threw (1).
fn code_of(ok: bool) -> i32 {
    if ok {
        exit::OK
    } else {
        exit::FAILURE
    }
}

/// `runbooks/nightly.rhai` is `nightly`: the name `runbook run` takes and the alerts use.
pub fn runbook_name(path: &str) -> String {
    Path::new(path)
        .file_stem()
        .map_or_else(|| path.to_string(), |s| s.to_string_lossy().into_owned())
}

/// The runs of one command, for one cluster: what one textfile or one push holds.
#[derive(Debug, Clone)]
pub struct Export {
    pub cluster: String,
    pub runs: Vec<Run>,
}

impl Export {
    /// The Pushgateway job: `kfguard-<operation>[-<runbook>]`, from the command's own run
    /// (the first).
    pub fn job(&self) -> String {
        match self.runs.first() {
            Some(r) => match &r.runbook {
                Some(name) => format!("kfguard-{}-{name}", r.operation.as_str()),
                None => format!("kfguard-{}", r.operation.as_str()),
            },
            None => "kfguard".into(),
        }
    }

    /// Whether every run ended 0 or 3: then no last success needs keeping.
    pub fn all_succeeded(&self) -> bool {
        self.runs.iter().all(Run::succeeded)
    }
}

/// Where the metrics go; either or both.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub file: Option<PathBuf>,
    pub pushgateway: Option<Pushgateway>,
}

impl Targets {
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.pushgateway.is_none()
    }

    /// Writes the file and pushes, each on its own: one failing does not stop the other.
    /// Returns the failures, each a one-line message (secrets redacted), for the caller to
    /// report as warnings.
    pub fn write(&self, export: &Export, rt: &tokio::runtime::Handle) -> Vec<MetricsError> {
        let mut failures = Vec::new();
        if let Some(path) = &self.file {
            if let Err(e) = textfile::write(path, export) {
                failures.push(e);
            }
        }
        if let Some(gw) = &self.pushgateway {
            if let Err(e) = rt.block_on(gw.push(export)) {
                failures.push(e);
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runbook_path_is_named_by_its_stem() {
        assert_eq!(runbook_name("runbooks/nightly.rhai"), "nightly");
        assert_eq!(runbook_name("verify-health"), "verify-health");
    }

    #[test]
    fn merged_runs_keep_the_worse_exit_code_and_add_up() {
        let t = Timing {
            ended: SystemTime::UNIX_EPOCH + Duration::from_secs(10),
            duration: Duration::from_secs(2),
        };
        let mut a = Run::new(Operation::Restore, t, exit::OK);
        a.rows.insert("kfp/a".into(), 5);
        a.components.insert("database:kfp/a".into(), true);
        let mut b = Run::new(Operation::Restore, t, exit::FAILURE);
        b.rows.insert("kfp/b".into(), 7);
        let m = a.merge(b);
        assert_eq!(m.exit_code, exit::FAILURE);
        assert_eq!(m.timing.duration, Duration::from_secs(4));
        assert_eq!(m.rows.values().sum::<u64>(), 12);
        assert!(!m.succeeded());
    }
}
