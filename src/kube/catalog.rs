//! What to capture from a live cluster: the kinds (found by discovery), the namespaces (by
//! glob and Profile label), and every selected object, listed page by page and sanitised.

use std::collections::{BTreeMap, BTreeSet};

use ::kube::api::{Api, DynamicObject, ListParams};
use ::kube::discovery::{verbs, ApiResource, Discovery, Scope};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;

use super::object::{self, ObjectKey};
use super::{retry, Cluster, KubeError};
use crate::config::{Globs, KubernetesConfig};

/// Items per list page: the server's usual default, small enough for huge kinds.
const PAGE: u32 = 500;
/// Kinds listed at the same time.
const PARALLEL_LISTS: usize = 8;
/// The label the Kubeflow profile controller puts on every profile namespace.
const PROFILE_NS_LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "kubeflow-profile");
/// Cluster roles every cluster has; bindings to them are kept, the roles are not.
const BUILTIN_CLUSTER_ROLES: [&str; 4] = ["cluster-admin", "admin", "edit", "view"];

/// The built-in kinds kfguard captures besides the CRD groups, as (group, kind).
pub(super) const BUILTIN_KINDS: [(&str, &str); 11] = [
    ("", "Namespace"),
    ("", "ServiceAccount"),
    ("", "ConfigMap"),
    ("", "PersistentVolumeClaim"),
    ("", "ResourceQuota"),
    ("", "LimitRange"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("networking.k8s.io", "NetworkPolicy"),
];
pub(super) const CRD: (&str, &str) = ("apiextensions.k8s.io", "CustomResourceDefinition");
pub(super) const AUTHZ_POLICY: (&str, &str) = ("security.istio.io", "AuthorizationPolicy");
pub(crate) const SECRET: (&str, &str) = ("", "Secret");

/// A kind to list: its API resource and whether it lives in namespaces.
#[derive(Clone, Debug)]
pub struct Kind {
    pub ar: ApiResource,
    pub namespaced: bool,
}

/// What a capture found.
#[derive(Debug, Default)]
pub struct Capture {
    /// Sanitised objects, in key order.
    pub objects: BTreeMap<ObjectKey, Value>,
    /// Objects left out on purpose, per reason, e.g. finished Argo Workflows.
    pub skipped: BTreeMap<String, u64>,
    /// The selected namespaces.
    pub namespaces: BTreeSet<String>,
    /// Versions read off the cluster: the API server, KFP.
    pub versions: BTreeMap<String, String>,
}

/// The cluster's served kinds, by (group, kind), at their preferred versions.
pub struct Served {
    kinds: BTreeMap<(String, String), Kind>,
    groups: BTreeSet<String>,
}

impl Served {
    pub async fn discover(cluster: &Cluster) -> Result<Self, KubeError> {
        let discovery = Discovery::new(cluster.client.clone())
            .run()
            .await
            .map_err(|e| cluster.err("discovering the served API groups", &e))?;
        let mut kinds = BTreeMap::new();
        let mut groups = BTreeSet::new();
        for group in discovery.groups() {
            groups.insert(group.name().to_string());
            // A group's kinds can live at different versions (Profile at kubeflow.org/v1,
            // Experiment at kubeflow.org/v1beta1): take each kind at the preferred version when
            // it is served there, else at its most stable one.
            let preferred = group.recommended_resources();
            for (ar, caps) in preferred.into_iter().chain(group.resources_by_stability()) {
                if !caps.supports_operation(verbs::LIST) || ar.plural.contains('/') {
                    continue;
                }
                kinds
                    .entry((ar.group.clone(), ar.kind.clone()))
                    .or_insert_with(|| Kind {
                        namespaced: matches!(caps.scope, Scope::Namespaced),
                        ar,
                    });
            }
        }
        Ok(Self { kinds, groups })
    }

    pub fn get(&self, group: &str, kind: &str) -> Option<&Kind> {
        self.kinds.get(&(group.to_string(), kind.to_string()))
    }

    /// Every served kind of the groups that match `groups`.
    pub fn of_groups<'a>(&'a self, groups: &'a Globs) -> impl Iterator<Item = &'a Kind> {
        self.kinds
            .iter()
            .filter(|((g, _), _)| !g.is_empty() && groups.is_match(g))
            .map(|(_, k)| k)
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains(group)
    }

    /// A kind as a person writes it: `Pod`, `pods`, `apps/Deployment`, or kubectl's
    /// `workflows.argoproj.io`. A bare name served by several groups is taken from the core and
    /// `apps` groups first, as kubectl does; elsewhere it is ambiguous.
    pub fn find(&self, name: &str) -> Result<&Kind, String> {
        let name = name.trim();
        let (group, bare) = match name.split_once('/') {
            Some((g, k)) => (Some(if g == "core" { "" } else { g }), k),
            None => match name.split_once('.') {
                Some((plural, g)) => (Some(g), plural),
                None => (None, name),
            },
        };
        let same = |k: &Kind| {
            k.ar.kind.eq_ignore_ascii_case(bare) || k.ar.plural.eq_ignore_ascii_case(bare)
        };
        let matches: Vec<&Kind> = self
            .kinds
            .values()
            .filter(|k| group.is_none_or(|g| k.ar.group == g) && same(k))
            .collect();
        let preferred = matches
            .iter()
            .find(|k| k.ar.group.is_empty())
            .or_else(|| matches.iter().find(|k| k.ar.group == "apps"));
        match (matches.as_slice(), preferred) {
            ([one], _) => Ok(one),
            (_, Some(k)) => Ok(k),
            ([], _) => Err(format!(
                "the cluster serves no kind `{name}`; write Kind, plural or group/Kind, e.g. Pod or argoproj.io/Workflow"
            )),
            (many, None) => Err(format!(
                "`{name}` is served by several groups ({}); write group/Kind",
                many.iter().map(|k| k.ar.group.as_str()).collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

/// Lists every object of one kind, all namespaces, page by page, with `apiVersion` and `kind`
/// set on each item (list items come without them).
pub async fn list_kind(cluster: &Cluster, kind: &Kind) -> Result<Vec<Value>, KubeError> {
    let api: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &kind.ar);
    list_pages(cluster, &api, kind).await
}

async fn list_pages(
    cluster: &Cluster,
    api: &Api<DynamicObject>,
    kind: &Kind,
) -> Result<Vec<Value>, KubeError> {
    list_pages_with(cluster, api, kind, &ListParams::default()).await
}

/// Like `list_pages`, narrowed by the label and field selectors of `base`.
pub(super) async fn list_pages_with(
    cluster: &Cluster,
    api: &Api<DynamicObject>,
    kind: &Kind,
    base: &ListParams,
) -> Result<Vec<Value>, KubeError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut lp = base.clone().limit(PAGE);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = retry(|| api.list(&lp))
            .await
            .map_err(|e| cluster.err(format!("listing {}", kind.ar.plural), &e))?;
        for item in page.items {
            out.push(typed(kind, item)?);
        }
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(out),
        }
    }
}

/// An object as JSON, with the `apiVersion` and `kind` that list items come without.
pub(super) fn typed(kind: &Kind, obj: DynamicObject) -> Result<Value, KubeError> {
    let mut v = serde_json::to_value(obj).map_err(|e| KubeError::BadObject {
        path: kind.ar.plural.clone(),
        detail: e.to_string(),
    })?;
    if let Some(o) = v.as_object_mut() {
        o.insert("apiVersion".into(), kind.ar.api_version.clone().into());
        o.insert("kind".into(), kind.ar.kind.clone().into());
    }
    Ok(v)
}

/// Lists a namespaced kind in the given namespaces: one cluster-wide list, or one list per
/// namespace when the cluster-wide list is forbidden (a namespaced backup role).
async fn list_in(
    cluster: &Cluster,
    kind: &Kind,
    namespaces: &BTreeSet<String>,
) -> Result<Vec<Value>, KubeError> {
    if !kind.namespaced {
        return list_kind(cluster, kind).await;
    }
    match list_kind(cluster, kind).await {
        Ok(all) => Ok(all
            .into_iter()
            .filter(|o| namespace_of(o).is_some_and(|ns| namespaces.contains(ns)))
            .collect()),
        Err(e) if e.code() == Some(403) => {
            let mut out = Vec::new();
            for ns in namespaces {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(cluster.client.clone(), ns, &kind.ar);
                out.extend(list_pages(cluster, &api, kind).await?);
            }
            Ok(out)
        }
        Err(e) => Err(e),
    }
}

fn namespace_of(o: &Value) -> Option<&str> {
    o.pointer("/metadata/namespace").and_then(Value::as_str)
}

fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The namespaces to capture: those matching `namespaces` or labelled as a Kubeflow profile
/// namespace, minus those matching `exclude_namespaces`.
pub fn select_namespaces(cfg: &KubernetesConfig, all: &[Value]) -> BTreeSet<String> {
    all.iter()
        .filter(|ns| {
            let name = name_of(ns);
            let by_name = cfg.globs.namespaces.is_match(name);
            let by_label = ns
                .pointer("/metadata/labels")
                .and_then(|l| l.get(PROFILE_NS_LABEL.0))
                .and_then(Value::as_str)
                == Some(PROFILE_NS_LABEL.1);
            (by_name || by_label) && !cfg.globs.exclude_namespaces.is_match(name)
        })
        .map(|ns| name_of(ns).to_string())
        .collect()
}

/// Captures the selected state of the cluster.
pub async fn capture(cluster: &Cluster, cfg: &KubernetesConfig) -> Result<Capture, KubeError> {
    let served = Served::discover(cluster).await?;
    let mut cap = Capture::default();
    if let Ok(v) = cluster.client.apiserver_version().await {
        cap.versions.insert("kubernetes".into(), v.git_version);
    }
    let ns_kind = served
        .get("", "Namespace")
        .ok_or_else(|| KubeError::Api {
            server: cluster.server.clone(),
            what: "discovery".into(),
            detail: "the server does not serve namespaces".into(),
            code: None,
        })?
        .clone();
    let all_ns = list_kind(cluster, &ns_kind).await?;
    cap.namespaces = select_namespaces(cfg, &all_ns);

    let mut kinds: Vec<Kind> = Vec::new();
    let mut wanted: Vec<(&str, &str)> = BUILTIN_KINDS.to_vec();
    wanted.push(CRD);
    wanted.push(AUTHZ_POLICY);
    if cfg.include_secrets {
        wanted.push(SECRET);
    }
    for (g, k) in wanted {
        if let Some(kind) = served.get(g, k) {
            kinds.push(kind.clone());
        }
    }
    for kind in served.of_groups(&cfg.globs.crd_groups) {
        if !kinds
            .iter()
            .any(|k| k.ar.group == kind.ar.group && k.ar.kind == kind.ar.kind)
        {
            kinds.push(kind.clone());
        }
    }

    let namespaces = &cap.namespaces;
    let all_ns = &all_ns;
    let listed: Vec<(Kind, Vec<Value>)> = stream::iter(kinds.into_iter().map(|kind| async move {
        let items = if kind.ar.kind == "Namespace" && kind.ar.group.is_empty() {
            Ok(all_ns
                .iter()
                .filter(|o| namespaces.contains(name_of(o)))
                .cloned()
                .collect())
        } else {
            list_in(cluster, &kind, namespaces).await
        };
        items.map(|items| (kind, items))
    }))
    .buffer_unordered(PARALLEL_LISTS)
    .try_collect()
    .await?;

    let mut objects: Vec<Value> = Vec::new();
    for (kind, items) in listed {
        for o in items {
            if !keep(cfg, &kind, &o, &mut cap.skipped) {
                continue;
            }
            objects.push(o);
        }
    }
    let objects = kubeflow_cluster_rbac(objects, &cap.namespaces);
    for mut o in objects {
        if o.get("kind").and_then(Value::as_str) == Some("ConfigMap")
            && name_of(&o) == "pipeline-install-config"
        {
            if let Some(v) = o.pointer("/data/appVersion").and_then(Value::as_str) {
                cap.versions.insert("kfp".into(), v.to_string());
            }
        }
        object::sanitize(&mut o);
        if let Some(key) = ObjectKey::of(&o) {
            cap.objects.insert(key, o);
        }
    }
    Ok(cap)
}

/// Per-object filters that do not depend on other objects.
fn keep(
    cfg: &KubernetesConfig,
    kind: &Kind,
    o: &Value,
    skipped: &mut BTreeMap<String, u64>,
) -> bool {
    let mut skip = |why: &str| {
        *skipped.entry(why.to_string()).or_default() += 1;
        false
    };
    match (kind.ar.group.as_str(), kind.ar.kind.as_str()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let group = o
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or("");
            cfg.globs.crd_groups.is_match(group)
        }
        // Every namespace gets this one from the cluster itself.
        ("", "ConfigMap") if name_of(o) == "kube-root-ca.crt" => false,
        // Token secrets are minted by the cluster for its service accounts.
        ("", "Secret")
            if o.get("type").and_then(Value::as_str)
                == Some("kubernetes.io/service-account-token") =>
        {
            false
        }
        ("argoproj.io", "Workflow")
            if !cfg.include_finished_workflows && object::is_finished_workflow(o) =>
        {
            skip("argoproj.io/Workflow (finished)")
        }
        _ => true,
    }
}

/// Keeps only the cluster-wide RBAC that belongs to Kubeflow: roles and bindings that name
/// Kubeflow, bindings whose subjects live in a captured namespace, and the cluster roles those
/// bindings (or captured RoleBindings) refer to, except the cluster's own built-in roles.
fn kubeflow_cluster_rbac(objects: Vec<Value>, namespaces: &BTreeSet<String>) -> Vec<Value> {
    let is = |o: &Value, kind: &str| {
        o.get("kind").and_then(Value::as_str) == Some(kind)
            && o.get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|v| object::group_of(v) == "rbac.authorization.k8s.io")
    };
    let builtin = |name: &str| name.starts_with("system:") || BUILTIN_CLUSTER_ROLES.contains(&name);
    let kubeflow_roles: BTreeSet<String> = objects
        .iter()
        .filter(|o| is(o, "ClusterRole") && mentions_kubeflow(o) && !builtin(name_of(o)))
        .map(|o| name_of(o).to_string())
        .collect();
    let binding_kept = |o: &Value| {
        let subject_here = o
            .get("subjects")
            .and_then(Value::as_array)
            .is_some_and(|s| {
                s.iter().any(|s| {
                    s.get("namespace")
                        .and_then(Value::as_str)
                        .is_some_and(|ns| namespaces.contains(ns))
                })
            });
        let role = o
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        !builtin(name_of(o))
            && (mentions_kubeflow(o) || subject_here || kubeflow_roles.contains(role))
    };
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    for o in &objects {
        let cluster_binding = is(o, "ClusterRoleBinding") && binding_kept(o);
        let role_binding = is(o, "RoleBinding");
        if (cluster_binding || role_binding)
            && o.pointer("/roleRef/kind").and_then(Value::as_str) == Some("ClusterRole")
        {
            if let Some(r) = o.pointer("/roleRef/name").and_then(Value::as_str) {
                referenced.insert(r.to_string());
            }
        }
    }
    objects
        .into_iter()
        .filter(|o| {
            if is(o, "ClusterRoleBinding") {
                binding_kept(o)
            } else if is(o, "ClusterRole") {
                let name = name_of(o);
                !builtin(name) && (kubeflow_roles.contains(name) || referenced.contains(name))
            } else {
                true
            }
        })
        .collect()
}

