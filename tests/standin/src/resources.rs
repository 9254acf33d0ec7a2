//! The resource table: built-in kinds plus whatever the stored CustomResourceDefinitions serve.

use serde_json::Value;
use std::collections::BTreeMap;

/// One served resource at one group/version.
#[derive(Debug, Clone)]
pub struct Res {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub verbs: Vec<&'static str>,
    /// Has a `/status` subresource: main-resource writes keep the live status.
    pub status: bool,
}

pub const CRUD: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
pub const CRD_GROUP: &str = "apiextensions.k8s.io";
pub const CRD_RESOURCE: &str = "customresourcedefinitions";
pub const AUTHZ_GROUP: &str = "authorization.k8s.io";

impl Res {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn is_crd(&self) -> bool {
        self.group == CRD_GROUP && self.plural == CRD_RESOURCE
    }

    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }
}

/// Splits `group/version` (or bare `v1`) into its parts.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

fn builtin(gv: &str, plural: &str, kind: &str, namespaced: bool, short: &[&str], status: bool) -> Res {
    let (g, v) = split_api_version(gv);
    Res {
        group: g.into(),
        version: v.into(),
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        verbs: CRUD.to_vec(),
        status,
    }
}

/// The built-in kinds, in discovery order.
pub fn builtins() -> &'static [Res] {
    static B: std::sync::OnceLock<Vec<Res>> = std::sync::OnceLock::new();
    B.get_or_init(|| {
        let mut v = vec![
            builtin("v1", "namespaces", "Namespace", false, &["ns"], true),
            builtin("v1", "pods", "Pod", true, &["po"], true),
            builtin("v1", "services", "Service", true, &["svc"], true),
            builtin("v1", "configmaps", "ConfigMap", true, &["cm"], false),
            builtin("v1", "secrets", "Secret", true, &[], false),
            builtin("v1", "serviceaccounts", "ServiceAccount", true, &["sa"], false),
            builtin(
                "v1",
                "persistentvolumeclaims",
                "PersistentVolumeClaim",
                true,
                &["pvc"],
                true,
            ),
            builtin("v1", "persistentvolumes", "PersistentVolume", false, &["pv"], true),
            builtin("v1", "resourcequotas", "ResourceQuota", true, &["quota"], true),
            builtin("v1", "limitranges", "LimitRange", true, &["limits"], false),
            builtin("v1", "events", "Event", true, &["ev"], false),
            builtin("v1", "endpoints", "Endpoints", true, &["ep"], false),
            builtin("v1", "nodes", "Node", false, &["no"], true),
            builtin("apps/v1", "deployments", "Deployment", true, &["deploy"], true),
            builtin("apps/v1", "statefulsets", "StatefulSet", true, &["sts"], true),
            builtin("apps/v1", "daemonsets", "DaemonSet", true, &["ds"], true),
            builtin("apps/v1", "replicasets", "ReplicaSet", true, &["rs"], true),
            builtin("rbac.authorization.k8s.io/v1", "roles", "Role", true, &[], false),
            builtin(
                "rbac.authorization.k8s.io/v1",
                "rolebindings",
                "RoleBinding",
                true,
                &[],
                false,
            ),
            builtin(
                "rbac.authorization.k8s.io/v1",
                "clusterroles",
                "ClusterRole",
                false,
                &[],
                false,
            ),
            builtin(
                "rbac.authorization.k8s.io/v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
                &[],
                false,
            ),
            builtin(
                "networking.k8s.io/v1",
                "networkpolicies",
                "NetworkPolicy",
                true,
                &["netpol"],
                false,
            ),
            builtin("networking.k8s.io/v1", "ingresses", "Ingress", true, &["ing"], true),
            builtin(
                "discovery.k8s.io/v1",
                "endpointslices",
                "EndpointSlice",
                true,
                &[],
                false,
            ),
            builtin(
                "storage.k8s.io/v1",
                "storageclasses",
                "StorageClass",
                false,
                &["sc"],
                false,
            ),
            builtin(
                "apiextensions.k8s.io/v1",
                CRD_RESOURCE,
                "CustomResourceDefinition",
                false,
                &["crd", "crds"],
                true,
            ),
        ];
        for (plural, kind) in [
            ("validatingwebhookconfigurations", "ValidatingWebhookConfiguration"),
            ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration"),
        ] {
            v.push(builtin(
                "admissionregistration.k8s.io/v1",
                plural,
                kind,
                false,
                &[],
                false,
            ));
        }
        for (plural, kind) in [
            ("subjectaccessreviews", "SubjectAccessReview"),
            ("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
        ] {
            let mut r = builtin("authorization.k8s.io/v1", plural, kind, false, &[], false);
            r.verbs = vec!["create"];
            v.push(r);
        }
        v
    })
}

