//! `kube::`: the live cluster, through `crate::kube::live` and the server-side apply the
//! restore uses. Changes go to the server with `dryRun=All` on a dry run.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Map, Module};

use super::{func, known_options, ns, opt_str, to_dynamic, to_json, Host, Res};
use crate::drift::{fields, redact};
use crate::kube::live::{self, Access, Condition, LogQuery};
use crate::kube::object::ObjectKey;
use crate::kube::{apply, quantity, wait};
use crate::runbook::steps::error;

fn array(items: Vec<serde_json::Value>) -> Res<Array> {
    items.iter().map(to_dynamic).collect()
}

pub(super) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();

    let h = host.clone();
    func(
        "get",
        &["kind: &str", "namespace: &str", "name: &str", "Dynamic"],
        "One object as a map, or `()` when it does not exist. `kind` is written as kubectl \
         takes it: `Pod`, `pods`, `apps/Deployment`, `workflows.argoproj.io`. An empty \
         namespace reads a cluster-scoped object.",
        r#"let cm = kube::get("ConfigMap", "kubeflow", "pipeline-install-config");"#,
    )
    .set_into_module(&mut m, move |kind: &str, namespace: &str, name: &str| {
        get(&h, kind, namespace, name)
    });
    let h = host.clone();
    func(
        "get",
        &["kind: &str", "name: &str", "Dynamic"],
        "A cluster-scoped object as a map, or `()` when it does not exist.",
        r#"let crd = kube::get("CustomResourceDefinition", "profiles.kubeflow.org");"#,
    )
    .set_into_module(&mut m, move |kind: &str, name: &str| {
        get(&h, kind, "", name)
    });

    let h = host.clone();
    func(
        "list",
        &["kind: &str", "namespace: &str", "Array"],
        "Every object of `kind` in `namespace`; an empty namespace lists all namespaces.",
        r#"for d in kube::list("apps/Deployment", "kubeflow") { info(d.metadata.name); }"#,
    )
    .set_into_module(&mut m, move |kind: &str, namespace: &str| {
        list(&h, kind, namespace, &Map::new())
    });
    let h = host.clone();
    func(
        "list",
        &["kind: &str", "namespace: &str", "options: Map", "Array"],
        "A list narrowed by `labels` and `fields`, selectors in the API's syntax.",
        r#"let ui = kube::list("Pod", "kubeflow", #{ labels: "app=ml-pipeline-ui" });"#,
    )
    .set_into_module(&mut m, move |kind: &str, namespace: &str, o: Map| {
        list(&h, kind, namespace, &o)
    });

    let h = host.clone();
    func(
        "pods",
        &["namespace: &str", "Array"],
        "The pods of `namespace`, with their status.",
        r#"let pods = kube::pods("kubeflow");"#,
    )
    .set_into_module(&mut m, move |namespace: &str| {
        list(&h, "Pod", namespace, &Map::new())
    });
    let h = host.clone();
    func(
        "pvcs",
        &["namespace: &str", "Array"],
        "The PersistentVolumeClaims of `namespace`, with their status.",
        r#"for c in kube::pvcs("kubeflow") { ensure(c.status.phase == "Bound", c.metadata.name); }"#,
    )
    .set_into_module(&mut m, move |namespace: &str| {
        list(&h, "PersistentVolumeClaim", namespace, &Map::new())
    });
    let h = host.clone();
    func(
        "events",
        &["namespace: &str", "Array"],
        "The events of `namespace`.",
        r#"let events = kube::events("kubeflow");"#,
    )
    .set_into_module(&mut m, move |namespace: &str| {
        list(&h, "Event", namespace, &Map::new())
    });
    let h = host.clone();
    func(
        "events",
        &["namespace: &str", "object: &str", "Array"],
        "The events about one object of `namespace`, by its name.",
        r#"let why = kube::events("kubeflow", "minio-pvc");"#,
    )
    .set_into_module(&mut m, move |namespace: &str, object: &str| {
        let mut o = Map::new();
        o.insert(
            "fields".into(),
            format!("involvedObject.name={object}").into(),
        );
        list(&h, "Event", namespace, &o)
    });

    let h = host.clone();
    func(
        "logs",
        &["namespace: &str", "pod: &str", "String"],
        "The log of a pod's only container.",
        r#"let log = kube::logs("kubeflow", "ml-pipeline-7d9c");"#,
    )
    .set_into_module(&mut m, move |namespace: &str, pod: &str| {
        logs(&h, namespace, pod, &Map::new())
    });
    let h = host.clone();
    func(
        "logs",
        &["namespace: &str", "pod: &str", "options: Map", "String"],
        "A container's log: options `container`, `tail` (the last lines) and `previous` (the \
         terminated instance before a restart: why it crashed).",
        r#"let why = kube::logs("kubeflow", pod, #{ container: "main", tail: 20, previous: true });"#,
    )
    .set_into_module(&mut m, move |namespace: &str, pod: &str, o: Map| {
        logs(&h, namespace, pod, &o)
    });

    let h = host.clone();
    func(
        "can_i",
        &["verb: &str", "resource: &str", "namespace: &str", "bool"],
        "Whether kfguard itself may `verb` the `resource` (`pods`, or `workflows.argoproj.io` \
         for a group's resource) in `namespace`.",
        r#"ensure(kube::can_i("list", "pods", "kubeflow"), "kfguard cannot list pods");"#,
    )
    .set_into_module(
        &mut m,
        move |verb: &str, resource: &str, namespace: &str| {
            can_i(&h, verb, resource, namespace, None)
        },
    );
    let h = host.clone();
    func(
        "can_i",
        &["verb: &str", "resource: &str", "namespace: &str", "as: &str", "bool"],
        "Whether a user or a service account (`system:serviceaccount:NS:NAME`) may `verb` \
         the `resource` in `namespace`, as the API server's authorizer answers.",
        r#"kube::can_i("create", "workflows.argoproj.io", "team-a", "system:serviceaccount:team-a:default-editor")"#,
    )
    .set_into_module(
        &mut m,
        move |verb: &str, resource: &str, namespace: &str, user: &str| {
            can_i(&h, verb, resource, namespace, Some(user))
        },
    );

    let h = host.clone();
    func(
        "apply",
        &["object: Map", "String"],
        "Server-side apply of one object (field manager kfguard), as `restore` applies. Returns \
         its uid; on a dry run the server validates it, stores nothing, and the change is in \
         the plan.",
        r#"kube::apply(#{ apiVersion: "v1", kind: "ConfigMap", metadata: #{ name: "x", namespace: "kubeflow" }, data: #{} });"#,
    )
    .set_into_module(&mut m, move |o: Map| apply_one(&h, &o));
    let h = host.clone();
    func(
        "delete",
        &["kind: &str", "namespace: &str", "name: &str", "bool"],
        "Deletes one object; false when it was already gone. A dry run deletes nothing.",
        r#"kube::delete("Pod", "kubeflow", "ml-pipeline-7d9c");"#,
    )
    .set_into_module(&mut m, move |kind: &str, namespace: &str, name: &str| {
        delete(&h, kind, namespace, name)
    });
    let h = host.clone();
    func(
        "scale",
        &[
            "kind: &str",
            "namespace: &str",
            "name: &str",
            "replicas: i64",
            "i64",
        ],
        "Sets the replicas of a Deployment or StatefulSet through its `scale` subresource and \
         returns the count it had, for scaling back.",
        r#"let was = kube::scale("Deployment", "kubeflow", "ml-pipeline-scheduledworkflow", 0);"#,
    )
    .set_into_module(
        &mut m,
        move |kind: &str, namespace: &str, name: &str, replicas: i64| {
            scale(&h, kind, namespace, name, replicas)
        },
    );
    let h = host.clone();
    func(
        "wait",
        &[
            "kind: &str",
            "namespace: &str",
            "name: &str",
            "condition: &str",
            "bool",
        ],
        "Waits until an object meets `condition`: `exists`, `deleted`, or a status condition \
         type such as `Ready`, `Available` or `Established`. False when the wait limit (60 s, \
         or the step's timeout) passes first.",
        r#"ensure(kube::wait("Deployment", "kubeflow", "ml-pipeline", "Available"), "ml-pipeline is not available");"#,
    )
    .set_into_module(
        &mut m,
        move |kind: &str, namespace: &str, name: &str, condition: &str| {
            wait_for(&h, kind, namespace, name, condition)
        },
    );
    func(
        "quantity",
        &["quantity: &str", "f64"],
        "A resource quantity as a number: `500m` is 0.5, `10Gi` is 10737418240. Fails on a \
         text that is not a quantity.",
        r#"if kube::quantity(q.status.used.pods) >= kube::quantity(q.status.hard.pods) { warn("quota full"); }"#,
    )
    .set_into_module(&mut m, |q: &str| {
        quantity::parse(q)
            .ok_or_else(|| error(format!("kube::quantity: {q:?} is not a quantity such as 500m or 10Gi")))
    });
    m
}

