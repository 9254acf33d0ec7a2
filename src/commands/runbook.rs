//! `kfguard runbook`: list, check, run and resume runbooks, list past runs, print the host API.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use super::metrics::Recorder;
use super::Context;
use crate::cli::{ApiOutput, FailOn, RunbookCommand, RunbookRunArgs};
use crate::metrics::Run;
use crate::output::{emit, OutputFormat};
use crate::runbook::{
    self, ApiFormat, Outcome as StepOutcome, Plan, Report, RunbookError, Severity,
};
use crate::{Outcome, Usage};

pub(super) fn run(ctx: &Context, cmd: &RunbookCommand) -> anyhow::Result<Outcome> {
    let cfg = &ctx.config.runbooks;
    match cmd {
        RunbookCommand::List => {
            let found = runbook::list(&dirs(ctx));
            emit(ctx.global.output, &found, |l| {
                if l.is_empty() {
                    return format!("no runbooks in {}", cfg.dir.display());
                }
                l.iter()
                    .map(|r| format!("{:<24} {}\n", r.name, r.description))
                    .collect()
            });
            Ok(Outcome::Ok)
        }
        RunbookCommand::Check(args) => {
            let path = runbook::resolve(&args.runbook, &dirs(ctx));
            let report = runbook::check(&path, &cfg.limits).map_err(usage)?;
            emit(ctx.global.output, &report, |r| {
                let n = r.steps.len();
                let mut s = format!("{}: {n} step{}\n", r.runbook, if n == 1 { "" } else { "s" });
                for (name, default) in &r.params {
                    s.push_str(&format!("  param {name} (default {default})\n"));
                }
                for p in &r.problems {
                    s.push_str(&format!("{p}\n"));
                }
                s
            });
            if report.problems.is_empty() {
                Ok(Outcome::Ok)
            } else {
                Err(Usage::msg(format!(
                    "{}: {} problem(s) found; fix them, then check again",
                    report.runbook,
                    report.problems.len()
                ))
                .into())
            }
        }
        RunbookCommand::Run(args) => run_one(ctx, args),
        RunbookCommand::Runs => {
            let runs = runbook::list_runs(&cfg.state_dir);
            emit(ctx.global.output, &runs, |runs| {
                if runs.is_empty() {
                    return format!("no runs in {}", cfg.state_dir.display());
                }
                runs.iter()
                    .map(|r| {
                        format!(
                            "{:<26} {:<10} {:>3} steps  {}  {}\n",
                            r.run_id, r.state, r.steps, r.started, r.runbook
                        )
                    })
                    .collect()
            });
            Ok(Outcome::Ok)
        }
        RunbookCommand::Api(args) => {
            let format = match (args.format, ctx.global.output) {
                (Some(ApiOutput::Json), _) | (None, OutputFormat::Json) => ApiFormat::Json,
                (Some(ApiOutput::Markdown), _)
                | (None, OutputFormat::Markdown | OutputFormat::Text) => ApiFormat::Markdown,
            };
            print!("{}", runbook::reference(format, &cfg.limits));
            Ok(Outcome::Ok)
        }
    }
}

/// The team's folder first, then the shipped runbooks beside the working directory.
fn dirs(ctx: &Context) -> Vec<PathBuf> {
    let mut dirs = vec![ctx.config.runbooks.dir.clone()];
    let shipped = PathBuf::from("runbooks");
    if !dirs.contains(&shipped) {
        dirs.push(shipped);
    }
    dirs
}

fn usage(e: RunbookError) -> anyhow::Error {
    Usage::mark_if(e, RunbookError::is_usage)
}

/// Runs one runbook, then writes its metrics, whatever became of it.
fn run_one(ctx: &Context, args: &RunbookRunArgs) -> anyhow::Result<Outcome> {
    let metrics = Recorder::new(ctx, &args.metrics, args.dry_run)?;
    let mut report = None;
    let result = run_and_report(ctx, args, &mut report);
    metrics.finish(ctx, result, |timing, code| match &report {
        Some(r) => Run::runbook(r, timing, code),
        // A `--set` that does not parse: the run never had a report.
        None => vec![Run::bare(
            crate::metrics::Operation::Runbook,
            Some(crate::metrics::runbook_name(&args.runbook)),
            timing,
            code,
        )],
    })
}

