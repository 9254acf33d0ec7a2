//! The support bundle: `run(Plan, sink) -> Report` streams one tar.gz of what an engineer
//! attaches to a ticket: the Kubeflow namespaces' pods (listed, described, as stored, and
//! their recent logs), events, claims, ConfigMaps, Secret names, Argo workflow phases, the
//! Kubeflow CRDs' versions, kfguard's last runbook runs and verify-health findings, its config
//! and version; and `index.json`, which says what was collected and what could not be, and
//! why. Every secret value known (the config's, secret-named variables', the Secrets' of the
//! namespaces when they may be read, secret-named env literals of pods) is hidden in plain
//! and base64 form from every file, by the shared `Redactor`.
//!
//! Cluster reads come from `cluster.rs`, kfguard's state from `state.rs`, the text views from
//! `describe.rs`, the streaming tar.gz from `archive.rs`.

mod archive;
mod cluster;
mod describe;
mod state;

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

pub use archive::Entry;

use crate::config::Config;
use crate::redact::{is_secret_name, Redactor};
use archive::Archive;
use cluster::Read;

#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("cannot write the support bundle ({what}): {source}; check the output path and the free space")]
    Write {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// What to collect.
#[derive(Debug, Clone)]
pub struct Plan {
    pub config: Config,
    /// The last lines of each container log.
    pub log_lines: i64,
    /// Only log lines newer than this.
    pub since: Option<Duration>,
    /// How many of the last runbook runs to include.
    pub runs: usize,
    /// Secret values the config names, read from their files and variables.
    pub secrets: Vec<String>,
    /// Read the cluster too (not with `--no-cluster`).
    pub cluster: bool,
    /// No progress lines on stderr.
    pub quiet: bool,
}

/// A part that could not be collected, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    pub what: String,
    pub error: String,
}

/// The bundle's index (`index.json`), and the command's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kfguard_version: String,
    pub created: String,
    pub cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    pub namespaces: Vec<String>,
    pub log_lines: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_since: Option<String>,
    /// How many distinct secret values were hidden wherever they appeared.
    pub secret_values_known: usize,
    pub files: Vec<Entry>,
    pub not_collected: Vec<Missing>,
    /// The compressed size of the whole bundle.
    #[serde(skip)]
    pub bytes: u64,
}

const README: &str = "kfguard support bundle

index.json                what was collected, and what could not be and why
kfguard/                  version, config (secrets redacted), the last runbook runs
                          (runs/<id>/journal.jsonl, report.txt), verify-health.json/.txt
cluster/                  version, crds.txt (served and stored versions of the Kubeflow CRDs)
namespaces/<ns>/          pods.txt, events.txt (oldest first), pvcs.txt, workflows.txt,
                          configmaps.json, secrets.txt (names and keys only, never values)
namespaces/<ns>/pods/<pod>/
                          describe.txt, pod.json, logs/<container>.log
                          (and <container>.previous.log for a container that restarted)