/// The resources a CRD object serves, one per served version (empty until it is Established,
/// unless `any_state`).
pub fn crd_resources(crd: &Value, any_state: bool) -> Vec<Res> {
    if !any_state && !is_established(crd) {
        return Vec::new();
    }
    let spec = &crd["spec"];
    let names = &spec["names"];
    let (Some(group), Some(plural), Some(kind)) =
        (spec["group"].as_str(), names["plural"].as_str(), names["kind"].as_str())
    else {
        return Vec::new();
    };
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let short_names: Vec<String> = names["shortNames"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| any_state || v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| {
            Some(Res {
                group: group.into(),
                version: v["name"].as_str()?.into(),
                plural: plural.into(),
                singular: singular.clone(),
                kind: kind.into(),
                namespaced,
                short_names: short_names.clone(),
                verbs: CRUD.to_vec(),
                status: v["subresources"].get("status").is_some(),
            })
        })
        .collect()
}

pub fn is_established(crd: &Value) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Established" && c["status"] == "True"))
}

/// Every group with its versions, core group excluded, in a stable order. The versions are in
/// Kubernetes version priority, so the first is the preferred one, as a real API server
/// reports it (see [`by_priority`]).
pub fn groups(all: &[Res]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut idx: BTreeMap<String, usize> = BTreeMap::new();
    for r in all.iter().filter(|r| !r.group.is_empty()) {
        let i = *idx.entry(r.group.clone()).or_insert_with(|| {
            out.push((r.group.clone(), Vec::new()));
            out.len() - 1
        });
        if !out[i].1.contains(&r.version) {
            out[i].1.push(r.version.clone());
        }
    }
    for (_, versions) in &mut out {
        versions.sort_by(|a, b| by_priority(a, b));
    }
    out
}

/// Kubernetes version priority, highest first, as apimachinery's
/// `CompareKubeAwareVersionStrings` orders a group's versions for discovery: GA before beta
/// before alpha; within one level the higher major version first, then the higher beta or alpha
/// number (`v2`, `v1`, `v2beta1`, `v1beta2`, `v1beta1`, `v1alpha1`). Versions not of the form
/// `vN`, `vNbetaM` or `vNalphaM` come last, alphabetically. A group's preferred version is the
/// first one: the order CRDs happen to be stored in plays no part.
pub fn by_priority(a: &str, b: &str) -> std::cmp::Ordering {
    match (kube_version(a), kube_version(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// `(level, major, minor)` of a Kubernetes-style version, level 2 for GA, 1 beta, 0 alpha.
fn kube_version(v: &str) -> Option<(u8, u64, u64)> {
    let digits = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let rest = v.strip_prefix('v')?;
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let major = digits(&rest[..end])?;
    let (level, minor) = match &rest[end..] {
        "" => (2, 0),
        tail => match (tail.strip_prefix("beta"), tail.strip_prefix("alpha")) {
            (Some(n), _) => (1, digits(n)?),
            (_, Some(n)) => (0, digits(n)?),
            _ => return None,
        },
    };
    Some((level, major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut vs = vec![
            "v1alpha1",
            "foo",
            "v1beta1",
            "v1",
            "v2beta1",
            "v1beta2",
            "v2",
            "bar",
            "v11alpha2",
            "v1beta",
        ];
        vs.sort_by(|a, b| by_priority(a, b));
        assert_eq!(
            vs,
            [
                "v2",
                "v1",
                "v2beta1",
                "v1beta2",
                "v1beta1",
                "v11alpha2",
                "v1alpha1",
                "bar",
                "foo",
                "v1beta"
            ]
        );
    }
}
