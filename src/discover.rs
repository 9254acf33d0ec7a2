//! Discovery of a live KFP install: its database, artifact store and secrets, read from the
//! objects KFP's manifests create, turned into a ready `kfguard.toml`.
//!
//! Secret values are read only to learn the database user (which goes into the URL, as the
//! config expects) and whether a password is set; the config names environment variables
//! instead, and the `kubectl` commands that fill them are printed next to it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::Api;
use serde::Serialize;

use crate::config::Engine;
use crate::kube::{Cluster, KubeError};

/// The ConfigMap every KFP install has; its keys drive the rest.
pub const INSTALL_CONFIG: &str = "pipeline-install-config";
const MYSQL_SECRET: &str = "mysql-secret";
const POSTGRES_SECRET: &str = "postgres-secret-extended";
const ARTIFACT_SECRET: &str = "mlpipeline-minio-artifact";
/// Object store services, in order of preference: KFP's `minio-service` (also present as an
/// alias in SeaweedFS installs), then SeaweedFS itself.
const STORE_SERVICES: [&str; 2] = ["minio-service", "seaweedfs"];
const KATIB_SECRET: &str = "katib-mysql-secrets";
const KATIB_SERVICE: &str = "katib-mysql";

/// Environment variables the generated config names for the secrets.
pub const DB_PASSWORD_ENV: &str = "KFP_DB_PASSWORD";
pub const S3_ACCESS_KEY_ENV: &str = "KFP_S3_ACCESS_KEY";
pub const S3_SECRET_KEY_ENV: &str = "KFP_S3_SECRET_KEY";
pub const KATIB_PASSWORD_ENV: &str = "KATIB_DB_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error(
        "no ConfigMap {name} in namespace {namespace} on {server}: is KFP installed there? Pass its namespace with --namespace (-n)"
    )]
    NoInstallConfig {
        server: String,
        namespace: String,
        name: String,
    },
    #[error("ConfigMap {namespace}/{INSTALL_CONFIG}: dbType `{value}` is neither mysql nor postgres; write the [[databases]] section by hand")]
    UnknownDbType { namespace: String, value: String },
    #[error(transparent)]
    Kube(#[from] KubeError),
}

/// The objects discovery reads, as fetched; `None` when absent (or not readable).
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub install_config: BTreeMap<String, String>,
    /// Secret name -> its keys and decoded values.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Service name -> its ports as (name, port).
    pub services: BTreeMap<String, Vec<(String, i32)>>,
    /// What could not be read, e.g. a Secret the caller may not get.
    pub unreadable: Vec<String>,
}

