//! The discovery documents: `/version`, `/api`, `/apis`, each group and each group/version's
//! resource list, subresources included.

use crate::errors::ApiError;
use crate::resources::{groups, Res};
use crate::scale::SCALE_GROUP;
use crate::store::State;
use crate::{logs, scale};
use serde_json::{json, Value};

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-standin",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn core_versions(addr: std::net::SocketAddr) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}]
    })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
}

pub fn group_list(st: &State) -> Value {
    let gs: Vec<Value> = groups(&st.all_resources())
        .iter()
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

pub fn group_doc(st: &State, group: &str) -> Result<Value, ApiError> {
    let gs = groups(&st.all_resources());
    let (g, vs) = gs.iter().find(|(g, _)| g == group).ok_or_else(ApiError::no_route)?;
    let mut doc = group_json(g, vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Ok(doc)
}

pub fn resource_list(st: &State, group: &str, version: &str) -> Result<Value, ApiError> {
    let rs: Vec<Res> = st
        .all_resources()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return Err(ApiError::no_route());
    }
    let mut out = Vec::new();
    for r in &rs {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        out.push(e);
        if logs::serves(r) {
            out.push(json!({
                "name": format!("{}/log", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get"],
            }));
        }
        if scale::serves(r) {
            out.push(json!({
                "name": format!("{}/scale", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": SCALE_GROUP,
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.status {
            out.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = rs[0].api_version();
    Ok(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}))
}
