//! The restore order of Kubernetes objects, and the rewrites a restore makes to them before
//! they are applied: namespace mapping, disabled schedules, kind selection.

use std::collections::HashMap;

use serde_json::Value;

use crate::kube::object::{group_of, ObjectKey, OwnerRef};

/// The stages of a restore, in the order they are applied. Each stage waits for the one before.
pub const STAGES: [&str; 9] = [
    "crds",
    "namespaces",
    "serviceaccounts",
    "roles",
    "bindings",
    "policies",
    "config",
    "volumes",
    "custom resources",
];

/// The stage of a kind, 1-based as in the plan: CRDs first, custom resources last.
pub fn stage(group: &str, kind: &str) -> u8 {
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        ("", "Namespace") | ("kubeflow.org", "Profile") => 2,
        ("", "ServiceAccount") => 3,
        ("rbac.authorization.k8s.io", "ClusterRole" | "Role") => 4,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding" | "RoleBinding") => 5,
        ("", "ResourceQuota" | "LimitRange")
        | ("networking.k8s.io", "NetworkPolicy")
        | ("security.istio.io", "AuthorizationPolicy") => 6,
        ("", "ConfigMap" | "Secret") => 7,
        ("", "PersistentVolumeClaim") => 8,
        _ => 9,
    }
}

/// A kind by its group: `("argoproj.io", "Workflow")`.
type GroupKind = (&'static str, &'static str);

/// Argo's templates, which Workflows, CronWorkflows and KFP's ScheduledWorkflows run.
const TEMPLATES: &[GroupKind] = &[
    ("argoproj.io", "WorkflowTemplate"),
    ("argoproj.io", "ClusterWorkflowTemplate"),
];
const RUNTIMES: &[GroupKind] = &[
    ("serving.kserve.io", "ServingRuntime"),
    ("serving.kserve.io", "ClusterServingRuntime"),
];
const EXPERIMENT: &[GroupKind] = &[("kubeflow.org", "Experiment")];

/// Custom resources that name objects of other kinds, and those kinds: within the
/// custom-resources stage the second are applied, and finished, before the first. A running
/// Workflow whose template is missing fails at once; an InferenceService needs its runtime;
/// Katib's Trials and Suggestions belong to their Experiment.
const REFERENCES: [(GroupKind, &[GroupKind]); 6] = [
    (("argoproj.io", "Workflow"), TEMPLATES),
    (("argoproj.io", "CronWorkflow"), TEMPLATES),
    (("kubeflow.org", "ScheduledWorkflow"), TEMPLATES),
    (("serving.kserve.io", "InferenceService"), RUNTIMES),
    (("kubeflow.org", "Trial"), EXPERIMENT),
    (("kubeflow.org", "Suggestion"), EXPERIMENT),
];

/// The kinds a kind refers to and must come after, as (group, kind).
fn referenced_kinds(group: &str, kind: &str) -> &'static [GroupKind] {
    REFERENCES
        .iter()
        .find(|(user, _)| *user == (group, kind))
        .map_or(&[], |(_, refs)| refs)
}

