//! Argo Workflows that need a person: Pending or Running past a threshold, or ended in Error
//! or Failed, with the step that failed.

use std::time::Duration;

use rustic_core::jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// A workflow worth a look, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stuck {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    /// Seconds since the workflow started (or was created, before it started).
    pub age_secs: i64,
    pub reason: String,
    /// The first failed step (a node of type Pod), for Error and Failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The workflows of `items` that are stuck or failed, as of `now`.
pub fn stuck(items: &[Value], now: Timestamp, threshold: Duration) -> Vec<Stuck> {
    let mut out = Vec::new();
    for wf in items {
        // A workflow the controller has not seen yet has no phase: it is Pending.
        let phase = match text(wf, "/status/phase") {
            "" => "Pending",
            p => p,
        };
        let since = [
            text(wf, "/status/startedAt"),
            text(wf, "/metadata/creationTimestamp"),
        ]
        .into_iter()
        .find_map(|t| t.parse::<Timestamp>().ok());
        let age_secs = since.map_or(0, |t| now.as_second() - t.as_second());
        let over = u64::try_from(age_secs).is_ok_and(|a| a > threshold.as_secs());
        let (reason, failed_step) = match phase {
            "Pending" | "Running" if over => (
                format!(
                    "{phase} for {}, over the {} threshold",
                    humantime::format_duration(Duration::from_secs(age_secs.unsigned_abs())),
                    humantime::format_duration(threshold)
                ),
                None,
            ),
            "Error" | "Failed" => {
                let step = failed_node(wf);
                let message = match text(wf, "/status/message") {
                    "" => step.as_ref().map(|(_, m)| m.clone()).unwrap_or_default(),
                    m => m.to_string(),
                };
                (
                    if message.is_empty() {
                        phase.to_string()
                    } else {
                        format!("{phase}: {message}")
                    },
                    step.map(|(n, _)| n),
                )
            }
            _ => continue,
        };
        out.push(Stuck {
            namespace: text(wf, "/metadata/namespace").to_string(),
            name: text(wf, "/metadata/name").to_string(),
            phase: phase.to_string(),
            age_secs,
            reason,
            failed_step,
        });
    }
    out
}

/// The earliest-started failed Pod node: its display name and message.
fn failed_node(wf: &Value) -> Option<(String, String)> {
    let nodes = wf.pointer("/status/nodes")?.as_object()?;
    nodes
        .values()
        .filter(|n| text(n, "/type") == "Pod" && matches!(text(n, "/phase"), "Failed" | "Error"))
        .min_by_key(|n| text(n, "/startedAt").to_string())
        .map(|n| {
            let name = match text(n, "/displayName") {
                "" => text(n, "/name"),
                d => d,
            };
            (name.to_string(), text(n, "/message").to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_running_workflow_past_the_threshold_and_a_failed_one_are_stuck_and_a_fresh_one_is_not() {
        let items = vec![
            json!({"metadata": {"namespace": "team-a", "name": "old", "creationTimestamp": "2026-01-01T00:00:00Z"},
                   "status": {"phase": "Running", "startedAt": "2026-01-01T00:00:00Z"}}),
            json!({"metadata": {"namespace": "team-a", "name": "fresh", "creationTimestamp": "2026-01-01T02:50:00Z"},
                   "status": {"phase": "Running", "startedAt": "2026-01-01T02:50:00Z"}}),
            json!({"metadata": {"namespace": "team-a", "name": "broke", "creationTimestamp": "2026-01-01T02:00:00Z"},
                   "status": {"phase": "Failed", "nodes": {
                       "broke-1": {"type": "Pod", "phase": "Failed", "displayName": "train", "message": "OOMKilled", "startedAt": "2026-01-01T02:01:00Z"},
                       "broke": {"type": "DAG", "phase": "Failed"}}}}),
            json!({"metadata": {"namespace": "team-a", "name": "done"}, "status": {"phase": "Succeeded"}}),
        ];
        let found = stuck(
            &items,
            at("2026-01-01T03:00:00Z"),
            Duration::from_secs(3600),
        );
        let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["old", "broke"]);
        assert_eq!(found[0].age_secs, 3 * 3600);
        assert!(
            found[0].reason.starts_with("Running for 3h"),
            "{}",
            found[0].reason
        );
        assert_eq!(found[1].failed_step.as_deref(), Some("train"));
        assert_eq!(found[1].reason, "Failed: OOMKilled");
    }
}
