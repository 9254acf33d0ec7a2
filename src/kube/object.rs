//! One Kubernetes object as kfguard stores it: sanitised JSON, its identity and its path in
//! the snapshot (`/kubernetes/cluster/<group>/<kind>/<name>.yaml` or
//! `/kubernetes/namespaces/<ns>/<group>/<kind>/<name>.yaml`).

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::KubeError;

/// Root of the Kubernetes objects inside a snapshot.
pub use crate::snapshot::layout::KUBERNETES_ROOT as ROOT;
/// Folder name of the core (`v1`) group, which has no name of its own.
pub const CORE: &str = "core";

/// Annotation written by `kubectl apply`: a stale copy of the whole object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Which object: group, kind, namespace and name (the version is not part of the identity).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKey {
    /// Empty for the core group.
    pub group: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn of(obj: &Value) -> Option<Self> {
        let api_version = obj.get("apiVersion")?.as_str()?;
        let kind = obj.get("kind")?.as_str()?;
        let meta = obj.get("metadata")?;
        let name = meta.get("name")?.as_str()?;
        Some(Self {
            group: group_of(api_version).to_string(),
            kind: kind.to_string(),
            namespace: meta
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            name: name.to_string(),
        })
    }

    /// `<group>/<Kind>`, with `core` for the core group: the manifest's count key.
    pub fn group_kind(&self) -> String {
        format!("{}/{}", folder(&self.group), self.kind)
    }

    /// Path of the object's file inside the snapshot.
    pub fn path(&self) -> String {
        match &self.namespace {
            Some(ns) => format!(
                "{ROOT}/namespaces/{ns}/{}/{}/{}.yaml",
                folder(&self.group),
                self.kind,
                self.name
            ),
            None => format!(
                "{ROOT}/cluster/{}/{}/{}.yaml",
                folder(&self.group),
                self.kind,
                self.name
            ),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.group_kind(), self.name),
            None => write!(f, "{} {}", self.group_kind(), self.name),
        }
    }
}

/// An owner named by an ownerReference: group, kind and name. The reference does not say
/// whether the owner lives in a namespace: a namespaced object can be owned by an object of its
/// own namespace or by a cluster-scoped one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    pub group: String,
    pub kind: String,
    pub name: String,
}

impl OwnerRef {
    /// One entry of `metadata.ownerReferences`.
    pub fn of(reference: &Value) -> Option<Self> {
        let text = |field: &str| reference.get(field).and_then(Value::as_str);
        Some(Self {
            group: group_of(text("apiVersion")?).to_string(),
            kind: text("kind")?.to_string(),
            name: text("name")?.to_string(),
        })
    }

    /// Every owner `obj` names.
    pub fn all_of(obj: &Value) -> Vec<Self> {
        obj.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(|refs| refs.iter().filter_map(Self::of).collect())
            .unwrap_or_default()
    }

    /// The keys the owner of an object in `namespace` can have: in that namespace first, then
    /// cluster-scoped.
    pub fn keys(&self, namespace: Option<&str>) -> impl Iterator<Item = ObjectKey> + '_ {
        let key = move |namespace: Option<&str>| ObjectKey {
            group: self.group.clone(),
            kind: self.kind.clone(),
            namespace: namespace.map(str::to_string),
            name: self.name.clone(),
        };
        namespace
            .map(|ns| key(Some(ns)))
            .into_iter()
            .chain(std::iter::once(key(None)))
    }

    /// The first of [`Self::keys`] that `lookup` knows.
    pub fn find<T>(
        &self,
        namespace: Option<&str>,
        lookup: impl Fn(&ObjectKey) -> Option<T>,
    ) -> Option<T> {
        self.keys(namespace).find_map(|k| lookup(&k))
    }
}

fn folder(group: &str) -> &str {
    if group.is_empty() {
        CORE
    } else {
        group
    }
}

/// The group of an `apiVersion`: `""` for `v1`, `apps` for `apps/v1`.
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// Strips what the server owns or what would be wrong on another cluster: identity, versions,
/// timestamps, managed fields, status and `kubectl apply`'s stale copy. Labels, annotations and
/// ownerReferences stay; owners are relinked to their new UIDs on restore.
pub fn sanitize(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generateName",
        ] {
            meta.remove(field);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.remove(LAST_APPLIED);
            // A restored claim must be provisioned afresh; the old binding names a volume
            // that a recovered cluster does not have.
            for a in [
                "pv.kubernetes.io/bind-completed",
                "pv.kubernetes.io/bound-by-controller",
            ] {
                ann.remove(a);
            }
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
        if meta
            .get("finalizers")
            .and_then(Value::as_array)
            .is_some_and(std::vec::Vec::is_empty)
        {
            meta.remove("finalizers");
        }
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    if obj.get("kind").and_then(Value::as_str) == Some("PersistentVolumeClaim") {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("volumeName");
        }
    }
}

