//! Steps: running each `step(...)` with its retries, backoff and timeout, recording what it did,
//! skipping what a resumed run already did, and the `finally(...)` steps at the end.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rhai::{Dynamic, EvalAltResult, FnPtr, Map, NativeCallContext, Position};
use serde::{Deserialize, Serialize};

use super::host::{self, Host};
use super::journal::Journal;
use super::sandbox::{self, Compiled, Deadlines};
use super::{api, lint, Plan, Report};
use crate::redact::Redactor;

/// How a step ended. Ordered from best to worst, so the run's outcome is the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Skipped,
    Warning,
    Failed,
}

impl Outcome {
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Ok => "✓",
            Self::Skipped => "⏭",
            Self::Warning => "⚠",
            Self::Failed => "✗",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Self::Info),
            "warning" | "warn" => Some(Self::Warning),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// Something a check found: what verify-health and team checks return, and what reports and
/// metrics count. `code` is stable, e.g. `KF-PVC-PENDING`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub object: String,
    pub message: String,
    pub hint: String,
}

/// One line, as the text report, the support bundle and `runbook runs` print it.
impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {} {}: {} (try: {})",
            self.severity, self.code, self.object, self.message, self.hint
        )
    }
}

/// One step as the journal and the report keep it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    /// The step's name and a hash of the run's parameters: what `--resume` matches on.
    pub key: String,
    pub outcome: Outcome,
    /// When the step began, from the run's start: what the HTML report's timeline draws.
    #[serde(default)]
    pub started_ms: u64,
    pub duration_ms: u64,
    pub attempts: u32,
    #[serde(default)]
    pub messages: Vec<String>,
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Changes a dry run planned instead of making.
    #[serde(default)]
    pub planned: Vec<String>,
    /// What the step's function returned, handed to later steps on `--resume`.
    #[serde(default)]
    pub output: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Done in an earlier run of the same RUN_ID and not run again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub always: bool,
}

/// The options map of `step(name, #{ retries, backoff, timeout }, || ...)`.
#[derive(Debug, Clone, Default)]
pub(super) struct StepOptions {
    pub retries: u32,
    pub backoff: Duration,
    pub timeout: Option<Duration>,
    /// Run again on `--resume` although it ended ok: a step whose effect a `finally` undoes.
    pub rerun: bool,
}

impl StepOptions {
    pub(super) fn parse(map: &Map) -> Result<Self, String> {
        let mut o = Self {
            backoff: Duration::from_secs(1),
            ..Self::default()
        };
        for (k, v) in map {
            match k.as_str() {
                "retries" => {
                    o.retries = v
                        .as_int()
                        .ok()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or("`retries` must be a whole number, e.g. retries: 3")?;
                }
                "backoff" => o.backoff = duration(v, "backoff")?,
                "timeout" => o.timeout = Some(duration(v, "timeout")?),
                "rerun" => {
                    o.rerun = v
                        .as_bool()
                        .map_err(|_| "`rerun` must be true or false, e.g. rerun: true")?;
                }
                other => {
                    return Err(format!(
                    "unknown step option `{other}`; the options are retries, backoff, timeout and rerun"
                ))
                }
            }
        }
        Ok(o)
    }
}

fn duration(v: &Dynamic, key: &str) -> Result<Duration, String> {
    if let Ok(n) = v.as_int() {
        return u64::try_from(n)
            .map(Duration::from_secs)
            .map_err(|_| format!("`{key}` must not be negative"));
    }
    let s = v
        .clone()
        .into_string()
        .map_err(|_| format!("`{key}` must be a duration such as \"10s\" or \"15m\""))?;
    humantime::parse_duration(&s).map_err(|e| {
        format!("`{key}`: {s:?} is not a duration ({e}); write e.g. \"10s\" or \"15m\"")
    })
}

/// The step being run: what host calls inside it report.
#[derive(Debug, Default)]
pub(super) struct Current {
    pub name: String,
    pub messages: Vec<String>,
    pub findings: Vec<Finding>,
    pub planned: Vec<String>,
    pub warned: bool,
    /// The step's spinner on a terminal; a prompt suspends it.
    pub spinner: Option<indicatif::ProgressBar>,
}

