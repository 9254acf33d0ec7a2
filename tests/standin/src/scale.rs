//! The `scale` subresource of Deployments, StatefulSets and ReplicaSets: the parent seen as an
//! `autoscaling/v1` Scale, read, replaced or patched to get or set the parent's `spec.replicas`.

use crate::errors::ApiError;
use crate::http::{parse_body, patch_format, PatchFormat, Query, Reply};
use crate::patch::{json_patch, merge_patch};
use crate::resources::Res;
use crate::store::{Ctx, State};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use serde_json::{json, Map, Value};

pub const SCALE_GROUP: &str = "autoscaling";
const SCALE_API_VERSION: &str = "autoscaling/v1";

/// The kinds with a scale subresource among those the stand-in serves.
pub fn serves(res: &Res) -> bool {
    res.group == "apps" && matches!(res.plural.as_str(), "deployments" | "statefulsets" | "replicasets")
}

/// `spec.replicas` as the real server reads it: defaulted to 1 when unset.
fn replicas(parent: &Value) -> i64 {
    parent["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// A label selector as `labels.Selector.String()` prints it: requirements sorted by key.
fn selector_string(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel["matchLabels"].as_object().into_iter().flatten() {
        reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default().to_string();
        let mut values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match e["operator"].as_str() {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("Exists") => key.clone(),
            Some("DoesNotExist") => format!("!{key}"),
            _ => continue,
        };
        reqs.push((key, text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(",")
}

/// The parent as an `autoscaling/v1` Scale. `spec.replicas` is left out at 0 and
/// `status.selector` when empty, as their `omitempty` tags make the real server do.
pub fn view(parent: &Value) -> Value {
    let md = &parent["metadata"];
    let mut meta = Map::new();
    for k in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = md.get(k) {
            meta.insert(k.into(), v.clone());
        }
    }
    let mut spec = json!({});
    let n = replicas(parent);
    if n != 0 {
        spec["replicas"] = json!(n);
    }
    let mut status = json!({"replicas": parent["status"]["replicas"].as_i64().unwrap_or(0)});
    let selector = selector_string(&parent["spec"]["selector"]);
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({"kind": "Scale", "apiVersion": SCALE_API_VERSION, "metadata": meta, "spec": spec, "status": status})
}

/// The `meta.k8s.io/v1` Table `kubectl get --subresource=scale` asks for.
fn table(scale: &Value) -> Value {
    let col = |name: &str, ty: &str, format: &str| json!({"name": name, "type": ty, "format": format, "description": name, "priority": 0});
    let md = &scale["metadata"];
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": md["resourceVersion"]},
        "columnDefinitions": [col("Name", "string", "name"), col("Desired", "integer", ""), col("Available", "integer", "")],
        "rows": [{
            "cells": [md["name"], scale["spec"]["replicas"].as_i64().unwrap_or(0), scale["status"]["replicas"]],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": md},
        }],
    })
}

/// Checks a Scale sent by the client and returns its `spec.replicas` (0 when absent, as Go
/// decodes it) and its `metadata.resourceVersion`, a precondition when set.
fn desired(scale: &Value, name: &str) -> Result<(i64, Option<String>), ApiError> {
    if !scale.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
        ));
    }
    for (field, want) in [("apiVersion", SCALE_API_VERSION), ("kind", "Scale")] {
        if let Some(got) = scale[field].as_str().filter(|g| *g != want) {
            return Err(ApiError::bad_request(format!(
                "the {field} in the data ({got}) does not match the expected {field} ({want})"
            )));
        }
    }
    if let Some(sent) = scale["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty() && *n != name)
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({sent}) does not match the name on the URL ({name})"
        )));
    }
    let n = match &scale["spec"]["replicas"] {
        Value::Null => 0,
        v => v.as_i64().filter(|n| i32::try_from(*n).is_ok()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "json: cannot unmarshal {v} into Go struct field ScaleSpec.spec.replicas of type int32"
            ))
        })?,
    };
    if n < 0 {
        return Err(ApiError::invalid(
            SCALE_GROUP,
            "Scale",
            name,
            "spec.replicas",
            "FieldValueInvalid",
            &format!("Invalid value: {n}: must be greater than or equal to 0"),
        ));
    }
    let rv = scale["metadata"]["resourceVersion"]
        .as_str()
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    Ok((n, rv))
}

/// A request to `…/{plural}/{name}/scale`.
pub struct ScaleRequest<'a> {
    pub method: &'a Method,
    pub res: &'a Res,
    pub ns: &'a str,
    pub name: &'a str,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub as_table: bool,
}

/// GET, PUT and PATCH of the scale subresource; writes go through the parent's write pipeline
/// (resourceVersion, generation, managedFields with `subresource: scale`, watch events, dry run).
pub fn handle(st: &mut State, req: &ScaleRequest<'_>, ctx: &Ctx) -> Result<Reply, ApiError> {
    let need = |verb: &str| {
        if req.res.verbs.contains(&verb) {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    let scale = match *req.method {
        Method::GET => {
            need("get")?;
            let scale = view(&st.get(req.res, req.ns, req.name)?);
            return Ok(Reply::Json(200, if req.as_table { table(&scale) } else { scale }));
        }
        Method::PUT => {
            need("update")?;
            parse_body(req.headers, req.body, false)?
        }
        Method::PATCH => {
            need("patch")?;
            let current = view(&st.get(req.res, req.ns, req.name)?);
            match patch_format(req.headers, req.query)? {
                PatchFormat::Merge => {
                    let patch = parse_body(req.headers, req.body, false)?;
                    if !patch.is_object() {
                        return Err(ApiError::bad_request(
                            "the body of the merge patch must be a JSON object",
                        ));
                    }
                    let mut t = current;
                    merge_patch(&mut t, &patch);
                    t
                }
                PatchFormat::Json => {
                    let ops = parse_body(req.headers, req.body, false)?;
                    json_patch(&current, &ops).map_err(|e| ApiError::new(422, "Invalid", e))?
                }
                // Server-side apply of a Scale, approximated as a merge of the applied fields.
                PatchFormat::Apply(_) => {
                    let applied = parse_body(req.headers, req.body, true)?;
                    let mut t = current;
                    merge_patch(&mut t, &applied);
                    t
                }
            }
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    let (replicas, rv) = desired(&scale, req.name)?;
    let parent = st.set_replicas(req.res, req.ns, req.name, replicas, rv.as_deref(), ctx)?;
    Ok(Reply::Json(200, view(&parent)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_print_as_kubernetes_prints_them() {
        let sel = json!({
            "matchLabels": {"app": "web", "tier": "front"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "zone", "operator": "DoesNotExist"},
                {"key": "canary", "operator": "Exists"},
            ],
        });
        assert_eq!(
            selector_string(&sel),
            "app=web,canary,env in (dev,prod),tier=front,!zone"
        );
        assert_eq!(selector_string(&Value::Null), "");
    }
}