/// An Argo Workflow that has finished: restoring it would confuse KFP's persistence agent.
pub fn is_finished_workflow(obj: &Value) -> bool {
    if obj.get("kind").and_then(Value::as_str) != Some("Workflow")
        || obj.get("apiVersion").and_then(Value::as_str).map(group_of) != Some("argoproj.io")
    {
        return false;
    }
    let completed = obj
        .pointer("/metadata/labels/workflows.argoproj.io~1completed")
        .and_then(Value::as_str)
        == Some("true");
    let phase = obj.pointer("/status/phase").and_then(Value::as_str);
    completed || matches!(phase, Some("Succeeded" | "Failed" | "Error"))
}

pub fn to_yaml(obj: &Value) -> Result<String, KubeError> {
    yaml_serde::to_string(obj).map_err(|e| KubeError::BadObject {
        path: ObjectKey::of(obj).map_or_else(|| "object".into(), |k| k.to_string()),
        detail: format!("cannot write as YAML: {e}"),
    })
}

/// Every object of a YAML text: several documents, `kind: List` documents unpacked.
pub fn from_yaml(text: &str, path: &str) -> Result<Vec<Value>, KubeError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| KubeError::BadObject {
            path: path.into(),
            detail: format!("not valid YAML: {e}"),
        })?;
        match v {
            Value::Null => {}
            Value::Object(ref o)
                if o.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List"))
                    && o.contains_key("items") =>
            {
                if let Some(items) = o.get("items").and_then(Value::as_array) {
                    out.extend(items.iter().cloned());
                }
            }
            Value::Object(_) => out.push(v),
            _ => {
                return Err(KubeError::BadObject {
                    path: path.into(),
                    detail: "a document is not a Kubernetes object".into(),
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sanitize_drops_server_fields_and_keeps_owners() {
        let mut o = json!({
            "apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
            "metadata": {"name": "nightly", "namespace": "alice", "uid": "u1",
                "resourceVersion": "7", "generation": 3, "creationTimestamp": "t",
                "managedFields": [], "labels": {"a": "b"},
                "annotations": {LAST_APPLIED: "{}"},
                "ownerReferences": [{"kind": "Pipeline", "name": "p", "uid": "u0"}]},
            "spec": {"enabled": true}, "status": {"x": 1}
        });
        sanitize(&mut o);
        assert_eq!(
            o,
            json!({
                "apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
                "metadata": {"name": "nightly", "namespace": "alice", "labels": {"a": "b"},
                    "ownerReferences": [{"kind": "Pipeline", "name": "p", "uid": "u0"}]},
                "spec": {"enabled": true}
            })
        );
    }

    #[test]
    fn paths_and_keys() {
        let o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "kubeflow"}});
        let k = ObjectKey::of(&o).unwrap();
        assert_eq!(
            k.path(),
            "kubernetes/namespaces/kubeflow/core/ConfigMap/c.yaml"
        );
        assert_eq!(k.to_string(), "core/ConfigMap kubeflow/c");
        let o = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "profiles.kubeflow.org"}});
        assert_eq!(
            ObjectKey::of(&o).unwrap().path(),
            "kubernetes/cluster/apiextensions.k8s.io/CustomResourceDefinition/profiles.kubeflow.org.yaml"
        );
    }

    #[test]
    fn finished_workflows() {
        let wf = |phase: &str| json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}, "status": {"phase": phase}});
        assert!(is_finished_workflow(&wf("Succeeded")));
        assert!(is_finished_workflow(&wf("Failed")));
        assert!(!is_finished_workflow(&wf("Running")));
    }

    #[test]
    fn yaml_round_trip_and_lists() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n";
        let objs = from_yaml(text, "x.yaml").unwrap();
        assert_eq!(objs.len(), 2);
        let again = from_yaml(&to_yaml(&objs[1]).unwrap(), "y").unwrap();
        assert_eq!(again[0], objs[1]);
        assert!(from_yaml("- 1\n- 2\n", "z.yaml").is_err());
    }
}
