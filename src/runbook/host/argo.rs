//! `argo::`: Argo Workflows, the engine under Kubeflow Pipelines, and which of them are stuck.

use std::sync::Arc;

use rhai::{Array, Module};

use super::{func, ns, to_dynamic, Host, Res};
use crate::kube::live;
use crate::kube::workflows;
use crate::runbook::steps::error;

const WORKFLOW: &str = "argoproj.io/Workflow";

pub(super) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    func(
        "workflows",
        &["namespace: &str", "Array"],
        "The Argo Workflows of `namespace` (all namespaces when empty), with their status.",
        r#"let wfs = argo::workflows("team-a");"#,
    )
    .set_into_module(&mut m, move |namespace: &str| {
        list(&h, namespace)?
            .iter()
            .map(to_dynamic)
            .collect::<Res<Array>>()
    });
    let h = host.clone();
    func(
        "stuck",
        &["namespace: &str", "threshold: &str", "Array"],
        "Workflows Pending or Running for longer than `threshold` (e.g. \"2h\"), or ended in \
         Error or Failed: each a map of `namespace`, `name`, `phase`, `age_secs`, `reason` and \
         `failed_step`.",
        r#"for w in argo::stuck("", "2h") { finding("KF-WF-STUCK", "warning", `${w.namespace}/${w.name}`, w.reason, "look at its pods and events"); }"#,
    )
    .set_into_module(&mut m, move |namespace: &str, threshold: &str| {
        let threshold = humantime::parse_duration(threshold).map_err(|e| {
            error(format!(
                "argo::stuck: {threshold:?} is not a duration ({e}); write e.g. \"2h\""
            ))
        })?;
        let items = list(&h, namespace)?;
        let now = rustic_core::jiff::Timestamp::now();
        workflows::stuck(&items, now, threshold)
            .iter()
            .map(|s| to_dynamic(&serde_json::to_value(s).unwrap_or_default()))
            .collect::<Res<Array>>()
    });
    m
}

fn list(h: &Host, namespace: &str) -> Res<Vec<serde_json::Value>> {
    let cluster = h.cluster()?;
    let kind = h.kind(WORKFLOW)?;
    h.block(async { live::list(&cluster, &kind, ns(namespace), None, None).await })
}
