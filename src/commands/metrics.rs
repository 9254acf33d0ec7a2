//! What `backup`, `restore` and `runbook run` share: the Prometheus metrics written after the
//! run, whatever its outcome. A metrics file or push that fails is a warning (exit 3 when the
//! run was otherwise ok); the run's own failure wins.

use std::time::Instant;

use super::Context;
use crate::cli::MetricsArgs;
use crate::metrics::{Export, MetricsError, Pushgateway, Run, Targets, Timing};
use crate::{Outcome, Usage};

/// The targets of one run, and when it began.
pub(super) struct Recorder {
    targets: Targets,
    started: Instant,
}

impl Recorder {
    /// The targets from the flags, over `KFGUARD_METRICS_FILE` / `KFGUARD_PUSHGATEWAY` and
    /// `[metrics]` (layered by the config). A dry run changes nothing, so it writes no
    /// metrics: its last success would claim a backup that was not taken.
    pub(super) fn new(ctx: &Context, args: &MetricsArgs, dry_run: bool) -> anyhow::Result<Self> {
        let cfg = &ctx.config.metrics;
        let file = args.metrics_file.clone().or_else(|| cfg.file.clone());
        let url = args.pushgateway.as_ref().or(cfg.pushgateway.as_ref());
        let pushgateway = url
            .map(|u| Pushgateway::parse(u))
            .transpose()
            .map_err(|e| Usage::mark_if(e, MetricsError::is_usage))?;
        let mut targets = Targets { file, pushgateway };
        if dry_run && !targets.is_empty() {
            tracing::info!("dry run: no metrics written");
            targets = Targets::default();
        }
        Ok(Self {
            targets,
            started: Instant::now(),
        })
    }

    /// Writes the runs `runs` builds from the run's timing and exit code, then hands back the
    /// run's result, with a warning added for each target that failed.
    /// Renders a command's report (when it has one), then writes the metrics of `run`, which
    /// sees the report or its absence: the shared tail of `backup` and `restore`.
    pub(super) fn finish_report<R>(
        self,
        ctx: &Context,
        report: anyhow::Result<R>,
        render: impl FnOnce(&Context, &R) -> Outcome,
        run: impl FnOnce(Option<&R>, Timing, i32) -> Run,
    ) -> anyhow::Result<Outcome> {
        let (report, result) = match report {
            Ok(r) => {
                let outcome = render(ctx, &r);
                (Some(r), Ok(outcome))
            }
            Err(e) => (None, Err(e)),
        };
        self.finish(ctx, result, |timing, code| {
            vec![run(report.as_ref(), timing, code)]
        })
    }

    pub(super) fn finish(
        self,
        ctx: &Context,
        result: anyhow::Result<Outcome>,
        runs: impl FnOnce(Timing, i32) -> Vec<Run>,
    ) -> anyhow::Result<Outcome> {
        if self.targets.is_empty() {
            return result;
        }
        let export = Export {
            cluster: ctx.config.cluster.clone(),
            runs: runs(Timing::since(self.started), crate::result_code(&result)),
        };
        let failures = self.targets.write(&export, ctx.rt.handle());
        if failures.is_empty() {
            return result;
        }
        let messages: Vec<String> = failures.iter().map(ToString::to_string).collect();
        for m in &messages {
            tracing::warn!("{m}");
        }
        match result {
            Ok(Outcome::Ok) => Ok(Outcome::Warnings(messages)),
            Ok(Outcome::Warnings(mut w)) => {
                w.extend(messages);
                Ok(Outcome::Warnings(w))
            }
            Err(e) => Err(e),
        }
    }
}