/// Whether an object's name, labels or aggregation rule name Kubeflow.
fn mentions_kubeflow(o: &Value) -> bool {
    let has = |s: &str| s.contains("kubeflow");
    if has(name_of(o)) {
        return true;
    }
    let labels = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .is_some_and(|l| l.iter().any(|(k, v)| has(k) || v.as_str().is_some_and(has)));
    labels
        || o.get("aggregationRule")
            .is_some_and(|a| has(&a.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> KubernetesConfig {
        let mut cfg = KubernetesConfig {
            exclude_namespaces: vec!["kubeflow-user-old".into()],
            ..Default::default()
        };
        cfg.compile_globs().unwrap();
        cfg
    }

    #[test]
    fn namespaces_by_glob_and_profile_label() {
        let ns = |name: &str, label: bool| {
            let mut o = json!({"metadata": {"name": name}});
            if label {
                o["metadata"]["labels"] = json!({"app.kubernetes.io/part-of": "kubeflow-profile"});
            }
            o
        };
        let all = vec![
            ns("kubeflow", false),
            ns("kubeflow-user-alice", false),
            ns("kubeflow-user-old", false),
            ns("bob", true),
            ns("default", false),
        ];
        let got: Vec<_> = select_namespaces(&cfg(), &all).into_iter().collect();
        assert_eq!(got, ["bob", "kubeflow", "kubeflow-user-alice"]);
    }

    #[test]
    fn cluster_rbac_keeps_kubeflow_and_what_it_refers_to() {
        let cr = |name: &str, labels: Value| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name, "labels": labels}});
        let crb = |name: &str, role: &str, ns: &str| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"kind": "ClusterRole", "name": role}, "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": ns}]})
        };
        let objects = vec![
            cr("kubeflow-edit", json!({})),
            cr("ml-pipeline", json!({})),
            cr("unrelated", json!({})),
            cr("katib", json!({"app.kubernetes.io/part-of": "kubeflow"})),
            cr("cluster-admin", json!({})),
            crb("ml-pipeline", "ml-pipeline", "kubeflow"),
            crb("other", "unrelated", "default"),
            crb("admins", "cluster-admin", "kubeflow"),
        ];
        let ns: BTreeSet<String> = ["kubeflow".to_string()].into();
        let kept: Vec<String> = kubeflow_cluster_rbac(objects, &ns)
            .iter()
            .map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), name_of(o)))
            .collect();
        assert_eq!(
            kept,
            [
                "ClusterRole/kubeflow-edit",
                "ClusterRole/ml-pipeline",
                "ClusterRole/katib",
                "ClusterRoleBinding/ml-pipeline",
                "ClusterRoleBinding/admins"
            ]
        );
    }
}
