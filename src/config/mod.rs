//! Configuration: one struct, layered as flags > `KFGUARD_*` environment > `kfguard.toml` > defaults.

mod check;
mod globs;
mod keep;
mod metrics;
mod origin;
mod paths;
mod redact;
mod runbooks;
mod tables;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use globs::{BadGlob, Globs, KubeGlobs};
pub use keep::KeepPolicy;
pub use metrics::{check_pushgateway, MetricsConfig};
pub use redact::redact_url;
pub use runbooks::{RunbookLimits, RunbooksConfig};
pub use tables::TableFilter;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "kfguard.toml";
/// The repository used when nothing else is configured: a local folder, to try kfguard out.
pub const DEFAULT_REPOSITORY: &str = "./kfguard-repo";
/// Read when no other password source is configured, like restic's `RESTIC_PASSWORD`.
pub const PASSWORD_ENV: &str = "KFGUARD_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; pass an existing file with --config or KFGUARD_CONFIG")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// `at` is `file:line:column` when the value comes from the config file.
    #[error("{}invalid config: `{key}`: {message}", at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
    Invalid {
        at: Option<String>,
        key: String,
        message: String,
    },
    #[error("cannot read the secret for `{key}` from file {}", path.display())]
    SecretFile {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the secret for `{key}` from environment variable {name}: it is not set")]
    SecretEnv { key: String, name: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Recorded in every snapshot and used as the snapshot's host, to group retention.
    pub cluster: String,
    pub repository: RepositoryConfig,
    pub databases: Vec<DatabaseSource>,
    pub buckets: Vec<BucketSource>,
    pub kubernetes: KubernetesConfig,
    pub retention: KeepPolicy,
    pub runbooks: RunbooksConfig,
    pub metrics: MetricsConfig,
    /// Where the values came from, for messages.
    #[serde(skip)]
    layers: Layers,
}

/// Which layers set what, where it matters for messages and path resolution.
#[derive(Debug, Clone, Default)]
struct Layers {
    /// The config file, when one was read.
    file: Option<origin::Origin>,
    /// `repository.url` came from `--repo` / `KFGUARD_REPO`.
    repo_from_cli: bool,
    /// `metrics.pushgateway` came from `KFGUARD_PUSHGATEWAY`.
    pushgateway_from_env: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster: "kubeflow".into(),
            repository: RepositoryConfig::default(),
            databases: Vec::new(),
            buckets: Vec::new(),
            kubernetes: KubernetesConfig::default(),
            retention: KeepPolicy::default(),
            runbooks: RunbooksConfig::default(),
            metrics: MetricsConfig::default(),
            layers: Layers::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepositoryConfig {
    /// A local path, or `s3://BUCKET/PREFIX`.
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    pub s3: S3Config,
}

impl Default for RepositoryConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_REPOSITORY.into(),
            password_file: None,
            password_env: None,
            s3: S3Config::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Defaults to true when a custom endpoint is set (MinIO, SeaweedFS), false on AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Send the AWS SDK's default request checksums; many S3-compatible stores reject them.
    pub full_checksums: bool,
    /// Attempts per request, including the first; 0 means the default (4).
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Mysql,
    Postgres,
}

impl Engine {
    /// The name as written in the config and the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mysql => "mysql",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSource {
    pub name: String,
    pub engine: Engine,
    /// Server URL without a password, e.g. `mysql://root@mysql.kubeflow:3306`.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Empty: every non-system database.
    #[serde(default)]
    pub databases: Vec<String>,
    #[serde(default)]
    pub include_tables: Vec<String>,
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// `include_tables` and `exclude_tables`, compiled when the config is validated.
    #[serde(skip)]
    pub tables: TableFilter,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSource {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    pub bucket: String,
    /// Empty: the whole bucket.
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    pub crd_groups: Vec<String>,
    pub include_secrets: bool,
    /// Finished Argo Workflows are skipped unless this is set: restored, they confuse KFP's
    /// persistence agent.
    pub include_finished_workflows: bool,
    /// `namespaces`, `exclude_namespaces` and `crd_groups`, compiled when the config is read.
    #[serde(skip)]
    pub globs: KubeGlobs,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        let mut cfg = Self {
            enabled: false,
            kubeconfig: None,
            context: None,
            namespaces: vec!["kubeflow".into(), "kubeflow-user-*".into()],
            exclude_namespaces: Vec::new(),
            crd_groups: vec![
                "kubeflow.org".into(),
                "*.kubeflow.org".into(),
                "argoproj.io".into(),
                "serving.kserve.io".into(),
            ],
            include_secrets: false,
            include_finished_workflows: false,
            globs: KubeGlobs::default(),
        };
        cfg.compile_globs().expect("the default globs compile");
        cfg
    }
}

impl KubernetesConfig {
    /// Compiles the namespace and CRD group globs into [`Self::globs`]: after the lists change.
    pub fn compile_globs(&mut self) -> Result<(), BadGlob> {
        self.globs = KubeGlobs::new(&self.namespaces, &self.exclude_namespaces, &self.crd_groups)?;
        Ok(())
    }
}

/// The values the command line sets over the file and the environment. The command line
/// fills it; clap has already layered each flag over its `KFGUARD_*` variable.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The config file to read instead of `kfguard.toml`.
    pub config: Option<PathBuf>,
    pub repo: Option<String>,
    pub password_file: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
}

