//! `[metrics]`: where a backup, restore or runbook run writes its Prometheus metrics.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Both are off by default; `--metrics-file` and `--pushgateway` set them for one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A textfile for node-exporter's textfile collector, rewritten after every run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// A Pushgateway's base URL, e.g. `http://pushgateway.monitoring:9091`; a `user:password@`
    /// in it is sent as basic auth and redacted everywhere it is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushgateway: Option<String>,
}

/// Checks a Pushgateway URL: http or https, with a host, and no query or fragment (the
/// grouping path is appended to it).
pub fn check_pushgateway(url: &str) -> Result<url::Url, String> {
    let shown = super::redact_url(url);
    let parsed = url::Url::parse(url).map_err(|e| {
        format!("`{shown}` is not a URL ({e}); write e.g. http://pushgateway.monitoring:9091")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "`{shown}` is not an http:// or https:// URL; write e.g. http://pushgateway.monitoring:9091"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "`{shown}` has a query or fragment; give the Pushgateway's base URL, e.g. http://pushgateway.monitoring:9091"
        ));
    }
    Ok(parsed)
}
