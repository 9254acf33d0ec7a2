//! Table output: the `meta.k8s.io/v1` Table `kubectl get` asks for, with the columns of the
//! kinds kubectl users look at most.

use crate::resources::Res;
use crate::util::{human_age, now_secs, parse_rfc3339};
use serde_json::{json, Value};

/// A `meta.k8s.io/v1` Table of a list, the shape `kubectl get` asks for.
pub fn table(res: &Res, list: &Value, include: &str) -> Value {
    let col = |name: &str, ty: &str, format: &str| json!({"name": name, "type": ty, "format": format, "description": name, "priority": 0});
    let mut cols = vec![col("Name", "string", "name")];
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "pods") => cols.extend([
            col("Ready", "string", ""),
            col("Status", "string", ""),
            col("Restarts", "string", ""),
            col("Age", "string", ""),
        ]),
        ("", "namespaces") => cols.extend([col("Status", "string", ""), col("Age", "string", "")]),
        ("apiextensions.k8s.io", _) => cols.push(col("Created At", "date", "")),
        _ => cols.push(col("Age", "string", "")),
    }
    let now = now_secs();
    let rows: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let md = &o["metadata"];
            let created = md["creationTimestamp"].as_str().unwrap_or("");
            let age = parse_rfc3339(created)
                .map(|t| human_age(now - t))
                .unwrap_or_else(|| "<unknown>".into());
            let mut cells = vec![md["name"].clone()];
            match (res.group.as_str(), res.plural.as_str()) {
                ("", "pods") => {
                    let statuses = o["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
                    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
                    let ready = statuses.iter().filter(|s| s["ready"] == true).count();
                    let restarts: i64 = statuses.iter().filter_map(|s| s["restartCount"].as_i64()).sum();
                    let phase = o["status"]["phase"].as_str().unwrap_or("Pending");
                    cells.extend([
                        json!(format!("{ready}/{total}")),
                        json!(phase),
                        json!(restarts.to_string()),
                        json!(age),
                    ]);
                }
                ("", "namespaces") => cells.extend([o["status"]["phase"].clone(), json!(age)]),
                ("apiextensions.k8s.io", _) => cells.push(json!(created)),
                _ => cells.push(json!(age)),
            }
            let mut row = json!({"cells": cells});
            match include {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => {
                    row["object"] =
                        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": md})
                }
            }
            row
        })
        .collect();
    let mut meta = json!({"resourceVersion": list["metadata"]["resourceVersion"]});
    if let Some(c) = list["metadata"].get("continue") {
        meta["continue"] = c.clone();
        meta["remainingItemCount"] = list["metadata"]["remainingItemCount"].clone();
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": cols, "rows": rows})
}