fn get(h: &Host, kind: &str, namespace: &str, name: &str) -> Res<Dynamic> {
    let cluster = h.cluster()?;
    let kind = h.kind(kind)?;
    let found = h.block(async { live::get(&cluster, &kind, ns(namespace), name).await })?;
    h.learn_secrets(found.as_slice());
    found.as_ref().map_or(Ok(Dynamic::UNIT), to_dynamic)
}

fn list(h: &Host, kind: &str, namespace: &str, o: &Map) -> Res<Array> {
    known_options("kube::list", o, &["labels", "fields"])?;
    let labels = opt_str(o, "labels")?;
    let fields = opt_str(o, "fields")?;
    let cluster = h.cluster()?;
    let kind = h.kind(kind)?;
    let items = h.block(async {
        live::list(
            &cluster,
            &kind,
            ns(namespace),
            labels.as_deref(),
            fields.as_deref(),
        )
        .await
    })?;
    h.learn_secrets(&items);
    array(items)
}

fn logs(h: &Host, namespace: &str, pod: &str, o: &Map) -> Res<String> {
    known_options("kube::logs", o, &["container", "tail", "previous"])?;
    let q = LogQuery {
        container: opt_str(o, "container")?,
        tail: match o.get("tail") {
            None => None,
            Some(v) => Some(
                v.as_int()
                    .map_err(|_| error("kube::logs: `tail` is a number of lines".into()))?,
            ),
        },
        previous: o
            .get("previous")
            .is_some_and(|v| v.as_bool().unwrap_or(false)),
        since_seconds: None,
    };
    let cluster = h.cluster()?;
    h.block(async { live::logs(&cluster, namespace, pod, &q).await })
}

