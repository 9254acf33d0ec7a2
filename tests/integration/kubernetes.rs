//! Kubernetes objects: backup from a stand-in API server seeded with a Kubeflow-like cluster,
//! then restore into another, in order, with dry-run, namespace mapping, retries and drift of
//! existing objects.

use crate::common;

use std::collections::BTreeSet;

use common::kube::{
    api, cluster_yaml, expected_keys, key_of, profiles_crd_v1beta1_and_v1, referencing_cluster,
    secret_yaml, standin,
};
use common::{code, stderr, Kf};
use kube_standin::{Fault, Server};
use serde_json::{json, Value};

const ISTIO_CRD: &str = r"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: authorizationpolicies.security.istio.io}
spec:
  group: security.istio.io
  scope: Namespaced
  names: {plural: authorizationpolicies, singular: authorizationpolicy, kind: AuthorizationPolicy}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
";

/// An object without what the server owns, for comparing two clusters.
fn clean(o: &Value) -> Value {
    let mut o = o.clone();
    let meta = o["metadata"].as_object_mut().unwrap();
    for f in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
    ] {
        meta.remove(f);
    }
    if let Some(refs) = meta
        .get_mut("ownerReferences")
        .and_then(Value::as_array_mut)
    {
        for r in refs {
            r.as_object_mut().unwrap().remove("uid");
        }
    }
    o.as_object_mut().unwrap().remove("status");
    o
}

/// A workspace with a repository, and a source stand-in seeded with `cluster_yaml()`; the
/// stand-in serves until the returned `Server` is dropped.
fn seeded_cluster() -> (Kf, Server, std::path::PathBuf) {
    let kf = Kf::local();
    kf.ok(&["init"]);
    let (src, src_cfg) = standin(&kf, "src");
    src.seed_yaml(&cluster_yaml()).unwrap();
    (kf, src, src_cfg)
}

fn backup(kf: &Kf, kubeconfig: &std::path::Path) -> Value {
    kf.json(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "backup",
        "--only",
        "kubernetes",
    ])
}

fn stage_of_path(path: &str) -> u8 {
    let rest = path
        .strip_prefix("/api/v1/")
        .or_else(|| {
            path.strip_prefix("/apis/")
                .map(|p| p.splitn(3, '/').nth(2).unwrap_or(""))
        })
        .unwrap_or(path);
    let segs: Vec<&str> = rest.split('/').collect();
    let resource = if segs[0] == "namespaces" && segs.len() > 2 {
        segs[2]
    } else {
        segs[0]
    };
    match resource {
        "customresourcedefinitions" => 1,
        "namespaces" | "profiles" => 2,
        "serviceaccounts" => 3,
        "clusterroles" | "roles" => 4,
        "clusterrolebindings" | "rolebindings" => 5,
        "resourcequotas" | "limitranges" | "networkpolicies" | "authorizationpolicies" => 6,
        "configmaps" | "secrets" => 7,
        "persistentvolumeclaims" => 8,
        _ => 9,
    }
}

fn writes(server: &Server) -> Vec<kube_standin::Request> {
    server
        .requests()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .collect()
}

