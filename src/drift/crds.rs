//! CRD drift: live CustomResourceDefinitions against pinned ones — missing and extra CRDs,
//! served and storage versions, scope, and per-version schema changes as paths such as
//! `spec.containers[].image` (`[]` is an array's items, `{}` a map's values).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::join;
use crate::config::Globs;
use crate::kube::catalog::{self, Served};
use crate::kube::{Cluster, KubeError};

const CRD_API_GROUP: &str = "apiextensions.k8s.io";
const CRD_KIND: &str = "CustomResourceDefinition";

#[derive(Debug, thiserror::Error)]
pub enum PinnedError {
    #[error(
        "cannot read the pinned CRDs {path}: {source}; pass an existing YAML file with --against"
    )]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: document {document}: not valid YAML: {detail}")]
    Yaml {
        path: String,
        document: usize,
        detail: String,
    },
    #[error(
        "{path}: document {document} is {what}, not a CustomResourceDefinition; keep only CRDs in the pinned file"
    )]
    NotACrd {
        path: String,
        document: String,
        what: String,
    },
    #[error("{path}: document {document}: a CustomResourceDefinition without metadata.name")]
    NoName { path: String, document: String },
    #[error("{path}: CustomResourceDefinition {name} is pinned twice; keep one")]
    Twice { path: String, name: String },
    #[error(
        "{path} holds no CustomResourceDefinition; pin some, e.g. kubectl get crd -o yaml > {path}"
    )]
    Empty { path: String },
}

/// Reads a pinned CRD file: several YAML documents, `kind: List` unpacked, CRDs only.
pub fn load_pinned(path: &Path) -> Result<BTreeMap<String, Value>, PinnedError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PinnedError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_pinned(&text, &shown)
}

/// The CRDs of a YAML text, by name; `path` is only for messages.
pub fn parse_pinned(text: &str, path: &str) -> Result<BTreeMap<String, Value>, PinnedError> {
    let mut out = BTreeMap::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let n = i + 1;
        let v = Value::deserialize(doc).map_err(|e| PinnedError::Yaml {
            path: path.into(),
            document: n,
            detail: e.to_string(),
        })?;
        let items: Vec<(String, Value)> = match v {
            Value::Null => continue,
            Value::Object(ref o)
                if o.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                o.get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(j, item)| (format!("{n} (item {})", j + 1), item.clone()))
                    .collect()
            }
            other => vec![(n.to_string(), other)],
        };
        for (document, item) in items {
            let name = crd_name(&item).map_err(|what| match what {
                None => PinnedError::NoName {
                    path: path.into(),
                    document: document.clone(),
                },
                Some(what) => PinnedError::NotACrd {
                    path: path.into(),
                    document: document.clone(),
                    what,
                },
            })?;
            if out.insert(name.clone(), item).is_some() {
                return Err(PinnedError::Twice {
                    path: path.into(),
                    name,
                });
            }
        }
    }
    // Nothing pinned would compare as "every live CRD is extra": a wrong file, not drift.
    if out.is_empty() {
        return Err(PinnedError::Empty { path: path.into() });
    }
    Ok(out)
}

/// The name of a CRD; `Err(Some(what))` describes a document that is not one, `Err(None)` a
/// CRD without a name.
fn crd_name(v: &Value) -> Result<String, Option<String>> {
    let Some(o) = v.as_object() else {
        return Err(Some("not a Kubernetes object".into()));
    };
    let api_version = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = v.pointer("/metadata/name").and_then(Value::as_str);
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if kind != CRD_KIND || group != CRD_API_GROUP {
        let what = match (kind, name) {
            ("", _) => "an object without kind".to_string(),
            (k, Some(n)) => format!("a {k} ({n})"),
            (k, None) => format!("a {k}"),
        };
        return Err(Some(what));
    }
    name.map(str::to_string).ok_or(None)
}

