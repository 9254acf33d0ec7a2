//! `deploy/`: every kustomization renders with `kubectl kustomize` (found by walking the folder,
//! so overlays added later are checked too); the rendered roles grant exactly what the code
//! reads and writes (`kfguard rbac`); every workload runs locked down; each install's config
//! fragments join into a config kfguard accepts; `kfguard-job` counts warnings as a finished
//! run; and `deploy/monitoring` passes promtool, with only the metrics of its METRICS.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use crate::common::{code, stderr, Kf};

const WRITE_VERBS: [&str; 9] = [
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "escalate",
    "bind",
    "impersonate",
    "*",
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn tool(name: &str, package: &str) -> String {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p.to_string_lossy().into_owned();
        }
    }
    panic!(
        "{name} is not installed: scripts/services.sh up installs it (apt-get install {package})"
    )
}

/// Every folder below deploy/ whose kustomization.yaml is a Kustomization (not a Component).
fn kustomizations() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let file = dir.join("kustomization.yaml");
        if let Ok(text) = std::fs::read_to_string(&file) {
            if !text.contains("\nkind: Component") {
                out.push(dir.to_path_buf());
            }
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, out);
        }
    }
    let mut out = Vec::new();
    walk(&deploy_dir(), &mut out);
    out
}

fn rel(dir: &Path) -> String {
    dir.strip_prefix(deploy_dir())
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `kubectl kustomize DIR`, as JSON documents.
fn render(dir: &Path) -> Vec<Value> {
    let out = Command::new(tool("kubectl", "kubernetes-client"))
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        rel(dir),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    yaml_serde::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

/// A role's rules as (group, resource, verb) triples.
fn triples(role: &Value) -> BTreeSet<(String, String, String)> {
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        for g in strs(&rule["apiGroups"]) {
            for r in strs(&rule["resources"]) {
                for v in strs(&rule["verbs"]) {
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

/// The config an install's pods read: the fragments of ConfigMap kfguard-config joined in name
/// order, as kfguard-job joins them.
fn joined_config(docs: &[Value]) -> Option<String> {
    let cm = find(docs, "ConfigMap", "kfguard-config")?;
    let data = cm["data"].as_object().expect("data");
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    Some(
        keys.into_iter()
            .map(|k| format!("{}\n", data[k].as_str().unwrap()))
            .collect(),
    )
}

/// `kfguard rbac ROLE` for a config, as the ClusterRole it prints.
fn code_role(kf: &Kf, config: &str, role: &str) -> Value {
    let file = kf.write("joined.toml", config);
    kf.json(&["--config", file.to_str().unwrap(), "rbac", role])
}

fn pod_specs(doc: &Value) -> Option<&Value> {
    match doc["kind"].as_str()? {
        "CronJob" => Some(&doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        "Job" | "Deployment" | "StatefulSet" | "DaemonSet" => {
            Some(&doc["spec"]["template"]["spec"])
        }
        _ => None,
    }
}

#[test]
fn every_kustomization_renders_and_every_container_runs_non_root_read_only_and_limited() {
    let dirs = kustomizations();
    let names: BTreeSet<String> = dirs.iter().map(|d| rel(d)).collect();
    for expected in [
        "base",
        "overlays/mysql",
        "overlays/postgresql",
        "overlays/external-s3",
        "overlays/secrets",
        "overlays/production",
        "overlays/restore-secrets",
        "restore",
        "monitoring",
    ] {
        assert!(
            names.contains(expected),
            "deploy/{expected} not found in {names:?}"
        );
    }
    let mut containers = 0;
    for dir in &dirs {
        for doc in render(dir) {
            let Some(spec) = pod_specs(&doc) else {
                continue;
            };
            let what = format!(
                "{} {} in deploy/{}",
                doc["kind"],
                doc["metadata"]["name"],
                rel(dir)
            );
            let pod_sc = &spec["securityContext"];
            assert_ne!(pod_sc["runAsUser"], 0, "{what}: the pod runs as root");
            let all = spec["containers"]
                .as_array()
                .into_iter()
                .chain(spec["initContainers"].as_array())
                .flatten();
            for c in all {
                let name = format!("{what}, container {}", c["name"]);
                let sc = &c["securityContext"];
                let non_root = sc["runAsNonRoot"] == true
                    || (sc["runAsNonRoot"].is_null() && pod_sc["runAsNonRoot"] == true);
                assert!(non_root, "{name}: runAsNonRoot is not true");
                assert_ne!(sc["runAsUser"], 0, "{name}: runs as root");
                assert_eq!(
                    sc["readOnlyRootFilesystem"], true,
                    "{name}: the root filesystem is writable"
                );
                assert_eq!(
                    sc["allowPrivilegeEscalation"], false,
                    "{name}: may escalate privileges"
                );
                for r in ["cpu", "memory"] {
                    assert!(
                        c["resources"]["limits"][r].is_string(),
                        "{name}: no {r} limit"
                    );
                }
                containers += 1;
            }
        }
    }
    assert!(containers >= 8, "only {containers} containers checked");
}

#[test]
fn the_backup_role_of_every_install_lists_exactly_what_its_config_makes_the_backup_read() {
    let kf = Kf::local();
    let mut checked = Vec::new();
    for dir in kustomizations() {
        let docs = render(&dir);
        let Some(role) = find(&docs, "ClusterRole", "kfguard-backup") else {
            continue;
        };
        let name = rel(&dir);
        let got = triples(role);
        let writes: Vec<_> = got
            .iter()
            .filter(|(_, _, v)| WRITE_VERBS.contains(&v.as_str()))
            .collect();
        assert!(
            writes.is_empty(),
            "deploy/{name}: the backup role may write: {writes:?}"
        );
        let config = joined_config(&docs)
            .unwrap_or_else(|| panic!("deploy/{name} renders the backup role without its config"));
        let want = triples(&code_role(&kf, &config, "backup"));
        assert_eq!(
            got, want,
            "deploy/{name}: the backup role differs from `kfguard rbac backup` for its config \
             (left: deploy, right: code); regenerate it with kfguard rbac backup"
        );
        let secrets = got.iter().any(|(g, r, _)| g.is_empty() && r == "secrets");
        assert_eq!(
            secrets,
            name.contains("secrets") || name.contains("production"),
            "deploy/{name}: Secrets are read only where the secrets component opts in"
        );
        // The nightly identity is bound to the backup role and nothing else.
        for b in docs
            .iter()
            .filter(|d| d["kind"] == "ClusterRoleBinding" || d["kind"] == "RoleBinding")
        {
            let to_kfguard = b["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["kind"] == "ServiceAccount" && s["name"] == "kfguard");
            if to_kfguard {
                assert_eq!(b["roleRef"]["name"], "kfguard-backup", "deploy/{name}: {b}");
            }
        }
        checked.push(name);
    }
    assert!(checked.len() >= 6, "{checked:?}");
}

#[test]
fn the_restore_role_grants_exactly_what_restore_reads_and_writes_and_only_its_own_job_holds_it() {
    let kf = Kf::local();
    let config_of = |overlay: &str| joined_config(&render(&deploy_dir().join(overlay))).unwrap();
    let without = triples(&code_role(&kf, &config_of("base"), "restore"));
    let with = triples(&code_role(&kf, &config_of("overlays/secrets"), "restore"));
    assert!(with.contains(&(String::new(), "secrets".into(), "patch".into())));
    let mut checked = Vec::new();
    for dir in kustomizations() {
        let docs = render(&dir);
        let name = rel(&dir);
        let Some(role) = find(&docs, "ClusterRole", "kfguard-restore") else {
            // Outside the restore kustomizations nothing may bind the write role.
            assert!(
                !docs
                    .iter()
                    .any(|d| d["roleRef"]["name"] == "kfguard-restore"),
                "deploy/{name} binds kfguard-restore"
            );
            continue;
        };
        let got = triples(role);
        let want = if name.contains("secrets") {
            &with
        } else {
            &without
        };
        assert_eq!(
            &got, want,
            "deploy/{name}: the restore role differs from `kfguard rbac restore` (left: deploy, right: code)"
        );
        let binding = find(&docs, "ClusterRoleBinding", "kfguard-restore").expect("binding");
        assert_eq!(binding["subjects"][0]["name"], "kfguard-restore");
        let job = find(&docs, "Job", "kfguard-restore").expect("the restore Job");
        assert_eq!(
            job["spec"]["template"]["spec"]["serviceAccountName"],
            "kfguard-restore"
        );
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["args"][2],
            "restore-cluster"
        );
        checked.push(name);
    }
    assert_eq!(checked, ["overlays/restore-secrets", "restore"]);
}

#[test]
fn each_install_joins_its_config_fragments_into_a_config_kfguard_accepts() {
    let kf = Kf::local();
    for dir in kustomizations() {
        let docs = render(&dir);
        let Some(config) = joined_config(&docs) else {
            continue;
        };
        let name = rel(&dir);
        let file = kf.write("joined.toml", &config);
        let shown = kf.json(&["--config", file.to_str().unwrap(), "config", "show"]);
        assert_eq!(
            shown["runbooks"]["dir"], "/usr/share/kfguard/runbooks",
            "deploy/{name}"
        );
        assert_eq!(shown["kubernetes"]["enabled"], true, "deploy/{name}");
        let engine = &shown["databases"][0]["engine"];
        let postgres = name.contains("postgresql") || name.contains("production");
        assert_eq!(
            engine,
            if postgres { "postgres" } else { "mysql" },
            "deploy/{name}"
        );
        // Every CronJob runs kfguard through kfguard-job (which joins these fragments), either
        // as its command or from its shell script; the nightly one runs the nightly runbook.
        let cronjobs: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "CronJob").collect();
        assert!(!cronjobs.is_empty(), "deploy/{name} has no CronJob");
        for job in cronjobs {
            let c = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
            let cron = job["metadata"]["name"].as_str().unwrap_or_default();
            if c["command"] == serde_json::json!(["kfguard-job"]) {
                if cron == "kfguard-nightly" {
                    assert_eq!(
                        c["args"],
                        serde_json::json!(["runbook", "run", "nightly"]),
                        "deploy/{name}"
                    );
                }
            } else {
                let script = c["args"][0].as_str().unwrap_or_default();
                assert!(
                    script.contains("kfguard-job backup"),
                    "deploy/{name}: CronJob {cron} runs kfguard without kfguard-job: {script}"
                );
            }
        }
    }
    // The image puts the shipped runbooks where the config looks, and the wrapper on PATH.
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("COPY runbooks/ /usr/share/kfguard/runbooks/"),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("deploy/kfguard-job.sh /usr/local/bin/kfguard-job"));
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    for rb in ["nightly.rhai", "restore-cluster.rhai"] {
        assert!(shipped.join(rb).is_file(), "runbooks/{rb}");
    }
}

/// `kfguard-job ARGS` with kfguard on PATH and the config fragments in `conf.d/` of `kf`.
fn kfguard_job(kf: &Kf, args: &[&str]) -> std::process::Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_kfguard")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = kf.std_cmd();
    c.env_remove("KFGUARD_CONFIG");
    c.env("PATH", path)
        .env("KFGUARD_CONFIG_DIR", kf.path().join("conf.d"))
        .env("KFGUARD_CONFIG", kf.path().join("run/kfguard.toml"));
    let mut sh = Command::new("sh");
    sh.arg(deploy_dir().join("kfguard-job.sh")).args(args);
    sh.current_dir(kf.path());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.output().expect("run kfguard-job")
}

#[test]
fn kfguard_job_counts_a_run_with_warnings_as_done_and_fails_a_failed_run() {
    let kf = Kf::local();
    let runbooks = kf.path().join("runbooks");
    kf.write(
        "conf.d/00-base.toml",
        &format!(
            "cluster = \"job-test\"\n\n[runbooks]\ndir = \"{}\"\nstate_dir = \"{}\"\n",
            runbooks.display(),
            kf.path().join("runs").display()
        ),
    );
    kf.write(
        "conf.d/40-kubernetes.toml",
        "[kubernetes]\nenabled = false\n",
    );
    kf.write(
        "runbooks/careful.rhai",
        "// careful: warns and ends.\nstep(\"look\", || { warn(\"something to look at\"); });\n",
    );
    kf.write(
        "runbooks/broken.rhai",
        "// broken: fails.\nstep(\"break\", || { fail(\"it broke\"); });\n",
    );
    // kfguard itself says 3 for warnings...
    let direct = kf.run(&[
        "--config",
        kf.path().join("conf.d/00-base.toml").to_str().unwrap(),
        "runbook",
        "run",
        "careful",
    ]);
    assert_eq!(code(&direct), 3, "{}", stderr(&direct));
    // ...which the Job counts as done, from the fragments joined in order.
    let warned = kfguard_job(&kf, &["runbook", "run", "careful"]);
    assert_eq!(code(&warned), 0, "{}", stderr(&warned));
    assert!(
        stderr(&warned).contains("finished with warnings (exit 3)"),
        "{}",
        stderr(&warned)
    );
    let joined = std::fs::read_to_string(kf.path().join("run/kfguard.toml")).unwrap();
    assert!(
        joined.find("cluster = \"job-test\"") < joined.find("[kubernetes]"),
        "{joined}"
    );

    let failed = kfguard_job(&kf, &["runbook", "run", "broken"]);
    assert_eq!(code(&failed), 1, "{}", stderr(&failed));
    assert!(stderr(&failed).contains("it broke"), "{}", stderr(&failed));

    std::fs::remove_dir_all(kf.path().join("conf.d")).unwrap();
    std::fs::create_dir(kf.path().join("conf.d")).unwrap();
    let empty = kfguard_job(&kf, &["runbook", "run", "careful"]);
    assert_eq!(code(&empty), 2, "{}", stderr(&empty));
    assert!(stderr(&empty).contains("is the ConfigMap kfguard-config mounted there?"));
}

fn monitoring() -> PathBuf {
    deploy_dir().join("monitoring")
}

fn yaml_file(path: &Path) -> Value {
    yaml_serde::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new(tool("promtool", "prometheus"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests_and_the_prometheus_rule_holds_the_same_rules()
{
    let plain = yaml_file(&monitoring().join("kfguard.rules.yml"));
    let operator = yaml_file(&monitoring().join("prometheusrule.yaml"));
    assert_eq!(operator["kind"], "PrometheusRule");
    assert_eq!(operator["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        operator["spec"], plain,
        "prometheusrule.yaml's spec differs from kfguard.rules.yml, its source"
    );
    let checked = promtool(&["check", "rules", "kfguard.rules.yml"], &monitoring());
    assert!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
    let scratch = tempfile::tempdir().unwrap();
    let extracted = scratch.path().join("from-prometheusrule.yml");
    std::fs::write(
        &extracted,
        yaml_serde::to_string(&operator["spec"]).unwrap(),
    )
    .unwrap();
    promtool(
        &["check", "rules", extracted.to_str().unwrap()],
        scratch.path(),
    );
    let tested = promtool(&["test", "rules", "kfguard.rules.test.yml"], &monitoring());
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Each alert fires in the unit tests at least once and stays quiet at least once.
    let tests = std::fs::read_to_string(monitoring().join("kfguard.rules.test.yml")).unwrap();
    for rule in plain["groups"][0]["rules"].as_array().unwrap() {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            tests.matches(&format!("alertname: {name}")).count() >= 2,
            "{name}"
        );
    }
}

/// The families of METRICS.md's table, with the labels each may carry.
fn contract() -> (String, BTreeSet<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(monitoring().join("METRICS.md")).unwrap();
    let mut families = BTreeSet::new();
    let mut labels: BTreeSet<String> = ["cluster", "operation", "runbook"].map(String::from).into();
    for line in text.lines().filter(|l| l.starts_with("| `kfguard_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        families.insert(cells[1].trim_matches('`').to_string());
        for l in cells[2].split(',') {
            let l = l.trim().trim_matches(|c| c == '`' || c == '?');
            if !l.is_empty() {
                labels.insert(l.to_string());
            }
        }
    }
    assert!(families.len() >= 13, "{families:?}");
    (text, families, labels)
}

/// Every `kfguard_*` name in a PromQL expression, and the labels its matchers name.
fn used(expr: &str, metrics: &mut BTreeSet<String>, labels: &mut BTreeSet<String>) {
    let mut rest = expr;
    while let Some(i) = rest.find("kfguard_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        metrics.insert(tail[..end].to_string());
        rest = &tail[end..];
        if let Some(body) = rest.strip_prefix('{') {
            let close = body.find('}').expect("closed matcher");
            for m in body[..close].split(',') {
                if let Some(name) = m.split(['=', '!']).next() {
                    labels.insert(name.trim().to_string());
                }
            }
        }
    }
    for by in expr.split("by (").skip(1) {
        for l in by.split(')').next().unwrap().split(',') {
            labels.insert(l.trim().to_string());
        }
    }
}

#[test]
fn the_rules_and_the_dashboard_use_only_the_metrics_and_labels_of_the_contract() {
    let (text, families, allowed) = contract();
    let plain = yaml_file(&monitoring().join("kfguard.rules.yml"));
    let mut metrics = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for rule in plain["groups"][0]["rules"].as_array().unwrap() {
        let expr = rule["expr"].as_str().unwrap();
        // The alerts are the contract's, word for word.
        assert!(
            text.contains(&format!("`{expr}`")),
            "{expr} is not in METRICS.md"
        );
        used(expr, &mut metrics, &mut labels);
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring().join("grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            exprs.push(q.to_string());
        }
    }
    assert!(exprs.len() >= 12, "{exprs:?}");
    for e in &exprs {
        used(e, &mut metrics, &mut labels);
    }
    let unknown: Vec<_> = metrics.difference(&families).collect();
    assert!(unknown.is_empty(), "not in METRICS.md: {unknown:?}");
    let unknown: Vec<_> = labels.difference(&allowed).collect();
    assert!(unknown.is_empty(), "labels not in METRICS.md: {unknown:?}");
    // The dashboard shows every family.
    let missing: Vec<_> = families.difference(&metrics).collect();
    assert!(missing.is_empty(), "the dashboard shows no {missing:?}");
}
