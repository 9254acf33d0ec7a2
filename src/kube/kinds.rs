//! `--include-kinds` values, checked as the command line is parsed: `Kind` or `group/Kind`,
//! and for the built-in groups kfguard captures, a kind it captures.

use super::catalog::{AUTHZ_POLICY, BUILTIN_KINDS, CRD, SECRET};

/// Every built-in (group, kind) a snapshot can hold; custom resources come from `crd_groups`.
fn known() -> impl Iterator<Item = (&'static str, &'static str)> {
    BUILTIN_KINDS.into_iter().chain([CRD, AUTHZ_POLICY, SECRET])
}

fn group_of_known(group: &str) -> Option<&'static str> {
    known()
        .map(|(g, _)| g)
        .find(|g| g.eq_ignore_ascii_case(group))
}

/// A clap value parser for one `--include-kinds` entry.
pub fn parse_kind(s: &str) -> Result<String, String> {
    let s = s.trim();
    let (group, kind) = match s.rsplit_once('/') {
        Some((g, k)) => (Some(g), k),
        None => (None, s),
    };
    let kind_ok = kind.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && kind.chars().all(|c| c.is_ascii_alphanumeric());
    let group_ok = group.is_none_or(|g| {
        g.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && g.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
    });
    if !kind_ok || !group_ok {
        return Err(format!(
            "`{s}` is not a kind: write Kind or group/Kind, e.g. ConfigMap or kubeflow.org/Profile"
        ));
    }
    let same = |k: &str| k.eq_ignore_ascii_case(kind);
    if let Some(g) = group {
        let g = if g.eq_ignore_ascii_case("core") {
            ""
        } else {
            g
        };
        if let Some(group) = group_of_known(g) {
            if !known().any(|(kg, k)| kg == group && same(k)) {
                let kinds: Vec<&str> = known()
                    .filter(|(kg, _)| *kg == group)
                    .map(|(_, k)| k)
                    .collect();
                let name = if group.is_empty() { "core" } else { group };
                return Err(format!(
                    "kfguard captures no kind `{kind}` of the group {name}; it captures {}",
                    kinds.join(", ")
                ));
            }
        }
    } else {
        // `configmaps` is the resource, not the kind: a common slip from kubectl.
        let singular = kind
            .strip_suffix("ies")
            .map(|k| format!("{k}y"))
            .or_else(|| kind.strip_suffix('s').map(str::to_string));
        if !known().any(|(_, k)| same(k)) {
            if let Some((_, k)) =
                singular.and_then(|one| known().find(|(_, k)| k.eq_ignore_ascii_case(&one)))
            {
                return Err(format!("`{kind}` is a resource name; write the kind, {k}"));
            }
        }
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_checked_against_what_kfguard_captures() {
        for ok in [
            "ConfigMap",
            "configmap",
            "core/ConfigMap",
            "kubeflow.org/Profile",
            "Notebook",
            "rbac.authorization.k8s.io/RoleBinding",
        ] {
            assert_eq!(parse_kind(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "",
            "core/Pod",
            "Config Map",
            "/ConfigMap",
            "configmaps",
            "networkpolicies",
            "a/",
        ] {
            assert!(parse_kind(bad).is_err(), "{bad}");
        }
        let err = parse_kind("networking.k8s.io/Ingress").unwrap_err();
        assert!(err.contains("NetworkPolicy"), "{err}");
    }
}
