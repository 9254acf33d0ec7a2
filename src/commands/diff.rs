//! `kfguard diff`: the live cluster against a snapshot's Kubernetes objects.

use serde::Serialize;

use super::Context;
use crate::cli::DiffArgs;
use crate::drift::objects::{self, ObjectDrift};
use crate::kube::{catalog, read as kubernetes, Cluster};
use crate::output::emit;
use crate::snapshot::{full_id, Component};
use crate::{Outcome, Usage};

#[derive(Serialize)]
struct Report {
    snapshot: String,
    server: String,
    #[serde(flatten)]
    drift: ObjectDrift,
}

pub(super) fn run(ctx: &Context, args: &DiffArgs) -> anyhow::Result<Outcome> {
    let (repo, snap, location) = ctx.open_snapshot(&args.snapshot, &[Component::Kubernetes])?;
    let id = full_id(&snap.id);
    let saved = kubernetes::objects(&repo, &snap, &location.display)?;
    if saved.is_empty() {
        return Err(Usage::msg(format!(
            "snapshot {} holds no Kubernetes objects, so there is nothing to compare; pick one taken with `kfguard backup --only kubernetes` (see `kfguard snapshots`)",
            &id[..8]
        ))
        .into());
    }
    // The same selection as the backup, so an object the backup leaves out is never "added".
    let cfg = &ctx.config.kubernetes;
    let (server, live) = ctx
        .rt
        .block_on(async {
            let cluster = Cluster::connect(cfg).await?;
            let cap = catalog::capture(&cluster, cfg).await?;
            Ok::<_, crate::kube::KubeError>((cluster.server, cap.objects))
        })
        .map_err(|e| Usage::mark_if(e, crate::kube::KubeError::is_usage))?;
    let drift = objects::compare(&saved, &live);
    let report = Report {
        snapshot: id,
        server,
        drift,
    };
    emit(ctx.global.output, &report, |r| {
        let mut s = r.drift.text();
        let verdict = if r.drift.is_empty() {
            "no drift"
        } else {
            "drift"
        };
        s.push_str(&format!(
            "{verdict} between snapshot {} and {}: {}\n",
            &r.snapshot[..8],
            r.server,
            r.drift.summary()
        ));
        s
    });
    if report.drift.is_empty() {
        Ok(Outcome::Ok)
    } else {
        Ok(Outcome::Warnings(vec![format!(
            "the cluster has drifted from snapshot {}: {}",
            &report.snapshot[..8],
            report.drift.summary()
        )]))
    }
}
