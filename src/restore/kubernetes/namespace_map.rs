//! `--namespace-map` checked against the snapshot before anything is restored: each source is
//! a namespace the snapshot holds, mapped once, onto a valid name that no other namespace of
//! the snapshot has (two namespaces would be merged into one).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::kube::object::ObjectKey;

/// How many of the snapshot's namespaces a message names.
const SHOWN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error(
        "--namespace-map {from}:{to}: the snapshot holds no namespace {from}; it holds {held}"
    )]
    NotInSnapshot {
        from: String,
        to: String,
        held: String,
    },
    #[error(
        "--namespace-map maps {from} twice (to {first} and to {second}); give each source namespace once"
    )]
    Twice {
        from: String,
        first: String,
        second: String,
    },
    #[error(
        "--namespace-map {from}:{to}: the snapshot holds namespace {to} too, and the two would be merged into one; map {from} onto a namespace the snapshot does not hold"
    )]
    OntoCaptured { from: String, to: String },
    #[error(
        "--namespace-map {first}:{to} and {second}:{to} would merge {first} and {second} into one namespace; map each onto its own"
    )]
    SameTarget {
        first: String,
        second: String,
        to: String,
    },
    #[error(
        "--namespace-map {from}:{to}: `{to}` is not a valid namespace name (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"
    )]
    BadName { from: String, to: String },
}

/// The namespaces a snapshot holds: Namespace objects, the namespaces of namespaced objects,
/// and Profiles (each names its namespace).
fn held(objects: &BTreeMap<ObjectKey, Value>) -> BTreeSet<&str> {
    objects
        .keys()
        .filter_map(
            |k| match (k.group.as_str(), k.kind.as_str(), &k.namespace) {
                ("", "Namespace", _) | ("kubeflow.org", "Profile", _) => Some(k.name.as_str()),
                (_, _, Some(ns)) => Some(ns.as_str()),
                _ => None,
            },
        )
        .collect()
}

/// A DNS-1123 label, what Kubernetes accepts as a namespace name.
fn valid_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.len() <= 63
        && name.starts_with(ok)
        && name.ends_with(ok)
        && name.chars().all(|c| ok(c) || c == '-')
}

/// Refuses a map that names a namespace the snapshot lacks, maps one twice, or would merge two
/// namespaces. Mapping a namespace onto itself changes nothing and is allowed, and so is a
/// swap (`a:b` with `b:a`), as each namespace still ends up alone.
pub fn check(
    objects: &BTreeMap<ObjectKey, Value>,
    map: &[(String, String)],
) -> Result<(), MapError> {
    let held = held(objects);
    let mut sources: BTreeMap<&str, &str> = BTreeMap::new();
    for (from, to) in map {
        if let Some(first) = sources.insert(from, to) {
            return Err(MapError::Twice {
                from: from.clone(),
                first: first.to_string(),
                second: to.clone(),
            });
        }
        if !valid_name(to) {
            return Err(MapError::BadName {
                from: from.clone(),
                to: to.clone(),
            });
        }
        if !held.contains(from.as_str()) {
            let mut shown: Vec<&str> = held.iter().take(SHOWN).copied().collect();
            if held.len() > SHOWN {
                shown.push("…");
            }
            return Err(MapError::NotInSnapshot {
                from: from.clone(),
                to: to.clone(),
                held: if shown.is_empty() {
                    "none".into()
                } else {
                    shown.join(", ")
                },
            });
        }
    }
    // Where each held namespace ends up; two arriving at one name are merged.
    let mut arrivals: BTreeMap<&str, &str> = BTreeMap::new();
    for ns in &held {
        let to = sources.get(ns).copied().unwrap_or(ns);
        if let Some(other) = arrivals.insert(to, ns) {
            let mapped = |n: &str| sources.contains_key(n);
            return Err(match (mapped(other), mapped(ns)) {
                (true, true) => MapError::SameTarget {
                    first: other.to_string(),
                    second: ns.to_string(),
                    to: to.to_string(),
                },
                (true, false) => MapError::OntoCaptured {
                    from: other.to_string(),
                    to: to.to_string(),
                },
                _ => MapError::OntoCaptured {
                    from: ns.to_string(),
                    to: to.to_string(),
                },
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot() -> BTreeMap<ObjectKey, Value> {
        [
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}}),
            json!({"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": "alice"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "bob"}}),
        ]
        .into_iter()
        .map(|o| (ObjectKey::of(&o).unwrap(), o))
        .collect()
    }

    fn map(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        check(&snapshot(), &map(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn good_maps_pass() {
        for ok in [
            vec![("alice", "alice-restored")],
            vec![("alice", "bob"), ("bob", "alice")],
            vec![("alice", "alice")],
            vec![("alice", "x"), ("bob", "y")],
        ] {
            assert!(check(&snapshot(), &map(&ok)).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            err(&[("carol", "c2")]),
            "--namespace-map carol:c2: the snapshot holds no namespace carol; it holds alice, bob, kubeflow"
        );
        assert!(err(&[("alice", "a2"), ("alice", "a3")])
            .starts_with("--namespace-map maps alice twice (to a2 and to a3)"));
        assert!(err(&[("alice", "kubeflow")]).starts_with(
            "--namespace-map alice:kubeflow: the snapshot holds namespace kubeflow too"
        ));
        assert!(err(&[("alice", "x"), ("bob", "x")])
            .starts_with("--namespace-map alice:x and bob:x would merge alice and bob"));
        assert!(err(&[("alice", "Alice_2")]).contains("is not a valid namespace name"));
    }
}