/// A secret the generated config refers to, and how to fetch it.
#[derive(Debug, Clone, Serialize)]
pub struct SecretRef {
    pub env: String,
    pub secret: String,
    pub key: String,
    /// Exports the variable from the cluster, e.g. `export X="$(kubectl … | base64 -d)"`.
    pub command: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiscoveredDatabase {
    pub name: String,
    pub engine: Engine,
    /// Without a password.
    pub url: String,
    pub password_env: Option<String>,
    pub databases: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiscoveredBucket {
    pub name: String,
    pub endpoint: String,
    pub bucket: String,
    pub access_key_id_env: String,
    pub secret_access_key_env: String,
}

/// What discovery found, and the config made from it.
#[derive(Debug, Clone, Serialize)]
pub struct Discovered {
    pub namespace: String,
    pub cluster: String,
    pub kfp_version: Option<String>,
    pub databases: Vec<DiscoveredDatabase>,
    pub buckets: Vec<DiscoveredBucket>,
    pub secrets: Vec<SecretRef>,
    /// The objects that were read, e.g. `ConfigMap kubeflow/pipeline-install-config`.
    pub read: Vec<String>,
    /// What was looked for and not found, or guessed.
    pub notes: Vec<String>,
}

/// Where the generated config keeps its repository: taken from the caller's effective config.
#[derive(Debug, Clone)]
pub struct RepoSettings {
    pub url: String,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
}

/// Reads the KFP install in `namespace`.
pub async fn fetch(cluster: &Cluster, namespace: &str) -> Result<Found, DiscoverError> {
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), namespace);
    let cm = cms
        .get_opt(INSTALL_CONFIG)
        .await
        .map_err(|e| {
            cluster.err(
                format!("reading ConfigMap {namespace}/{INSTALL_CONFIG}"),
                &e,
            )
        })?
        .ok_or_else(|| DiscoverError::NoInstallConfig {
            server: cluster.server.clone(),
            namespace: namespace.into(),
            name: INSTALL_CONFIG.into(),
        })?;
    let mut found = Found {
        install_config: cm.data.unwrap_or_default(),
        ..Found::default()
    };
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
    for name in [MYSQL_SECRET, POSTGRES_SECRET, ARTIFACT_SECRET, KATIB_SECRET] {
        match secrets.get_opt(name).await {
            Ok(Some(s)) => {
                let mut data: BTreeMap<String, String> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                // The server turns stringData into data; a stand-in or a dry-run may not.
                data.extend(s.string_data.unwrap_or_default());
                found.secrets.insert(name.into(), data);
            }
            Ok(None) => {}
            // A discovery role without `get secrets` still gets a config, with a note.
            Err(kube::Error::Api(r)) if r.code == 403 => {
                found.unreadable.push(format!("Secret {namespace}/{name}"));
            }
            Err(e) => {
                return Err(cluster
                    .err(format!("reading Secret {namespace}/{name}"), &e)
                    .into())
            }
        }
    }
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), namespace);
    let db_host = found
        .install_config
        .get("postgresHost")
        .or_else(|| found.install_config.get("mysqlHost"))
        .or_else(|| found.install_config.get("dbHost"))
        .cloned();
    let mut wanted: Vec<String> = STORE_SERVICES
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    wanted.push(KATIB_SERVICE.into());
    wanted.extend(db_host.filter(|h| !h.contains('.')));
    for name in wanted {
        match services.get_opt(&name).await {
            Ok(Some(svc)) => {
                let ports = svc
                    .spec
                    .and_then(|s| s.ports)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| (p.name.unwrap_or_default(), p.port))
                    .collect();
                found.services.insert(name, ports);
            }
            Ok(None) => {}
            Err(kube::Error::Api(r)) if r.code == 403 => {
                found.unreadable.push(format!("Service {namespace}/{name}"));
            }
            Err(e) => {
                return Err(cluster
                    .err(format!("reading Service {namespace}/{name}"), &e)
                    .into())
            }
        }
    }
    Ok(found)
}

