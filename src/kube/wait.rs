//! Waiting for the cluster to reach a state: a CRD Established, an object present. Each wait
//! gives up after [`limit`].

use std::time::{Duration, Instant};

use ::kube::api::{Api, DynamicObject};
use serde_json::Value;

use super::catalog::Kind;
use super::Cluster;

/// How long a wait lasts: 60 s, or `KFGUARD_KUBE_WAIT_SECS`.
pub fn limit() -> Duration {
    std::env::var("KFGUARD_KUBE_WAIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

/// Whether the CRD `name` (of the served CRD kind `crd`) became Established within the limit.
pub async fn crd_established(cluster: &Cluster, crd: &Kind, name: &str) -> bool {
    let api: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &crd.ar);
    let established = || async {
        api.get(name).await.is_ok_and(|crd| {
            crd.data
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        c.get("type").and_then(Value::as_str) == Some("Established")
                            && c.get("status").and_then(Value::as_str) == Some("True")
                    })
                })
        })
    };
    poll(established).await
}

/// Whether the cluster-scoped object `name` of `kind` exists within the limit.
pub async fn exists(cluster: &Cluster, kind: &Kind, name: &str) -> bool {
    let api: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &kind.ar);
    let exists = || async { api.get_opt(name).await.ok().flatten().is_some() };
    poll(exists).await
}

/// Asks `ready` every 100 ms until it says yes (true) or the wait limit passes (false).
async fn poll<F, Fut>(mut ready: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit();
    loop {
        if ready().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
