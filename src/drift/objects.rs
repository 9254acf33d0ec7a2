//! Object-set drift: which Kubernetes objects were added, removed or changed between a
//! snapshot and the live cluster, each change down to the field.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::fields::{self, Change};
use super::redact;
use crate::kube::object::{self, ObjectKey};

/// One object present on both sides whose fields differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changed {
    pub object: ObjectKey,
    /// From the snapshot's value (`before`) to the live one (`after`).
    pub changes: Vec<Change>,
}

/// How the live objects differ from a snapshot's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ObjectDrift {
    /// Live only: created since the snapshot.
    pub added: Vec<ObjectKey>,
    /// Snapshot only: deleted since.
    pub removed: Vec<ObjectKey>,
    pub changed: Vec<Changed>,
}

impl ObjectDrift {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// `N added, N removed, N changed`.
    pub fn summary(&self) -> String {
        format!(
            "{} added, {} removed, {} changed",
            self.added.len(),
            self.removed.len(),
            self.changed.len()
        )
    }

    /// Readable text: `+`, `-` and `~` lines per object, field lines indented under `~`.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for k in &self.added {
            s.push_str(&format!("+ {k}\n"));
        }
        for k in &self.removed {
            s.push_str(&format!("- {k}\n"));
        }
        for c in &self.changed {
            s.push_str(&format!("~ {}\n", c.object));
            for f in &c.changes {
                s.push_str(&format!("    {}\n", f.line()));
            }
        }
        s
    }
}

/// The fields of an owner reference that say who the owner is. The UID is not one of them: a
/// restore gives every owner a new UID and relinks its dependents to it.
const OWNER_FIELDS: [&str; 4] = ["apiVersion", "kind", "name", "controller"];

/// Compares a snapshot's objects with the live ones. Both sides are sanitised first, so only
/// what a restore would bring back counts, not server bookkeeping such as `resourceVersion`;
/// owner references are compared by [`OWNER_FIELDS`]. A Secret's values are never shown.
pub fn compare(
    snapshot: &BTreeMap<ObjectKey, Value>,
    live: &BTreeMap<ObjectKey, Value>,
) -> ObjectDrift {
    let clean = |v: &Value| {
        let mut v = v.clone();
        object::sanitize(&mut v);
        owner_identities(&mut v);
        v
    };
    let mut drift = ObjectDrift::default();
    for (key, live_obj) in live {
        match snapshot.get(key) {
            None => drift.added.push(key.clone()),
            Some(snap_obj) => {
                let mut changes = fields::diff(&clean(snap_obj), &clean(live_obj));
                redact::secret_values(key, &mut changes);
                if !changes.is_empty() {
                    drift.changed.push(Changed {
                        object: key.clone(),
                        changes,
                    });
                }
            }
        }
    }
    drift.removed = snapshot
        .keys()
        .filter(|k| !live.contains_key(k))
        .cloned()
        .collect();
    drift
}

/// Keeps only [`OWNER_FIELDS`] of each owner reference.
fn owner_identities(obj: &mut Value) {
    let Some(refs) = obj
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for r in refs.iter_mut().filter_map(Value::as_object_mut) {
        r.retain(|k, _| OWNER_FIELDS.contains(&k.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(objs: &[Value]) -> BTreeMap<ObjectKey, Value> {
        objs.iter()
            .map(|o| (ObjectKey::of(o).unwrap(), o.clone()))
            .collect()
    }

    fn cm(name: &str, data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "kubeflow", "resourceVersion": name.len().to_string()},
            "data": data})
    }

    #[test]
    fn added_removed_changed_and_server_fields_ignored() {
        let snap = set(&[
            cm("a", json!({"k": "1"})),
            cm("b", json!({})),
            cm("same", json!({"x": "y"})),
        ]);
        let mut same_live = cm("same", json!({"x": "y"}));
        same_live["metadata"]["resourceVersion"] = json!("999");
        same_live["metadata"]["uid"] = json!("u");
        let live = set(&[cm("a", json!({"k": "2"})), cm("c", json!({})), same_live]);
        let d = compare(&snap, &live);
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].name, "c");
        assert_eq!(d.removed[0].name, "b");
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].changes[0].line(), r#"~ data.k: "1" -> "2""#);
        assert_eq!(
            d.text(),
            "+ core/ConfigMap kubeflow/c\n- core/ConfigMap kubeflow/b\n~ core/ConfigMap kubeflow/a\n    ~ data.k: \"1\" -> \"2\"\n"
        );
        assert!(compare(&snap, &snap).is_empty());
    }

    #[test]
    fn owners_are_compared_by_identity_not_uid() {
        let trial = |uid: &str, owner: &str| {
            json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
                "metadata": {"name": "t", "namespace": "a", "ownerReferences": [
                    {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": owner,
                     "uid": uid, "controller": true, "blockOwnerDeletion": true}]}})
        };
        let snap = set(&[trial("old-uid", "e")]);
        assert!(compare(&snap, &set(&[trial("new-uid", "e")])).is_empty());
        let d = compare(&snap, &set(&[trial("new-uid", "other")]));
        assert_eq!(
            d.changed[0].changes[0].line(),
            r#"~ metadata.ownerReferences[0].name: "e" -> "other""#
        );
        assert_eq!(d.changed[0].changes.len(), 1);
    }
}