/// Everything the host functions share during a run.
pub(super) struct RunState {
    pub plan: Plan,
    pub params_hash: String,
    pub current: Option<Current>,
    pub records: Vec<StepRecord>,
    pub top_messages: Vec<String>,
    pub finals: Vec<(String, StepOptions, FnPtr)>,
    pub names: HashSet<String>,
    /// Steps that ended ok in the run being resumed, by key.
    pub done: HashMap<String, StepRecord>,
    pub journal: Journal,
    pub redactor: Redactor,
    pub deadlines: Arc<Deadlines>,
    /// When this run (or this resumption) began: the origin of each step's `started_ms`.
    pub started: Instant,
    /// The backups and restores host calls made, for the run's metrics.
    pub operations: Vec<super::HostOperation>,
}

pub(super) type Shared = Arc<Mutex<RunState>>;

/// Locks the run state; a poisoned lock (a panic in a host call) still holds good data.
pub(super) fn lock(state: &Shared) -> MutexGuard<'_, RunState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The marker error that unwinds the script after a failed step, so later steps do not run.
const STEP_FAILED: &str = "kfguard: a step failed";

pub(super) fn execute(compiled: Compiled, plan: Plan, journal: Journal) -> Report {
    let started = Instant::now();
    let started_at = rustic_core::jiff::Timestamp::now().to_string();
    let deadlines = Arc::new(Deadlines::new(plan.timeout.map(|t| started + t)));
    let mut journal = journal;
    let done = journal.take_done_steps();
    let run_id = journal.run_id.clone();
    let params_hash = journal.params_hash.clone();
    let redactor = journal.redactor.clone();
    let statics = lint::step_names(&compiled.ast);
    let state: Shared = Arc::new(Mutex::new(RunState {
        plan: plan.clone(),
        params_hash,
        current: None,
        records: Vec::new(),
        top_messages: Vec::new(),
        finals: Vec::new(),
        names: HashSet::new(),
        done,
        journal,
        redactor,
        deadlines: deadlines.clone(),
        started,
        operations: Vec::new(),
    }));
    let mut engine = sandbox::engine(&sandbox::folder_of(&compiled.path), &plan.limits);
    api::register(&mut engine, &state);
    host::register(&mut engine, &Host::new(plan.host.clone(), state.clone()));
    let progress = deadlines.clone();
    engine.on_progress(move |_| progress.check().err().map(sandbox::terminated));
    let path = compiled.path.clone();

    let result = catch_unwind(AssertUnwindSafe(|| engine.run_ast(&compiled.ast)));
    let mut error = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) if is_step_failure(&e) => None,
        Ok(Err(e)) => Some(describe(&path, &e)),
        Err(panic) => Some(format!(
            "{}: the runbook panicked: {}",
            path.display(),
            panic_text(&panic)
        )),
    };

    // `finally` steps run whatever happened, each with a fresh step deadline; the run's own
    // deadline no longer applies, so that controllers are scaled back even after a timeout.
    let finals = std::mem::take(&mut lock(&state).finals);
    deadlines.clear_run();
    for (name, opts, f) in finals {
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_finally(&engine, &compiled, &state, &name, &opts, &f);
        }));
        if let Err(panic) = result {
            error.get_or_insert(format!(
                "finally step `{name}` panicked: {}",
                panic_text(&panic)
            ));
        }
    }

    let mut st = lock(&state);
    // Steps the script never reached, because an earlier one failed, are reported skipped.
    let reached: HashSet<String> = st.records.iter().map(|r| r.name.clone()).collect();
    for name in statics.into_iter().filter(|n| !reached.contains(n)) {
        let record = StepRecord {
            key: format!("{name}:{}", st.params_hash),
            name,
            outcome: Outcome::Skipped,
            started_ms: millis(started.elapsed()),
            duration_ms: 0,
            attempts: 0,
            messages: vec!["not run: an earlier step failed".into()],
            findings: Vec::new(),
            planned: Vec::new(),
            output: serde_json::Value::Null,
            error: None,
            resumed: false,
            always: false,
        };
        st.journal.step(&record);
        st.records.push(record);
    }
    let error = error.map(|e| st.redactor.text(&e));
    let report = Report {
        run_id,
        runbook: compiled.path.display().to_string(),
        dry_run: plan.dry_run,
        started: started_at,
        steps: st.records.clone(),
        messages: st.top_messages.clone(),
        error,
        duration_ms: millis(started.elapsed()),
        operations: std::mem::take(&mut st.operations),
    };
    st.journal.end(&report);
    report
}

