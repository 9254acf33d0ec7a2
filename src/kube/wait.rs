//! Waiting for the cluster to reach a state: a CRD Established, an object present. Each wait
//! watches the one object with kube-runtime's `await_condition` and gives up after [`limit`].

use std::time::Duration;

use ::kube::api::{Api, DynamicObject};
use ::kube::runtime::wait::{await_condition, conditions, Condition};
use ::kube::Resource;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;

use super::catalog::Kind;
use super::Cluster;

/// How long a wait lasts: 60 s, or `KFGUARD_KUBE_WAIT_SECS`.
pub(crate) fn limit() -> Duration {
    std::env::var("KFGUARD_KUBE_WAIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

/// Whether the CRD `name` became Established within the limit.
pub(crate) async fn crd_established(cluster: &Cluster, name: &str) -> bool {
    let api: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    until(api, name, conditions::is_crd_established).await
}

/// Whether the cluster-scoped object `name` of `kind` exists within the limit.
pub(crate) async fn exists(cluster: &Cluster, kind: &Kind, name: &str) -> bool {
    let api: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &kind.ar);
    until(api, name, || |o: Option<&DynamicObject>| o.is_some()).await
}

/// Watches `name` until the condition made by `cond` holds (true) or the limit passes (false).
async fn until<K, C>(api: Api<K>, name: &str, cond: impl Fn() -> C) -> bool
where
    K: Clone + std::fmt::Debug + Send + DeserializeOwned + Resource + 'static,
    C: Condition<K>,
{
    let watch = async {
        loop {
            match await_condition(api.clone(), name, cond()).await {
                Ok(_) => return,
                // A failed watch (a dropped connection, a 5xx) is watched again: only the
                // limit ends a wait.
                Err(e) => {
                    tracing::debug!("watching {name} failed ({e}); watching again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    tokio::time::timeout(limit(), watch).await.is_ok()
}
