//! Restoring Kubernetes objects from a snapshot: a plan in dependency order (see [`order`]),
//! then server-side apply (see [`crate::kube::apply`]), stage by stage.
//!
//! - CRDs are waited for until Established, and the cluster is rediscovered, before any custom
//!   resource; Profiles are waited for until their namespace exists.
//! - ownerReferences are relinked to the UIDs the owners have on the target cluster (by kind,
//!   namespace and name); a reference to an owner that is not there is dropped, because the
//!   garbage collector would delete the object.
//! - Within a stage, objects go in waves (see [`order::waves`]): owners before what they own,
//!   templates, runtimes and Experiments before the objects that name them.
//! - `--namespace-map` is checked against the snapshot first (see [`namespace_map`]).
//! - A Secret's values never reach the plan: a change to them only says that it changed.
//! - `--dry-run` sends every create and update with `dryRun=All`, so the server validates the
//!   plan without storing anything; unchanged and skipped objects are not sent.
//! - Objects are applied with bounded concurrency and retried on 429 and 5xx; one failed object
//!   is reported and the others go on.

pub mod namespace_map;
pub mod order;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::runtime::Handle;

use crate::config::KubernetesConfig;
use crate::drift::fields::{self, Change};
use crate::drift::redact;
use crate::interrupt::{self, Signal};
use crate::kube::apply::apply;
use crate::kube::catalog::{self, Kind, Served};
use crate::kube::object::{self, ObjectKey, OwnerRef};
use crate::kube::{wait, Cluster, KubeError};
use crate::restore::Existing;

/// What `kfguard restore --only kubernetes` was asked to do.
pub struct Selection<'a> {
    pub namespace_map: &'a [(String, String)],
    pub include_kinds: &'a [String],
    pub existing: Existing,
    pub resume_schedules: bool,
    pub dry_run: bool,
    pub jobs: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{count} object(s) already exist in the cluster, e.g. {examples}; choose --existing skip or --existing overwrite")]
    Exists { count: usize, examples: String },
    #[error("the snapshot holds no Kubernetes objects{0}")]
    Nothing(String),
    #[error(transparent)]
    NamespaceMap(#[from] namespace_map::MapError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// A stop request, honoured between stages and waves.
    #[error("interrupted by {signal} {at}: {applied} object(s) applied, {pending} not yet")]
    Stopped {
        signal: Signal,
        /// Where the stop came: `before stage 7 (config)`, `in stage 9 (custom resources)`.
        at: String,
        applied: usize,
        pending: usize,
    },
}

impl RestoreError {
    /// Asking for what the snapshot cannot give: exit 2.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Nothing(_) | Self::NamespaceMap(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    Skip,
    Failed,
}

impl Action {
    /// The word of the plan and of the counts: `create`, `update`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Unchanged => "unchanged",
            Self::Skip => "skip",
            Self::Failed => "failed",
        }
    }
}

/// One object of the plan and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub stage: u8,
    pub stage_name: &'static str,
    pub action: Action,
    pub object: ObjectKey,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub server: String,
    pub steps: Vec<Step>,
    /// Objects per action.
    pub counts: BTreeMap<String, u64>,
    pub warnings: Vec<String>,
}

/// An object to apply, after the rewrites of the selection.
struct Item {
    key: ObjectKey,
    obj: Value,
    stage: u8,
    notes: Vec<String>,
}

pub fn restore(
    rt: &Handle,
    cfg: &KubernetesConfig,
    objects: BTreeMap<ObjectKey, Value>,
    sel: &Selection,
) -> Result<Report, RestoreError> {
    let items = prepare(objects, sel)?;
    rt.block_on(async {
        let cluster = Cluster::connect(cfg).await?;
        apply_all(&cluster, items, sel).await
    })
}

