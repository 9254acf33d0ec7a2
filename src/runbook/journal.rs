//! The run journal: JSON lines under `<state_dir>/<RUN_ID>/journal.jsonl`, one per step, with
//! secrets redacted (by `crate::redact`); what `--resume` and `kfguard runbook runs` read back.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::steps::{Outcome, StepRecord};
use super::{Plan, Report, RunbookError};
use crate::redact::{is_secret_name, Redactor, HIDDEN};
use crate::repo::{Location, SideFiles};

const JOURNAL: &str = "journal.jsonl";

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Line {
    Start {
        run_id: String,
        runbook: String,
        script_sha256: String,
        params: BTreeMap<String, String>,
        params_hash: String,
        dry_run: bool,
        started: String,
    },
    Resume {
        at: String,
        forced: bool,
    },
    Step(StepRecord),
    End {
        outcome: Outcome,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

pub(super) struct Journal {
    pub run_id: String,
    pub params_hash: String,
    /// The parameters in effect: those of the run being resumed when none are given.
    pub params: BTreeMap<String, String>,
    path: PathBuf,
    file: Option<File>,
    done: HashMap<String, StepRecord>,
    /// Built once from the environment and parameters, and shared with the run's steps.
    pub(super) redactor: Redactor,
    /// The copy beside a remote repository, which outlives the pod and its `emptyDir`.
    mirror: Option<SideFiles>,
}

/// Where a run's journal is kept beside the repository, under its prefix.
fn side_path(run_id: &str) -> String {
    format!("{SIDE_RUNS}{run_id}/{JOURNAL}")
}

/// The repository's side files when it is remote; a journal that cannot be mirrored is still
/// kept locally, with a warning.
fn mirror_for(plan: &Plan) -> Option<SideFiles> {
    let rt = plan.host.rt.as_ref()?;
    let repo = &plan.host.config.repository;
    if !repo.url.starts_with("s3:") {
        return None;
    }
    match Location::resolve(repo, rt) {
        Ok(location) => location.side_files(),
        Err(e) => {
            tracing::warn!(
                "the run journal is kept only in {}: {e}",
                plan.state_dir.display()
            );
            None
        }
    }
}

impl Journal {
    /// Starts a new run's journal, or reopens the one `plan.resume` names.
    pub(super) fn open(plan: &Plan, source: &str) -> Result<Self, RunbookError> {
        let hash = hex::encode(Sha256::digest(source.as_bytes()));
        let redactor = redactor_for(plan);
        let mirror = mirror_for(plan);
        let now = rustic_core::jiff::Timestamp::now();
        let (run_id, params, done, lines) = match &plan.resume {
            None => {
                let id = format!("{}-{}", now.strftime("%Y%m%dT%H%M%SZ"), short_random());
                let line = Line::Start {
                    run_id: id.clone(),
                    runbook: plan.file.display().to_string(),
                    script_sha256: hash.clone(),
                    params: redact_params(&redactor, &plan.params),
                    params_hash: params_hash(&plan.params),
                    dry_run: plan.dry_run,
                    started: now.to_string(),
                };
                (id, plan.params.clone(), HashMap::new(), vec![line])
            }
            Some(id) => {
                fetch_if_missing(&plan.state_dir, id, mirror.as_ref())?;
                let (start, done) = read(&plan.state_dir, id)?;
                let Line::Start {
                    script_sha256,
                    params,
                    ..
                } = start
                else {
                    unreachable!("read returns the start line");
                };
                if script_sha256 != hash && !plan.force {
                    return Err(RunbookError::Resume(format!(
                        "run {id} began with another version of {}; pass --force to resume it anyway, or start a new run",
                        plan.file.display()
                    )));
                }
                // The journal keeps secret parameters redacted: they must be given again.
                let mut effective = params;
                effective.extend(plan.params.clone());
                if let Some((k, _)) = effective.iter().find(|(_, v)| v.as_str() == HIDDEN) {
                    return Err(RunbookError::Resume(format!(
                        "run {id} was started with the secret parameter `{k}`, which the journal does not keep; give it again with --set {k}=..."
                    )));
                }
                let line = Line::Resume {
                    at: now.to_string(),
                    forced: script_sha256 != hash,
                };
                (id.clone(), effective, done, vec![line])
            }
        };
        let dir = plan.state_dir.join(&run_id);
        let path = dir.join(JOURNAL);
        let journal_error = |source| RunbookError::Journal {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(journal_error)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(journal_error)?;
        let mut journal = Self {
            run_id,
            params_hash: params_hash(&params),
            params,
            path,
            file: Some(file),
            done,
            redactor,
            mirror,
        };
        for line in lines {
            journal.write(&line);
        }
        Ok(journal)
    }

    /// A journal that writes nothing, for an engine that only lists the API.
    pub(super) fn disabled() -> Self {
        Self {
            run_id: String::new(),
            params_hash: String::new(),
            params: BTreeMap::new(),
            path: PathBuf::new(),
            file: None,
            done: HashMap::new(),
            redactor: Redactor::default(),
            mirror: None,
        }
    }

    /// The steps of the resumed run that ended ok, by key.
    pub(super) fn take_done_steps(&mut self) -> HashMap<String, StepRecord> {
        std::mem::take(&mut self.done)
    }

    pub(super) fn step(&mut self, record: &StepRecord) {
        self.write(&Line::Step(record.clone()));
    }

    pub(super) fn end(&mut self, report: &Report) {
        self.write(&Line::End {
            outcome: report.outcome(),
            duration_ms: report.duration_ms,
            error: report.error.clone(),
        });
    }

    /// A journal that cannot be written must not stop the run it records: warn once, go on.
    fn write(&mut self, line: &Line) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let mut text = serde_json::to_string(line).unwrap_or_default();
        text.push('\n');
        if let Err(e) = file.write_all(text.as_bytes()).and_then(|()| file.flush()) {
            tracing::warn!(
                "cannot write the run journal {}: {e}; the run goes on without it",
                self.path.display()
            );
            self.file = None;
            return;
        }
        self.push_mirror();
    }

    /// Copies the whole journal beside the repository: it is small, and a whole copy is never
    /// half-written.
    fn push_mirror(&mut self) {
        let Some(side) = &self.mirror else {
            return;
        };
        let result = std::fs::read(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|body| {
                side.put(&side_path(&self.run_id), body)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::warn!(
                "cannot copy the run journal to {}: {e}; it is kept in {} only",
                side.display,
                self.path.display()
            );
            self.mirror = None;
        }
    }
}

/// A run begun in another pod: its journal comes from beside the repository.
fn fetch_if_missing(
    state_dir: &Path,
    id: &str,
    mirror: Option<&SideFiles>,
) -> Result<(), RunbookError> {
    let path = state_dir.join(id).join(JOURNAL);
    let Some(side) = mirror.filter(|_| !path.exists()) else {
        return Ok(());
    };
    let body = side.get(&side_path(id)).map_err(|e| {
        RunbookError::Resume(format!("cannot read run {id} from {}: {e}", side.display))
    })?;
    if let Some(body) = body {
        let dir = state_dir.join(id);
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, body))
            .map_err(|source| RunbookError::Journal { path: dir, source })?;
    }
    Ok(())
}

/// The start line and the ok steps of a past run.
fn read(state_dir: &Path, id: &str) -> Result<(Line, HashMap<String, StepRecord>), RunbookError> {
    let path = state_dir.join(id).join(JOURNAL);
    let file = File::open(&path).map_err(|_| {
        RunbookError::Resume(format!(
            "no run {id} in {} (nor beside a remote repository); list the runs with `kfguard runbook runs`",
            state_dir.display()
        ))
    })?;
    let mut start = None;
    let mut done = HashMap::new();
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        // A line cut short by a pod that died mid-write is ignored, like the rest of it.
        match serde_json::from_str::<Line>(&line) {
            Ok(l @ Line::Start { .. }) if start.is_none() => start = Some(l),
            Ok(Line::Step(s)) if s.outcome == Outcome::Ok || s.outcome == Outcome::Warning => {
                done.insert(s.key.clone(), s);
            }
            Ok(Line::Step(s)) => {
                done.remove(&s.key);
            }
            _ => {}
        }
    }
    let start = start.ok_or_else(|| {
        RunbookError::Resume(format!(
            "{} has no start line; it cannot be resumed",
            path.display()
        ))
    })?;
    Ok((start, done))
}