fn can_i(h: &Host, verb: &str, resource: &str, namespace: &str, user: Option<&str>) -> Res<bool> {
    let q = Access {
        verb: verb.into(),
        resource: resource.into(),
        namespace: ns(namespace).map(str::to_string),
        user: user.map(str::to_string),
    };
    let cluster = h.cluster()?;
    h.block(async { live::can_i(&cluster, &q).await })
}

fn apply_one(h: &Host, o: &Map) -> Res<String> {
    let obj = to_json(&Dynamic::from_map(o.clone()))?;
    let key = ObjectKey::of(&obj).ok_or_else(|| {
        error("kube::apply: the object needs apiVersion, kind and metadata.name".into())
    })?;
    let cluster = h.cluster()?;
    let kind = h.kind(&key.group_kind())?;
    let mut what = format!("apply {} {}", key.kind, where_(&key));
    if h.dry_run() {
        what.push_str(&field_diff(h, &cluster, &kind, &key, &obj)?);
    }
    let dry = h.change("kube::apply", &what)?;
    let uid = h.block(async { apply::apply(&cluster, &kind, &key, &obj, dry).await })?;
    Ok(uid.unwrap_or_default())
}

/// What applying `obj` would change on the live object, for the plan: ` (new)`, or
/// `: ~ data.x: "a" -> "b"; + data.y: "c"`, with a Secret's values hidden.
fn field_diff(
    h: &Host,
    cluster: &crate::kube::Cluster,
    kind: &crate::kube::catalog::Kind,
    key: &ObjectKey,
    obj: &serde_json::Value,
) -> Res<String> {
    let live =
        h.block(async { live::get(cluster, kind, key.namespace.as_deref(), &key.name).await })?;
    let Some(live) = live else {
        return Ok(" (new)".into());
    };
    let mut desired = obj.clone();
    if let Some(o) = desired.as_object_mut() {
        // The version is the cluster's to choose; identity fields cannot differ.
        o.remove("apiVersion");
        o.remove("kind");
    }
    let mut changes = fields::applied(&live, &desired);
    redact::secret_values(key, &mut changes);
    Ok(if changes.is_empty() {
        " (no change)".into()
    } else {
        let lines: Vec<String> = changes.iter().map(fields::Change::line).collect();
        format!(": {}", lines.join("; "))
    })
}

fn where_(key: &ObjectKey) -> String {
    match &key.namespace {
        Some(ns) => format!("{ns}/{}", key.name),
        None => key.name.clone(),
    }
}

fn delete(h: &Host, kind: &str, namespace: &str, name: &str) -> Res<bool> {
    let cluster = h.cluster()?;
    let k = h.kind(kind)?;
    let at = ns(namespace).map_or(name.to_string(), |n| format!("{n}/{name}"));
    let dry = h.change("kube::delete", &format!("delete {} {at}", k.ar.kind))?;
    h.block(async { live::delete(&cluster, &k, ns(namespace), name, dry).await })
}

fn scale(h: &Host, kind: &str, namespace: &str, name: &str, replicas: i64) -> Res<i64> {
    let replicas = i32::try_from(replicas)
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| error(format!("kube::scale: {replicas} is not a replica count")))?;
    let cluster = h.cluster()?;
    let k = h.kind(kind)?;
    let dry = h.change(
        "kube::scale",
        &format!("scale {} {namespace}/{name} to {replicas}", k.ar.kind),
    )?;
    let was = h.block(async { live::scale(&cluster, &k, namespace, name, replicas, dry).await })?;
    Ok(i64::from(was))
}

fn wait_for(h: &Host, kind: &str, namespace: &str, name: &str, condition: &str) -> Res<bool> {
    let cluster = h.cluster()?;
    let k = h.kind(kind)?;
    let cond = Condition::parse(condition);
    if h.dry_run() {
        // What a dry run waits for is usually what its planned changes would bring about.
        let at = ns(namespace).map_or(name.to_string(), |n| format!("{n}/{name}"));
        h.plan_only(&format!("wait for {} {at} to be {condition}", k.ar.kind));
        return Ok(true);
    }
    let limit: Duration = wait::limit();
    h.block(async { live::wait(&cluster, &k, ns(namespace), name, &cond, limit).await })
}