Secret values kfguard knows of (its config's passwords and keys, environment variables named as
secrets, the namespaces' Secrets when it may read them, secret-named env values of pods) are
replaced by <redacted> in every file, in plain and base64 form.
";

/// Collects the bundle into `out`, as a tar.gz whose entries sit in one folder named after the
/// cluster and the time.
pub fn run<W: Write>(
    plan: &Plan,
    rt: &tokio::runtime::Handle,
    out: W,
) -> Result<Report, SupportError> {
    let now = rustic_core::jiff::Timestamp::now();
    let note = |m: &str| {
        if !plan.quiet {
            eprintln!("support-bundle: {m}");
        }
    };
    let mut redactor = Redactor::default();
    redactor.learn_with_base64(
        std::env::vars()
            .filter(|(k, _)| is_secret_name(k))
            .map(|(_, v)| v)
            .chain(plan.secrets.iter().cloned()),
    );
    let mut missing: Vec<Missing> = Vec::new();
    let mut miss = |what: String, error: String| missing.push(Missing { what, error });

    // The cluster first, before anything is written: its Secrets and pods' env teach the
    // redactor values that may show in any file.
    let gathered = if plan.cluster {
        note("reading the cluster");
        Some(rt.block_on(cluster::gather(&plan.config.kubernetes)))
    } else {
        None
    };
    if let Some(Ok(g)) = &gathered {
        for ns in &g.namespaces {
            if let Ok(secrets) = &ns.secrets {
                redactor.learn_with_base64(Redactor::secret_values(secrets));
            }
            if let Ok(pods) = &ns.pods {
                redactor.learn_with_base64(pods.iter().flat_map(describe::secret_env_values));
            }
        }
    }

    let root = format!(
        "kfguard-support-{}-{}",
        plan.config.cluster,
        now.strftime("%Y%m%dT%H%M%SZ")
    );
    let mut ar = Archive::new(out, root, redactor);
    ar.text("README.txt", README)?;
    ar.text(
        "kfguard/version.txt",
        &format!("kfguard {}\n", env!("CARGO_PKG_VERSION")),
    )?;
    let config = plan.config.redacted();
    ar.text(
        "kfguard/config.toml",
        &toml::to_string_pretty(&ar.redactor.json(config)).unwrap_or_default(),
    )?;

    let mut report = Report {
        kfguard_version: env!("CARGO_PKG_VERSION").into(),
        created: now.to_string(),
        cluster: plan.config.cluster.clone(),
        api_server: None,
        kubernetes_version: None,
        namespaces: Vec::new(),
        log_lines: plan.log_lines,
        log_since: plan
            .since
            .map(|d| humantime::format_duration(d).to_string()),
        secret_values_known: ar.redactor.len(),
        files: Vec::new(),
        not_collected: Vec::new(),
        bytes: 0,
    };

    match gathered {
        None => {}
        Some(Err(e)) => miss("the cluster".into(), e),
        Some(Ok(g)) => {
            report.api_server = Some(g.cluster.server.clone());
            report.kubernetes_version.clone_from(&g.version);
            report.namespaces = g.namespaces.iter().map(|n| n.name.clone()).collect();
            write_cluster(plan, rt, &mut ar, &g, &mut miss, &note)?;
        }
    }

    note("reading kfguard's runs");
    write_runs(plan, rt, &mut ar, &mut miss)?;

    report.not_collected = missing;
    report.files = ar.entries.clone();
    report.secret_values_known = ar.redactor.len();
    // The index lists itself last: its size is not known before it is written.
    let mut index = report.clone();
    index.files.push(Entry {
        path: "index.json".into(),
        bytes: 0,
    });
    ar.json("index.json", &index)?;
    report.files = ar.entries.clone();
    report.bytes = ar.finish()?;
    Ok(report)
}

/// A read's items, or its error recorded as `what` (and no items).
fn items<'a>(
    read: &'a Read,
    what: impl FnOnce() -> String,
    miss: &mut impl FnMut(String, String),
) -> &'a [Value] {
    match read {
        Ok(items) => items,
        Err(e) => {
            miss(what(), e.clone());
            &[]
        }
    }
}

