//! The commands: each module turns parsed arguments and the config into one result on stdout.

mod backup;
mod check;
mod config;
mod crds;
mod diff;
mod discover;
mod export;
mod forget;
mod import;
mod init;
mod metrics;
mod rbac;
mod restore;
mod runbook;
mod show;
mod snapshots;
mod support_bundle;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::config::Config;
use crate::repo::{self, Location, Repo, RepoError};
use crate::snapshot::read::IndexedRepo;
use crate::snapshot::{select, Component};
use crate::{Outcome, Usage};

/// What every command gets: the effective config, the global flags and a tokio runtime.
pub struct Context {
    pub config: Config,
    pub global: GlobalArgs,
    pub rt: tokio::runtime::Runtime,
}

impl Context {
    /// Resolves the repository location (probing S3) without opening it.
    pub fn location(&self) -> anyhow::Result<Location> {
        Location::resolve(&self.config.repository, self.rt.handle())
            .map_err(|e| Usage::mark_if(e, RepoError::is_usage))
    }

    /// Opens the repository with its full index, to read file contents, and selects one
    /// complete snapshot: an id, a unique prefix, or `latest`, the newest snapshot of the
    /// configured cluster that holds every one of `parts`.
    pub fn open_snapshot(
        &self,
        id: &str,
        parts: &[Component],
    ) -> anyhow::Result<(IndexedRepo, rustic_core::repofile::SnapshotFile, Location)> {
        let (repo, location) = self.open()?;
        let latest = select::Latest::of(&self.config.cluster, parts);
        let (repo, snap) = select::open_one(repo, &location.display, id, &latest)?;
        Ok((repo, snap, location))
    }

    /// Opens the configured repository.
    pub fn open(&self) -> anyhow::Result<(Repo, Location)> {
        repo::open(&self.config.repository, self.rt.handle(), self.global.quiet)
            .map_err(|e| Usage::mark_if(e, RepoError::is_usage))
    }
}

pub fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    // Completions need no config: they must work before any is written.
    if let Command::Completions(args) = &cli.command {
        use clap::CommandFactory;
        clap_complete::generate(
            args.shell,
            &mut Cli::command(),
            "kfguard",
            &mut std::io::stdout(),
        );
        return Ok(Outcome::Ok);
    }
    let config = Config::load(&cli.global.overrides()).map_err(Usage::new)?;
    // Repository code is synchronous (rustic_core); it runs on this thread and reaches async
    // clients through the runtime's handle, never from inside a tokio worker.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(4)
        .thread_name("kfguard-io")
        .build()?;
    // Commands that write stop by themselves at a safe point; the others stop at once.
    let graceful = matches!(
        cli.command,
        Command::Init
            | Command::Backup(_)
            | Command::Restore(_)
            | Command::Forget(_)
            | Command::Import(_)
    );
    crate::interrupt::install(rt.handle(), graceful)?;
    let ctx = Context {
        config,
        global: cli.global,
        rt,
    };
    match cli.command {
        Command::Init => init::run(&ctx),
        Command::Backup(args) => backup::run(&ctx, &args),
        Command::Restore(args) => restore::run(&ctx, &args),
        Command::Snapshots(args) => snapshots::run(&ctx, &args),
        Command::Show(args) => show::run(&ctx, &args),
        Command::Dump(args) => show::dump(&ctx, &args),
        Command::Export(args) => export::run(&ctx, &args),
        Command::Import(args) => import::run(&ctx, &args),
        Command::Check(args) => check::run(&ctx, &args),
        Command::Forget(args) => forget::run(&ctx, &args),
        Command::Diff(args) => diff::run(&ctx, &args),
        Command::Crds(cmd) => crds::run(&ctx, &cmd),
        Command::Discover(args) => discover::run(&ctx, &args),
        Command::Runbook(cmd) => runbook::run(&ctx, &cmd),
        Command::Config(cmd) => config::run(&ctx, &cmd),
        Command::Rbac(args) => rbac::run(&ctx, &args),
        Command::SupportBundle(args) => support_bundle::run(&ctx, &args),
        Command::Completions(_) => unreachable!("handled above"),
    }
}
