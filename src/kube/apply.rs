//! Server-side apply of one object, as field manager `kfguard`.

use ::kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use super::catalog::Kind;
use super::object::ObjectKey;
use super::{retry, Cluster, KubeError};

/// Field manager of every apply.
pub(crate) const FIELD_MANAGER: &str = "kfguard";

/// Server-side apply of `obj`, whose identity is `key`, forcing kfguard's ownership of its
/// fields; retried on 429 and 5xx. With `dry_run` the server validates it and stores nothing.
/// Its UID on the cluster (none on a dry run).
pub(crate) async fn apply(
    cluster: &Cluster,
    kind: &Kind,
    key: &ObjectKey,
    obj: &Value,
    dry_run: bool,
) -> Result<Option<String>, KubeError> {
    let api: Api<DynamicObject> = match &key.namespace {
        Some(ns) if kind.namespaced => Api::namespaced_with(cluster.client.clone(), ns, &kind.ar),
        _ => Api::all_with(cluster.client.clone(), &kind.ar),
    };
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run {
        params = params.dry_run();
    }
    // Apply with the version the cluster serves: a snapshot from an older cluster may name
    // another version of the same kind.
    let mut obj = obj.clone();
    obj["apiVersion"] = kind.ar.api_version.clone().into();
    let patch = Patch::Apply(&obj);
    let applied = retry(|| api.patch(&key.name, &params, &patch))
        .await
        .map_err(|e| cluster.err(format!("applying {key}"), &e))?;
    Ok(if dry_run { None } else { applied.metadata.uid })
}
