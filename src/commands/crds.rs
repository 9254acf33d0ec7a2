//! `kfguard crds diff`: live CustomResourceDefinitions against pinned manifests.

use serde::Serialize;

use super::Context;
use crate::cli::{CrdsCommand, CrdsDiffArgs};
use crate::drift::crds::{self, CrdDrift};
use crate::kube::{Cluster, KubeError};
use crate::output::emit;
use crate::{Outcome, Usage};

#[derive(Serialize)]
struct Report {
    against: String,
    server: String,
    #[serde(flatten)]
    drift: CrdDrift,
}

pub(super) fn run(ctx: &Context, cmd: &CrdsCommand) -> anyhow::Result<Outcome> {
    match cmd {
        CrdsCommand::Diff(args) => diff(ctx, args),
    }
}

fn diff(ctx: &Context, args: &CrdsDiffArgs) -> anyhow::Result<Outcome> {
    // A bad pinned file is the caller's to fix: exit 2, before the cluster is asked anything.
    let pinned = crds::load_pinned(&args.against).map_err(|e| Usage::msg(e.to_string()))?;
    let cfg = &ctx.config.kubernetes;
    let (server, live) = ctx
        .rt
        .block_on(async {
            let cluster = Cluster::connect(cfg).await?;
            let live = crds::live(&cluster).await?;
            Ok::<_, KubeError>((cluster.server, live))
        })
        .map_err(|e| Usage::mark_if(e, KubeError::is_usage))?;
    let report = Report {
        against: args.against.display().to_string(),
        server,
        drift: crds::compare(&pinned, &live, &cfg.globs.crd_groups),
    };
    emit(ctx.global.output, &report, |r| {
        let mut s = r.drift.text();
        let verdict = if r.drift.is_empty() {
            "no CRD drift"
        } else {
            "CRD drift"
        };
        s.push_str(&format!(
            "{verdict} between {} and {}: {}\n",
            r.against,
            r.server,
            r.drift.summary()
        ));
        s
    });
    if report.drift.is_empty() {
        Ok(Outcome::Ok)
    } else {
        Ok(Outcome::Warnings(vec![format!(
            "the live CRDs differ from {}: {}",
            report.against,
            report.drift.summary()
        )]))
    }
}