impl Config {
    /// Builds the effective config: the file (explicit, or `kfguard.toml` if present), then env,
    /// then flags. Relative paths in the file are resolved from the file's folder.
    pub fn load(global: &Overrides) -> Result<Self, ConfigError> {
        let mut config = match &global.config {
            Some(path) => Self::from_file(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Self::default(),
        };
        if let Some(cluster) = non_empty_env("KFGUARD_CLUSTER") {
            config.cluster = cluster;
        }
        // `--metrics-file` and `--pushgateway` belong to the commands that write metrics; they
        // layer themselves over these (see `commands::metrics`).
        if let Some(file) = non_empty_env("KFGUARD_METRICS_FILE") {
            config.metrics.file = Some(file.into());
        }
        if let Some(url) = non_empty_env("KFGUARD_PUSHGATEWAY") {
            config.metrics.pushgateway = Some(url);
            config.layers.pushgateway_from_env = true;
        }
        // clap has already layered the flag over its KFGUARD_* variable.
        if let Some(repo) = &global.repo {
            config.repository.url = repo.clone();
            config.layers.repo_from_cli = true;
        }
        // The password, like every key: flag, then environment, then file. A password file
        // (--password-file or KFGUARD_PASSWORD_FILE) beats KFGUARD_PASSWORD, as in restic.
        if let Some(file) = &global.password_file {
            config.repository.password_file = Some(file.clone());
            config.repository.password_env = None;
        } else if non_empty_env(PASSWORD_ENV).is_some() {
            config.repository.password_file = None;
            config.repository.password_env = Some(PASSWORD_ENV.into());
        }
        if let Some(file) = &global.kubeconfig {
            config.kubernetes.kubeconfig = Some(file.clone());
        }
        if let Some(context) = &global.context {
            config.kubernetes.context = Some(context.clone());
        }
        if let Some(cluster) = &global.cluster {
            config.cluster = cluster.clone();
        }
        check::validate(&mut config)?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses a config file's text; relative paths in it are resolved from `path`'s folder.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text).map_err(|err| parse_error(text, path, &err))?;
        let origin = origin::Origin::new(path, text);
        paths::resolve(&mut config, &origin);
        config.layers.file = Some(origin);
        check::compile_globs(&mut config)?;
        Ok(config)
    }

    /// The effective config as JSON with every secret value redacted.
    pub fn redacted(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("config serialises");
        redact::redact(&mut value, None);
        value
    }

