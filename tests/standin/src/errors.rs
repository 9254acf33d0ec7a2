//! Kubernetes `Status` errors with the real API server's codes, reasons and messages.

use serde_json::{json, Value};

/// A failed API call, rendered as a `kind: Status` body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after: Option<u64>,
}

/// `plural.group`, or `plural` for the core group, as the real server names resources in messages.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        let mut d = serde_json::Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(kind));
        self.details = Some(Value::Object(d));
        self
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let msg = format!("{} \"{name}\" not found", qualified(group, resource));
        Self::new(404, "NotFound", msg).with_details(group, resource, name)
    }

    /// What the real server answers for a path it does not serve.
    pub fn no_route() -> Self {
        let mut e = Self::new(404, "NotFound", "the server could not find the requested resource");
        e.details = Some(json!({}));
        e
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let msg = format!("{} \"{name}\" already exists", qualified(group, resource));
        Self::new(409, "AlreadyExists", msg).with_details(group, resource, name)
    }

    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        let msg = format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            qualified(group, resource)
        );
        Self::new(409, "Conflict", msg).with_details(group, resource, name)
    }

    /// 422 with one cause; `detail` is e.g. `Required value: name or generateName is required`.
    pub fn invalid(group: &str, kind: &str, name: &str, field: &str, cause_reason: &str, detail: &str) -> Self {
        let qk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let msg = format!("{qk} \"{name}\" is invalid: {field}: {detail}");
        let mut e = Self::new(422, "Invalid", msg).with_details(group, kind, name);
        if let Some(Value::Object(d)) = e.details.as_mut() {
            d.insert(
                "causes".into(),
                json!([{ "reason": cause_reason, "message": detail, "field": field }]),
            );
        }
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> Self {
        let mut e = Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        );
        e.details = Some(json!({}));
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn too_many_requests(retry_after: Option<u64>) -> Self {
        let mut e = Self::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        );
        e.retry_after = retry_after;
        e.details = Some(match retry_after {
            Some(s) => json!({ "retryAfterSeconds": s }),
            None => json!({}),
        });
        e
    }

    /// The canned error for an injected fault with this status code.
    pub fn for_status(code: u16, retry_after: Option<u64>) -> Self {
        match code {
            429 => Self::too_many_requests(retry_after),
            500 => {
                let mut e = Self::internal("Internal error occurred: injected fault");
                e.retry_after = retry_after;
                e
            }
            503 => {
                let mut e = Self::new(
                    503,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                );
                e.retry_after = retry_after;
                e
            }
            504 => Self::new(
                504,
                "Timeout",
                "the server was unable to return a response in the time allotted",
            ),
            409 => Self::new(409, "Conflict", "injected conflict"),
            404 => Self::no_route(),
            c => Self::new(c, "Unknown", format!("injected fault {c}")),
        }
    }

    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}