/// Turns what was found into sources. `kube_args` goes into the printed `kubectl` commands
/// (e.g. `--context prod`), so they read from the same cluster.
pub fn plan(
    found: &Found,
    namespace: &str,
    cluster: &str,
    kube_args: &str,
) -> Result<Discovered, DiscoverError> {
    let cfg = &found.install_config;
    let get = |k: &str| cfg.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut d = Discovered {
        namespace: namespace.into(),
        cluster: cluster.into(),
        kfp_version: get("appVersion").map(str::to_string),
        databases: Vec::new(),
        buckets: Vec::new(),
        secrets: Vec::new(),
        read: vec![format!("ConfigMap {namespace}/{INSTALL_CONFIG}")],
        notes: found
            .unreadable
            .iter()
            .map(|o| format!("{o}: forbidden, so it was not read"))
            .collect(),
    };
    let secret_ref = |env: &str, secret: &str, key: &str| {
        SecretRef {
        env: env.into(),
        secret: secret.into(),
        key: key.into(),
        command: format!(
            "export {env}=\"$(kubectl{kube_args} -n {namespace} get secret {secret} -o jsonpath='{{.data.{key}}}' | base64 -d)\""
        ),
    }
    };
    // A bare service name resolves only inside its namespace; kfguard may run elsewhere.
    let qualify = |host: &str| {
        if host.contains('.') {
            host.to_string()
        } else {
            format!("{host}.{namespace}")
        }
    };

    // KFP's database: mysql unless dbType says postgres (older installs have no dbType).
    let engine = match get("dbType").map(str::to_ascii_lowercase).as_deref() {
        None | Some("mysql" | "mariadb") => Engine::Mysql,
        Some("postgres" | "postgresql" | "pgx") => Engine::Postgres,
        Some(other) => {
            return Err(DiscoverError::UnknownDbType {
                namespace: namespace.into(),
                value: other.into(),
            })
        }
    };
    let (host_keys, port_keys, default_host, default_port, secret, scheme, default_user) =
        match engine {
            Engine::Mysql => (
                ["mysqlHost", "dbHost"],
                ["mysqlPort", "dbPort"],
                "mysql",
                "3306",
                MYSQL_SECRET,
                "mysql",
                "root",
            ),
            Engine::Postgres => (
                ["postgresHost", "dbHost"],
                ["postgresPort", "dbPort"],
                "postgres",
                "5432",
                POSTGRES_SECRET,
                "postgres",
                "user",
            ),
        };
    let host = host_keys.iter().find_map(|k| get(k)).unwrap_or_else(|| {
        d.notes.push(format!(
            "{INSTALL_CONFIG} names no database host; assumed `{default_host}`"
        ));
        default_host
    });
    let port = port_keys
        .iter()
        .find_map(|k| get(k))
        .unwrap_or(default_port);
    let mut password_env = None;
    let user = if let Some(s) = found.secrets.get(secret) {
        d.read.push(format!("Secret {namespace}/{secret}"));
        if s.get("password").is_some_and(|p| !p.is_empty()) {
            password_env = Some(DB_PASSWORD_ENV.to_string());
            d.secrets
                .push(secret_ref(DB_PASSWORD_ENV, secret, "password"));
        } else {
            d.notes.push(format!(
                "Secret {namespace}/{secret} has no password; none is configured"
            ));
        }
        s.get("username")
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .unwrap_or(default_user)
            .to_string()
    } else {
        // Still point at the variable: the secret may live elsewhere (external DB).
        d.notes.push(format!(
            "no Secret {namespace}/{secret}; assumed user `{default_user}`, set {DB_PASSWORD_ENV} yourself"
        ));
        password_env = Some(DB_PASSWORD_ENV.to_string());
        default_user.to_string()
    };
    let databases = [
        ("pipelineDb", "mlpipeline"),
        ("mlmdDb", "metadb"),
        ("cacheDb", "cachedb"),
    ]
    .iter()
    .map(|(k, default)| get(k).unwrap_or(default).to_string())
    .collect();
    d.databases.push(DiscoveredDatabase {
        name: "kfp".into(),
        engine,
        url: format!("{scheme}://{}@{}:{port}", url_user(&user), qualify(host)),
        password_env,
        databases,
    });

    // Katib keeps its own MySQL; best effort, as many installs have no Katib.
    let katib_secret = found.secrets.get(KATIB_SECRET);
    let katib_service = found.services.get(KATIB_SERVICE);
    if katib_secret.is_some() || katib_service.is_some() {
        let port = katib_service
            .and_then(|ports| ports.first())
            .map_or(3306, |(_, p)| *p);
        let mut password_env = None;
        if let Some(s) = katib_secret {
            d.read.push(format!("Secret {namespace}/{KATIB_SECRET}"));
            if s.contains_key("MYSQL_ROOT_PASSWORD") {
                password_env = Some(KATIB_PASSWORD_ENV.to_string());
                d.secrets.push(secret_ref(
                    KATIB_PASSWORD_ENV,
                    KATIB_SECRET,
                    "MYSQL_ROOT_PASSWORD",
                ));
            }
        }
        if katib_service.is_some() {
            d.read.push(format!("Service {namespace}/{KATIB_SERVICE}"));
        }
        d.databases.push(DiscoveredDatabase {
            name: "katib".into(),
            engine: Engine::Mysql,
            url: format!("mysql://root@{}:{port}", qualify(KATIB_SERVICE)),
            password_env,
            databases: vec!["katib".into()],
        });
    }

    // The artifact store.
    let store = STORE_SERVICES
        .iter()
        .find_map(|name| found.services.get(*name).map(|ports| (*name, ports)));
    let endpoint = if let Some((name, ports)) = store {
        d.read.push(format!("Service {namespace}/{name}"));
        format!("http://{}:{}", qualify(name), s3_port(ports))
    } else {
        d.notes.push(format!(
            "no Service minio-service or seaweedfs in {namespace}; assumed http://minio-service.{namespace}:9000, fix the bucket endpoint if the store is elsewhere"
        ));
        format!("http://minio-service.{namespace}:9000")
    };
    if found.secrets.contains_key(ARTIFACT_SECRET) {
        d.read.push(format!("Secret {namespace}/{ARTIFACT_SECRET}"));
    } else {
        d.notes.push(format!(
            "no Secret {namespace}/{ARTIFACT_SECRET}; set {S3_ACCESS_KEY_ENV} and {S3_SECRET_KEY_ENV} yourself"
        ));
    }
    d.secrets
        .push(secret_ref(S3_ACCESS_KEY_ENV, ARTIFACT_SECRET, "accesskey"));
    d.secrets
        .push(secret_ref(S3_SECRET_KEY_ENV, ARTIFACT_SECRET, "secretkey"));
    d.buckets.push(DiscoveredBucket {
        name: "kfp".into(),
        endpoint,
        bucket: get("bucketName").unwrap_or("mlpipeline").to_string(),
        access_key_id_env: S3_ACCESS_KEY_ENV.into(),
        secret_access_key_env: S3_SECRET_KEY_ENV.into(),
    });
    d.read.sort();
    d.read.dedup();
    Ok(d)
}