#[test]
fn round_trip_into_an_empty_cluster_in_dependency_order() {
    let (kf, src, src_cfg) = seeded_cluster();
    let written = backup(&kf, &src_cfg);
    let m = &written["manifest"];
    assert_eq!(m["kubernetes"]["kubeflow.org/Profile"], 2, "{m}");
    assert_eq!(m["kubernetes"]["argoproj.io/Workflow"], 2);
    assert_eq!(
        m["kubernetes_skipped"]["argoproj.io/Workflow (finished)"],
        2
    );
    assert!(
        m["kubernetes"].get("core/Secret").is_none(),
        "secrets are opt-in"
    );
    assert_eq!(m["versions"]["kfp"], "2.5.0");

    // The target: a fresh cluster with Istio installed and CRDs that take a while to settle.
    let (dst, dst_cfg) = standin(&kf, "dst");
    dst.set_established_delay(std::time::Duration::from_millis(300));
    dst.seed_yaml(ISTIO_CRD).unwrap();
    dst.clear_requests();
    let out = kf.ok(&[
        "--kubeconfig",
        dst_cfg.to_str().unwrap(),
        "restore",
        "latest",
        "--only",
        "kubernetes",
    ]);
    assert!(out.contains("restored Kubernetes objects"), "{out}");

    // Exactly the selection came back, equal to the source after sanitising.
    let restored: BTreeSet<String> = dst
        .all()
        .iter()
        .map(key_of)
        .filter(|k| {
            !k.contains("istio.io/CustomResourceDefinition")
                && !k.ends_with("authorizationpolicies.security.istio.io")
        })
        .collect();
    assert_eq!(restored, expected_keys());
    let src_all = src.all();
    for o in dst.all() {
        let key = key_of(&o);
        if !expected_keys().contains(&key) {
            continue;
        }
        let orig = src_all.iter().find(|s| key_of(s) == key).unwrap();
        let mut want = clean(orig);
        let got = clean(&o);
        match o["kind"].as_str().unwrap() {
            "ScheduledWorkflow" => {
                assert_eq!(
                    got["spec"]["enabled"], false,
                    "schedules come back disabled"
                );
                assert_eq!(got["spec"]["noCatchup"], true);
                want["spec"]["enabled"] = json!(false);
                want["spec"]["noCatchup"] = json!(true);
            }
            "PersistentVolumeClaim" => {
                assert!(
                    got["spec"].get("volumeName").is_none(),
                    "a claim is provisioned afresh"
                );
                want["spec"].as_object_mut().unwrap().remove("volumeName");
                want["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .remove("annotations");
            }
            _ => {}
        }
        assert_eq!(got, want, "{key}");
    }
    // The big CRD made it whole.
    let exp = dst
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "experiments.kubeflow.org",
        )
        .unwrap();
    assert!(exp.to_string().len() > 256 * 1024);
    // The workflow's owner is relinked to the schedule's new UID.
    let swf = dst
        .get(
            "kubeflow.org/v1beta1",
            "ScheduledWorkflow",
            Some("bob"),
            "nightly-train",
        )
        .unwrap();
    let wf = dst
        .get(
            "argoproj.io/v1alpha1",
            "Workflow",
            Some("bob"),
            "nightly-train-001",
        )
        .unwrap();
    assert_eq!(
        wf["metadata"]["ownerReferences"][0]["uid"],
        swf["metadata"]["uid"]
    );
    assert_ne!(
        swf["metadata"]["uid"],
        "00000000-0000-0000-0000-00000000dead"
    );

    // Order, from the request log: stages never go backwards, every write was an apply by
    // kfguard, and no custom resource hit a not-yet-served CRD.
    let w = writes(&dst);
    assert_eq!(w.len(), expected_keys().len());
    let stages: Vec<u8> = w.iter().map(|r| stage_of_path(&r.path)).collect();
    assert!(
        stages.windows(2).all(|p| p[0] <= p[1]),
        "stages out of order: {stages:?}"
    );
    assert!(w.iter().all(|r| r.method == "PATCH"
        && r.field_manager.as_deref() == Some("kfguard")
        && r.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/apply-patch"))
        && r.status < 300
        && !r.dry_run));
    let pos = |needle: &str| w.iter().position(|r| r.path.ends_with(needle)).unwrap();
    assert!(
        pos("/namespaces/bob/scheduledworkflows/nightly-train")
            < pos("/namespaces/bob/workflows/nightly-train-001")
    );

    // A second restore changes nothing.
    dst.clear_requests();
    let again = kf.json(&[
        "--kubeconfig",
        dst_cfg.to_str().unwrap(),
        "restore",
        "latest",
        "--only",
        "kubernetes",
    ]);
    assert_eq!(
        again["kubernetes"]["counts"]["unchanged"],
        expected_keys().len() as u64,
        "{again}"
    );
    assert!(writes(&dst).is_empty());
}

