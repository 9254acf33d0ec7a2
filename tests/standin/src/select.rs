//! Label and field selectors, parsed the way `kubectl` and client libraries send them.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<Req>);

/// Splits on commas that are not inside a `( … )` set.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_set(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for term in split_top(s).into_iter().map(str::trim).filter(|t| !t.is_empty()) {
            let bad = || format!("unable to parse requirement: {term:?}");
            if let Some(k) = term.strip_prefix('!') {
                reqs.push(Req::NotExists(k.trim().to_string()));
                continue;
            }
            let key_end = term
                .find(|c: char| c.is_whitespace() || c == '=' || c == '!')
                .unwrap_or(term.len());
            let key = term[..key_end].to_string();
            if key.is_empty() {
                return Err(bad());
            }
            let rest = term[key_end..].trim_start();
            let req = if rest.is_empty() {
                Req::Exists(key)
            } else if let Some(v) = rest.strip_prefix("!=") {
                Req::NotEq(key, v.trim().to_string())
            } else if let Some(v) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
                Req::Eq(key, v.trim().to_string())
            } else if let Some(set) = rest.strip_prefix("notin") {
                Req::NotIn(key, parse_set(set).ok_or_else(bad)?)
            } else if let Some(set) = rest.strip_prefix("in") {
                Req::In(key, parse_set(set).ok_or_else(bad)?)
            } else {
                return Err(bad());
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
            Req::In(k, set) => get(k).is_some_and(|l| set.iter().any(|s| s == l)),
            Req::NotIn(k, set) => get(k).is_none_or(|l| !set.iter().any(|s| s == l)),
        })
    }
}

/// A field selector: `path=value`, `path==value` or `path!=value`, comma-AND. Any dotted path
/// into the object is accepted (the real server is pickier per kind).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, eq, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, true, v)
            } else {
                return Err(format!("invalid selector: '{term}'; can't understand '{term}'"));
            };
            out.push((path.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = obj;
            for part in path.split('.') {
                cur = &cur[part];
            }
            let have = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (have == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"labels": {"a": "b", "tier": "web"}}});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("a=b"));
        assert!(m("a==b,tier"));
        assert!(!m("a!=b"));
        assert!(m("!c"));
        assert!(!m("!a"));
        assert!(m("tier in (web, db)"));
        assert!(!m("tier notin (web)"));
        assert!(m("c notin (x),a"));
        assert!(!m("a=b,c"));
        assert!(LabelSelector::parse("a in x").is_err());
        let f = FieldSelector::parse("metadata.name!=x").unwrap();
        assert!(f.matches(&json!({"metadata": {"name": "y"}})));
    }
}