/// One difference of a CRD, from the pinned one (`before`) to the live one (`after`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum CrdChange {
    /// Served live, not served (or absent) in the pinned CRD.
    ServedVersionAdded {
        version: String,
    },
    /// Served in the pinned CRD, not served (or absent) live.
    ServedVersionRemoved {
        version: String,
    },
    StorageVersion {
        before: Option<String>,
        after: Option<String>,
    },
    Scope {
        before: Option<String>,
        after: Option<String>,
    },
    PropertyAdded {
        version: String,
        path: String,
    },
    PropertyRemoved {
        version: String,
        path: String,
    },
    TypeChanged {
        version: String,
        path: String,
        before: Option<String>,
        after: Option<String>,
    },
    RequiredAdded {
        version: String,
        path: String,
    },
    RequiredRemoved {
        version: String,
        path: String,
    },
}

impl CrdChange {
    pub fn line(&self) -> String {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        match self {
            Self::ServedVersionAdded { version } => format!("+ served version {version}"),
            Self::ServedVersionRemoved { version } => format!("- served version {version}"),
            Self::StorageVersion { before, after } => {
                format!("~ storage version: {} -> {}", opt(before), opt(after))
            }
            Self::Scope { before, after } => format!("~ scope: {} -> {}", opt(before), opt(after)),
            Self::PropertyAdded { version, path } => format!("+ {version} schema {path}"),
            Self::PropertyRemoved { version, path } => format!("- {version} schema {path}"),
            Self::TypeChanged {
                version,
                path,
                before,
                after,
            } => format!(
                "~ {version} schema {path} type: {} -> {}",
                opt(before),
                opt(after)
            ),
            Self::RequiredAdded { version, path } => {
                format!("+ {version} schema {path} required")
            }
            Self::RequiredRemoved { version, path } => {
                format!("- {version} schema {path} required")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrdChanged {
    pub name: String,
    pub changes: Vec<CrdChange>,
}

/// How the live CRDs differ from the pinned ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CrdDrift {
    /// Pinned, not live.
    pub missing: Vec<String>,
    /// Live, in a configured CRD group, not pinned.
    pub extra: Vec<String>,
    pub changed: Vec<CrdChanged>,
    /// Pinned and live, with no difference.
    pub identical: Vec<String>,
}

impl CrdDrift {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }

    pub fn summary(&self) -> String {
        format!(
            "{} missing, {} extra, {} changed, {} identical",
            self.missing.len(),
            self.extra.len(),
            self.changed.len(),
            self.identical.len()
        )
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.missing {
            s.push_str(&format!("- {n} (pinned, not live)\n"));
        }
        for n in &self.extra {
            s.push_str(&format!("+ {n} (live, not pinned)\n"));
        }
        for c in &self.changed {
            s.push_str(&format!("~ {}\n", c.name));
            for ch in &c.changes {
                s.push_str(&format!("    {}\n", ch.line()));
            }
        }
        s
    }
}

/// Compares pinned CRDs with live ones, both by name. Only the parts that matter to the
/// resources are compared (versions, scope, schemas), so fields the API server defaults
/// (conversion, status) never show as drift.
pub fn compare(
    pinned: &BTreeMap<String, Value>,
    live: &BTreeMap<String, Value>,
    crd_groups: &Globs,
) -> CrdDrift {
    let mut drift = CrdDrift::default();
    for (name, p) in pinned {
        match live.get(name) {
            None => drift.missing.push(name.clone()),
            Some(l) => {
                let changes = compare_one(p, l);
                if changes.is_empty() {
                    drift.identical.push(name.clone());
                } else {
                    drift.changed.push(CrdChanged {
                        name: name.clone(),
                        changes,
                    });
                }
            }
        }
    }
    drift.extra = live
        .iter()
        .filter(|(name, l)| {
            let group = l
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or("");
            !pinned.contains_key(*name) && crd_groups.is_match(group)
        })
        .map(|(name, _)| name.clone())
        .collect();
    drift
}

/// Every difference between one pinned CRD and its live counterpart.
pub fn compare_one(pinned: &Value, live: &Value) -> Vec<CrdChange> {
    let (p, l) = (Shape::of(pinned), Shape::of(live));
    let mut out = Vec::new();
    for v in l.served.difference(&p.served) {
        out.push(CrdChange::ServedVersionAdded { version: v.clone() });
    }
    for v in p.served.difference(&l.served) {
        out.push(CrdChange::ServedVersionRemoved { version: v.clone() });
    }
    if p.storage != l.storage {
        out.push(CrdChange::StorageVersion {
            before: p.storage,
            after: l.storage,
        });
    }
    if p.scope != l.scope {
        out.push(CrdChange::Scope {
            before: p.scope,
            after: l.scope,
        });
    }
    // Only versions defined on both sides have two schemas to compare; the others are
    // reported above as added or removed.
    for (version, ps) in &p.schemas {
        if let Some(ls) = l.schemas.get(version) {
            schema(ps, ls, "", version, &mut out);
        }
    }
    out
}

/// What is compared of a CRD.
struct Shape {
    scope: Option<String>,
    served: BTreeSet<String>,
    storage: Option<String>,
    schemas: BTreeMap<String, Value>,
}

impl Shape {
    fn of(crd: &Value) -> Self {
        let versions = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let name = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_string);
        let flag = |v: &Value, f: &str| v.get(f).and_then(Value::as_bool) == Some(true);
        Self {
            scope: crd
                .pointer("/spec/scope")
                .and_then(Value::as_str)
                .map(str::to_string),
            served: versions
                .iter()
                .filter(|v| flag(v, "served"))
                .filter_map(name)
                .collect(),
            storage: versions.iter().find(|v| flag(v, "storage")).and_then(name),
            schemas: versions
                .iter()
                .filter_map(|v| {
                    let s = v
                        .pointer("/schema/openAPIV3Schema")
                        .cloned()
                        .unwrap_or(Value::Null);
                    name(v).map(|n| (n, s))
                })
                .collect(),
        }
    }
}

/// Walks two OpenAPI v3 schemas side by side. A removed or added property is reported once,
/// at its top: everything below it went or came with it.
fn schema(before: &Value, after: &Value, path: &str, version: &str, out: &mut Vec<CrdChange>) {
    let shown = |p: &str| {
        if p.is_empty() {
            ".".to_string()
        } else {
            p.to_string()
        }
    };
    let ty = |s: &Value| s.get("type").and_then(Value::as_str).map(str::to_string);
    if ty(before) != ty(after) {
        out.push(CrdChange::TypeChanged {
            version: version.into(),
            path: shown(path),
            before: ty(before),
            after: ty(after),
        });
    }
    let required = |s: &Value| -> BTreeSet<String> {
        s.get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect()
    };
    let (rb, ra) = (required(before), required(after));
    for r in ra.difference(&rb) {
        out.push(CrdChange::RequiredAdded {
            version: version.into(),
            path: join(path, r),
        });
    }
    for r in rb.difference(&ra) {
        out.push(CrdChange::RequiredRemoved {
            version: version.into(),
            path: join(path, r),
        });
    }
    let empty = serde_json::Map::new();
    let props = |s: &Value| s.get("properties").and_then(Value::as_object).cloned();
    let (pb, pa) = (
        props(before).unwrap_or_else(|| empty.clone()),
        props(after).unwrap_or_else(|| empty.clone()),
    );
    for (k, av) in &pa {
        match pb.get(k) {
            Some(bv) => schema(bv, av, &join(path, k), version, out),
            None => out.push(CrdChange::PropertyAdded {
                version: version.into(),
                path: join(path, k),
            }),
        }
    }
    for k in pb.keys().filter(|k| !pa.contains_key(*k)) {
        out.push(CrdChange::PropertyRemoved {
            version: version.into(),
            path: join(path, k),
        });
    }
    // Array items and map values have no name of their own; a change of `type` above
    // already says when one side has them and the other does not.
    for (field, suffix) in [("items", "[]"), ("additionalProperties", "{}")] {
        if let (Some(b @ Value::Object(_)), Some(a @ Value::Object(_))) =
            (before.get(field), after.get(field))
        {
            schema(b, a, &format!("{path}{suffix}"), version, out);
        }
    }
}

/// Every CRD of the cluster, by name.
pub async fn live(cluster: &Cluster) -> Result<BTreeMap<String, Value>, KubeError> {
    let served = Served::discover(cluster).await?;
    let kind = served
        .get("apiextensions.k8s.io", "CustomResourceDefinition")
        .ok_or_else(|| KubeError::Api {
            server: cluster.server.clone(),
            what: "discovery".into(),
            detail: "the server does not serve apiextensions.k8s.io CustomResourceDefinitions"
                .into(),
            code: None,
        })?;
    Ok(catalog::list_kind(cluster, kind)
        .await?
        .into_iter()
        .filter_map(|c| {
            let name = c.pointer("/metadata/name")?.as_str()?.to_string();
            Some((name, c))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(versions: Value) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "notebooks.kubeflow.org"},
            "spec": {"group": "kubeflow.org", "scope": "Namespaced", "versions": versions}})
    }