/// Applies the selection's rewrites and sorts the objects into stages.
fn prepare(
    objects: BTreeMap<ObjectKey, Value>,
    sel: &Selection,
) -> Result<Vec<Item>, RestoreError> {
    // `restore::run` has checked the namespace map against these objects, before any part.
    let total = objects.len();
    let mut items: Vec<Item> = objects
        .into_iter()
        .filter(|(k, _)| order::kind_selected(sel.include_kinds, k))
        .filter_map(|(_, mut obj)| {
            let mut notes = Vec::new();
            object::sanitize(&mut obj);
            order::map_namespace(&mut obj, sel.namespace_map);
            if !sel.resume_schedules && order::disable_schedule(&mut obj) {
                notes.push(
                    "schedule restored disabled (use --resume-schedules to keep it on)".into(),
                );
            }
            let key = ObjectKey::of(&obj)?;
            Some(Item {
                stage: order::stage(&key.group, &key.kind),
                key,
                obj,
                notes,
            })
        })
        .collect();
    if items.is_empty() {
        return Err(RestoreError::Nothing(if total > 0 {
            format!(" of the kinds {}", sel.include_kinds.join(","))
        } else {
            String::new()
        }));
    }
    items.sort_by(|a, b| (a.stage, &a.key).cmp(&(b.stage, &b.key)));
    Ok(items)
}

/// Live objects of the kinds a stage touches, listed once per kind.
async fn live_objects(
    cluster: &Cluster,
    kinds: &[Kind],
) -> Result<HashMap<ObjectKey, Value>, KubeError> {
    let lists: Vec<Result<Vec<Value>, KubeError>> = stream::iter(kinds.iter())
        .map(|k| catalog::list_kind(cluster, k))
        .buffer_unordered(8)
        .collect()
        .await;
    let mut out = HashMap::new();
    for list in lists {
        for o in list? {
            if let Some(k) = ObjectKey::of(&o) {
                out.insert(k, o);
            }
        }
    }
    Ok(out)
}

