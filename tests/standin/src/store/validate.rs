//! Validation of a request body: identity (apiVersion, kind, namespace, name), RFC 1123 names
//! and the namespace an object lives in.

use super::*;

pub(super) fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(super) fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

pub(super) const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub(super) const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

impl State {
    /// Checks and fills apiVersion, kind, namespace and (when given) name of a request body.
    pub(super) fn check_identity(
        res: &Res,
        body: &mut Value,
        ns: &str,
        url_name: Option<&str>,
    ) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"));
        }
        let name = name_of(body).to_string();
        let shown = url_name.unwrap_or(&name).to_string();
        match body["apiVersion"].as_str() {
            None => body["apiVersion"] = json!(res.api_version()),
            Some(av) if av == res.api_version() => {}
            Some(av) => {
                return Err(ApiError::invalid(
                    &res.group,
                    &res.kind,
                    &shown,
                    "apiVersion",
                    "FieldValueInvalid",
                    &format!("Invalid value: {av:?}: must be {}", res.api_version()),
                ))
            }
        }
        match body["kind"].as_str() {
            None => body["kind"] = json!(res.kind),
            Some(k) if k == res.kind => {}
            Some(k) => {
                return Err(ApiError::invalid(
                    &res.group,
                    &res.kind,
                    &shown,
                    "kind",
                    "FieldValueInvalid",
                    &format!("Invalid value: {k:?}: must be {}", res.kind),
                ))
            }
        }
        let m = md_mut(body);
        if res.namespaced {
            match m.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        if let Some(u) = url_name {
            match m.get("name").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != u => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({u})"
                    )))
                }
                _ => {
                    m.insert("name".into(), json!(u));
                }
            }
        }
        Ok(())
    }

    pub(super) fn validate(res: &Res, obj: &Value) -> Result<(), ApiError> {
        let name = name_of(obj);
        let invalid = |field: &str, reason: &str, detail: String| {
            Err(ApiError::invalid(&res.group, &res.kind, name, field, reason, &detail))
        };
        if name.is_empty() {
            return invalid(
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required".into(),
            );
        }
        if res.group == "rbac.authorization.k8s.io" {
            // RBAC names are path segments ("system:controller:x" is fine).
            if name == "." || name == ".." || name.contains('/') || name.contains('%') {
                return invalid(
                    "metadata.name",
                    "FieldValueInvalid",
                    format!("Invalid value: {name:?}: may not contain '/' or '%'"),
                );
            }
        } else if res.is_namespace() {
            if !is_dns1123_label(name) {
                return invalid(
                    "metadata.name",
                    "FieldValueInvalid",
                    format!("Invalid value: {name:?}: {LABEL_MSG}"),
                );
            }
        } else if !is_dns1123_subdomain(name) {
            return invalid(
                "metadata.name",
                "FieldValueInvalid",
                format!("Invalid value: {name:?}: {SUBDOMAIN_MSG}"),
            );
        }
        if res.is_crd() {
            let spec = &obj["spec"];
            for (field, v) in [
                ("spec.group", &spec["group"]),
                ("spec.names.plural", &spec["names"]["plural"]),
                ("spec.names.kind", &spec["names"]["kind"]),
                ("spec.scope", &spec["scope"]),
            ] {
                if v.as_str().is_none_or(str::is_empty) {
                    return invalid(field, "FieldValueRequired", "Required value".into());
                }
            }
            if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
                return invalid(
                    "spec.scope",
                    "FieldValueNotSupported",
                    format!(
                        "Unsupported value: {}: supported values: \"Cluster\", \"Namespaced\"",
                        spec["scope"]
                    ),
                );
            }
            if spec["versions"].as_array().is_none_or(Vec::is_empty) {
                return invalid(
                    "spec.versions",
                    "FieldValueRequired",
                    "Required value: must have exactly one version marked as storage version".into(),
                );
            }
            let want = format!(
                "{}.{}",
                spec["names"]["plural"].as_str().unwrap_or(""),
                spec["group"].as_str().unwrap_or("")
            );
            if name != want {
                return invalid(
                    "metadata.name",
                    "FieldValueInvalid",
                    format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
                );
            }
        }
        Ok(())
    }

    pub(super) fn require_namespace(&self, res: &Res, ns: &str) -> Result<(), ApiError> {
        if !res.namespaced {
            return Ok(());
        }
        let key = (String::new(), "namespaces".to_string(), String::new(), ns.to_string());
        if self.objects.contains_key(&key) {
            Ok(())
        } else {
            Err(ApiError::not_found("", "namespaces", ns))
        }
    }
}