/// The wave of each object of one stage, 0 first: an object comes after its owners in the
/// stage (they need their new UIDs first) and after every object of the kinds it refers to
/// (see [`REFERENCES`]). A wave is applied, and finished, before the next one starts. An
/// ownership cycle, which Kubernetes never makes, stops the waves from growing.
pub fn waves(objects: &[(&ObjectKey, &Value)]) -> Vec<usize> {
    let index: HashMap<&ObjectKey, usize> = objects
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (*k, i))
        .collect();
    let deps: Vec<(Vec<usize>, &[GroupKind])> = objects
        .iter()
        .map(|(k, o)| {
            let owners = OwnerRef::all_of(o)
                .iter()
                .filter_map(|r| r.find(k.namespace.as_deref(), |key| index.get(key).copied()))
                .collect();
            (owners, referenced_kinds(&k.group, &k.kind))
        })
        .collect();
    let mut wave = vec![0usize; objects.len()];
    for _ in 0..=objects.len().min(64) {
        let mut last_of_kind: HashMap<(&str, &str), usize> = HashMap::new();
        for ((k, _), w) in objects.iter().zip(&wave) {
            let e = last_of_kind
                .entry((k.group.as_str(), k.kind.as_str()))
                .or_default();
            *e = (*e).max(*w);
        }
        let mut changed = false;
        for (i, (owners, kinds)) in deps.iter().enumerate() {
            let after_owners = owners.iter().map(|&o| wave[o] + 1);
            let after_kinds = kinds
                .iter()
                .filter_map(|k| last_of_kind.get(k).map(|w| w + 1));
            let need = after_owners.chain(after_kinds).max().unwrap_or(0);
            if need > wave[i] {
                wave[i] = need;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    wave
}

pub fn stage_name(stage: u8) -> &'static str {
    STAGES
        .get(usize::from(stage).saturating_sub(1))
        .copied()
        .unwrap_or("other")
}

/// Whether `--include-kinds` selects this kind: `Kind` or `group/Kind` (`core/` for the core
/// group), case-insensitively; everything when the list is empty.
pub fn kind_selected(include: &[String], key: &ObjectKey) -> bool {
    include.is_empty()
        || include.iter().any(|want| {
            let want = want.trim();
            match want.rsplit_once('/') {
                Some((g, k)) => {
                    k.eq_ignore_ascii_case(&key.kind)
                        && (g.eq_ignore_ascii_case(&key.group)
                            || (key.group.is_empty() && g.eq_ignore_ascii_case("core")))
                }
                None => want.eq_ignore_ascii_case(&key.kind),
            }
        })
}

/// Moves an object from namespace `from` to `to`: its namespace, a Namespace or Profile of that
/// name, binding subjects, and Istio principals (`cluster.local/ns/<ns>/sa/...`).
pub fn map_namespace(obj: &mut Value, map: &[(String, String)]) {
    let Some(key) = ObjectKey::of(obj) else {
        return;
    };
    let mapped = |ns: &str| map.iter().find(|(a, _)| a == ns).map(|(_, b)| b.clone());
    if let Some(to) = key.namespace.as_deref().and_then(mapped) {
        obj["metadata"]["namespace"] = to.into();
    }
    let names_namespace = matches!(
        (key.group.as_str(), key.kind.as_str()),
        ("", "Namespace") | ("kubeflow.org", "Profile")
    );
    if names_namespace {
        if let Some(to) = mapped(&key.name) {
            obj["metadata"]["name"] = to.into();
        }
    }
    if let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut) {
        for s in subjects {
            if let Some(to) = s.get("namespace").and_then(Value::as_str).and_then(mapped) {
                s["namespace"] = to.into();
            }
        }
    }
    if key.group == "security.istio.io" {
        if let Some(spec) = obj.get_mut("spec") {
            let mut text = spec.to_string();
            for (a, b) in map {
                text = text.replace(&format!("/ns/{a}/"), &format!("/ns/{b}/"));
            }
            if let Ok(v) = serde_json::from_str(&text) {
                *spec = v;
            }
        }
    }
}

