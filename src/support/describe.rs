//! The bundle's text views of live objects, in the spirit of `kubectl get` and `kubectl
//! describe`: pods and their containers, events in time order, claims, CRD versions, Argo
//! workflow phases. Pure functions of the objects, so that they are tested without a cluster.

use serde_json::Value;

use crate::redact::{is_secret_name, HIDDEN};

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn items<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

/// Columns padded to their widest cell, as `kubectl get` prints them.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// What a container's state says, in one phrase: `running since T`, `waiting: CrashLoopBackOff
/// (back-off…)`, `terminated: OOMKilled (exit 137)`.
fn state(s: &Value) -> String {
    if let Some(r) = s.get("running") {
        return format!("running since {}", or_dash(text(r, "/startedAt")));
    }
    if let Some(w) = s.get("waiting") {
        let msg = text(w, "/message");
        return format!(
            "waiting: {}{}",
            or_dash(text(w, "/reason")),
            if msg.is_empty() {
                String::new()
            } else {
                format!(" ({msg})")
            }
        );
    }
    if let Some(t) = s.get("terminated") {
        return format!(
            "terminated: {} (exit {}) at {}",
            or_dash(text(t, "/reason")),
            t.get("exitCode").map_or("?".into(), ToString::to_string),
            or_dash(text(t, "/finishedAt"))
        );
    }
    "unknown".into()
}

/// The one-word status `kubectl get pods` shows: a waiting or terminated container's reason
/// wins over the pod's phase.
fn pod_status(pod: &Value) -> String {
    for c in items(pod, "/status/containerStatuses") {
        for key in ["waiting", "terminated"] {
            let reason = text(c, &format!("/state/{key}/reason"));
            if !reason.is_empty() {
                return reason.to_string();
            }
        }
    }
    or_dash(text(pod, "/status/phase")).to_string()
}

fn restarts(pod: &Value) -> i64 {
    items(pod, "/status/containerStatuses")
        .iter()
        .filter_map(|c| c["restartCount"].as_i64())
        .sum()
}

/// The pods of one namespace, one line each.
pub(super) fn pods_table(pods: &[Value]) -> String {
    let rows: Vec<Vec<String>> = pods
        .iter()
        .map(|p| {
            let statuses = items(p, "/status/containerStatuses");
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let total = items(p, "/spec/containers").len();
            vec![
                text(p, "/metadata/name").to_string(),
                format!("{ready}/{total}"),
                pod_status(p),
                restarts(p).to_string(),
                or_dash(text(p, "/spec/nodeName")).to_string(),
                or_dash(text(p, "/metadata/creationTimestamp")).to_string(),
            ]
        })
        .collect();
    table(
        &["NAME", "READY", "STATUS", "RESTARTS", "NODE", "CREATED"],
        &rows,
    )
}

/// A pod as `kubectl describe` would tell it: phase, node, conditions, and per container its
/// image, state, restarts and last termination.
pub(super) fn describe_pod(pod: &Value) -> String {
    let mut s = format!(
        "Name:        {}\nNamespace:   {}\nNode:        {}\nPhase:       {}\nStatus:      {}\nPod IP:      {}\nStarted:     {}\nQoS class:   {}\n",
        text(pod, "/metadata/name"),
        text(pod, "/metadata/namespace"),
        or_dash(text(pod, "/spec/nodeName")),
        or_dash(text(pod, "/status/phase")),
        pod_status(pod),
        or_dash(text(pod, "/status/podIP")),
        or_dash(text(pod, "/status/startTime")),
        or_dash(text(pod, "/status/qosClass")),
    );
    let reason = text(pod, "/status/reason");
    if !reason.is_empty() {
        s.push_str(&format!(
            "Reason:      {reason}: {}\n",
            text(pod, "/status/message")
        ));
    }
    if let Some(labels) = pod.pointer("/metadata/labels").and_then(Value::as_object) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        s.push_str(&format!("Labels:      {}\n", l.join(", ")));
    }
    s.push_str("Conditions:\n");
    for c in items(pod, "/status/conditions") {
        let msg = text(c, "/message");
        s.push_str(&format!(
            "  {:<18} {:<6} {}{}\n",
            text(c, "/type"),
            text(c, "/status"),
            text(c, "/reason"),
            if msg.is_empty() {
                String::new()
            } else {
                format!(": {msg}")
            }
        ));
    }
    for (section, spec_ptr, status_ptr) in [
        (
            "Init containers",
            "/spec/initContainers",
            "/status/initContainerStatuses",
        ),
        (
            "Containers",
            "/spec/containers",
            "/status/containerStatuses",
        ),
    ] {
        let specs = items(pod, spec_ptr);
        if specs.is_empty() {
            continue;
        }
        s.push_str(&format!("{section}:\n"));
        let statuses = items(pod, status_ptr);
        for c in specs {
            let name = text(c, "/name");
            let st = statuses.iter().find(|x| x["name"] == name);
            s.push_str(&format!(
                "  {name}:\n    Image:          {}\n",
                text(c, "/image")
            ));
            if let Some(st) = st {
                s.push_str(&format!(
                    "    Image ID:       {}\n    State:          {}\n    Ready:          {}\n    Restart count:  {}\n",
                    or_dash(text(st, "/imageID")),
                    st.get("state").map_or("unknown".into(), state),
                    st["ready"].as_bool().unwrap_or(false),
                    st["restartCount"].as_i64().unwrap_or(0),
                ));
                if let Some(last) = st
                    .get("lastState")
                    .filter(|l| l.get("terminated").is_some())
                {
                    s.push_str(&format!("    Last state:     {}\n", state(last)));
                }
            } else {
                s.push_str("    State:          no status yet\n");
            }
            if let Some(res) = c.get("resources").filter(|r| !r.is_null()) {
                s.push_str(&format!("    Resources:      {res}\n"));
            }
        }
    }
    s
}

