//! The RBAC kfguard needs, derived from the code: what a backup reads (the kinds of
//! [`catalog`](super::catalog) and the `[kubernetes]` selection) and what a restore writes
//! (server-side apply, its waits, and the `restore-cluster` runbook's scaling), as ClusterRoles.

use std::collections::{BTreeMap, BTreeSet};

use ::kube::api::{ApiResource, GroupVersionKind};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::catalog::{AUTHZ_POLICY, BUILTIN_KINDS, CRD, SECRET};
use crate::config::KubernetesConfig;

/// Which of kfguard's two roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `kfguard backup` (and the nightly runbook): reads only.
    Backup,
    /// `kfguard restore` and the `restore-cluster` runbook: the reads they do and the writes.
    Restore,
}

impl Role {
    /// The ClusterRole's name in `deploy/`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Backup => "kfguard-backup",
            Role::Restore => "kfguard-restore",
        }
    }
}

/// The verbs that change the cluster; a backup role holds none of them.
pub const WRITE_VERBS: [&str; 8] = [
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "escalate",
    "bind",
    "impersonate",
];

/// Kubeflow's API groups that `crd_groups` globs such as `*.kubeflow.org` stand for. RBAC has
/// no group wildcards, so a glob is granted as the known groups it matches.
pub const KNOWN_CRD_GROUPS: [&str; 6] = [
    "kubeflow.org",
    "pipelines.kubeflow.org",
    "tensorboard.kubeflow.org",
    "trainer.kubeflow.org",
    "argoproj.io",
    "serving.kserve.io",
];

/// The rules of one role, and what a reader should know about them (globs expanded).
#[derive(Debug, Clone)]
pub struct Rules {
    pub rules: Vec<PolicyRule>,
    pub notes: Vec<String>,
}

/// One (group, resource) and its verbs, before rules are grouped.
type Grants = BTreeMap<(String, String), BTreeSet<&'static str>>;

/// The rules `role` needs for the selection `cfg`.
pub fn rules(role: Role, cfg: &KubernetesConfig) -> Rules {
    let mut grants = Grants::new();
    let mut grant = |group: &str, resource: &str, verbs: &[&'static str]| {
        grants
            .entry((group.to_string(), resource.to_string()))
            .or_default()
            .extend(verbs);
    };
    // Backups only list (page by page, cluster-wide or per namespace); restores list the live
    // objects to compare, and server-side apply is a PATCH that creates a missing object,
    // which the API server authorises as `create` too. No `update`: kfguard never PUTs.
    let base: &[&'static str] = match role {
        Role::Backup => &["list"],
        Role::Restore => &["create", "list", "patch"],
    };
    let mut kinds: Vec<(&str, &str)> = BUILTIN_KINDS
        .into_iter()
        .chain([CRD, AUTHZ_POLICY])
        .collect();
    if cfg.include_secrets {
        kinds.push(SECRET);
    }
    for (group, kind) in kinds {
        grant(group, &plural(group, kind), base);
    }
    let (groups, notes) = crd_groups(cfg);
    for group in &groups {
        grant(group, "*", base);
    }
    if role == Role::Restore {
        // The waits watch one object: a restored CRD until Established, a Profile's namespace
        // until it exists (kube-runtime's `await_condition`: list and watch).
        grant(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            &["watch"],
        );
        grant("", "namespaces", &["watch"]);
        // Recreating Kubeflow's roles, and bindings to them, where they grant more than this
        // role holds; the API server refuses them otherwise (privilege-escalation prevention).
        for r in ["roles", "clusterroles"] {
            grant("rbac.authorization.k8s.io", r, &["bind", "escalate"]);
        }
        // The `restore-cluster` runbook stops KFP's scheduling controllers during the restore
        // and gives them back their replicas: `kube::get` and `kube::scale` on Deployments.
        grant("apps", "deployments", &["get"]);
        grant("apps", "deployments/scale", &["get", "patch"]);
    }
    Rules {
        rules: group_rules(&grants),
        notes,
    }
}

