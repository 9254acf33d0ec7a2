//! `kfguard crds diff`: live CustomResourceDefinitions against pinned manifests.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::Context;
use crate::cli::{CrdsCommand, CrdsDiffArgs};
use crate::drift::crds::{self, CrdDrift};
use crate::kube::catalog::{self, Served};
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
            let live = live_crds(&cluster).await?;
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

/// Every CRD of the cluster, by name.
async fn live_crds(cluster: &Cluster) -> Result<BTreeMap<String, Value>, KubeError> {
    let served = Served::discover(cluster).await?;
    let kind = served
        .get("apiextensions.k8s.io", "CustomResourceDefinition")
        .ok_or_else(|| KubeError::Api {
            server: cluster.server.clone(),
            what: "discovery".into(),
            detail: "the server does not serve apiextensions.k8s.io CustomResourceDefinitions"
                .into(),
            code: None,
        })?;
    Ok(catalog::list_kind(cluster, kind)
        .await?
        .into_iter()
        .filter_map(|c| {
            let name = c.pointer("/metadata/name")?.as_str()?.to_string();
            Some((name, c))
        })
        .collect())
}
