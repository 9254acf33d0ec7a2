//! The `pods/log` subresource: a container's log as the test stored it, chosen and trimmed as the
//! real API server and kubelet do (container defaulting, `previous`, `tailLines`, `limitBytes`),
//! with their errors.

use crate::errors::ApiError;
use crate::http::Query;
use crate::resources::Res;
use crate::store::State;
use serde_json::{json, Value};

/// (namespace, pod, container, previous run).
pub type LogKey = (String, String, String, bool);

/// Only Pods have logs.
pub fn serves(res: &Res) -> bool {
    res.group.is_empty() && res.plural == "pods"
}

/// The `PodLogOptions` the stand-in honours; `timestamps`, `sinceSeconds` and `sinceTime` are
/// accepted and ignored, `follow` is answered as if false.
struct LogOptions {
    container: Option<String>,
    previous: bool,
    tail_lines: Option<i64>,
    limit_bytes: Option<i64>,
}

/// A boolean query parameter as the API server converts one: present and neither `0` nor `false`.
fn go_bool(query: &Query, key: &str) -> bool {
    query
        .get(key)
        .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

fn go_int(query: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    query
        .get(key)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: invalid syntax")))
        })
        .transpose()
}

impl LogOptions {
    fn parse(query: &Query) -> Result<Self, ApiError> {
        Ok(LogOptions {
            container: query.get("container").filter(|c| !c.is_empty()).map(str::to_string),
            previous: go_bool(query, "previous"),
            tail_lines: go_int(query, "tailLines")?,
            limit_bytes: go_int(query, "limitBytes")?,
        })
    }

    /// `ValidatePodLogOptions`: checked before the pod is looked up, as the real server does.
    fn validate(&self, pod: &str) -> Result<(), ApiError> {
        let invalid = |field: &str, detail: String| {
            Err(ApiError::invalid(
                "",
                "PodLogOptions",
                pod,
                field,
                "FieldValueInvalid",
                &detail,
            ))
        };
        if let Some(n) = self.tail_lines.filter(|n| *n < 0) {
            return invalid(
                "tailLines",
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            );
        }
        if let Some(n) = self.limit_bytes.filter(|n| *n < 1) {
            return invalid("limitBytes", format!("Invalid value: {n}: must be greater than 0"));
        }
        Ok(())
    }
}

/// An error the kubelet answers, as the API server relays it: 400 with the kubelet's text.
fn kubelet_error(pod: &str, message: String) -> ApiError {
    let mut e = ApiError::bad_request(message);
    e.details = Some(json!({"name": pod, "kind": "pods/log"}));
    e
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

/// The container a request reads, as `validateContainer` picks it: the one named, or the only
/// container of the pod.
fn choose_container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let spec = &pod["spec"];
    // `VisitContainers` order: init containers, containers, ephemeral containers.
    let all: Vec<&str> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| names(&spec[*k]))
        .collect();
    match asked {
        Some(c) if all.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => match names(&spec["containers"]).as_slice() {
            [only] => Ok((*only).to_string()),
            [] => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            _ => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                all.join(" ")
            ))),
        },
    }
}

/// The container's status, wherever the pod lists it.
fn container_status<'a>(pod: &'a Value, container: &str) -> Option<&'a Value> {
    [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ]
    .iter()
    .flat_map(|k| pod["status"][*k].as_array().into_iter().flatten())
    .find(|s| s["name"] == container)
}

/// The log text before trimming: the stored one, or what the kubelet would answer for the
/// container's state when the test stored none.
fn pick(st: &State, ns: &str, pod: &Value, name: &str, container: &str, previous: bool) -> Result<String, ApiError> {
    let stored = |prev: bool| {
        st.logs
            .get(&(ns.to_string(), name.to_string(), container.to_string(), prev))
            .cloned()
    };
    let status = container_status(pod, container);
    let last_terminated = status.is_some_and(|s| s["lastState"]["terminated"].is_object());
    if previous {
        return match stored(true) {
            Some(text) => Ok(text),
            None if last_terminated => Ok(String::new()),
            None => Err(kubelet_error(
                name,
                format!("previous terminated container {container:?} in pod {name:?} not found"),
            )),
        };
    }
    if let Some(text) = stored(false) {
        return Ok(text);
    }
    let Some(status) = status else {
        return Ok(String::new());
    };
    let state = &status["state"];
    if state["running"].is_object() || state["terminated"].is_object() {
        return Ok(String::new());
    }
    if last_terminated {
        // Waiting after a crash (CrashLoopBackOff): the kubelet shows the last run's log.
        return Ok(stored(true).unwrap_or_default());
    }
    match state["waiting"]["reason"].as_str() {
        Some("ErrImagePull") => Err(kubelet_error(
            name,
            format!("container {container:?} in pod {name:?} is waiting to start: image can't be pulled"),
        )),
        Some("ImagePullBackOff") => Err(kubelet_error(
            name,
            format!("container {container:?} in pod {name:?} is waiting to start: trying and failing to pull image"),
        )),
        Some(reason) => Err(kubelet_error(
            name,
            format!("container {container:?} in pod {name:?} is waiting to start: {reason}"),
        )),
        None => Ok(String::new()),
    }
}

/// The last `n` lines of `text` (a final line without a newline counts).
fn tail(text: &str, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    match body.rmatch_indices('\n').nth(n - 1) {
        Some((i, _)) => &text[i + 1..],
        None => text,
    }
}

/// `GET /api/v1/namespaces/{ns}/pods/{name}/log`: the body, `text/plain`.
pub fn read(st: &State, res: &Res, ns: &str, name: &str, query: &Query) -> Result<Vec<u8>, ApiError> {
    let opts = LogOptions::parse(query)?;
    opts.validate(name)?;
    let pod = st.get(res, ns, name)?;
    let container = choose_container(&pod, name, opts.container.as_deref())?;
    let text = pick(st, ns, &pod, name, &container, opts.previous)?;
    let mut out = match opts.tail_lines {
        Some(n) => tail(&text, usize::try_from(n).unwrap_or(usize::MAX)),
        None => text.as_str(),
    }
    .as_bytes()
    .to_vec();
    if let Some(n) = opts.limit_bytes {
        out.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_counts_lines_from_the_end() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a\nb\n", 5), "a\nb\n");
        assert_eq!(tail("a\nb\n", 0), "");
        assert_eq!(tail("", 3), "");
    }
}
