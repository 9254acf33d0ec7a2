//! The runs as Prometheus exposition text, through `prometheus-client`'s registry: one gauge
//! family per metric, labelled `cluster`, `operation` (and `runbook` for runbook runs).

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Export, LastSuccess, Run};
use crate::runbook::Severity;

/// Label pairs in a fixed order: the common ones first.
pub(super) type Labels = Vec<(String, String)>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;
/// One run's samples of a family with one label of its own: (label, value, sample).
type PerLabel<'a> = &'a dyn Fn(&Run) -> Vec<(String, String, f64)>;

pub(super) const LAST_SUCCESS: &str = "kfguard_last_success_timestamp_seconds";

/// Encodes `export`, with `last_success` as the whole `kfguard_last_success_timestamp_seconds`
/// family (this export's successes and the samples kept from before; see `previous.rs`).
/// Families without a sample are left out, so that a Pushgateway POST does not replace them.
pub fn encode(export: &Export, last_success: &[LastSuccess]) -> String {
    let mut reg = Registry::default();
    let mut fam = |name: &str, help: &str, samples: Vec<(Labels, f64)>| {
        if samples.is_empty() {
            return;
        }
        let family = Gauges::default();
        for (labels, value) in samples {
            family.get_or_create(&labels).set(value);
        }
        reg.register(name, help, family);
    };
    let runs = &export.runs;
    let each = |f: &dyn Fn(&Run) -> Option<f64>| -> Vec<(Labels, f64)> {
        runs.iter()
            .filter_map(|r| f(r).map(|v| (common(&export.cluster, r), v)))
            .collect()
    };
    let per = |f: PerLabel| -> Vec<(Labels, f64)> {
        runs.iter()
            .flat_map(|r| {
                f(r).into_iter().map(|(k, v, n)| {
                    let mut l = common(&export.cluster, r);
                    l.push((k, v));
                    (l, n)
                })
            })
            .collect()
    };
    fam(
        "kfguard_last_run_timestamp_seconds",
        "End time of the last run, in seconds since the epoch.",
        each(&|r| Some(seconds(r.timing.ended))),
    );
    fam(
        LAST_SUCCESS,
        "End time of the last run that ended 0 or 3, in seconds since the epoch.",
        last_success
            .iter()
            .map(|s| (s.labels.clone(), s.value))
            .collect(),
    );
    fam(
        "kfguard_last_run_success",
        "1 when the last run ended 0 or 3 (done, or done with warnings), else 0.",
        each(&|r| Some(f64::from(u8::from(r.succeeded())))),
    );
    fam(
        "kfguard_last_run_exit_code",
        "Exit code of the last run: 0 ok, 1 failure, 2 usage, 3 warnings.",
        each(&|r| Some(f64::from(r.exit_code))),
    );
    fam(
        "kfguard_run_duration_seconds",
        "Wall time of the last run.",
        each(&|r| Some(r.timing.duration.as_secs_f64())),
    );
    fam(
        "kfguard_read_bytes",
        "Bytes read from the sources (backup) or the repository (restore).",
        each(&|r| r.read_bytes.map(|b| b as f64)),
    );
    fam(
        "kfguard_added_bytes",
        "Bytes the backup added to the repository.",
        each(&|r| r.added_bytes.map(|b| b as f64)),
    );
    fam(
        "kfguard_stored_bytes",
        "Total size of the snapshot.",
        each(&|r| r.stored_bytes.map(|b| b as f64)),
    );
    fam(
        "kfguard_objects",
        "Objects backed up or restored, per component.",
        per(&|r| {
            r.objects
                .iter()
                .map(|(c, n)| ("component".into(), c.clone(), *n as f64))
                .collect()
        }),
    );
    fam(
        "kfguard_rows",
        "Rows backed up or restored, per database.",
        per(&|r| {
            r.rows
                .iter()
                .map(|(d, n)| ("database".into(), d.clone(), *n as f64))
                .collect()
        }),
    );
    fam(
        "kfguard_dangling_references",
        "Artifact references the cross-check found no object for.",
        each(&|r| r.dangling.map(|n| n as f64)),
    );
    fam(
        "kfguard_findings",
        "Findings of the last runbook run, by severity and code.",
        runs.iter()
            .flat_map(|r| findings(&export.cluster, r))
            .collect(),
    );
    fam(
        "kfguard_component_success",
        "1 when the component (database, bucket, kubernetes, or a runbook step) ended well, else 0.",
        per(&|r| {
            r.components
                .iter()
                .map(|(c, ok)| ("component".into(), c.clone(), f64::from(u8::from(*ok))))
                .collect()
        }),
    );
    let mut out = String::new();
    text::encode(&mut out, &reg).expect("writing to a String cannot fail");
    out
}

/// `cluster`, `operation`, and `runbook` for runbook runs.
pub(super) fn common(cluster: &str, r: &Run) -> Labels {
    let mut l = vec![
        ("cluster".to_string(), cluster.to_string()),
        ("operation".to_string(), r.operation.as_str().to_string()),
    ];
    if let Some(name) = &r.runbook {
        l.push(("runbook".into(), name.clone()));
    }
    l
}

/// A runbook run's findings by severity and code. A severity with none has one sample 0 with
/// `code=""`: the family is never empty, so that a clean run replaces the findings of the
/// last one in a Pushgateway group (a POST only replaces the families it sends).
fn findings(cluster: &str, r: &Run) -> Vec<(Labels, f64)> {
    if r.runbook.is_none() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for sev in [Severity::Info, Severity::Warning, Severity::Error] {
        let name = severity(sev);
        let mut any = false;
        for ((s, code), n) in &r.findings {
            if *s == sev {
                any = true;
                let mut l = common(cluster, r);
                l.push(("severity".into(), name.into()));
                l.push(("code".into(), code.clone()));
                out.push((l, *n as f64));
            }
        }
        if !any {
            let mut l = common(cluster, r);
            l.push(("severity".into(), name.into()));
            l.push(("code".into(), String::new()));
            out.push((l, 0.0));
        }
    }
    out
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

pub(super) fn seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