/// The pod as stored, without `managedFields`, and with the literal values of environment
/// variables whose names say they are secrets hidden (references to Secrets stay: they hold
/// only the Secret's name and key).
pub(super) fn sanitize_pod(pod: &Value) -> Value {
    let mut p = pod.clone();
    if let Some(meta) = p.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(cs) = p
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in cs {
            let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) else {
                continue;
            };
            for e in env {
                let secret = e["name"].as_str().is_some_and(is_secret_name);
                if secret && e.get("value").is_some() {
                    e["value"] = HIDDEN.into();
                }
            }
        }
    }
    p
}

/// The literal values of secret-named environment variables in a pod's containers: values to
/// hide wherever else they appear (logs, ConfigMaps).
pub(super) fn secret_env_values(pod: &Value) -> Vec<String> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| items(pod, &format!("/spec/{list}")))
        .flat_map(|c| items(c, "/env"))
        .filter(|e| e["name"].as_str().is_some_and(is_secret_name))
        .filter_map(|e| e["value"].as_str().map(String::from))
        .collect()
}

/// When an event last happened: its series, its last timestamp, its event time, its first.
fn event_time(e: &Value) -> &str {
    [
        "/series/lastObservedTime",
        "/lastTimestamp",
        "/eventTime",
        "/firstTimestamp",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .map(|p| text(e, p))
    .find(|t| !t.is_empty())
    .unwrap_or("")
}

/// Events oldest first, one line each.
pub(super) fn events_table(events: &[Value]) -> String {
    let mut sorted: Vec<&Value> = events.iter().collect();
    // RFC 3339 in UTC sorts as text.
    sorted.sort_by(|a, b| event_time(a).cmp(event_time(b)));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|e| {
            vec![
                or_dash(event_time(e)).to_string(),
                or_dash(text(e, "/type")).to_string(),
                or_dash(text(e, "/reason")).to_string(),
                format!(
                    "{}/{}",
                    text(e, "/involvedObject/kind"),
                    text(e, "/involvedObject/name")
                ),
                e["count"].as_i64().unwrap_or(1).to_string(),
                text(e, "/message").replace('\n', " "),
            ]
        })
        .collect();
    table(
        &["TIME", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"],
        &rows,
    )
}

/// Claims: phase, capacity, storage class, access modes, volume.
pub(super) fn pvcs_table(pvcs: &[Value]) -> String {
    let rows: Vec<Vec<String>> = pvcs
        .iter()
        .map(|c| {
            let mut modes: Vec<&str> = items(c, "/status/accessModes")
                .iter()
                .chain(items(c, "/spec/accessModes"))
                .filter_map(Value::as_str)
                .collect();
            modes.sort_unstable();
            modes.dedup();
            let capacity = match text(c, "/status/capacity/storage") {
                "" => format!(
                    "{} (requested)",
                    or_dash(text(c, "/spec/resources/requests/storage"))
                ),
                cap => cap.to_string(),
            };
            vec![
                text(c, "/metadata/name").to_string(),
                or_dash(text(c, "/status/phase")).to_string(),
                capacity,
                or_dash(text(c, "/spec/storageClassName")).to_string(),
                or_dash(&modes.join(",")).to_string(),
                or_dash(text(c, "/spec/volumeName")).to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "PHASE",
            "CAPACITY",
            "STORAGECLASS",
            "ACCESS MODES",
            "VOLUME",
        ],
        &rows,
    )
}

/// CRDs: group, the versions served, the storage version and what etcd still stores.
pub(super) fn crds_table(crds: &[Value]) -> String {
    let rows: Vec<Vec<String>> = crds
        .iter()
        .map(|c| {
            let versions = items(c, "/spec/versions");
            let served: Vec<&str> = versions
                .iter()
                .filter(|v| v["served"] == true)
                .filter_map(|v| v["name"].as_str())
                .collect();
            let storage = versions
                .iter()
                .find(|v| v["storage"] == true)
                .and_then(|v| v["name"].as_str())
                .unwrap_or("-");
            let stored: Vec<&str> = items(c, "/status/storedVersions")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let established = items(c, "/status/conditions")
                .iter()
                .find(|x| x["type"] == "Established")
                .map_or("-", |x| text(x, "/status"));
            vec![
                text(c, "/metadata/name").to_string(),
                text(c, "/spec/group").to_string(),
                or_dash(&served.join(",")).to_string(),
                storage.to_string(),
                or_dash(&stored.join(",")).to_string(),
                established.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "GROUP",
            "SERVED",
            "STORAGE",
            "STORED VERSIONS",
            "ESTABLISHED",
        ],
        &rows,
    )
}

/// Argo workflows: phase, start and end, and the message of one that ended badly.
pub(super) fn workflows_table(wfs: &[Value]) -> String {
    let rows: Vec<Vec<String>> = wfs
        .iter()
        .map(|w| {
            vec![
                text(w, "/metadata/name").to_string(),
                match text(w, "/status/phase") {
                    "" => "Pending".to_string(),
                    p => p.to_string(),
                },
                or_dash(text(w, "/status/startedAt")).to_string(),
                or_dash(text(w, "/status/finishedAt")).to_string(),
                text(w, "/status/message").replace('\n', " "),
            ]
        })
        .collect();
    table(&["NAME", "PHASE", "STARTED", "FINISHED", "MESSAGE"], &rows)
}

/// A ConfigMap's name and data, the values of secret-named keys hidden.
pub(super) fn configmap(cm: &Value) -> Value {
    let mut data = serde_json::Map::new();
    for field in ["data", "binaryData"] {
        if let Some(map) = cm.get(field).and_then(Value::as_object) {
            for (k, v) in map {
                let v = if is_secret_name(k) || field == "binaryData" {
                    Value::from(HIDDEN)
                } else {
                    v.clone()
                };
                data.insert(k.clone(), v);
            }
        }
    }
    serde_json::json!({
        "name": text(cm, "/metadata/name"),
        "data": data,
    })
}

/// A Secret as the bundle tells it: its name, type and keys, never its values.
pub(super) fn secret_line(s: &Value) -> Vec<String> {
    let mut keys: Vec<&str> = ["data", "stringData"]
        .iter()
        .filter_map(|f| s.get(*f).and_then(Value::as_object))
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    vec![
        text(s, "/metadata/name").to_string(),
        or_dash(text(s, "/type")).to_string(),
        or_dash(&keys.join(",")).to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_crashing_pod_is_described_with_its_reason_restarts_and_last_termination() {
        let pod = json!({
            "metadata": {"name": "ml-pipeline-0", "namespace": "kubeflow"},
            "spec": {"nodeName": "node-a", "containers": [{"name": "api", "image": "kfp/api:2.5"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                "containerStatuses": [{"name": "api", "ready": false, "restartCount": 7,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2026-01-01T00:00:00Z"}}}]}
        });
        let d = describe_pod(&pod);
        assert!(d.contains("Node:        node-a"), "{d}");
        assert!(d.contains("Status:      CrashLoopBackOff"), "{d}");
        assert!(d.contains("Restart count:  7"), "{d}");
        assert!(
            d.contains("Last state:     terminated: OOMKilled (exit 137)"),
            "{d}"
        );
        assert!(d.contains("Image:          kfp/api:2.5"), "{d}");
        let t = pods_table(&[pod]);
        assert!(
            t.lines()
                .nth(1)
                .unwrap()
                .starts_with("ml-pipeline-0   0/1     CrashLoopBackOff   7"),
            "{t}"
        );
    }

    #[test]
    fn events_are_listed_oldest_first_whichever_time_field_they_carry() {
        let events = vec![
            json!({"reason": "Late", "lastTimestamp": "2026-01-01T00:03:00Z"}),
            json!({"reason": "Early", "eventTime": "2026-01-01T00:01:00Z"}),
            json!({"reason": "Middle", "series": {"lastObservedTime": "2026-01-01T00:02:00Z"}}),
        ];
        let t = events_table(&events);
        let reasons: Vec<&str> = t
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().nth(2).unwrap())
            .collect();
        assert_eq!(reasons, ["Early", "Middle", "Late"]);
    }

    #[test]
    fn secret_named_env_literals_are_hidden_and_references_kept() {
        let pod = json!({"spec": {"containers": [{"name": "c", "env": [
            {"name": "DB_PASSWORD", "value": "pw-literal"},
            {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "LOG_LEVEL", "value": "debug"}]}]}});
        let s = sanitize_pod(&pod);
        let env = &s["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["value"], HIDDEN);
        assert_eq!(env[1]["valueFrom"]["secretKeyRef"]["key"], "k");
        assert_eq!(env[2]["value"], "debug");
        assert_eq!(secret_env_values(&pod), ["pw-literal"]);
    }
}