async fn apply_all(
    cluster: &Cluster,
    items: Vec<Item>,
    sel: &Selection<'_>,
) -> Result<Report, RestoreError> {
    let mut report = Report {
        server: cluster.server.clone(),
        ..Default::default()
    };
    let mut served = Served::discover(cluster).await?;
    // Namespaces that exist, or that this restore creates: a namespaced object goes nowhere else.
    let mut uids: HashMap<ObjectKey, String> = HashMap::new();
    let planned_ns: BTreeSet<String> = items
        .iter()
        .filter(|i| i.key.group.is_empty() && i.key.kind == "Namespace")
        .map(|i| i.key.name.clone())
        .collect();
    let planned_crds: BTreeSet<(String, String)> = items
        .iter()
        .filter(|i| i.stage == 1)
        .filter_map(|i| {
            let group = i.obj.pointer("/spec/group")?.as_str()?.to_string();
            let kind = i.obj.pointer("/spec/names/kind")?.as_str()?.to_string();
            Some((group, kind))
        })
        .collect();

    if sel.existing == Existing::Fail {
        let kinds = kinds_of(&served, items.iter());
        let live = live_objects(cluster, &kinds).await?;
        let existing: Vec<String> = items
            .iter()
            .filter(|i| live.contains_key(&i.key))
            .map(|i| format!("`{}`", i.key))
            .collect();
        if !existing.is_empty() {
            return Err(RestoreError::Exists {
                count: existing.len(),
                examples: existing
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }

    let total = items.len();
    let mut stages: BTreeMap<u8, Vec<Item>> = BTreeMap::new();
    for item in items {
        stages.entry(item.stage).or_default().push(item);
    }
    let mut rediscovered = false;
    let mut namespaces_live: Option<BTreeSet<String>> = None;
    for (stage, items) in stages {
        stop_check(&report, total, || {
            format!("before stage {stage} ({})", order::stage_name(stage))
        })?;
        if stage > 1 && !rediscovered && !sel.dry_run {
            // CRDs restored in stage 1 are served by now (Profiles already in stage 2); learn
            // their resources.
            served = Served::discover(cluster).await?;
            rediscovered = true;
        }
        let kinds = kinds_of(&served, items.iter());
        let live = live_objects(cluster, &kinds).await?;
        for (k, o) in &live {
            if let Some(uid) = o.pointer("/metadata/uid").and_then(Value::as_str) {
                uids.insert(k.clone(), uid.to_string());
            }
        }
        // Namespaced objects start at stage 3, once stage 2 has created the namespaces: list
        // them once, then.
        if stage >= 3 && namespaces_live.is_none() {
            let mut names = BTreeSet::new();
            if let Some(k) = served.get("", "Namespace").cloned() {
                for o in catalog::list_kind(cluster, &k).await? {
                    if let Some(n) = o.pointer("/metadata/name").and_then(Value::as_str) {
                        names.insert(n.to_string());
                    }
                }
            }
            namespaces_live = Some(names);
        }
        let namespaces_live = namespaces_live.as_ref();
        // Owners before dependents, once the owner has its new UID, and referenced kinds
        // (templates, runtimes, experiments) before their users: wave by wave.
        let wave_of = order::waves(&items.iter().map(|i| (&i.key, &i.obj)).collect::<Vec<_>>());
        let mut waves: BTreeMap<usize, Vec<Item>> = BTreeMap::new();
        for (item, w) in items.into_iter().zip(wave_of) {
            waves.entry(w).or_default().push(item);
        }
        for wave in waves.into_values() {
            stop_check(&report, total, || {
                format!("in stage {stage} ({})", order::stage_name(stage))
            })?;
            let mut tasks = Vec::new();
            for mut item in wave {
                let kind = served.get(&item.key.group, &item.key.kind).cloned();
                let mut step = Step {
                    stage,
                    stage_name: order::stage_name(stage),
                    action: Action::Create,
                    object: item.key.clone(),
                    changes: Vec::new(),
                    notes: std::mem::take(&mut item.notes),
                    error: None,
                };
                let Some(kind) = kind else {
                    if sel.dry_run
                        && planned_crds.contains(&(item.key.group.clone(), item.key.kind.clone()))
                    {
                        step.notes.push(
                            "its CRD is created by this restore; not validated by the server"
                                .into(),
                        );
                    } else {
                        step.action = Action::Failed;
                        step.error = Some(format!(
                            "the cluster does not serve {}; restore its CRD first (--include-kinds CustomResourceDefinition)",
                            item.key.group_kind()
                        ));
                    }
                    report.steps.push(step);
                    continue;
                };
                if let Some(ns) = &item.key.namespace {
                    if !namespaces_live.is_some_and(|live| live.contains(ns)) {
                        if planned_ns.contains(ns) && sel.dry_run {
                            step.notes.push(format!("namespace {ns} is created by this restore; not validated by the server"));
                            report.steps.push(step);
                            continue;
                        }
                        if !planned_ns.contains(ns) {
                            step.action = Action::Failed;
                            step.error = Some(format!(
                                "namespace {ns} does not exist and is not in the snapshot; create it, or map it with --namespace-map {ns}:OTHER"
                            ));
                            report.steps.push(step);
                            continue;
                        }
                    }
                }
                relink_owners(&mut item.obj, &item.key, &uids, &mut step.notes);
                if let Some(live_obj) = live.get(&item.key) {
                    let mut live_clean = live_obj.clone();
                    object::sanitize(&mut live_clean);
                    step.changes = fields::applied(&live_clean, &item.obj);
                    redact::secret_values(&item.key, &mut step.changes);
                    step.action = if step.changes.is_empty() {
                        Action::Unchanged
                    } else if sel.existing == Existing::Skip {
                        step.notes.push("exists and differs; kept as is (--existing overwrite applies the snapshot)".into());
                        Action::Skip
                    } else {
                        Action::Update
                    };
                    if matches!(step.action, Action::Unchanged | Action::Skip) {
                        report.steps.push(step);
                        continue;
                    }
                }
                tasks.push((item, kind, step));
            }
            let results: Vec<(ObjectKey, Step, Option<String>)> = stream::iter(tasks)
                .map(|(item, kind, mut step)| async move {
                    match apply(cluster, &kind, &item.key, &item.obj, sel.dry_run).await {
                        Ok(uid) => (item.key, step, uid),
                        Err(e) => {
                            step.action = Action::Failed;
                            step.error = Some(e.to_string());
                            (item.key, step, None)
                        }
                    }
                })
                .buffer_unordered(sel.jobs.max(1))
                .collect()
                .await;
            for (key, step, uid) in results {
                if let Some(uid) = uid {
                    uids.insert(key, uid);
                }
                report.steps.push(step);
            }
        }
        if !sel.dry_run {
            let applied: Vec<&Step> = report
                .steps
                .iter()
                .filter(|s| s.stage == stage && matches!(s.action, Action::Create | Action::Update))
                .collect();
            match stage {
                1 => {
                    for s in &applied {
                        if let Err(e) = wait_established(cluster, &served, &s.object.name).await {
                            report.warnings.push(e);
                        }
                    }
                }
                2 => {
                    for s in applied.iter().filter(|s| s.object.kind == "Profile") {
                        if let Err(e) = wait_namespace(cluster, &served, &s.object.name).await {
                            report.warnings.push(e);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    report
        .steps
        .sort_by(|a, b| (a.stage, &a.object).cmp(&(b.stage, &b.object)));
    for s in &report.steps {
        *report.counts.entry(s.action.as_str().into()).or_default() += 1;
    }
    let failed: Vec<&Step> = report
        .steps
        .iter()
        .filter(|s| s.action == Action::Failed)
        .collect();
    if !failed.is_empty() {
        let examples: Vec<String> = failed
            .iter()
            .take(3)
            .map(|s| format!("{}: {}", s.object, s.error.as_deref().unwrap_or("")))
            .collect();
        report.warnings.push(format!(
            "{} Kubernetes object(s) could not be restored, e.g. {}",
            failed.len(),
            examples.join("; ")
        ));
    }
    Ok(report)
}

/// Between stages and waves: stop here when asked to, saying how far the restore came. A wave
/// already sent is finished first, so no object is left half-applied.
fn stop_check(
    report: &Report,
    total: usize,
    at: impl FnOnce() -> String,
) -> Result<(), RestoreError> {
    let Some(signal) = interrupt::requested() else {
        return Ok(());
    };
    let applied = report
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::Create | Action::Update))
        .count();
    Err(RestoreError::Stopped {
        signal,
        at: at(),
        applied,
        pending: total.saturating_sub(report.steps.len()),
    })
}

/// The served kinds of these items (kinds the cluster does not serve are left out).
fn kinds_of<'a>(served: &Served, items: impl Iterator<Item = &'a Item>) -> Vec<Kind> {
    let wanted: BTreeSet<(String, String)> = items
        .map(|i| (i.key.group.clone(), i.key.kind.clone()))
        .collect();
    wanted
        .iter()
        .filter_map(|(g, k)| served.get(g, k).cloned())
        .collect()
}

/// Points ownerReferences at the owners' UIDs on the target cluster; drops references to owners
/// that are not there, which the garbage collector would otherwise act on.
fn relink_owners(
    obj: &mut Value,
    key: &ObjectKey,
    uids: &HashMap<ObjectKey, String>,
    notes: &mut Vec<String>,
) {
    let Some(refs) = obj
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    refs.retain_mut(|r| {
        let Some(owner) = OwnerRef::of(r) else {
            return false;
        };
        let found = owner.find(key.namespace.as_deref(), |k| uids.get(k));
        if let Some(uid) = found {
            r["uid"] = uid.clone().into();
            true
        } else {
            notes.push(format!(
                "owner {} {} is not in the cluster; its reference is dropped",
                owner.kind, owner.name
            ));
            false
        }
    });
    if refs.is_empty() {
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("ownerReferences");
        }
    }
}

/// Waits until a CRD restored in stage 1 is Established.
async fn wait_established(cluster: &Cluster, served: &Served, name: &str) -> Result<(), String> {
    if served
        .get("apiextensions.k8s.io", "CustomResourceDefinition")
        .is_none()
    {
        return Ok(());
    }
    if wait::crd_established(cluster, name).await {
        Ok(())
    } else {
        Err(format!(
            "CRD {name} is not Established after {:?}; its custom resources may fail",
            wait::limit()
        ))
    }
}

/// Waits until a Profile's namespace exists: the profile controller creates it.
async fn wait_namespace(cluster: &Cluster, served: &Served, name: &str) -> Result<(), String> {
    let Some(kind) = served.get("", "Namespace") else {
        return Ok(());
    };
    if wait::exists(cluster, kind, name).await {
        Ok(())
    } else {
        Err(format!(
            "namespace {name} of Profile {name} did not appear within {:?}; is the profile controller running?",
            wait::limit()
        ))
    }
}
