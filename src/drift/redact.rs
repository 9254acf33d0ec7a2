//! Secret values kept out of diffs and restore plans: a change under a Secret's `data` or
//! `stringData` says that the value changed, never what it was or became.

use super::fields::Change;
use crate::kube::object::ObjectKey;

/// The fields of a Secret that hold its values.
const VALUE_FIELDS: [&str; 2] = ["data", "stringData"];

pub fn is_secret(key: &ObjectKey) -> bool {
    (key.group.as_str(), key.kind.as_str()) == crate::kube::catalog::SECRET
}

/// Whether a change path is a value field or lies under one: `data`, `data.token`,
/// `data["tls.crt"]`, but not `dataSource`.
fn under_values(path: &str) -> bool {
    VALUE_FIELDS.iter().any(|f| {
        path.strip_prefix(f)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}

/// Hides the values of the changes of a Secret that touch its `data` or `stringData`.
pub fn secret_values(key: &ObjectKey, changes: &mut [Change]) {
    if !is_secret(key) {
        return;
    }
    for c in changes.iter_mut().filter(|c| under_values(&c.path)) {
        c.redact();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::fields::diff;
    use serde_json::json;

    #[test]
    fn secret_values_are_hidden_and_other_fields_are_not() {
        let key = |kind: &str| ObjectKey {
            group: String::new(),
            kind: kind.into(),
            namespace: Some("kubeflow".into()),
            name: "s".into(),
        };
        let before = json!({"data": {"token": "U2VjcmV0MQ==", "tls.crt": "YQ=="}, "type": "Opaque", "dataSource": 1});
        let after = json!({"data": {"token": "U2VjcmV0Mg==", "new": "Yg=="}, "stringData": {"p": "plain"}, "type": "kubernetes.io/tls", "dataSource": 2});
        let mut changes = diff(&before, &after);
        secret_values(&key("Secret"), &mut changes);
        let lines: Vec<String> = changes.iter().map(Change::line).collect();
        assert_eq!(
            lines,
            [
                "+ data.new: added (value hidden)",
                "~ data.token: changed (value hidden)",
                r#"- data["tls.crt"]: removed (value hidden)"#,
                "~ dataSource: 1 -> 2",
                "+ stringData: added (value hidden)",
                r#"~ type: "Opaque" -> "kubernetes.io/tls""#,
            ]
        );
        let shown = serde_json::to_string(&changes).unwrap();
        for secret in ["U2VjcmV0", "YQ==", "Yg==", "plain"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let mut cm = diff(&before, &after);
        secret_values(&key("ConfigMap"), &mut cm);
        assert!(cm.iter().all(|c| !c.redacted));
    }
}