/// The concrete API groups of `crd_groups`: names as they are, globs as the known groups they
/// match, with a note for each glob.
fn crd_groups(cfg: &KubernetesConfig) -> (BTreeSet<String>, Vec<String>) {
    let mut groups = BTreeSet::new();
    let mut notes = Vec::new();
    for pattern in &cfg.crd_groups {
        if !pattern.contains(['*', '?', '[', '{']) {
            groups.insert(pattern.clone());
            continue;
        }
        let single = globset::Glob::new(pattern).map(|g| g.compile_matcher());
        let matched: Vec<&str> = KNOWN_CRD_GROUPS
            .into_iter()
            .filter(|g| single.as_ref().is_ok_and(|m| m.is_match(g)))
            .collect();
        groups.extend(matched.iter().map(|g| (*g).to_string()));
        notes.push(format!(
            "crd_groups `{pattern}` is a glob and RBAC has no group wildcards: granted the known groups it matches ({}); name any other group in crd_groups and run this again",
            if matched.is_empty() { "none".to_string() } else { matched.join(", ") }
        ));
    }
    (groups, notes)
}

/// The resource (plural) of a built-in kind, as the API server names it.
fn plural(group: &str, kind: &str) -> String {
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind)).plural
}

/// Grants with the same verbs in the same group share one rule; rules in group order.
fn group_rules(grants: &Grants) -> Vec<PolicyRule> {
    let mut by: BTreeMap<(String, Vec<&str>), Vec<String>> = BTreeMap::new();
    for ((group, resource), verbs) in grants {
        by.entry((group.clone(), verbs.iter().copied().collect()))
            .or_default()
            .push(resource.clone());
    }
    by.into_iter()
        .map(|((group, verbs), resources)| PolicyRule {
            api_groups: Some(vec![group]),
            resources: Some(resources),
            verbs: verbs.into_iter().map(str::to_string).collect(),
            ..PolicyRule::default()
        })
        .collect()
}

/// The ClusterRole of `role`, labelled as `deploy/` labels its objects.
pub fn cluster_role(role: Role, cfg: &KubernetesConfig) -> (ClusterRole, Vec<String>) {
    let Rules { rules, notes } = rules(role, cfg);
    let labels = [
        ("app.kubernetes.io/name", "kfguard"),
        ("app.kubernetes.io/part-of", "kfguard"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cr = ClusterRole {
        metadata: ObjectMeta {
            name: Some(role.name().into()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        rules: Some(rules),
        aggregation_rule: None,
    };
    (cr, notes)
}

/// The ClusterRole as YAML, its notes as comments on top.
pub fn render_yaml(role: Role, cfg: &KubernetesConfig) -> Result<String, yaml_serde::Error> {
    let (cr, notes) = cluster_role(role, cfg);
    let what = match role {
        Role::Backup => "what `kfguard backup` reads",
        Role::Restore => "what `kfguard restore` and the restore-cluster runbook read and write",
    };
    let mut out = format!(
        "# {what}, for this config's [kubernetes] selection.\n# Generated by `kfguard rbac {}`.\n",
        match role {
            Role::Backup => "backup",
            Role::Restore => "restore",
        }
    );
    for n in notes {
        out.push_str(&format!("# Note: {n}\n"));
    }
    // k8s-openapi writes apiVersion and kind itself.
    out.push_str(&yaml_serde::to_string(&cr)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triples(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
        let mut out = BTreeSet::new();
        for r in rules {
            for g in r.api_groups.iter().flatten() {
                for res in r.resources.iter().flatten() {
                    for v in &r.verbs {
                        out.insert((g.clone(), res.clone(), v.clone()));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_backup_role_only_lists_and_names_plurals_as_the_api_server_does() {
        let r = rules(Role::Backup, &KubernetesConfig::default());
        let t = triples(&r.rules);
        assert!(t.iter().all(|(_, _, v)| v == "list"), "{t:?}");
        for (g, res) in [
            ("networking.k8s.io", "networkpolicies"),
            ("", "persistentvolumeclaims"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("security.istio.io", "authorizationpolicies"),
            ("pipelines.kubeflow.org", "*"),
        ] {
            assert!(
                t.contains(&(g.into(), res.into(), "list".into())),
                "{g}/{res}"
            );
        }
        assert!(!t.iter().any(|(_, res, _)| res == "secrets"));
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    }

    #[test]
    fn secrets_opted_in_are_read_by_the_backup_and_written_by_the_restore() {
        let cfg = KubernetesConfig {
            include_secrets: true,
            ..KubernetesConfig::default()
        };
        let backup = triples(&rules(Role::Backup, &cfg).rules);
        assert!(backup.contains(&(String::new(), "secrets".into(), "list".into())));
        let restore = triples(&rules(Role::Restore, &cfg).rules);
        for v in ["create", "list", "patch"] {
            assert!(
                restore.contains(&(String::new(), "secrets".into(), v.into())),
                "{v}"
            );
        }
        assert!(!restore
            .iter()
            .any(|(_, _, v)| v == "update" || v == "delete"));
    }
}
