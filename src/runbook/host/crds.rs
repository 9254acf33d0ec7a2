//! `crds::`: pinned CustomResourceDefinitions against the live ones, through the drift code
//! `kfguard crds diff` runs, and applied as `restore` applies them.

use std::collections::BTreeMap;
use std::sync::Arc;

use rhai::{Array, Dynamic, Map, Module};
use serde_json::Value;

use super::{func, to_dynamic, to_json, Host, Res};
use crate::drift::crds;
use crate::kube::object::ObjectKey;
use crate::kube::{apply, wait};
use crate::runbook::steps::error;

pub(super) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    func(
        "load",
        &["path: &str", "Array"],
        "The CRDs of a pinned YAML file (several documents, or a `kind: List`), read relative \
         to the runbook's folder.",
        r#"let pinned = crds::load("crds.yaml");"#,
    )
    .set_into_module(&mut m, move |path: &str| load(&h, path));
    let h = host.clone();
    func(
        "diff",
        &["pinned: Array", "Map"],
        "How the live CRDs differ from `pinned`: `missing`, `extra` (in the configured CRD \
         groups), `changed` (each with its `changes`), `identical`, and `empty` and `text` as \
         `kfguard crds diff` prints them.",
        r#"let d = crds::diff(crds::load("crds.yaml")); if !d.empty { warn(d.text); }"#,
    )
    .set_into_module(&mut m, move |pinned: Array| diff(&h, &pinned));
    let h = host.clone();
    func(
        "apply",
        &["crds: Array", "i64"],
        "Server-side applies each CRD and waits until it is Established, as a restore does; \
         returns how many were applied. A dry run sends them with `dryRun=All` and plans them.",
        r#"crds::apply(crds::load("crds.yaml"));"#,
    )
    .set_into_module(&mut m, move |pinned: Array| apply_all(&h, &pinned));
    m
}

fn load(h: &Host, path: &str) -> Res<Array> {
    let file = h.relative(path);
    let pinned = crds::load_pinned(&file).map_err(|e| error(e.to_string()))?;
    pinned.values().map(to_dynamic).collect()
}

fn by_name(pinned: &Array) -> Res<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for d in pinned {
        let v = to_json(d)?;
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| error("a CRD without metadata.name; load them with crds::load".into()))?
            .to_string();
        out.insert(name, v);
    }
    Ok(out)
}

fn diff(h: &Host, pinned: &Array) -> Res<Map> {
    let pinned = by_name(pinned)?;
    let cluster = h.cluster()?;
    let live = h.block(async { crds::live(&cluster).await })?;
    let drift = crds::compare(&pinned, &live, &h.config().kubernetes.globs.crd_groups);
    let mut out: Map = to_dynamic(&serde_json::to_value(&drift).unwrap_or_default())?
        .try_cast::<Map>()
        .unwrap_or_default();
    // Each changed CRD's changes also as the lines `kfguard crds diff` prints.
    if let Some(changed) = out
        .get_mut("changed")
        .and_then(rhai::Dynamic::write_lock::<Array>)
        .as_deref_mut()
    {
        for (entry, c) in changed.iter_mut().zip(&drift.changed) {
            if let Some(mut e) = entry.write_lock::<Map>() {
                let lines: Array = c.changes.iter().map(|ch| ch.line().into()).collect();
                e.insert("lines".into(), lines.into());
            }
        }
    }
    out.insert("empty".into(), Dynamic::from(drift.is_empty()));
    out.insert("text".into(), drift.text().into());
    out.insert("summary".into(), drift.summary().into());
    Ok(out)
}

fn apply_all(h: &Host, pinned: &Array) -> Res<i64> {
    let pinned = by_name(pinned)?;
    let cluster = h.cluster()?;
    let kind = h.kind("apiextensions.k8s.io/CustomResourceDefinition")?;
    let mut n = 0;
    for (name, crd) in &pinned {
        let key = ObjectKey::of(crd)
            .ok_or_else(|| error(format!("CRD {name}: it needs apiVersion and kind")))?;
        let dry = h.change(
            "crds::apply",
            &format!("apply CustomResourceDefinition {name}"),
        )?;
        h.block(async { apply::apply(&cluster, &kind, &key, crd, dry).await })?;
        if !dry {
            let established =
                h.block(async { Ok::<_, String>(wait::crd_established(&cluster, name).await) })?;
            if !established {
                return Err(error(format!(
                    "CRD {name} was applied but is not Established after {}s; look at its status conditions",
                    wait::limit().as_secs()
                )));
            }
        }
        n += 1;
    }
    h.rediscover();
    Ok(n)
}