/// The S3 port of an object store service: one named for S3 or HTTP, else MinIO's 9000,
/// SeaweedFS's 8333, else the first.
fn s3_port(ports: &[(String, i32)]) -> i32 {
    let named = |n: &str| ports.iter().find(|(name, _)| name.contains(n)).map(|p| p.1);
    let numbered = |n: i32| ports.iter().find(|(_, p)| *p == n).map(|p| p.1);
    named("s3")
        .or_else(|| numbered(9000))
        .or_else(|| numbered(8333))
        .or_else(|| named("http"))
        .or_else(|| ports.first().map(|p| p.1))
        .unwrap_or(9000)
}

/// A user name as it may stand in a URL: everything but RFC 3986's unreserved characters
/// percent-encoded.
fn url_user(user: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(user, RESERVED).to_string()
}

/// A TOML string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The config file: every key one that `Config` accepts, secrets only as references, the
/// commands to fetch them as comments.
pub fn render(d: &Discovered, repo: &RepoSettings) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "# kfguard.toml discovered from the KFP install in namespace {}{}.\n",
        d.namespace,
        d.kfp_version
            .as_ref()
            .map(|v| format!(" (KFP {v})"))
            .unwrap_or_default()
    ));
    s.push_str(&format!("# Read: {}.\n", d.read.join(", ")));
    if !d.secrets.is_empty() {
        s.push_str("#\n# Secrets are not written here. Export them before running kfguard:\n");
        for r in &d.secrets {
            s.push_str(&format!("#   {}\n", r.command));
        }
    }
    for n in &d.notes {
        s.push_str(&format!("# Note: {n}\n"));
    }
    s.push('\n');
    s.push_str(&format!("cluster = {}\n\n", q(&d.cluster)));

    s.push_str(
        "[repository]\n# A local path, or s3://BUCKET/PREFIX with a [repository.s3] section.\n",
    );
    s.push_str(&format!("url = {}\n", q(&repo.url)));
    match (&repo.password_file, &repo.password_env) {
        (Some(f), _) => s.push_str(&format!("password_file = {}\n", q(f))),
        (None, Some(e)) => s.push_str(&format!("password_env = {}\n", q(e))),
        (None, None) => s.push_str(&format!(
            "password_env = {}\n",
            q(crate::config::PASSWORD_ENV)
        )),
    }
    s.push('\n');

    for db in &d.databases {
        s.push_str("[[databases]]\n");
        s.push_str(&format!("name = {}\n", q(&db.name)));
        let engine = match db.engine {
            Engine::Mysql => "mysql",
            Engine::Postgres => "postgres",
        };
        s.push_str(&format!("engine = {}\n", q(engine)));
        s.push_str(&format!("url = {}\n", q(&db.url)));
        if let Some(env) = &db.password_env {
            s.push_str(&format!("password_env = {}\n", q(env)));
        }
        s.push_str(&format!("databases = {}\n\n", list(&db.databases)));
    }

    for b in &d.buckets {
        s.push_str("[[buckets]]\n");
        s.push_str(&format!("name = {}\n", q(&b.name)));
        s.push_str(&format!("endpoint = {}\n", q(&b.endpoint)));
        s.push_str("region = \"us-east-1\"\npath_style = true\n");
        s.push_str(&format!("bucket = {}\n", q(&b.bucket)));
        s.push_str("prefixes = []  # empty: the whole bucket\n");
        s.push_str(&format!(
            "access_key_id_env = {}\n",
            q(&b.access_key_id_env)
        ));
        s.push_str(&format!(
            "secret_access_key_env = {}\n\n",
            q(&b.secret_access_key_env)
        ));
    }

    let defaults = crate::config::KubernetesConfig::default();
    let mut namespaces = vec![d.namespace.clone()];
    namespaces.extend(
        defaults
            .namespaces
            .iter()
            .filter(|n| **n != d.namespace)
            .cloned(),
    );
    s.push_str("[kubernetes]\nenabled = true\n");
    s.push_str(&format!("namespaces = {}\n", list(&namespaces)));
    s.push_str(&format!("crd_groups = {}\n", list(&defaults.crd_groups)));
    s.push_str("include_secrets = false\n\n");

    s.push_str("[retention]\nkeep_daily = 7\nkeep_weekly = 4\nkeep_monthly = 6\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn repo() -> RepoSettings {
        RepoSettings {
            url: "./kfguard-repo".into(),
            password_env: None,
            password_file: None,
        }
    }

    #[test]
    fn mysql_minio_and_katib_round_trip() {
        let found = Found {
            install_config: map(&[
                ("appVersion", "2.4.0"),
                ("dbHost", "mysql"),
                ("dbPort", "3306"),
                ("mysqlHost", "mysql"),
                ("mysqlPort", "3307"),
                ("pipelineDb", "mlpipeline"),
                ("mlmdDb", "metadb"),
                ("cacheDb", "cachedb"),
                ("bucketName", "mlpipeline"),
            ]),
            secrets: [
                (
                    MYSQL_SECRET.to_string(),
                    map(&[("username", "root"), ("password", "s3cr3t-db")]),
                ),
                (
                    ARTIFACT_SECRET.to_string(),
                    map(&[("accesskey", "AK-xyz"), ("secretkey", "SK-xyz")]),
                ),
                (
                    KATIB_SECRET.to_string(),
                    map(&[("MYSQL_ROOT_PASSWORD", "katib-pw")]),
                ),
            ]
            .into(),
            services: [
                (
                    "minio-service".to_string(),
                    vec![("http".to_string(), 9000)],
                ),
                (KATIB_SERVICE.to_string(), vec![("dbapi".to_string(), 3306)]),
            ]
            .into(),
            unreadable: Vec::new(),
        };
        let d = plan(&found, "kubeflow", "prod", " --context prod").unwrap();
        let text = render(&d, &repo());
        for secret in ["s3cr3t-db", "AK-xyz", "SK-xyz", "katib-pw"] {
            assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        }
        assert!(text.contains("kubectl --context prod -n kubeflow get secret mysql-secret -o jsonpath='{.data.password}' | base64 -d"), "{text}");
        let c = Config::from_toml(&text, Path::new("discovered.toml")).unwrap();
        assert_eq!(c.cluster, "prod");
        assert_eq!(c.databases[0].url, "mysql://root@mysql.kubeflow:3307");
        assert_eq!(
            c.databases[0].password_env.as_deref(),
            Some(DB_PASSWORD_ENV)
        );
        assert_eq!(
            c.databases[0].databases,
            ["mlpipeline", "metadb", "cachedb"]
        );
        assert_eq!(c.databases[1].url, "mysql://root@katib-mysql.kubeflow:3306");
        assert_eq!(
            c.buckets[0].endpoint.as_deref(),
            Some("http://minio-service.kubeflow:9000")
        );
        assert_eq!(c.buckets[0].bucket, "mlpipeline");
        assert_eq!(
            c.buckets[0].secret_access_key_env.as_deref(),
            Some(S3_SECRET_KEY_ENV)
        );
        assert!(c.kubernetes.enabled);
        assert_eq!(c.kubernetes.namespaces, ["kubeflow", "kubeflow-user-*"]);
    }

    #[test]
    fn postgres_seaweedfs_and_missing_secrets() {
        let found = Found {
            install_config: map(&[
                ("dbType", "postgres"),
                ("postgresHost", "postgres-service"),
                ("postgresPort", "5432"),
                ("pipelineDb", "pipelines"),
                ("bucketName", "artifacts"),
            ]),
            secrets: [(
                POSTGRES_SECRET.to_string(),
                map(&[("username", "kf user"), ("password", "pw")]),
            )]
            .into(),
            services: [(
                "seaweedfs".to_string(),
                vec![("filer".to_string(), 8888), ("s3".to_string(), 8333)],
            )]
            .into(),
            unreadable: Vec::new(),
        };
        let d = plan(&found, "kf", "kubeflow", "").unwrap();
        let c = Config::from_toml(&render(&d, &repo()), Path::new("x.toml")).unwrap();
        assert_eq!(c.databases.len(), 1);
        assert_eq!(c.databases[0].engine, Engine::Postgres);
        assert_eq!(
            c.databases[0].url,
            "postgres://kf%20user@postgres-service.kf:5432"
        );
        assert_eq!(c.databases[0].databases, ["pipelines", "metadb", "cachedb"]);
        assert_eq!(
            c.buckets[0].endpoint.as_deref(),
            Some("http://seaweedfs.kf:8333")
        );
        assert_eq!(
            c.kubernetes.namespaces,
            ["kf", "kubeflow", "kubeflow-user-*"]
        );
        assert!(
            d.notes.iter().any(|n| n.contains(ARTIFACT_SECRET)),
            "{:?}",
            d.notes
        );

        let bad = Found {
            install_config: map(&[("dbType", "oracle")]),
            ..Found::default()
        };
        assert!(plan(&bad, "kf", "c", "").is_err());
    }
}
