//! SubjectAccessReview evaluation against the stored RBAC objects.

use crate::store::State;
use serde_json::Value;

const RBAC: &str = "rbac.authorization.k8s.io";

/// Who is asking: a user name and its groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// The token scheme documented in the crate docs: `admin`, or `user:<name>[:<g1>,<g2>]`.
    pub fn from_token(token: Option<&str>) -> Identity {
        let token = token.filter(|t| !t.is_empty());
        match token {
            // No token: kubectl sends none over plain http, so treat it like the insecure port.
            Some("admin") | None => Identity {
                user: "admin".into(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
            },
            Some(t) if t.starts_with("user:") => {
                let rest = &t["user:".len()..];
                // User names may contain colons: service accounts have four parts, other
                // `system:` users two; everything after the name is the group list.
                let parts: Vec<&str> = rest.split(':').collect();
                let take = if rest.starts_with("system:serviceaccount:") {
                    4
                } else if rest.starts_with("system:") {
                    2
                } else {
                    1
                };
                let take = take.min(parts.len());
                let user = parts[..take].join(":");
                let groups_part = parts[take..].join(":");
                let mut groups: Vec<String> = groups_part
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect();
                groups.push("system:authenticated".into());
                Identity { user, groups }
            }
            _ => Identity {
                user: "system:anonymous".into(),
                groups: vec!["system:unauthenticated".into()],
            },
        }
    }

    /// Adds the groups the real authenticator derives (service-account groups, authenticated).
    pub fn expanded(&self) -> Identity {
        let mut groups = self.groups.clone();
        let mut add = |g: String| {
            if !groups.contains(&g) {
                groups.push(g);
            }
        };
        if let Some(rest) = self.user.strip_prefix("system:serviceaccount:") {
            if let Some((ns, _)) = rest.split_once(':') {
                add("system:serviceaccounts".into());
                add(format!("system:serviceaccounts:{ns}"));
            }
        }
        if self.user != "system:anonymous" {
            add("system:authenticated".into());
        }
        Identity {
            user: self.user.clone(),
            groups,
        }
    }
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn has(list: &[&str], want: &str) -> bool {
    list.iter().any(|x| *x == "*" || *x == want)
}

/// Does one policy rule allow the request described by `attrs`?
fn rule_allows(rule: &Value, attrs: &Value, non_resource: bool) -> bool {
    let verb = attrs["verb"].as_str().unwrap_or("");
    if !has(&strs(&rule["verbs"]), verb) {
        return false;
    }
    if non_resource {
        let path = attrs["path"].as_str().unwrap_or("");
        return strs(&rule["nonResourceURLs"])
            .iter()
            .any(|u| *u == "*" || *u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p)));
    }
    if !has(&strs(&rule["apiGroups"]), attrs["group"].as_str().unwrap_or("")) {
        return false;
    }
    let resource = attrs["resource"].as_str().unwrap_or("");
    let sub = attrs["subresource"].as_str().unwrap_or("");
    let combined = if sub.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{sub}")
    };
    let resources = strs(&rule["resources"]);
    let res_ok = resources
        .iter()
        .any(|r| *r == "*" || *r == combined || (!sub.is_empty() && *r == format!("*/{sub}")));
    if !res_ok {
        return false;
    }
    let names = strs(&rule["resourceNames"]);
    names.is_empty() || names.contains(&attrs["name"].as_str().unwrap_or(""))
}

fn subject_matches(subject: &Value, binding_ns: &str, who: &Identity) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str().unwrap_or("") {
        "User" => name == who.user,
        "Group" => who.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            who.user == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn describe_subject(subject: &Value, binding_ns: &str) -> String {
    let kind = subject["kind"].as_str().unwrap_or("");
    let name = subject["name"].as_str().unwrap_or("");
    if kind == "ServiceAccount" {
        let ns = subject["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or(binding_ns);
        format!("{kind} \"{ns}/{name}\"")
    } else {
        format!("{kind} {name:?}")
    }
}

fn objects<'a>(state: &'a State, resource: &'a str, ns: Option<&'a str>) -> impl Iterator<Item = &'a Value> + 'a {
    state
        .objects
        .iter()
        .filter(move |(k, _)| k.0 == RBAC && k.1 == resource && ns.is_none_or(|n| k.2 == n))
        .map(|(_, v)| v)
}

fn role_rules<'a>(state: &'a State, kind: &str, name: &str, ns: &str) -> Vec<&'a Value> {
    let (resource, ns) = if kind == "ClusterRole" {
        ("clusterroles", "")
    } else {
        ("roles", ns)
    };
    let key = (RBAC.to_string(), resource.to_string(), ns.to_string(), name.to_string());
    state
        .objects
        .get(&key)
        .and_then(|r| r["rules"].as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Evaluates `spec.resourceAttributes` or `spec.nonResourceAttributes` for `who`:
/// (allowed, reason).
pub fn review(state: &State, who: &Identity, spec: &Value) -> (bool, String) {
    let who = who.expanded();
    if who.groups.iter().any(|g| g == "system:masters") {
        return (true, "allowed by group \"system:masters\"".into());
    }
    let (attrs, non_resource) = match (spec.get("resourceAttributes"), spec.get("nonResourceAttributes")) {
        (Some(a), _) => (a, false),
        (None, Some(a)) => (a, true),
        (None, None) => return (false, "no resourceAttributes or nonResourceAttributes".into()),
    };
    for crb in objects(state, "clusterrolebindings", None) {
        let role = crb["roleRef"]["name"].as_str().unwrap_or("");
        for s in crb["subjects"].as_array().into_iter().flatten() {
            if subject_matches(s, "", &who)
                && role_rules(state, "ClusterRole", role, "")
                    .iter()
                    .any(|r| rule_allows(r, attrs, non_resource))
            {
                let why = format!(
                    "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {role:?} to {}",
                    crb["metadata"]["name"].as_str().unwrap_or(""),
                    describe_subject(s, "")
                );
                return (true, why);
            }
        }
    }
    let ns = attrs["namespace"].as_str().unwrap_or("");
    if !non_resource && !ns.is_empty() {
        for rb in objects(state, "rolebindings", Some(ns)) {
            let kind = rb["roleRef"]["kind"].as_str().unwrap_or("Role");
            let role = rb["roleRef"]["name"].as_str().unwrap_or("");
            for s in rb["subjects"].as_array().into_iter().flatten() {
                if subject_matches(s, ns, &who)
                    && role_rules(state, kind, role, ns)
                        .iter()
                        .any(|r| rule_allows(r, attrs, false))
                {
                    let why = format!(
                        "RBAC: allowed by RoleBinding \"{}/{ns}\" of {kind} {role:?} to {}",
                        rb["metadata"]["name"].as_str().unwrap_or(""),
                        describe_subject(s, ns)
                    );
                    return (true, why);
                }
            }
        }
    }
    (false, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let i = Identity::from_token(Some("user:system:serviceaccount:kf:editor:team-a,team-b"));
        assert_eq!(i.user, "system:serviceaccount:kf:editor");
        assert_eq!(i.groups, vec!["team-a", "team-b", "system:authenticated"]);
        let e = Identity::from_token(Some("user:alice")).expanded();
        assert_eq!((e.user.as_str(), e.groups.len()), ("alice", 1));
        assert!(Identity::from_token(Some("admin"))
            .groups
            .contains(&"system:masters".to_string()));
    }
}