#[test]
fn dry_run_plans_in_order_and_changes_nothing() {
    let (kf, _src, src_cfg) = seeded_cluster();
    backup(&kf, &src_cfg);

    // Half-restored target: the CRDs and namespaces exist, one ConfigMap differs.
    let (dst, dst_cfg) = standin(&kf, "dst");
    let crds_and_ns: String = cluster_yaml()
        .split("\n---\n")
        .filter(|d| d.contains("kind: CustomResourceDefinition") || d.contains("kind: Namespace"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    dst.seed_yaml(&crds_and_ns).unwrap();
    dst.seed_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pipeline-install-config, namespace: kubeflow}\ndata: {appVersion: 2.4.1, bucketName: mlpipeline}\n").unwrap();
    let before: Vec<Value> = dst.all().iter().map(clean).collect();
    dst.clear_requests();

    let args = [
        "--kubeconfig",
        dst_cfg.to_str().unwrap(),
        "restore",
        "latest",
        "--only",
        "kubernetes",
        "--dry-run",
        "--existing",
        "overwrite",
    ];
    let out = kf.ok(&args);
    // The plan is printed stage by stage, in order.
    let crds = out.find("1. crds").expect(&out);
    let ns = out.find("2. namespaces").unwrap();
    let sa = out.find("3. serviceaccounts").unwrap();
    let cr = out.find("9. custom resources").unwrap();
    assert!(crds < ns && ns < sa && sa < cr, "{out}");
    assert!(
        out.contains("update    core/ConfigMap kubeflow/pipeline-install-config"),
        "{out}"
    );
    assert!(
        out.contains(r#"~ data.appVersion: "2.4.1" -> "2.5.0""#),
        "{out}"
    );
    assert!(
        out.contains(
            "unchanged apiextensions.k8s.io/CustomResourceDefinition profiles.kubeflow.org"
        ),
        "{out}"
    );
    assert!(out.contains("create    kubeflow.org/Profile bob"), "{out}");

    // Every write carried dryRun=All, and the cluster is as it was.
    let w = writes(&dst);
    assert!(!w.is_empty());
    assert!(w.iter().all(|r| r.dry_run), "{w:?}");
    let after: Vec<Value> = dst.all().iter().map(clean).collect();
    assert_eq!(before, after);
}

#[test]
fn namespace_map_and_kind_selection() {
    let (kf, _src, src_cfg) = seeded_cluster();
    backup(&kf, &src_cfg);
    let (dst, dst_cfg) = standin(&kf, "dst");
    let out = kf.json(&[
        "--kubeconfig",
        dst_cfg.to_str().unwrap(),
        "restore",
        "latest",
        "--namespace-map",
        "kubeflow-user-alice:alice-restored",
        "--include-kinds",
        "Namespace,ServiceAccount,RoleBinding,ConfigMap",
    ]);
    // 3 namespaces, 5 service accounts, 4 role bindings, 3 config maps.
    assert_eq!(
        out["kubernetes"]["counts"]["create"],
        3 + 5 + 4 + 3,
        "{out}"
    );
    assert!(dst.get("v1", "Namespace", None, "alice-restored").is_some());
    assert!(dst
        .get("v1", "Namespace", None, "kubeflow-user-alice")
        .is_none());
    let rb = dst
        .get(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            Some("alice-restored"),
            "default-editor",
        )
        .expect("binding moved");
    assert_eq!(rb["subjects"][0]["namespace"], "alice-restored");
    assert!(
        dst.list("kubeflow.org/v1", "Profile").is_empty(),
        "kinds not selected stay out"
    );
    assert!(dst
        .get(
            "v1",
            "ConfigMap",
            Some("alice-restored"),
            "default-install-config"
        )
        .is_some());
}

#[test]
fn pagination_throttling_and_server_errors() {
    let (kf, src, src_cfg) = seeded_cluster();
    let mut many = String::new();
    for i in 0..620 {
        many.push_str(&format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: run-{i:04}, namespace: kubeflow}}\ndata: {{i: \"{i}\"}}\n---\n"));
    }
    src.seed_yaml(&many).unwrap();
    src.clear_requests();
    src.inject(Fault {
        method: Some("GET".into()),
        path_contains: Some("/configmaps".into()),
        status: 500,
        times: 2,
        ..Fault::default()
    });
    let written = backup(&kf, &src_cfg);
    assert_eq!(written["manifest"]["kubernetes"]["core/ConfigMap"], 620 + 3);
    let lists: Vec<_> = src
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/configmaps")
        .collect();
    assert!(
        lists.iter().filter(|r| r.status == 500).count() == 2,
        "{lists:?}"
    );
    assert!(
        lists.iter().any(|r| r.query.contains("continue=")),
        "paged: {lists:?}"
    );
    assert!(lists.iter().all(|r| r.query.contains("limit=500")));

    let (dst, dst_cfg) = standin(&kf, "dst");
    dst.seed_yaml(ISTIO_CRD).unwrap();
    dst.inject(Fault {
        method: Some("PATCH".into()),
        path_contains: Some("/configmaps/".into()),
        status: 429,
        times: 3,
        retry_after_secs: Some(1),
    });
    dst.inject(Fault {
        method: Some("PATCH".into()),
        path_contains: Some("/serviceaccounts/".into()),
        status: 500,
        times: 2,
        ..Fault::default()
    });
    kf.ok(&[
        "--kubeconfig",
        dst_cfg.to_str().unwrap(),
        "restore",
        "latest",
        "--only",
        "kubernetes",
    ]);
    assert_eq!(dst.list("v1", "ConfigMap").len(), 620 + 3);
    let statuses: Vec<u16> = dst.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3);
    assert_eq!(statuses.iter().filter(|s| **s == 500).count(), 2);
}