/// A past run, as `kfguard runbook runs` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub runbook: String,
    pub started: String,
    /// ok, warning, failed, or unfinished when the journal has no end.
    pub state: String,
    pub steps: usize,
}

/// The runs in `state_dir`, oldest first.
pub fn list_runs(state_dir: &Path) -> Vec<RunSummary> {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    let mut runs: Vec<RunSummary> = entries
        .flatten()
        .filter_map(|e| summary(&e.path().join(JOURNAL)))
        .collect();
    runs.sort_by(|a, b| a.started.cmp(&b.started).then(a.run_id.cmp(&b.run_id)));
    runs
}

fn summary(path: &Path) -> Option<RunSummary> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_run(&text).map(|r| r.summary)
}

/// A past run as its journal tells it: the summary and the last record of each step.
#[derive(Debug, Clone, Serialize)]
pub struct PastRun {
    pub summary: RunSummary,
    pub steps: Vec<StepRecord>,
}

/// Reads a journal's text (from `state_dir` or beside the repository); `None` without a start
/// line.
pub fn parse_run(text: &str) -> Option<PastRun> {
    let mut run = None;
    let mut state = "unfinished".to_string();
    let mut count = 0;
    let mut steps: Vec<StepRecord> = Vec::new();
    for line in text.lines() {
        match serde_json::from_str::<Line>(line) {
            Ok(Line::Start {
                run_id,
                runbook,
                started,
                ..
            }) => run = Some((run_id, runbook, started)),
            Ok(Line::Step(step)) => {
                count += 1;
                // A resumed run records a step again: the later record is the one that holds.
                steps.retain(|s| s.key != step.key);
                steps.push(step);
            }
            Ok(Line::End { outcome, .. }) => {
                state = serde_json::to_value(outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
            }
            Ok(Line::Resume { .. }) => state = "unfinished".into(),
            Err(_) => {}
        }
    }
    let (run_id, runbook, started) = run?;
    Some(PastRun {
        summary: RunSummary {
            run_id,
            runbook,
            started,
            state,
            steps: count,
        },
        steps,
    })
}

/// Where the journals of past runs are kept beside a remote repository.
pub const SIDE_RUNS: &str = "kfguard/runs/";

/// The journal file name inside a run's folder.
pub const JOURNAL_FILE: &str = JOURNAL;

fn params_hash(params: &BTreeMap<String, String>) -> String {
    let text = serde_json::to_string(params).unwrap_or_default();
    hex::encode(&Sha256::digest(text.as_bytes())[..6])
}

fn short_random() -> String {
    let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    hex::encode(&Sha256::digest(seed.as_bytes())[..2])
}

/// The run's redactor: the values of environment variables and parameters whose names say
/// they are secrets, and the secrets the config names.
pub(super) fn redactor_for(plan: &Plan) -> Redactor {
    Redactor::from_env(plan.params.clone(), plan.secrets.iter().cloned())
}

/// The parameters as the journal keeps them: secret-named ones hidden, the rest redacted.
fn redact_params(r: &Redactor, params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_name(k) {
                HIDDEN.to_string()
            } else {
                r.text(v)
            };
            (k.clone(), v)
        })
        .collect()
}
