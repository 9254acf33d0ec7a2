//! Field-by-field differences between two JSON objects, as paths such as
//! `spec.containers[0].image` or `metadata.labels["app.kubernetes.io/name"]`.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub path: String,
    /// Absent when the field was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// Absent when the field was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// The values are hidden (a Secret's data): `before` and `after` only say that a value
    /// was there.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

impl Change {
    fn new(path: String, before: Option<Value>, after: Option<Value>) -> Self {
        Self {
            path,
            before,
            after,
            redacted: false,
        }
    }

    /// Hides the values: each side that has one says only [`HIDDEN`].
    pub fn redact(&mut self) {
        for side in [&mut self.before, &mut self.after] {
            if side.is_some() {
                *side = Some(HIDDEN.into());
            }
        }
        self.redacted = true;
    }

    /// One line, `~ path: before -> after`, `+ path: after` or `- path: before`.
    pub fn line(&self) -> String {
        let show = |v: &Value| {
            let s = v.to_string();
            if s.len() > 120 {
                let mut end = 117;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}…", &s[..end])
            } else {
                s
            }
        };
        if self.redacted {
            return match (&self.before, &self.after) {
                (Some(_), Some(_)) => format!("~ {}: changed {HIDDEN}", self.path),
                (None, Some(_)) => format!("+ {}: added {HIDDEN}", self.path),
                (Some(_), None) => format!("- {}: removed {HIDDEN}", self.path),
                (None, None) => format!("  {}", self.path),
            };
        }
        match (&self.before, &self.after) {
            (Some(b), Some(a)) => format!("~ {}: {} -> {}", self.path, show(b), show(a)),
            (None, Some(a)) => format!("+ {}: {}", self.path, show(a)),
            (Some(b), None) => format!("- {}: {}", self.path, show(b)),
            (None, None) => format!("  {}", self.path),
        }
    }
}

/// What stands in for a hidden value, in text and JSON.
pub const HIDDEN: &str = "(value hidden)";

/// Every difference between `before` and `after`.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(before, after, String::new(), false, &mut out);
    out
}

/// What applying `desired` over `live` would change: only the fields `desired` sets are
/// compared, as a server-side apply leaves the other fields alone.
pub fn applied(live: &Value, desired: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(live, desired, String::new(), true, &mut out);
    out
}

fn walk(before: &Value, after: &Value, path: String, only_after: bool, out: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, av) in a {
                let p = join(&path, k);
                match b.get(k) {
                    Some(bv) => walk(bv, av, p, only_after, out),
                    None => out.push(Change::new(p, None, Some(av.clone()))),
                }
            }
            if !only_after {
                for (k, bv) in b {
                    if !a.contains_key(k) {
                        out.push(Change::new(join(&path, k), Some(bv.clone()), None));
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if a.len() == b.len() => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                walk(bv, av, format!("{path}[{i}]"), only_after, out);
            }
        }
        (b, a) if b != a => out.push(Change::new(
            if path.is_empty() { ".".into() } else { path },
            Some(b.clone()),
            Some(a.clone()),
        )),
        _ => {}
    }
}

/// `path.key`, or `path["key"]` when the key is not a plain identifier (dots, slashes).
pub fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Value::from(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_reports_added_removed_changed() {
        let a = json!({"metadata": {"labels": {"app.kubernetes.io/name": "x", "old": "1"}}, "spec": {"n": 1, "list": [1, 2]}});
        let b = json!({"metadata": {"labels": {"app.kubernetes.io/name": "y"}}, "spec": {"n": 1, "list": [1, 3], "new": true}});
        let lines: Vec<String> = diff(&a, &b).iter().map(Change::line).collect();
        assert_eq!(
            lines,
            [
                r#"~ metadata.labels["app.kubernetes.io/name"]: "x" -> "y""#,
                r#"- metadata.labels.old: "1""#,
                "~ spec.list[1]: 2 -> 3",
                "+ spec.new: true",
            ]
        );
    }

    #[test]
    fn applied_ignores_fields_the_desired_object_does_not_set() {
        let live = json!({"metadata": {"name": "a", "uid": "u"}, "spec": {"a": 1, "b": 2}});
        assert!(applied(&live, &json!({"metadata": {"name": "a"}, "spec": {"a": 1}})).is_empty());
        let changes = applied(&live, &json!({"spec": {"a": 2}}));
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].line(), "~ spec.a: 1 -> 2");
    }
}