fn run_finally(
    engine: &rhai::Engine,
    compiled: &Compiled,
    state: &Shared,
    name: &str,
    opts: &StepOptions,
    f: &FnPtr,
) {
    run_step_with(state, name, opts, true, |_| {
        f.call::<Dynamic>(engine, &compiled.ast, ())
    });
}

/// `step(name, [options,] fn)` as the script calls it.
pub(super) fn step(
    ctx: &NativeCallContext,
    state: &Shared,
    name: &str,
    options: &Map,
    f: &FnPtr,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let opts = StepOptions::parse(options).map_err(|m| error(format!("step `{name}`: {m}")))?;
    check_name(state, name)?;
    match run_step_with(state, name, &opts, false, |_| {
        f.call_within_context(ctx, ())
    }) {
        Some(out) => Ok(out),
        None => Err(error(STEP_FAILED.into())),
    }
}

/// `finally(name, [options,] fn)`: kept, and run after the script has ended.
pub(super) fn finally(
    state: &Shared,
    name: &str,
    options: &Map,
    f: FnPtr,
) -> Result<(), Box<EvalAltResult>> {
    let opts = StepOptions::parse(options).map_err(|m| error(format!("finally `{name}`: {m}")))?;
    check_name(state, name)?;
    lock(state).finals.push((name.to_string(), opts, f));
    Ok(())
}

fn check_name(state: &Shared, name: &str) -> Result<(), Box<EvalAltResult>> {
    let mut st = lock(state);
    if name.trim().is_empty() {
        return Err(error(
            "a step needs a name: step(\"pvcs bound\", || { ... })".into(),
        ));
    }
    if let Some(outer) = &st.current {
        return Err(error(format!(
            "step `{name}` is inside step `{}`; steps cannot nest, make it a step of its own",
            outer.name
        )));
    }
    if !st.names.insert(name.to_string()) {
        return Err(error(format!(
            "step `{name}` is declared twice; give each step its own name"
        )));
    }
    Ok(())
}

/// Runs one step and returns its output; `None` when it failed.
fn run_step_with(
    state: &Shared,
    name: &str,
    opts: &StepOptions,
    always: bool,
    mut call: impl FnMut(u32) -> Result<Dynamic, Box<EvalAltResult>>,
) -> Option<Dynamic> {
    let key = format!("{name}:{}", lock(state).params_hash);
    // Bound first: a guard in the `if let` would be held through the block and deadlock.
    let done = if opts.rerun {
        None
    } else {
        lock(state).done.get(&key).cloned()
    };
    if let Some(prev) = done {
        let mut record = prev;
        record.resumed = true;
        let out = rhai::serde::to_dynamic(&record.output).unwrap_or(Dynamic::UNIT);
        finish(state, record);
        return Some(out);
    }
    let (deadlines, run_started) = {
        let st = lock(state);
        (st.deadlines.clone(), st.started)
    };
    let started = Instant::now();
    lock(state).current = Some(Current {
        name: name.to_string(),
        spinner: crate::progress::spinner(name),
        ..Current::default()
    });
    let mut attempts = 0;
    let result = loop {
        attempts += 1;
        deadlines.set_step(opts.timeout.map(|t| Instant::now() + t));
        let r = catch_unwind(AssertUnwindSafe(|| call(attempts)))
            .unwrap_or_else(|p| Err(error(format!("a host call panicked: {}", panic_text(&p)))));
        match r {
            Ok(v) => break Ok(v),
            Err(e) => {
                let run_over = !always && deadlines.run_passed();
                let text = step_error(&e);
                if attempts > opts.retries || run_over {
                    break Err(text);
                }
                if let Some(c) = lock(state).current.as_mut() {
                    c.messages
                        .push(format!("attempt {attempts} failed: {text}; retrying"));
                }
                std::thread::sleep(opts.backoff);
            }
        }
    };
    deadlines.set_step(None);
    let current = lock(state).current.take().unwrap_or_default();
    if let Some(s) = &current.spinner {
        s.finish_and_clear();
    }
    let (outcome, output, err) = match result {
        Ok(v) => {
            let outcome = if current.warned || !current.findings.is_empty() {
                Outcome::Warning
            } else {
                Outcome::Ok
            };
            let json = rhai::serde::from_dynamic::<serde_json::Value>(&v).unwrap_or_default();
            (outcome, Some(v), (json, None))
        }
        Err(text) => (Outcome::Failed, None, (serde_json::Value::Null, Some(text))),
    };
    let redactor = lock(state).redactor.clone();
    let record = StepRecord {
        name: name.to_string(),
        key,
        outcome,
        started_ms: millis(started.duration_since(run_started)),
        duration_ms: millis(started.elapsed()),
        attempts,
        messages: current.messages.iter().map(|m| redactor.text(m)).collect(),
        findings: current.findings,
        planned: current.planned.iter().map(|p| redactor.text(p)).collect(),
        output: redactor.json(err.0),
        error: err.1.map(|e| redactor.text(&e)),
        resumed: false,
        always,
    };
    finish(state, record);
    output
}

