//! What the bundle reads off the cluster: the Kubeflow namespaces (the `[kubernetes]`
//! selection) and, in each, pods, events, claims, ConfigMaps, the names of Secrets and Argo
//! workflows; the Kubeflow CRDs; the containers' recent logs. Every read that fails is kept as
//! its error, for the index: a missing permission or API must not cost the rest.

use std::collections::BTreeSet;

use futures::future::join_all;
use serde_json::Value;

use crate::config::KubernetesConfig;
use crate::kube::catalog::{list_kind, select_namespaces, Kind, Served};
use crate::kube::live::{self, LogQuery};
use crate::kube::{Cluster, KubeError};

/// A read of the cluster: its items, or why there are none.
pub(super) type Read = Result<Vec<Value>, String>;

/// One selected namespace's objects.
pub(super) struct Namespace {
    pub name: String,
    pub pods: Read,
    pub events: Read,
    pub pvcs: Read,
    pub configmaps: Read,
    pub secrets: Read,
    /// `None` when the cluster serves no Argo workflows.
    pub workflows: Option<Read>,
}

/// What the bundle knows of the cluster before any log is read.
pub(super) struct Gathered {
    pub cluster: Cluster,
    pub version: Option<String>,
    /// How the namespaces were chosen, when the namespace list could not be read.
    pub namespaces_error: Option<String>,
    pub namespaces: Vec<Namespace>,
    pub crds: Read,
}

fn one_line(e: &KubeError) -> String {
    e.to_string().replace('\n', " ")
}

async fn list_in(cluster: &Cluster, kind: Option<&Kind>, ns: &str, what: &str) -> Read {
    let Some(kind) = kind else {
        return Err(format!("the cluster serves no {what}"));
    };
    live::list(cluster, kind, Some(ns), None, None)
        .await
        .map_err(|e| one_line(&e))
}

/// Connects, discovers, selects the namespaces and lists what the bundle shows of them. `Err`
/// when the cluster cannot be reached at all.
pub(super) async fn gather(cfg: &KubernetesConfig) -> Result<Gathered, String> {
    let cluster = Cluster::connect(cfg).await.map_err(|e| one_line(&e))?;
    let served = Served::discover(&cluster).await.map_err(|e| one_line(&e))?;
    let version = cluster
        .client
        .apiserver_version()
        .await
        .ok()
        .map(|v| v.git_version);
    let (names, namespaces_error) = match served.get("", "Namespace") {
        Some(k) => match list_kind(&cluster, k).await {
            Ok(all) => (select_namespaces(cfg, &all), None),
            Err(e) => (literal_namespaces(cfg), Some(one_line(&e))),
        },
        None => (
            literal_namespaces(cfg),
            Some("the cluster serves no namespaces".into()),
        ),
    };
    let pod = served.get("", "Pod");
    let event = served.get("", "Event");
    let pvc = served.get("", "PersistentVolumeClaim");
    let cm = served.get("", "ConfigMap");
    let secret = served.get("", "Secret");
    let workflow = served.get("argoproj.io", "Workflow");
    let namespaces = join_all(names.iter().map(|ns| {
        let cluster = &cluster;
        async move {
            let (pods, events, pvcs, configmaps, secrets, workflows) = futures::join!(
                list_in(cluster, pod, ns, "pods"),
                list_in(cluster, event, ns, "events"),
                list_in(cluster, pvc, ns, "persistentvolumeclaims"),
                list_in(cluster, cm, ns, "configmaps"),
                list_in(cluster, secret, ns, "secrets"),
                async {
                    match workflow {
                        Some(_) => Some(list_in(cluster, workflow, ns, "workflows").await),
                        None => None,
                    }
                },
            );
            Namespace {
                name: ns.clone(),
                pods,
                events,
                pvcs,
                configmaps,
                secrets,
                workflows,
            }
        }
    }))
    .await;
    let crds = match served.get("apiextensions.k8s.io", "CustomResourceDefinition") {
        Some(k) => list_kind(&cluster, k)
            .await
            .map(|all| {
                all.into_iter()
                    .filter(|c| {
                        let group = c.pointer("/spec/group").and_then(Value::as_str);
                        cfg.globs.crd_groups.is_match(group.unwrap_or(""))
                    })
                    .collect()
            })
            .map_err(|e| one_line(&e)),
        None => Err("the cluster serves no customresourcedefinitions".into()),
    };
    Ok(Gathered {
        cluster,
        version,
        namespaces_error,
        namespaces,
        crds,
    })
}

/// The configured namespaces that are plain names, not globs: what a role that may not list
/// namespaces can still be asked about.
fn literal_namespaces(cfg: &KubernetesConfig) -> BTreeSet<String> {
    cfg.namespaces
        .iter()
        .filter(|n| !n.contains(['*', '?', '[', '{']))
        .filter(|n| !cfg.globs.exclude_namespaces.is_match(n))
        .cloned()
        .collect()
}

/// One container log of a pod: the container, whether it is the previous instance's, and the
/// text or why there is none.
pub(super) struct Log {
    pub container: String,
    pub previous: bool,
    pub text: Result<String, String>,
}

/// The recent logs of every container of `pod`, and of the previous instance of those that
/// restarted.
pub(super) async fn pod_logs(
    cluster: &Cluster,
    pod: &Value,
    tail: i64,
    since_seconds: Option<i64>,
) -> Vec<Log> {
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut wanted: Vec<(String, bool)> = Vec::new();
    for (specs, statuses) in [
        ("/spec/initContainers", "/status/initContainerStatuses"),
        ("/spec/containers", "/status/containerStatuses"),
    ] {
        let statuses = pod.pointer(statuses).and_then(Value::as_array);
        for c in pod
            .pointer(specs)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(cname) = c["name"].as_str() else {
                continue;
            };
            wanted.push((cname.to_string(), false));
            let restarted = statuses
                .into_iter()
                .flatten()
                .find(|s| s["name"] == cname)
                .is_some_and(|s| {
                    s["restartCount"].as_i64().unwrap_or(0) > 0
                        || s.pointer("/lastState/terminated").is_some()
                });
            if restarted {
                wanted.push((cname.to_string(), true));
            }
        }
    }
    join_all(wanted.into_iter().map(|(container, previous)| async move {
        let q = LogQuery {
            container: Some(container.clone()),
            tail: Some(tail),
            previous,
            since_seconds,
        };
        let text = live::logs(cluster, ns, name, &q)
            .await
            .map_err(|e| one_line(&e));
        Log {
            container,
            previous,
            text,
        }
    }))
    .await
}