    fn schema_v(name: &str, storage: bool, spec: Value) -> Value {
        json!({"name": name, "served": true, "storage": storage,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec}}}})
    }

    fn containers(image: bool) -> Value {
        let mut c = json!({"type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}}});
        if image {
            c["properties"]["image"] = json!({"type": "string"});
        }
        json!({"type": "object", "properties": {"containers": {"type": "array", "items": c}}})
    }

    #[test]
    fn versions_storage_scope_and_schema() {
        let pinned = crd(json!([schema_v("v1", true, containers(true))]));
        let mut live = crd(json!([
            schema_v("v1", false, containers(false)),
            schema_v("v2", true, containers(true))
        ]));
        live["spec"]["scope"] = json!("Cluster");
        live["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["replicas"] = json!({"type": "integer"});
        let lines: Vec<String> = compare_one(&pinned, &live)
            .iter()
            .map(CrdChange::line)
            .collect();
        assert_eq!(
            lines,
            [
                "+ served version v2",
                "~ storage version: v1 -> v2",
                "~ scope: Namespaced -> Cluster",
                "- v1 schema spec.containers[].image",
                "+ v1 schema spec.replicas",
            ]
        );
        assert!(compare_one(&pinned, &pinned).is_empty());
    }

    #[test]
    fn types_and_required() {
        let mut a = containers(true);
        let mut b = a.clone();
        b["properties"]["containers"]["items"]["properties"]["name"]["type"] = json!("integer");
        b["properties"]["containers"]["items"]["required"] = json!(["image"]);
        let mut out = Vec::new();
        schema(&a, &b, "spec", "v1", &mut out);
        let lines: Vec<String> = out.iter().map(CrdChange::line).collect();
        assert_eq!(
            lines,
            [
                "+ v1 schema spec.containers[].image required",
                "- v1 schema spec.containers[].name required",
                "~ v1 schema spec.containers[].name type: string -> integer",
            ]
        );
        a["type"] = json!("string");
        out.clear();
        schema(&a, &b, "", "v1", &mut out);
        assert_eq!(out[0].line(), "~ v1 schema . type: string -> object");
    }

    #[test]
    fn missing_extra_and_pinned_file_errors() {
        let pinned = parse_pinned(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apiextensions.k8s.io/v1\n  kind: CustomResourceDefinition\n  metadata: {name: a.kubeflow.org}\n  spec: {group: kubeflow.org}\n",
            "crds.yaml",
        )
        .unwrap();
        let live: BTreeMap<String, Value> = [
            ("b.kubeflow.org", "kubeflow.org"),
            ("c.example.com", "example.com"),
        ]
        .iter()
        .map(|(n, g)| (n.to_string(), json!({"spec": {"group": g}})))
        .collect();
        let groups = Globs::new("crd_groups", &["kubeflow.org".to_string()]).unwrap();
        let d = compare(&pinned, &live, &groups);
        assert_eq!(d.missing, ["a.kubeflow.org"]);
        assert_eq!(d.extra, ["b.kubeflow.org"]);
        let err = parse_pinned(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "crds.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "crds.yaml: document 2 is a ConfigMap (x), not a CustomResourceDefinition"
            ),
            "{err}"
        );
    }
}
