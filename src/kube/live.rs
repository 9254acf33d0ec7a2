//! Single live objects, as runbooks read and change them: get, list by selector, delete,
//! scale, container logs, access reviews, and waits for a condition.

use std::time::Duration;

use ::kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams,
};
use ::kube::runtime::wait::await_condition;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::catalog::{list_pages_with, typed, Kind};
use super::{retry, Cluster, KubeError};

/// The API of `kind`, in `namespace` for a namespaced kind (all namespaces when `None`).
fn api(cluster: &Cluster, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) if kind.namespaced && !ns.is_empty() => {
            Api::namespaced_with(cluster.client.clone(), ns, &kind.ar)
        }
        _ => Api::all_with(cluster.client.clone(), &kind.ar),
    }
}

fn where_(kind: &Kind, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if kind.namespaced && !ns.is_empty() => format!("{} {ns}/{name}", kind.ar.kind),
        _ => format!("{} {name}", kind.ar.kind),
    }
}

/// One object, or `None` when it does not exist.
pub async fn get(
    cluster: &Cluster,
    kind: &Kind,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, KubeError> {
    let api = api(cluster, kind, namespace);
    match retry(|| api.get_opt(name)).await {
        Ok(Some(o)) => typed(kind, o).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(cluster.err(format!("reading {}", where_(kind, namespace, name)), &e)),
    }
}

/// Every object of `kind` in `namespace` (all namespaces when `None`), narrowed by a label
/// and a field selector in the API's own syntax.
pub async fn list(
    cluster: &Cluster,
    kind: &Kind,
    namespace: Option<&str>,
    labels: Option<&str>,
    fields: Option<&str>,
) -> Result<Vec<Value>, KubeError> {
    let mut lp = ListParams::default();
    if let Some(l) = labels.filter(|l| !l.is_empty()) {
        lp = lp.labels(l);
    }
    if let Some(f) = fields.filter(|f| !f.is_empty()) {
        lp = lp.fields(f);
    }
    list_pages_with(cluster, &api(cluster, kind, namespace), kind, &lp).await
}

/// Deletes one object; false when it was already gone. With `dry_run` the server checks the
/// request and deletes nothing.
pub async fn delete(
    cluster: &Cluster,
    kind: &Kind,
    namespace: Option<&str>,
    name: &str,
    dry_run: bool,
) -> Result<bool, KubeError> {
    let api = api(cluster, kind, namespace);
    let dp = DeleteParams {
        dry_run,
        ..DeleteParams::default()
    };
    match retry(|| api.delete(name, &dp)).await {
        Ok(_) => Ok(true),
        Err(::kube::Error::Api(r)) if r.code == 404 => Ok(false),
        Err(e) => Err(cluster.err(format!("deleting {}", where_(kind, namespace, name)), &e)),
    }
}

/// Sets the replicas of a Deployment, StatefulSet or ReplicaSet through its `scale`
/// subresource; returns the count it had. With `dry_run` the server stores nothing.
pub async fn scale(
    cluster: &Cluster,
    kind: &Kind,
    namespace: &str,
    name: &str,
    replicas: i32,
    dry_run: bool,
) -> Result<i32, KubeError> {
    let api = api(cluster, kind, Some(namespace));
    let what = || format!("scaling {}", where_(kind, Some(namespace), name));
    let before = retry(|| api.get_scale(name))
        .await
        .map_err(|e| cluster.err(what(), &e))?;
    let mut pp = PatchParams::default();
    if dry_run {
        pp = pp.dry_run();
    }
    let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } }));
    retry(|| api.patch_scale(name, &pp, &patch))
        .await
        .map_err(|e| cluster.err(what(), &e))?;
    Ok(before.spec.and_then(|s| s.replicas).unwrap_or(0))
}

/// What to read of a container's log.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub container: Option<String>,
    /// The last lines only.
    pub tail: Option<i64>,
    /// The previous, terminated instance of the container: why it crashed.
    pub previous: bool,
    /// Lines of the last this many seconds only.
    pub since_seconds: Option<i64>,
}

