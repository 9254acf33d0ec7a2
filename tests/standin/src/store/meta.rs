//! Object helpers of the store: metadata access, the spec/status split, CRD conditions and
//! managedFields entries.

use super::*;

pub(super) fn md(obj: &Value) -> &Value {
    &obj["metadata"]
}

pub(super) fn md_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

pub(super) fn name_of(obj: &Value) -> &str {
    md(obj)["name"].as_str().unwrap_or("")
}

/// The object without server-managed or identity parts: what `generation` tracks.
pub(super) fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// The object minus bookkeeping that changes on every write, to spot no-op updates.
pub(super) fn content(obj: &Value) -> Value {
    let mut v = obj.clone();
    let m = md_mut(&mut v);
    m.remove("resourceVersion");
    m.remove("managedFields");
    m.remove("generation");
    v
}

pub(super) fn crd_status(crd: &Value, established: bool) -> Value {
    let now = now_rfc3339();
    let names = &crd["spec"]["names"];
    let mut accepted = names.clone();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(kind.to_ascii_lowercase());
    }
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let established_cond = if established {
        json!({"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now})
    } else {
        json!({"type": "Established", "status": "False", "reason": "Installing", "message": "the resource is being installed", "lastTransitionTime": now})
    };
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            established_cond,
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    })
}

pub(super) fn managed_entry(
    manager: &str,
    operation: &str,
    api_version: &str,
    fields: Value,
    subresource: Option<&str>,
) -> Value {
    let mut e = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    if let Some(s) = subresource {
        e["subresource"] = json!(s);
    }
    e
}

/// Replaces (or adds) this manager's entry for this operation.
pub(super) fn record_manager(obj: &mut Value, entry: Value) {
    let m = md_mut(obj);
    let mut list: Vec<Value> = m
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let same = |e: &Value| {
        e["manager"] == entry["manager"]
            && e["operation"] == entry["operation"]
            && e.get("subresource") == entry.get("subresource")
    };
    match list.iter_mut().find(|e| same(e)) {
        Some(e) if e["fieldsV1"] == entry["fieldsV1"] => {}
        Some(e) => *e = entry,
        None => list.push(entry),
    }
    m.insert("managedFields".into(), Value::Array(list));
}
