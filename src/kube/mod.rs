//! The cluster client: connecting, discovery-driven selection, paged listing and sanitising of
//! the objects a Kubeflow cluster cannot rebuild by itself, server-side apply and waits, and
//! the layout of the objects in a snapshot.

pub(crate) mod apply;
pub mod catalog;
pub mod certs;
pub mod kinds;
pub mod live;
pub mod object;
pub mod quantity;
pub mod rbac;
pub mod read;
pub(crate) mod wait;
pub mod workflows;

use std::time::Duration;

use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::{Client, Config};
use backon::{ExponentialBuilder, Retryable};

use crate::config::KubernetesConfig;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(
        "kubernetes: cannot use kubeconfig {path}: {detail}; fix the file or point [kubernetes] kubeconfig (KUBECONFIG) at another"
    )]
    Kubeconfig { path: String, detail: String },
    #[error(
        "kubernetes: no cluster to talk to ({detail}); set [kubernetes] kubeconfig or KUBECONFIG, or run kfguard inside the cluster"
    )]
    NoCluster { detail: String },
    #[error("kubernetes API {server}: {what}: {detail}")]
    Api {
        server: String,
        what: String,
        detail: String,
        /// The HTTP status of a Status error, when the server answered with one.
        code: Option<u16>,
    },
    #[error("{path}: {detail}")]
    BadObject { path: String, detail: String },
}

impl KubeError {
    pub fn api(server: &str, what: impl Into<String>, e: &::kube::Error) -> Self {
        let (detail, code) = match e {
            ::kube::Error::Api(r) => (
                format!("{} ({} {})", r.message, r.code, r.reason),
                Some(r.code),
            ),
            other => (describe(other), None),
        };
        Self::Api {
            server: server.into(),
            what: what.into(),
            detail,
            code,
        }
    }

    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// A problem of the configuration rather than of the cluster.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Kubeconfig { .. } | Self::NoCluster { .. })
    }
}

/// The full chain of a client error, which kube's own message often cuts short.
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = inner.source();
    }
    s
}

/// A connected cluster: the client and the server address, for messages.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub server: String,
}

impl Cluster {
    /// Connects with the configured kubeconfig and context, else `KUBECONFIG`, `~/.kube/config`
    /// or the in-cluster service account. Nothing is sent yet.
    pub async fn connect(cfg: &KubernetesConfig) -> Result<Self, KubeError> {
        let options = KubeConfigOptions {
            context: cfg.context.clone(),
            ..Default::default()
        };
        let mut config = match &cfg.kubeconfig {
            Some(path) => {
                let bad = |detail: String| KubeError::Kubeconfig {
                    path: path.display().to_string(),
                    detail,
                };
                let kc = Kubeconfig::read_from(path).map_err(|e| bad(describe(&e)))?;
                Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| bad(describe(&e)))?
            }
            None if cfg.context.is_some() => {
                Config::from_kubeconfig(&options)
                    .await
                    .map_err(|e| KubeError::NoCluster {
                        detail: describe(&e),
                    })?
            }
            None => Config::infer().await.map_err(|e| KubeError::NoCluster {
                detail: describe(&e),
            })?,
        };
        // A wedged API server must fail the backup, not hang the nightly job.
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(60));
        // kfguard retries by itself (see `retry`), with its own backoff and count; kube's
        // built-in retry of 429/503/504 would multiply the tries and hide them from it.
        config.default_retry = false;
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let client = Client::try_from(config).map_err(|e| KubeError::NoCluster {
            detail: describe(&e),
        })?;
        Ok(Self { client, server })
    }

    pub fn err(&self, what: impl Into<String>, e: &::kube::Error) -> KubeError {
        KubeError::api(&self.server, what, e)
    }
}

/// Whether a failed call is worth another try: throttling, server errors, lost connections.
pub fn transient(e: &::kube::Error) -> bool {
    match e {
        ::kube::Error::Api(r) => matches!(r.code, 429 | 500 | 502 | 503 | 504),
        ::kube::Error::HyperError(_) | ::kube::Error::Service(_) => true,
        _ => false,
    }
}

/// How kfguard retries a Kubernetes call: six tries in all, backing off from 200 ms to 5 s
/// between them (200, 400, 800, 1600, 3200 ms): API servers answer 429 under load and 5xx
/// during upgrades.
pub(crate) const RETRY: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(200))
    .with_max_delay(Duration::from_secs(5))
    .with_factor(2.0)
    .with_max_times(5);

/// Runs `f` until it succeeds, fails for good (see [`transient`]), or has been tried as often
/// as [`RETRY`] allows.
pub async fn retry<T, F, Fut>(f: F) -> Result<T, ::kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ::kube::Error>>,
{
    f.retry(RETRY)
        .when(transient)
        .notify(|e, delay| tracing::debug!("kubernetes call failed ({e}); retrying in {delay:?}"))
        .await
}