/// Turns a schedule off so that a restore does not backfill runs: KFP ScheduledWorkflows get
/// `enabled: false` and `noCatchup: true`, Argo CronWorkflows `suspend: true`. Returns whether
/// the object is a schedule that was turned off.
pub fn disable_schedule(obj: &mut Value) -> bool {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let group = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .map_or("", group_of)
        .to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return false;
    };
    match (group.as_str(), kind.as_str()) {
        ("kubeflow.org", "ScheduledWorkflow") => {
            spec.insert("enabled".into(), false.into());
            spec.insert("noCatchup".into(), true.into());
            true
        }
        ("argoproj.io", "CronWorkflow") => {
            spec.insert("suspend".into(), true.into());
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stages_follow_dependencies() {
        assert!(stage("apiextensions.k8s.io", "CustomResourceDefinition") < stage("", "Namespace"));
        assert!(stage("kubeflow.org", "Profile") < stage("", "ServiceAccount"));
        assert!(
            stage("rbac.authorization.k8s.io", "Role")
                < stage("rbac.authorization.k8s.io", "RoleBinding")
        );
        assert!(stage("", "ConfigMap") < stage("", "PersistentVolumeClaim"));
        assert_eq!(stage("kubeflow.org", "Notebook"), 9);
        assert_eq!(stage_name(9), "custom resources");
    }

    #[test]
    fn referenced_kinds_and_owners_come_in_earlier_waves() {
        let o = |api: &str, kind: &str, name: &str, owner: Option<(&str, &str)>| {
            let mut v = json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "a"}});
            if let Some((k, n)) = owner {
                v["metadata"]["ownerReferences"] =
                    json!([{"apiVersion": "kubeflow.org/v1beta1", "kind": k, "name": n}]);
            }
            v
        };
        let objs = [
            o(
                "argoproj.io/v1alpha1",
                "Workflow",
                "run",
                Some(("ScheduledWorkflow", "s")),
            ),
            o("kubeflow.org/v1beta1", "ScheduledWorkflow", "s", None),
            o("argoproj.io/v1alpha1", "WorkflowTemplate", "t", None),
            o(
                "kubeflow.org/v1beta1",
                "Trial",
                "t1",
                Some(("Experiment", "e")),
            ),
            o("kubeflow.org/v1beta1", "Suggestion", "e", None),
            o("kubeflow.org/v1beta1", "Experiment", "e", None),
            o("serving.kserve.io/v1beta1", "InferenceService", "m", None),
            o(
                "serving.kserve.io/v1alpha1",
                "ClusterServingRuntime",
                "r",
                None,
            ),
            o("kubeflow.org/v1", "Notebook", "nb", None),
        ];
        let keys: Vec<ObjectKey> = objs.iter().map(|v| ObjectKey::of(v).unwrap()).collect();
        let pairs: Vec<(&ObjectKey, &Value)> = keys.iter().zip(objs.iter()).collect();
        assert_eq!(waves(&pairs), [2, 1, 0, 1, 1, 0, 1, 0, 0]);
    }

    #[test]
    fn a_cluster_scoped_owner_comes_before_what_it_owns() {
        let owner =
            json!({"apiVersion": "kubeflow.org/v1", "kind": "Tenant", "metadata": {"name": "t"}});
        let owned = json!({"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
            "metadata": {"name": "nb", "namespace": "a", "ownerReferences": [
                {"apiVersion": "kubeflow.org/v1", "kind": "Tenant", "name": "t", "uid": "1"}]}});
        let keys = [
            ObjectKey::of(&owned).unwrap(),
            ObjectKey::of(&owner).unwrap(),
        ];
        assert_eq!(waves(&[(&keys[0], &owned), (&keys[1], &owner)]), [1, 0]);
    }

    #[test]
    fn namespace_map_rewrites_references() {
        let map = vec![("alice".to_string(), "alice2".to_string())];
        let mut rb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "r", "namespace": "alice"},
            "subjects": [{"kind": "ServiceAccount", "name": "default-editor", "namespace": "alice"}]});
        map_namespace(&mut rb, &map);
        assert_eq!(rb["metadata"]["namespace"], "alice2");
        assert_eq!(rb["subjects"][0]["namespace"], "alice2");
        let mut p = json!({"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": "alice"}});
        map_namespace(&mut p, &map);
        assert_eq!(p["metadata"]["name"], "alice2");
        let mut ap = json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "ns-owner", "namespace": "alice"},
            "spec": {"rules": [{"from": [{"source": {"principals": ["cluster.local/ns/alice/sa/default-editor"]}}]}]}});
        map_namespace(&mut ap, &map);
        assert_eq!(
            ap["spec"]["rules"][0]["from"][0]["source"]["principals"][0],
            "cluster.local/ns/alice2/sa/default-editor"
        );
    }

    #[test]
    fn schedules_are_disabled() {
        let mut swf = json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow", "metadata": {"name": "s"}, "spec": {"enabled": true}});
        assert!(disable_schedule(&mut swf));
        assert_eq!(swf["spec"]["enabled"], false);
        assert_eq!(swf["spec"]["noCatchup"], true);
        let mut cm =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "spec": {}});
        assert!(!disable_schedule(&mut cm));
    }

    #[test]
    fn kind_selection() {
        let key = ObjectKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: None,
            name: "x".into(),
        };
        assert!(kind_selected(&[], &key));
        assert!(kind_selected(&["configmap".into()], &key));
        assert!(kind_selected(&["core/ConfigMap".into()], &key));
        assert!(!kind_selected(&["kubeflow.org/Profile".into()], &key));
    }
}