fn finish(state: &Shared, record: StepRecord) {
    let mut st = lock(state);
    st.journal.step(&record);
    live(&record);
    st.records.push(record);
}

/// One line per step on stderr: symbols for a person, JSON lines for a log collector.
fn live(r: &StepRecord) {
    if std::io::stderr().is_terminal() {
        let secs = r.duration_ms as f64 / 1000.0;
        let note = if r.resumed {
            " (done in the run resumed)"
        } else {
            ""
        };
        eprintln!("{} {} ({secs:.1}s){note}", r.outcome.symbol(), r.name);
        if let Some(e) = &r.error {
            eprintln!("    {e}");
        }
    } else {
        let line = serde_json::json!({
            "step": r.name, "outcome": r.outcome, "duration_ms": r.duration_ms,
            "attempts": r.attempts, "resumed": r.resumed, "error": r.error,
        });
        eprintln!("{line}");
    }
}

fn is_step_failure(e: &EvalAltResult) -> bool {
    match e {
        EvalAltResult::ErrorRuntime(d, _) => {
            d.clone().into_string().is_ok_and(|s| s == STEP_FAILED)
        }
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => is_step_failure(inner),
        _ => false,
    }
}

/// The innermost message of a rhai error, with its position when it has one.
fn step_error(e: &EvalAltResult) -> String {
    match e {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => step_error(inner),
        EvalAltResult::ErrorTerminated(d, _) => d.to_string(),
        EvalAltResult::ErrorRuntime(d, pos) => with_line(&d.to_string(), *pos),
        other => with_line(&other.to_string(), other.position()),
    }
}

fn with_line(msg: &str, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("line {l}:{c}: {msg}"),
        _ => msg.to_string(),
    }
}

/// A script error outside any step: `file:line:col: message`.
fn describe(path: &std::path::Path, e: &EvalAltResult) -> String {
    let mut inner = e;
    while let EvalAltResult::ErrorInFunctionCall(_, _, next, _)
    | EvalAltResult::ErrorInModule(_, next, _) = inner
    {
        inner = next;
    }
    let msg = match inner {
        EvalAltResult::ErrorTerminated(d, _) | EvalAltResult::ErrorRuntime(d, _) => d.to_string(),
        other => other.to_string(),
    };
    format!("{}: {msg}", sandbox::at(path, inner.position()))
}

// rhai's host functions return their errors boxed.
#[allow(clippy::unnecessary_box_returns)]
pub(super) fn error(msg: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(msg.into(), Position::NONE).into()
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A run that never runs: the state behind the engine of `runbook api` and `runbook check`.
pub(super) fn idle(limits: &super::Limits) -> Shared {
    let plan = Plan {
        file: ".".into(),
        params: Default::default(),
        dry_run: true,
        yes: false,
        interactive: false,
        resume: None,
        force: false,
        timeout: None,
        state_dir: ".".into(),
        limits: limits.clone(),
        host: super::HostContext::default(),
        secrets: Vec::new(),
    };
    Arc::new(Mutex::new(RunState {
        plan,
        params_hash: String::new(),
        current: None,
        records: Vec::new(),
        top_messages: Vec::new(),
        finals: Vec::new(),
        names: HashSet::new(),
        done: HashMap::new(),
        journal: Journal::disabled(),
        redactor: Redactor::default(),
        deadlines: Arc::new(Deadlines::default()),
        started: Instant::now(),
        operations: Vec::new(),
    }))
}