/// The run, its reports and its verdict; `out` gets the run's report, or the one of a run that
/// never began.
fn run_and_report(
    ctx: &Context,
    args: &RunbookRunArgs,
    out: &mut Option<Report>,
) -> anyhow::Result<Outcome> {
    let mut params = BTreeMap::new();
    for kv in &args.set {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            Usage::msg(format!(
                "--set {kv}: write it as KEY=VALUE, e.g. --set namespace=kubeflow"
            ))
        })?;
        params.insert(k.trim().to_string(), v.to_string());
    }
    let cfg = &ctx.config.runbooks;
    let plan = Plan {
        file: runbook::resolve(&args.runbook, &dirs(ctx)),
        params,
        dry_run: args.dry_run,
        yes: args.yes,
        interactive: std::io::stderr().is_terminal(),
        resume: args.resume.clone(),
        force: args.force,
        timeout: args.timeout,
        state_dir: cfg.state_dir.clone(),
        limits: cfg.limits.clone(),
        host: runbook::HostContext {
            config: std::sync::Arc::new(ctx.config.clone()),
            rt: Some(ctx.rt.handle().clone()),
            quiet: ctx.global.quiet,
        },
        secrets: ctx.config.secret_values(),
    };
    if !ctx.global.quiet {
        eprintln!(
            "runbook {}{}",
            plan.file.display(),
            if plan.dry_run { " (dry run)" } else { "" }
        );
    }
    let report = match runbook::start(&plan).and_then(|run| {
        // The id first: it is what `--resume` needs if this run dies.
        if !ctx.global.quiet {
            eprintln!("run id {}", run.run_id);
        }
        run.finish()
    }) {
        Ok(report) => report,
        Err(e) => {
            // CI still gets its reports, whose one failure says why the run never began.
            let not_run = Report::not_run(&plan, &e);
            if let Err(w) = write_reports(args, &not_run) {
                tracing::warn!("{w:#}");
            }
            *out = Some(not_run);
            return Err(usage(e));
        }
    };
    let report = out.insert(report);
    write_reports(args, report)?;
    emit(ctx.global.output, &*report, summary);
    verdict(report, args.fail_on)
}

/// `--report` (JSON), `--junit` (JUnit XML) and `--report-html` (the drill report), whatever
/// the run's outcome.
fn write_reports(args: &RunbookRunArgs, report: &Report) -> anyhow::Result<()> {
    let write = |path: &std::path::Path, what: &str, text: String| {
        std::fs::write(path, text).map_err(|e| {
            anyhow::anyhow!(
                "cannot write the {what} {}: {e}; check that its folder exists and is writable",
                path.display()
            )
        })
    };
    if let Some(path) = &args.report {
        write(path, "report", serde_json::to_string_pretty(report)?)?;
    }
    if let Some(path) = &args.junit {
        write(path, "JUnit report", runbook::junit(report))?;
    }
    if let Some(path) = &args.report_html {
        write(path, "HTML report", runbook::html(report))?;
    }
    Ok(())
}

fn summary(r: &Report) -> String {
    let mut s = String::new();
    for step in &r.steps {
        s.push_str(&format!(
            "{} {} ({:.1}s){}\n",
            step.outcome.symbol(),
            step.name,
            step.duration_ms as f64 / 1000.0,
            if step.resumed { ", done before" } else { "" }
        ));
        if let Some(e) = &step.error {
            s.push_str(&format!("    {e}\n"));
        }
        for p in &step.planned {
            s.push_str(&format!("    plan: {p}\n"));
        }
        for f in &step.findings {
            s.push_str(&format!("    {f}\n"));
        }
    }
    if let Some(e) = &r.error {
        s.push_str(&format!("error: {e}\n"));
    }
    let count = |sev| r.findings().filter(|f| f.severity == sev).count();
    s.push_str(&format!(
        "run {}: {} steps, findings: {} error, {} warning, {} info\n",
        r.run_id,
        r.steps.len(),
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    ));
    s
}

/// 0 every step passed, 1 a step failed, 3 warnings or findings; `--fail-on` moves the line.
fn verdict(r: &Report, fail_on: Option<FailOn>) -> anyhow::Result<Outcome> {
    let worst = r.findings().map(|f| f.severity).max();
    let failing_finding = match (fail_on, worst) {
        (Some(FailOn::Warning), Some(s)) => s >= Severity::Warning,
        (Some(FailOn::Error), Some(s)) => s >= Severity::Error,
        _ => false,
    };
    match r.outcome() {
        StepOutcome::Failed => {
            let failed: Vec<&str> = r
                .steps
                .iter()
                .filter(|s| s.outcome == StepOutcome::Failed)
                .map(|s| s.name.as_str())
                .collect();
            let what = match (&r.error, failed.first()) {
                (_, Some(name)) => format!("step `{name}` failed"),
                (Some(e), None) => e.clone(),
                (None, None) => "the run failed".into(),
            };
            anyhow::bail!(
                "runbook {}: {what}; fix the cause, then `kfguard runbook run {} --resume {}`",
                r.runbook,
                r.runbook,
                r.run_id
            )
        }
        _ if failing_finding => anyhow::bail!(
            "runbook {}: findings at or above --fail-on; see the report",
            r.runbook
        ),
        StepOutcome::Warning => Ok(Outcome::Warnings(vec![format!(
            "runbook {}: warnings or findings",
            r.runbook
        )])),
        _ => Ok(Outcome::Ok),
    }
}
