//! What the bundle reads of kfguard's own state: the journals of the last runbook runs, from
//! `[runbooks] state_dir` and from beside an S3 repository (where a pod's run outlives its
//! `emptyDir`), and the findings of the last verify-health run among them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::config::Config;
use crate::repo::Location;
use crate::runbook::{self, Finding, PastRun};

/// A past run with its journal's text.
pub(super) struct Run {
    pub past: PastRun,
    pub journal: String,
    /// `state_dir`, or the repository it was found beside.
    pub from: String,
}

/// The journals of `state_dir`, and those beside the repository that are not there, oldest
/// first; the errors of the places that could not be read.
pub(super) fn runs(config: &Config, rt: &tokio::runtime::Handle) -> (Vec<Run>, Vec<String>) {
    let state_dir = &config.runbooks.state_dir;
    let mut found: BTreeMap<String, Run> = BTreeMap::new();
    let mut errors = Vec::new();
    if let Ok(entries) = std::fs::read_dir(state_dir) {
        for e in entries.flatten() {
            let path = e.path().join(runbook::JOURNAL_FILE);
            if let Some(run) = read_local(&path, state_dir) {
                found.insert(run.past.summary.run_id.clone(), run);
            }
        }
    }
    if config.repository.url.starts_with("s3:") {
        match remote_runs(config, rt, &found) {
            Ok(runs) => {
                for run in runs {
                    found.insert(run.past.summary.run_id.clone(), run);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let mut runs: Vec<Run> = found.into_values().collect();
    runs.sort_by(|a, b| {
        let (a, b) = (&a.past.summary, &b.past.summary);
        a.started.cmp(&b.started).then(a.run_id.cmp(&b.run_id))
    });
    (runs, errors)
}

fn read_local(path: &Path, state_dir: &Path) -> Option<Run> {
    let journal = std::fs::read_to_string(path).ok()?;
    let past = runbook::parse_run(&journal)?;
    Some(Run {
        past,
        journal,
        from: state_dir.display().to_string(),
    })
}

/// The journals beside an S3 repository whose runs `state_dir` does not have.
fn remote_runs(
    config: &Config,
    rt: &tokio::runtime::Handle,
    local: &BTreeMap<String, Run>,
) -> Result<Vec<Run>, String> {
    let location = Location::resolve(&config.repository, rt).map_err(|e| e.to_string())?;
    let Some(side) = location.side_files() else {
        return Ok(Vec::new());
    };
    let keys = side.list(runbook::SIDE_RUNS).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for key in keys {
        let Some(id) = key
            .strip_prefix(runbook::SIDE_RUNS)
            .and_then(|rest| rest.strip_suffix(&format!("/{}", runbook::JOURNAL_FILE)))
        else {
            continue;
        };
        if local.contains_key(id) {
            continue;
        }
        let Some(body) = side.get(&key).map_err(|e| e.to_string())? else {
            continue;
        };
        let journal = String::from_utf8_lossy(&body).into_owned();
        if let Some(past) = runbook::parse_run(&journal) {
            out.push(Run {
                past,
                journal,
                from: location.display.clone(),
            });
        }
    }
    Ok(out)
}

/// The last verify-health run's findings, as `verify-health.json` holds them.
#[derive(Debug, Serialize)]
pub(super) struct Health<'a> {
    pub run_id: &'a str,
    pub started: &'a str,
    pub state: &'a str,
    pub findings: Vec<&'a Finding>,
}

/// The newest run of a runbook named verify-health.
pub(super) fn last_health(runs: &[Run]) -> Option<Health<'_>> {
    let run = runs.iter().rev().find(|r| {
        Path::new(&r.past.summary.runbook)
            .file_stem()
            .is_some_and(|s| s == "verify-health")
    })?;
    let s = &run.past.summary;
    Some(Health {
        run_id: &s.run_id,
        started: &s.started,
        state: &s.state,
        findings: run.past.steps.iter().flat_map(|st| &st.findings).collect(),
    })
}

/// A run as a person reads it: each step's outcome, error and findings.
pub(super) fn run_text(run: &Run) -> String {
    let s = &run.past.summary;
    let mut out = format!(
        "run {} of {}\nstarted {}, {} ({} step records), from {}\n\n",
        s.run_id, s.runbook, s.started, s.state, s.steps, run.from
    );
    for step in &run.past.steps {
        out.push_str(&format!(
            "{} {} ({:.1}s, {} attempt{})\n",
            step.outcome.symbol(),
            step.name,
            step.duration_ms as f64 / 1000.0,
            step.attempts,
            if step.attempts == 1 { "" } else { "s" }
        ));
        if let Some(e) = &step.error {
            out.push_str(&format!("    error: {e}\n"));
        }
        for m in &step.messages {
            out.push_str(&format!("    {m}\n"));
        }
        for f in &step.findings {
            out.push_str(&format!("    {f}\n"));
        }
    }
    out
}
