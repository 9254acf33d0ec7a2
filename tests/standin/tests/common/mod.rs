//! What the stand-in's tests share: a `kube::Client` and a `kubectl` pointed at a running server.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kube_standin::Server;
use std::path::PathBuf;

pub async fn client(server: &Server) -> Client {
    // In a workspace build rustls has two crypto providers linked (kfguard's S3 client brings
    // the other), and then needs one chosen; an error means one already is.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("kube-standin-{}-{}", std::process::id(), server.port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kubeconfig");
    server.write_kubeconfig(&path).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    // The tests see every answer of the server, as kfguard does: no retry inside the client.
    config.default_retry = false;
    Client::try_from(config).unwrap()
}

/// The HTTP code, reason and message of a failed call.
pub fn code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String, String) {
    match r {
        Err(kube::Error::Api(e)) => (e.code, e.reason, e.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// `kubectl` with its own kubeconfig and HOME (so no cache is shared between tests).
pub struct Kubectl {
    dir: PathBuf,
    kubeconfig: PathBuf,
}

/// What one `kubectl` run ended with.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub fn new(server: &Server) -> Self {
        let dir = std::env::temp_dir().join(format!("kube-standin-kubectl-{}-{}", std::process::id(), server.port()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        Kubectl { dir, kubeconfig }
    }

    /// Runs kubectl (scripts/services.sh installs it; a missing one is a failure, not a skip).
    pub fn run(&self, args: &[&str]) -> Run {
        let out = std::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.dir)
            .output()
            .expect("run kubectl");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    /// Runs kubectl and expects exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, Some(0), "kubectl {args:?}: {}{}", r.stdout, r.stderr);
        r.stdout
    }
}
