//! Runbooks: Rhai scripts of named steps, run sandboxed, journaled and resumable.
//!
//! `run(Plan) -> Report` is the engine: it compiles the script once (`sandbox.rs`), checks the
//! parameters against what the script declares (`lint.rs`), and runs it on a thread of its own
//! so that host functions may block on the tokio runtime without stalling a worker. Each
//! `step(...)` the script calls is run, retried and timed by `steps.rs` and written to the
//! journal (`journal.rs`); `finally(...)` steps run at the end whatever happened before. The
//! report it returns is what `--report` writes as JSON, `--junit` as JUnit XML (`junit.rs`) and
//! `--report-html` as the drill report's page (`html.rs`).

mod api;
mod host;
mod html;
mod journal;
mod junit;
mod lint;
mod operations;
mod prompt;
mod sandbox;
mod steps;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use api::{reference, ApiFormat};
pub use host::HostContext;
pub use html::html;
pub use journal::{list_runs, parse_run, PastRun, RunSummary, JOURNAL_FILE, SIDE_RUNS};
pub use junit::junit;
pub use lint::{check, CheckReport};
pub use operations::{Operation as HostOperation, Ran};
pub use sandbox::Limits;
pub use steps::{Finding, Outcome, Severity, StepRecord};

/// Errors of the engine itself; a failing step is not one: it is a step outcome in the report.
#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    #[error("cannot read runbook {path}: {source}; check the name with `kfguard runbook list`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Compile(String),
    #[error("{0}")]
    Param(String),
    #[error("{0}")]
    Resume(String),
    #[error("cannot write the run journal in {path}: {source}; check [runbooks] state_dir")]
    Journal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the runbook thread died: {0}")]
    Thread(String),
}

impl RunbookError {
    /// Whether the mistake is the caller's (exit 2): a script that does not compile, a bad
    /// parameter, a refused resume.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Read { .. } | Self::Compile(_) | Self::Param(_) | Self::Resume(_)
        )
    }
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Plan {
    pub file: PathBuf,
    /// `--set k=v`, checked against the script's `param(...)` declarations.
    pub params: BTreeMap<String, String>,
    pub dry_run: bool,
    /// `--yes`: `confirm(...)` passes without asking.
    pub yes: bool,
    /// Ask on the terminal when `confirm(...)` is called and `yes` is not set.
    pub interactive: bool,
    pub resume: Option<String>,
    /// With `resume`: go on although the script changed since the run began.
    pub force: bool,
    pub timeout: Option<Duration>,
    pub state_dir: PathBuf,
    pub limits: Limits,
    /// What the host modules reach: the config and the runtime.
    pub host: HostContext,
    /// Secret values the config names (passwords and keys, read from their files and
    /// variables): redacted like the values of variables and parameters named as secrets.
    pub secrets: Vec<String>,
}

/// The whole run, as `--report` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run_id: String,
    pub runbook: String,
    pub dry_run: bool,
    /// When this run began (a resumption: when it resumed), RFC 3339 in UTC.
    pub started: String,
    pub steps: Vec<StepRecord>,
    /// Script-level messages outside any step (`print`, `info` at the top level).
    pub messages: Vec<String>,
    /// A script error outside any step, with `file:line:col`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    /// The backups and restores the run's host calls made, for the metrics; `--report` has
    /// them already in the steps' outputs.
    #[serde(skip)]
    pub operations: Vec<HostOperation>,
}

impl Report {
    /// The report of a run that never began: a runbook that does not compile, a bad parameter,
    /// a refused resume. Its one failure is the error.
    pub fn not_run(plan: &Plan, error: &RunbookError) -> Self {
        Self {
            run_id: plan.resume.clone().unwrap_or_default(),
            runbook: plan.file.display().to_string(),
            dry_run: plan.dry_run,
            started: rustic_core::jiff::Timestamp::now().to_string(),
            steps: Vec::new(),
            messages: Vec::new(),
            error: Some(journal::redactor_for(plan).text(&error.to_string())),
            duration_ms: 0,
            operations: Vec::new(),
        }
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.steps.iter().flat_map(|s| s.findings.iter())
    }

