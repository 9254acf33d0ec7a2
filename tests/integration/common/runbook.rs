//! Reading a runbook run's JSON report, and the fixtures several runbook tests seed.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::Kf;

/// A workspace whose S3 credentials are longer than the stock `test`, so that the journal's
/// redaction of secrets never has to tell them from ordinary words.
pub(crate) fn workspace() -> Kf {
    Kf::local()
        .env("AWS_ACCESS_KEY_ID", "kfguard-runbook-key")
        .env("AWS_SECRET_ACCESS_KEY", "a-secret-the-s3-server-ignores")
}

/// A config with a MariaDB source `kfp`, a PostgreSQL source `pg` and a bucket source `art`,
/// each when given.
pub(crate) fn sources(kf: &Kf, mysql_db: Option<&str>, pg_db: Option<&str>, bucket: Option<&str>) {
    let mut toml = String::new();
    if let Some(db) = mysql_db {
        toml.push_str(&format!(
            "[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"{}\"\ndatabases = [\"{db}\"]\n\n",
            super::db::mysql_url()
        ));
    }
    if let Some(db) = pg_db {
        toml.push_str(&format!(
            "[[databases]]\nname = \"pg\"\nengine = \"postgres\"\nurl = \"{}\"\ndatabases = [\"{db}\"]\n\n",
            super::db::pg_url()
        ));
    }
    if let Some(bucket) = bucket {
        toml.push_str(&format!(
            "[[buckets]]\nname = \"art\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\npath_style = true\nbucket = \"{bucket}\"\naccess_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"\n",
            super::s3_endpoint()
        ));
    }
    kf.write("kfguard.toml", &toml);
}

/// The step named `name` of a report.
pub(crate) fn step<'r>(report: &'r Value, name: &str) -> &'r Value {
    report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {report:#}"))
}

/// The output of the step named `name`.
pub(crate) fn output<'r>(report: &'r Value, name: &str) -> &'r Value {
    &step(report, name)["output"]
}

/// Every planned change of the run, in order.
pub(crate) fn planned(report: &Value) -> Vec<String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["planned"].as_array().cloned().unwrap_or_default())
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// Every finding of the run, as the report has them.
pub(crate) fn all_findings(report: &Value) -> Vec<Value> {
    report["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {report:#}"))
        .iter()
        .flat_map(|s| s["findings"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The run's findings as (code, object).
pub(crate) fn findings(report: &Value) -> BTreeSet<(String, String)> {
    all_findings(report)
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A CustomResourceDefinition serving one version, with an open schema.
pub(crate) fn crd(group: &str, plural: &str, kind: &str, version: &str, scope: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {plural}.{group}}}\nspec:\n  group: {group}\n  scope: {scope}\n  names: {{plural: {plural}, singular: {s}, kind: {kind}, listKind: {kind}List}}\n  versions:\n  - name: {version}\n    served: true\n    storage: true\n    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}\n---\n",
        s = kind.to_lowercase()
    )
}

/// Every file under `dir`, concatenated: to look for what must not be in a run's state.
pub(crate) fn all_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            text.push_str(&all_text(&path));
        } else {
            text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
    text
}