fn name(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn write_cluster<W: Write>(
    plan: &Plan,
    rt: &tokio::runtime::Handle,
    ar: &mut Archive<W>,
    g: &cluster::Gathered,
    miss: &mut impl FnMut(String, String),
    note: &impl Fn(&str),
) -> Result<(), SupportError> {
    ar.text(
        "cluster/version.txt",
        &format!(
            "api server {}\nkubernetes {}\nnamespaces {}\n",
            g.cluster.server,
            g.version.as_deref().unwrap_or("unknown"),
            g.namespaces
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )?;
    if let Some(e) = &g.namespaces_error {
        miss(
            "the namespace list (the configured plain names were used)".into(),
            e.clone(),
        );
    }
    let crds = items(&g.crds, || "customresourcedefinitions".into(), miss);
    if g.crds.is_ok() {
        ar.text("cluster/crds.txt", &describe::crds_table(crds))?;
    }
    let since = plan.since.map(|d| d.as_secs() as i64);
    for ns in &g.namespaces {
        let dir = format!("namespaces/{}", ns.name);
        let pods = items(&ns.pods, || format!("pods in {}", ns.name), miss);
        if ns.pods.is_ok() {
            ar.text(&format!("{dir}/pods.txt"), &describe::pods_table(pods))?;
        }
        let events = items(&ns.events, || format!("events in {}", ns.name), miss);
        if ns.events.is_ok() {
            ar.text(
                &format!("{dir}/events.txt"),
                &describe::events_table(events),
            )?;
        }
        let pvcs = items(
            &ns.pvcs,
            || format!("persistentvolumeclaims in {}", ns.name),
            miss,
        );
        if ns.pvcs.is_ok() {
            ar.text(&format!("{dir}/pvcs.txt"), &describe::pvcs_table(pvcs))?;
        }
        let cms = items(
            &ns.configmaps,
            || format!("configmaps in {}", ns.name),
            miss,
        );
        if ns.configmaps.is_ok() {
            let cms: Vec<Value> = cms
                .iter()
                // Every namespace gets this one from the cluster itself.
                .filter(|c| name(c) != "kube-root-ca.crt")
                .map(describe::configmap)
                .collect();
            ar.json(&format!("{dir}/configmaps.json"), &cms)?;
        }
        let secrets = items(&ns.secrets, || format!("secrets in {}", ns.name), miss);
        if ns.secrets.is_ok() {
            let rows: Vec<Vec<String>> = secrets.iter().map(describe::secret_line).collect();
            ar.text(
                &format!("{dir}/secrets.txt"),
                &describe::table(&["NAME", "TYPE", "KEYS"], &rows),
            )?;
        }
        if let Some(wfs) = &ns.workflows {
            let list = items(wfs, || format!("workflows in {}", ns.name), miss);
            if wfs.is_ok() {
                ar.text(
                    &format!("{dir}/workflows.txt"),
                    &describe::workflows_table(list),
                )?;
            }
        }
        note(&format!(
            "{}: {} pods, reading their logs",
            ns.name,
            pods.len()
        ));
        for pod in pods {
            let pdir = format!("{dir}/pods/{}", name(pod));
            ar.text(
                &format!("{pdir}/describe.txt"),
                &describe::describe_pod(pod),
            )?;
            ar.json(&format!("{pdir}/pod.json"), &describe::sanitize_pod(pod))?;
            let logs = rt.block_on(cluster::pod_logs(&g.cluster, pod, plan.log_lines, since));
            for log in logs {
                let file = format!(
                    "{pdir}/logs/{}{}.log",
                    log.container,
                    if log.previous { ".previous" } else { "" }
                );
                match log.text {
                    Ok(text) => ar.text(&file, &text)?,
                    Err(e) => miss(format!("log {file}"), e),
                }
            }
        }
    }
    Ok(())
}

fn write_runs<W: Write>(
    plan: &Plan,
    rt: &tokio::runtime::Handle,
    ar: &mut Archive<W>,
    miss: &mut impl FnMut(String, String),
) -> Result<(), SupportError> {
    let (runs, errors) = state::runs(&plan.config, rt);
    for e in errors {
        miss("the run journals beside the repository".into(), e);
    }
    let listing: String = runs
        .iter()
        .map(|r| {
            let s = &r.past.summary;
            format!(
                "{:<26} {:<10} {:>3} steps  {}  {}\n",
                s.run_id, s.state, s.steps, s.started, s.runbook
            )
        })
        .collect();
    ar.text("kfguard/runs.txt", &listing)?;
    let skip = runs.len().saturating_sub(plan.runs);
    for run in &runs[skip..] {
        let dir = format!("kfguard/runs/{}", run.past.summary.run_id);
        ar.text(&format!("{dir}/journal.jsonl"), &run.journal)?;
        ar.text(&format!("{dir}/report.txt"), &state::run_text(run))?;
    }
    match state::last_health(&runs) {
        Some(h) => {
            let mut text = format!(
                "verify-health run {} started {}: {}, {} finding(s)\n",
                h.run_id,
                h.started,
                h.state,
                h.findings.len()
            );
            for f in &h.findings {
                text.push_str(&format!("{f}\n"));
            }
            ar.text("kfguard/verify-health.txt", &text)?;
            ar.json("kfguard/verify-health.json", &h)?;
        }
        None => miss(
            "the last verify-health findings".into(),
            format!(
                "no verify-health run in {} (nor beside the repository); run `kfguard runbook run verify-health` first",
                plan.config.runbooks.state_dir.display()
            ),
        ),
    }
    Ok(())
}