    /// The worst outcome of the run: failed if any step failed or the script broke off.
    pub fn outcome(&self) -> Outcome {
        if self.error.is_some() {
            return Outcome::Failed;
        }
        self.steps
            .iter()
            .map(|s| s.outcome)
            .max()
            .unwrap_or(Outcome::Ok)
    }
}

/// Runs a runbook to its end and returns what every step did.
pub fn run(plan: &Plan) -> Result<Report, RunbookError> {
    start(plan)?.finish()
}

/// A run that has begun: its id is known, its steps are running on their own thread.
pub struct Started {
    pub run_id: String,
    thread: std::thread::JoinHandle<Report>,
}

impl Started {
    /// Waits for the run's end.
    pub fn finish(self) -> Result<Report, RunbookError> {
        self.thread
            .join()
            .map_err(|_| RunbookError::Thread("it panicked".into()))
    }
}

/// Compiles the runbook, checks its parameters, opens the journal and starts the run.
pub fn start(plan: &Plan) -> Result<Started, RunbookError> {
    let source = read(&plan.file)?;
    let compiled = sandbox::compile(&plan.file, &source, &plan.limits)?;
    let declared = lint::params(&compiled.ast);
    if let Some(unknown) = plan.params.keys().find(|k| !declared.contains_key(*k)) {
        let known = declared.keys().cloned().collect::<Vec<_>>().join(", ");
        return Err(RunbookError::Param(format!(
            "unknown parameter `{unknown}` for runbook {}; it takes: {}",
            plan.file.display(),
            if known.is_empty() { "none" } else { &known }
        )));
    }
    let journal = journal::Journal::open(plan, &source)?;
    let run_id = journal.run_id.clone();
    let plan = plan.clone();
    // The engine blocks on host calls; a thread of its own keeps that off the tokio workers.
    let thread = std::thread::Builder::new()
        .name("runbook".into())
        .spawn(move || steps::execute(compiled, plan, journal))
        .map_err(|e| RunbookError::Thread(e.to_string()))?;
    Ok(Started { run_id, thread })
}

fn read(path: &Path) -> Result<String, RunbookError> {
    std::fs::read_to_string(path).map_err(|source| RunbookError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Finds a runbook by name in the runbook folders, or takes a path as it is.
pub fn resolve(name: &str, dirs: &[PathBuf]) -> PathBuf {
    let as_path = Path::new(name);
    if as_path.extension().is_some() || name.contains('/') {
        return as_path.to_path_buf();
    }
    dirs.iter()
        .map(|d| d.join(format!("{name}.rhai")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| as_path.with_extension("rhai"))
}

/// A runbook found in a folder, with the first line of its header comment.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    pub path: PathBuf,
    pub description: String,
}

/// The runbooks in `dirs`, by name; the first folder wins on a name clash.
pub fn list(dirs: &[PathBuf]) -> Vec<Listed> {
    let mut found = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "rhai") {
                continue;
            }
            let Some(name) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            let description = std::fs::read_to_string(&path)
                .map(|s| description(&s))
                .unwrap_or_default();
            found.entry(name.clone()).or_insert(Listed {
                name,
                path,
                description,
            });
        }
    }
    found.into_values().collect()
}

/// The first non-empty line of the leading `//` comment block.
fn description(source: &str) -> String {
    source
        .lines()
        .map_while(|l| l.trim_start().strip_prefix("//"))
        .map(|l| l.trim_start_matches('/').trim())
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_is_the_first_line_of_the_header_comment() {
        let src =
            "//\n// verify-health: checks what breaks Kubeflow.\n// More.\nstep(\"a\", || {});";
        assert_eq!(
            description(src),
            "verify-health: checks what breaks Kubeflow."
        );
        assert_eq!(description("let x = 1;"), "");
    }
}