/// A container's log, as text.
pub async fn logs(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    q: &LogQuery,
) -> Result<String, KubeError> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let lp = LogParams {
        container: q.container.clone(),
        tail_lines: q.tail,
        previous: q.previous,
        since_seconds: q.since_seconds,
        ..LogParams::default()
    };
    retry(|| api.logs(pod, &lp))
        .await
        .map_err(|e| cluster.err(format!("reading the log of pod {namespace}/{pod}"), &e))
}

/// An access question: may `user` (or kfguard itself, when `None`) `verb` the `resource`?
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub verb: String,
    /// `pods`, or `workflows.argoproj.io` for a resource of a group, as kubectl writes it.
    pub resource: String,
    pub namespace: Option<String>,
    /// A user, or a service account as `system:serviceaccount:NS:NAME`.
    pub user: Option<String>,
}

/// Asks the API server's authorizer, through a (Self)SubjectAccessReview.
pub async fn can_i(cluster: &Cluster, q: &Access) -> Result<bool, KubeError> {
    let (resource, group) = match q.resource.split_once('.') {
        Some((r, g)) => (r.to_string(), g.to_string()),
        None => (q.resource.clone(), String::new()),
    };
    let attrs = ResourceAttributes {
        verb: Some(q.verb.clone()),
        resource: Some(resource),
        group: Some(group),
        namespace: q.namespace.clone().filter(|n| !n.is_empty()),
        ..ResourceAttributes::default()
    };
    let what = format!(
        "asking whether {} may {}",
        q.user.as_deref().unwrap_or("kfguard"),
        q.verb
    );
    let pp = PostParams::default();
    let status = if let Some(user) = &q.user {
        // A review names the groups itself; the authenticator would have added these.
        let mut groups = vec!["system:authenticated".to_string()];
        if let Some(ns) = user
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split(':').next())
        {
            groups.push("system:serviceaccounts".into());
            groups.push(format!("system:serviceaccounts:{ns}"));
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.clone()),
                groups: Some(groups),
                resource_attributes: Some(attrs),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(cluster.client.clone());
        retry(|| api.create(&pp, &review))
            .await
            .map_err(|e| cluster.err(&what, &e))?
            .status
    } else {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(attrs),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
        retry(|| api.create(&pp, &review))
            .await
            .map_err(|e| cluster.err(&what, &e))?
            .status
    };
    Ok(status.is_some_and(|s| s.allowed))
}

/// What `wait` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Exists,
    Deleted,
    /// `status.conditions[type == T].status == "True"`: Ready, Available, Established…
    Status(String),
}

impl Condition {
    pub fn parse(s: &str) -> Self {
        match s {
            "exists" => Self::Exists,
            "deleted" => Self::Deleted,
            other => Self::Status(other.to_string()),
        }
    }

    fn holds(&self, obj: Option<&DynamicObject>) -> bool {
        match (self, obj) {
            (Self::Exists, o) => o.is_some(),
            (Self::Deleted, o) => o.is_none(),
            (Self::Status(t), Some(o)) => {
                o.data["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == t.as_str() && c["status"] == "True")
                })
            }
            (Self::Status(_), None) => false,
        }
    }
}

/// Watches one object until `cond` holds (true) or `limit` passes (false).
pub async fn wait(
    cluster: &Cluster,
    kind: &Kind,
    namespace: Option<&str>,
    name: &str,
    cond: &Condition,
    limit: Duration,
) -> Result<bool, KubeError> {
    let api = api(cluster, kind, namespace);
    let watch = async {
        loop {
            let c = cond.clone();
            match await_condition(api.clone(), name, move |o: Option<&DynamicObject>| {
                c.holds(o)
            })
            .await
            {
                Ok(_) => return,
                // A dropped watch is watched again: only the limit ends a wait.
                Err(e) => {
                    tracing::debug!("watching {name} failed ({e}); watching again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    Ok(tokio::time::timeout(limit, watch).await.is_ok())
}