    /// The secret values this config names (passwords and secret keys, read from their files
    /// and variables), for output that must not hold them: runbook reports and journals.
    pub fn secret_values(&self) -> Vec<String> {
        redact::secret_values(self)
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Turns a TOML error into `file:line:column: message`, naming the offending key.
fn parse_error(text: &str, path: &Path, err: &toml::de::Error) -> ConfigError {
    let (line, column, snippet, line_text) = match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let (line, column) = origin::line_column(text, span.start);
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let line_text = text[line_start..].lines().next().unwrap_or("").to_string();
            let snippet = text[span.start.min(text.len())..span.end.min(text.len())].to_string();
            (line, column, snippet, line_text)
        }
        None => (1, 1, String::new(), String::new()),
    };
    let raw = err.message().trim().to_string();
    let message = if raw.starts_with("unknown field") {
        let key = snippet.trim().trim_matches('"');
        let expected = raw
            .split_once("expected")
            .map(|(_, rest)| format!("; expected {}", rest.trim().replace("one of ", "one of: ")))
            .unwrap_or_default();
        format!("unknown key `{key}`{expected}")
    } else if let Some((key, _)) = line_text
        .split_once('=')
        .filter(|_| !raw.contains("expected `=`"))
    {
        format!("bad value for key `{}`: {raw}", key.trim())
    } else {
        raw
    };
    ConfigError::Parse {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

/// Reads a secret from a named environment variable or a file; `Ok(None)` when neither is set.
pub fn read_secret(
    key: &str,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<String>, ConfigError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
            key: key.into(),
            path: path.to_owned(),
            source,
        })?;
        // A trailing newline from `echo secret > file` is not part of the secret.
        return Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()));
    }
    if let Some(name) = env {
        return match std::env::var(name) {
            Ok(v) => Ok(Some(v)),
            Err(_) => Err(ConfigError::SecretEnv {
                key: key.into(),
                name: name.into(),
            }),
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("kfguard.toml"))
    }

    #[test]
    fn design_example_parses() {
        let c = parse(
            r#"
cluster = "prod-kubeflow"
[repository]
url = "s3://kf-backups/prod"
password_file = "/etc/kfguard/password"
[repository.s3]
endpoint = "http://minio.kubeflow:9000"
region = "us-east-1"
path_style = true
access_key_id_env = "AWS_ACCESS_KEY_ID"
secret_access_key_env = "AWS_SECRET_ACCESS_KEY"
[[databases]]
name = "kfp"
engine = "mysql"
url = "mysql://root@mysql.kubeflow:3306"
password_env = "KFP_DB_PASSWORD"
databases = ["mlpipeline", "metadb", "cachedb"]
[[buckets]]
name = "artifacts"
endpoint = "http://seaweedfs.kubeflow:9000"
region = "us-east-1"
path_style = true
bucket = "mlpipeline"
prefixes = []
access_key_id_env = "KFP_S3_ACCESS_KEY"
secret_access_key_env = "KFP_S3_SECRET_KEY"
[kubernetes]
enabled = true
namespaces = ["kubeflow", "kubeflow-user-*"]
crd_groups = ["kubeflow.org", "*.kubeflow.org", "argoproj.io", "serving.kserve.io"]
include_secrets = false
[retention]
keep_daily = 7
keep_weekly = 4
keep_monthly = 6
[runbooks]
dir = "./runbooks"
"#,
        )
        .unwrap();
        assert_eq!(c.cluster, "prod-kubeflow");
        assert_eq!(c.databases[0].engine, Engine::Mysql);
        assert_eq!(c.retention.keep_daily, Some(7));
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = parse("cluster = \"x\"\n[repository]\nurl = \"a\"\npasword_file = \"p\"\n")
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("kfguard.toml:4:1: unknown key `pasword_file`"),
            "{msg}"
        );
        assert!(msg.contains("password_file"), "{msg}");
    }

    #[test]
    fn bad_value_names_key() {
        let err = parse("[repository.s3]\nmax_attempts = \"many\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("kfguard.toml:2:"), "{msg}");
        assert!(msg.contains("`max_attempts`"), "{msg}");
    }
}
