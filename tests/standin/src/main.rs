//! Runs the stand-in API server from a folder of YAML fixtures and prints a kubeconfig.

use clap::Parser;
use kube_standin::{Options, Server};
use std::path::PathBuf;
use std::time::Duration;

/// A stand-in Kubernetes API server for kfguard's tests.
#[derive(Parser)]
#[command(name = "kube-standin")]
struct Args {
    /// Folder of *.yaml/*.yml fixtures to seed (recursively).
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Write the kubeconfig here instead of printing it to stdout.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How long created CRDs take to become Established.
    #[arg(long, default_value_t = 0)]
    established_delay_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = Server::try_start(Options {
        established_delay: Duration::from_millis(args.established_delay_ms),
        port: args.port,
    })?;
    if let Some(dir) = &args.fixtures {
        let n = server.seed_dir(dir)?;
        eprintln!("kube-standin: seeded {n} objects from {}", dir.display());
    }
    match &args.kubeconfig {
        Some(path) => {
            server.write_kubeconfig(path)?;
            eprintln!("kube-standin: kubeconfig written to {}", path.display());
        }
        None => print!("{}", server.kubeconfig()),
    }
    eprintln!("kube-standin: serving on {}", server.url());
    server.log_requests_to_stderr(true);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })?;
    eprintln!("kube-standin: shutting down");
    Ok(())
}