#[test]
fn one_failed_object_does_not_stop_the_rest_and_existing_objects_are_respected() {
    let (kf, _src, src_cfg) = seeded_cluster();
    backup(&kf, &src_cfg);

    // No Istio on the target: the AuthorizationPolicies fail, everything else is restored.
    let (dst, dst_cfg) = standin(&kf, "dst");
    let cfg = dst_cfg.to_str().unwrap();
    let out = kf.run(&[
        "--kubeconfig",
        cfg,
        "restore",
        "latest",
        "--only",
        "kubernetes",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .contains("failed    security.istio.io/AuthorizationPolicy bob/ns-owner-access-istio"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: 2 Kubernetes object(s) could not be restored"),
        "{stdout}"
    );
    assert_eq!(dst.list("kubeflow.org/v1beta1", "Experiment").len(), 2);

    // Live edits are kept by default, replaced with --existing overwrite, and --existing fail
    // stops before any change.
    let cm = |dst: &Server| {
        dst.get("v1", "ConfigMap", Some("bob"), "default-install-config")
            .unwrap()
    };
    let status = api(
        &dst,
        "PATCH",
        "/api/v1/namespaces/bob/configmaps/default-install-config",
        Some(&json!({"data": {"note": "changed live"}})),
    );
    assert_eq!(status, 200);
    let skip = kf.json(&[
        "--kubeconfig",
        cfg,
        "restore",
        "latest",
        "--include-kinds",
        "ConfigMap",
    ]);
    assert_eq!(skip["kubernetes"]["counts"]["skip"], 1, "{skip}");
    assert_eq!(cm(&dst)["data"]["note"], "changed live");

    dst.clear_requests();
    let out = kf.run(&[
        "--kubeconfig",
        cfg,
        "restore",
        "latest",
        "--include-kinds",
        "ConfigMap",
        "--existing",
        "fail",
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already exist in the cluster"),
        "{}",
        stderr(&out)
    );
    assert!(writes(&dst).is_empty());

    let upd = kf.json(&[
        "--kubeconfig",
        cfg,
        "restore",
        "latest",
        "--include-kinds",
        "ConfigMap",
        "--existing",
        "overwrite",
    ]);
    assert_eq!(upd["kubernetes"]["counts"]["update"], 1, "{upd}");
    assert_eq!(cm(&dst)["data"]["note"], "kept");
}

#[test]
fn unreachable_cluster_and_bad_kubeconfig_fail_clearly() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    let missing = kf.path().join("nope.kubeconfig");
    let out = kf.run(&[
        "--kubeconfig",
        missing.to_str().unwrap(),
        "backup",
        "--only",
        "kubernetes",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("nope.kubeconfig"), "{}", stderr(&out));

    let (server, cfg) = standin(&kf, "gone");
    drop(server);
    let out = kf.run(&[
        "--kubeconfig",
        cfg.to_str().unwrap(),
        "backup",
        "--only",
        "kubernetes",
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kubernetes API http://127.0.0.1:"),
        "{}",
        stderr(&out)
    );
    let snaps = kf.json(&["snapshots"]);
    assert_eq!(snaps.as_array().map(Vec::len), Some(0), "{snaps}");
}

#[test]
fn a_kind_the_snapshot_does_not_hold_is_refused_before_anything_is_restored() {
    let (kf, _src, src_cfg) = seeded_cluster();
    backup(&kf, &src_cfg);
    let (dst, dst_cfg) = standin(&kf, "dst");
    let out = kf.run(&[
        "--kubeconfig",
        dst_cfg.to_str().unwrap(),
        "restore",
        "latest",
        "--include-kinds",
        "ConfigMap,Notebok",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let line = common::error_line(&out);
    assert!(
        line.contains("--include-kinds Notebok: the snapshot holds no such kind")
            && line.contains("kubeflow.org/Profile"),
        "{line}"
    );
    assert!(
        dst.list("v1", "ConfigMap").is_empty(),
        "nothing is restored"
    );
}

/// A Secret's values as the cluster holds them (base64) and as they read (plain): none of
/// these, nor the prefix they share, may ever be printed.
const SECRET_SNAP: &str = "a2YtdG9rZW4tT0xELTdmM2E="; // kf-token-OLD-7f3a
const SECRET_LIVE: &str = "a2YtdG9rZW4tTElWRS0yYjhk"; // kf-token-LIVE-2b8d
const SECRET_SHOWN: [&str; 4] = ["a2YtdG9rZW4", "kf-token", "7f3a", "2b8d"];

#[test]
fn restore_plans_say_a_secret_changes_without_showing_its_values() {
    let kf = Kf::local();
    kf.write("kfguard.toml", "[kubernetes]\ninclude_secrets = true\n");
    kf.ok(&["init"]);
    let (src, src_cfg) = standin(&kf, "src");
    src.seed_yaml(&cluster_yaml()).unwrap();
    src.seed_yaml(&secret_yaml(SECRET_SNAP)).unwrap();
    let written = backup(&kf, &src_cfg);
    assert_eq!(written["manifest"]["kubernetes"]["core/Secret"], 2);

    let (dst, dst_cfg) = standin(&kf, "dst");
    dst.seed_yaml(ISTIO_CRD).unwrap();
    dst.seed_yaml(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: kubeflow}}\n---\n{}",
        secret_yaml(SECRET_LIVE)
    ))
    .unwrap();
    let restore = |dry_run: bool, json: bool| {
        let mut args = vec!["--kubeconfig", dst_cfg.to_str().unwrap()];
        if json {
            args.extend(["--output", "json"]);
        }
        args.extend([
            "restore",
            "latest",
            "--only",
            "kubernetes",
            "--existing",
            "overwrite",
        ]);
        if dry_run {
            args.push("--dry-run");
        }
        let out = kf.run(&args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        for s in SECRET_SHOWN {
            assert!(!all.contains(s), "{args:?} printed {s}:\n{all}");
        }
        String::from_utf8(out.stdout).unwrap()
    };
    let live_again = || {
        let status = api(
            &dst,
            "PATCH",
            "/api/v1/namespaces/kubeflow/secrets/kfp-token",
            Some(&json!({"data": {"token": SECRET_LIVE}})),
        );
        assert_eq!(status, 200);
    };
    for (dry_run, json) in [(true, false), (true, true), (false, false), (false, true)] {
        let out = restore(dry_run, json);
        if json {
            let v: Value = serde_json::from_str(&out).unwrap();
            let step = v["kubernetes"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["object"]["kind"] == "Secret" && s["object"]["name"] == "kfp-token")
                .unwrap()
                .clone();
            assert_eq!(step["action"], "update", "{v}");
            assert_eq!(
                step["changes"],
                json!([{"path": "data.token", "before": "(value hidden)", "after": "(value hidden)", "redacted": true}])
            );
        } else {
            assert!(
                out.contains("update    core/Secret kubeflow/kfp-token"),
                "{out}"
            );
            assert!(
                out.contains("        ~ data.token: changed (value hidden)\n"),
                "{out}"
            );
        }
        if !dry_run {
            let s = dst
                .get("v1", "Secret", Some("kubeflow"), "kfp-token")
                .unwrap();
            assert_eq!(
                s["data"]["token"], SECRET_SNAP,
                "the value itself is restored"
            );
            live_again();
        }
    }
}

#[test]
fn templates_runtimes_and_experiments_are_restored_before_what_refers_to_them() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    let (src, src_cfg) = standin(&kf, "src");
    src.seed_yaml(&referencing_cluster()).unwrap();
    backup(&kf, &src_cfg);
    let (dst, dst_cfg) = standin(&kf, "dst");
    kf.ok(&[
        "--kubeconfig",
        dst_cfg.to_str().unwrap(),
        "restore",
        "latest",
        "--only",
        "kubernetes",
        "--jobs",
        "8",
    ]);
    let w = writes(&dst);
    let positions = |plurals: &[&str]| -> Vec<usize> {
        w.iter()
            .enumerate()
            .filter(|(_, r)| {
                let resource = r.path.rsplit('/').nth(1).unwrap_or("");
                plurals.contains(&resource)
            })
            .map(|(i, _)| i)
            .collect()
    };
    for (first, then) in [
        (
            &["workflowtemplates", "clusterworkflowtemplates"][..],
            &["workflows", "cronworkflows", "scheduledworkflows"][..],
        ),
        (
            &["servingruntimes", "clusterservingruntimes"][..],
            &["inferenceservices"][..],
        ),
        (&["experiments"][..], &["trials", "suggestions"][..]),
    ] {
        let (a, b) = (positions(first), positions(then));
        assert_eq!(a.len(), 4 * first.len(), "{first:?}");
        assert_eq!(b.len(), 4 * then.len(), "{then:?}");
        let order: Vec<&str> = w.iter().map(|r| r.path.as_str()).collect();
        assert!(
            a.iter().max() < b.iter().min(),
            "{first:?} must all be applied before {then:?}:\n{order:#?}"
        );
    }
}

#[test]
fn a_profile_served_at_v1_and_v1beta1_is_captured_at_v1() {
    // Katib's Experiment, v1beta1 only, sorts before Profile by CRD name; kubeflow.org's
    // preferred version is still v1, as a real API server orders versions.
    let mut yaml: String = cluster_yaml()
        .split("\n---\n")
        .filter(|d| !d.contains("name: profiles.kubeflow.org"))
        .map(|d| format!("{d}\n---\n"))
        .collect();
    yaml.push_str(&profiles_crd_v1beta1_and_v1());
    let kf = Kf::local();
    kf.ok(&["init"]);
    let (src, src_cfg) = standin(&kf, "src");
    src.seed_yaml(&yaml).unwrap();
    let written = backup(&kf, &src_cfg);
    assert_eq!(written["manifest"]["kubernetes"]["kubeflow.org/Profile"], 2);
    let profile = kf.ok(&[
        "dump",
        "latest",
        "kubernetes/cluster/kubeflow.org/Profile/bob.yaml",
    ]);
    assert!(
        profile.contains("apiVersion: kubeflow.org/v1\n"),
        "{profile}"
    );
    let exp = kf.ok(&[
        "dump",
        "latest",
        "kubernetes/namespaces/bob/kubeflow.org/Experiment/tune.yaml",
    ]);
    assert!(exp.contains("apiVersion: kubeflow.org/v1beta1\n"), "{exp}");
}

#[test]
fn namespace_map_mistakes_are_refused_before_anything_is_restored() {
    let (kf, _src, src_cfg) = seeded_cluster();
    backup(&kf, &src_cfg);
    let (dst, dst_cfg) = standin(&kf, "dst");
    let cfg = dst_cfg.to_str().unwrap();
    for (maps, reason) in [
        (
            &["nosuch:restored"][..],
            "--namespace-map nosuch:restored: the snapshot holds no namespace nosuch; it holds bob, kubeflow, kubeflow-user-alice",
        ),
        (
            &["bob:bob-1", "bob:bob-2"][..],
            "--namespace-map maps bob twice (to bob-1 and to bob-2)",
        ),
        (
            &["kubeflow-user-alice:kubeflow"][..],
            "--namespace-map kubeflow-user-alice:kubeflow: the snapshot holds namespace kubeflow too, and the two would be merged",
        ),
        (
            &["kubeflow-user-alice:x", "bob:x"][..],
            "would merge bob and kubeflow-user-alice into one namespace",
        ),
    ] {
        for dry_run in [false, true] {
            let mut args = vec!["--kubeconfig", cfg, "restore", "latest"];
            for m in maps {
                args.extend(["--namespace-map", m]);
            }
            if dry_run {
                args.push("--dry-run");
            }
            let out = kf.run(&args);
            assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
            let err = common::error_line(&out);
            assert!(err.contains(reason), "{args:?}: {err}");
        }
    }
    assert!(
        dst.requests().is_empty(),
        "refused before asking the cluster"
    );
}
