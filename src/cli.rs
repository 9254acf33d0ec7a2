//! Command-line interface: every flag and subcommand is defined once, here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::KeepPolicy;
use crate::config::Overrides;
use crate::output::OutputFormat;
use crate::restore::Existing;
use crate::snapshot::shard::Shard;
use crate::snapshot::Component;

/// Backup, restore and runbooks for Kubeflow clusters.
#[derive(Debug, Parser)]
#[command(
    name = "kfguard",
    version,
    about,
    propagate_version = true,
    after_help = "Examples:\n  kfguard init\n  kfguard --repo s3://kf-backups/prod snapshots\n  kfguard --output json show latest"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options that apply to every command. Each has a `KFGUARD_*` variable; flags win over it.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Config file [default: kfguard.toml, if present]
    #[arg(long, global = true, env = "KFGUARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Repository: a local path or s3://BUCKET/PREFIX
    #[arg(long, global = true, env = "KFGUARD_REPO", value_name = "URL")]
    pub repo: Option<String>,

    /// File holding the repository password
    #[arg(
        long,
        global = true,
        env = "KFGUARD_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub password_file: Option<PathBuf>,

    /// Cluster name: recorded in each snapshot a backup takes; `latest` means the newest snapshot
    /// of this cluster [default: KFGUARD_CLUSTER, then `cluster` in the config]
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,

    /// More log output (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only warnings and errors
    #[arg(short, long, global = true, env = "KFGUARD_QUIET", value_parser = clap::builder::BoolishValueParser::new())]
    pub quiet: bool,

    /// Output format of the command's result on stdout: text, json (one JSON document), or
    /// markdown (`runbook api`; other commands print text)
    #[arg(long, global = true, env = "KFGUARD_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Kubeconfig of the cluster [default: [kubernetes] kubeconfig, KUBECONFIG, ~/.kube/config, in-cluster]
    #[arg(long, global = true, env = "KFGUARD_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use [default: the current one]
    #[arg(long, global = true, env = "KFGUARD_KUBE_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
}

impl GlobalArgs {
    /// The flags the config layers over the file and the environment.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            repo: self.repo.clone(),
            password_file: self.password_file.clone(),
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            cluster: self.cluster.clone(),
        }
    }

    /// Settles the `KFGUARD_*` environment before the command line is parsed:
    /// - an empty variable is unset, as `KFGUARD_CLUSTER` always was;
    /// - `KFGUARD_QUIET` that is false, or overridden by `-v` on the command line, is unset, so
    ///   that clap does not see `-v` conflict with it: a flag beats the environment.
    pub fn prepare_env() {
        let verbose_flag = std::env::args().skip(1).take_while(|a| a != "--").any(|a| {
            a == "--verbose"
                || (a.len() > 1 && a.starts_with('-') && a[1..].chars().all(|c| c == 'v'))
        });
        for (name, value) in std::env::vars_os() {
            let name_str = name.to_string_lossy();
            if !name_str.starts_with("KFGUARD_") {
                continue;
            }
            let quiet_off = name_str == "KFGUARD_QUIET"
                && (verbose_flag
                    || ["0", "false", "no", "off", "n", "f"]
                        .contains(&value.to_string_lossy().to_ascii_lowercase().as_str()));
            if value.is_empty() || quiet_off {
                // Runs first thing in main, before any other thread exists.
                std::env::remove_var(&name);
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new encrypted repository
    #[command(
        after_help = "Example:\n  KFGUARD_PASSWORD_FILE=./password kfguard --repo ./kfguard-repo init"
    )]
    Init,

    /// Take a snapshot
    #[command(
        after_help = "Examples:\n  kfguard backup --tag nightly\n  kfguard backup --only databases --jobs 8\n  kfguard backup --metrics-file /var/lib/node-exporter/textfile/kfguard.prom\n  kfguard backup --pushgateway http://pushgateway.monitoring:9091\n  kfguard backup --only buckets --shard 0/4 --shard-run nightly-20261201\n  kfguard backup --merge-shards --shard-run nightly-20261201 --wait 6h"
    )]
    Backup(BackupArgs),

    /// Restore parts of a snapshot, in dependency order
    #[command(
        after_help = "Examples:\n  kfguard restore latest --only databases --dry-run\n  kfguard restore latest --database kfp/mlpipeline --into mlpipeline_restored\n  kfguard restore latest --bucket kfp/mlpipeline --into mlpipeline-restored --existing skip\n  kfguard restore latest --only databases --pushgateway http://pushgateway.monitoring:9091"
    )]
    Restore(RestoreArgs),

    /// List snapshots
    #[command(after_help = "Example:\n  kfguard snapshots --output json")]
    Snapshots(SnapshotsArgs),

    /// Show one snapshot: its manifest and files
    #[command(after_help = "Example:\n  kfguard show latest")]
    Show(ShowArgs),

    /// Write one file of a snapshot to stdout
    #[command(after_help = "Example:\n  kfguard dump latest kfguard.json")]
    Dump(DumpArgs),

    /// Write one snapshot as a self-contained tar archive, with its manifest and checksums
    #[command(
        after_help = "Examples:\n  kfguard export latest -o snap.tar\n  kfguard export latest -o - | ssh dr-host kfguard import -"
    )]
    Export(ExportArgs),

    /// Load an archive written by `export` into the repository as a new snapshot
    #[command(
        after_help = "Examples:\n  kfguard import snap.tar\n  kfguard --repo s3://kf-backups/dr import - < snap.tar\n\nThe snapshot is saved only once every file matched the archive's checksums."
    )]
    Import(ImportArgs),

    /// Verify the repository's structure and, optionally, its data
    #[command(after_help = "Examples:\n  kfguard check\n  kfguard check --read-data-subset 1/7")]
    Check(CheckArgs),

    /// Remove snapshots by a retention policy, and optionally prune unused data
    #[command(
        after_help = "Example:\n  kfguard forget --keep-daily 7 --keep-weekly 4 --prune --dry-run\n\nWith no --keep-* flag, the [retention] section of the config is used."
    )]
    Forget(ForgetArgs),

    /// Compare the live cluster with a snapshot: objects added, removed and changed
    #[command(
        after_help = "Examples:\n  kfguard diff latest\n  kfguard diff latest --output json"
    )]
    Diff(DiffArgs),

    /// Custom resource definitions: compare the live ones with pinned manifests
    #[command(
        subcommand,
        after_help = "Example:\n  kfguard crds diff --against crds.yaml"
    )]
    Crds(CrdsCommand),

    /// Read a live KFP install and print a ready kfguard.toml
    #[command(
        after_help = "Examples:\n  kfguard discover > kfguard.toml\n  kfguard discover --namespace kubeflow"
    )]
    Discover(DiscoverArgs),

    /// Runbooks: Rhai scripts of named steps, journaled and resumable
    #[command(
        subcommand,
        after_help = "Examples:\n  kfguard runbook list\n  kfguard runbook run verify-health --dry-run\n  kfguard runbook run restore-cluster --resume 20261201T031500Z-3fa2"
    )]
    Runbook(RunbookCommand),

    /// Inspect the configuration
    #[command(subcommand, after_help = "Example:\n  kfguard config show")]
    Config(ConfigCommand),

    /// Print the ClusterRole a backup or a restore needs for the config's [kubernetes] selection
    #[command(
        after_help = "Examples:\n  kfguard rbac backup > rbac-backup.yaml\n  kfguard rbac restore --config kfguard.toml | kubectl apply -f -\n\nAdd extra CRD groups to [kubernetes] crd_groups first: RBAC has no group wildcards."
    )]
    Rbac(RbacArgs),
    /// Collect what a support ticket needs into one tar.gz: pods, events, logs, CRDs, claims,
    /// workflows, kfguard's runs and config, secrets redacted
    #[command(
        after_help = "Examples:\n  kfguard support-bundle -o bundle.tar.gz\n  kfguard support-bundle -o - --log-lines 200 --since 6h > bundle.tar.gz"
    )]
    SupportBundle(SupportBundleArgs),

    /// Print shell completions
    #[command(
        after_help = "Example:\n  kfguard completions bash > /etc/bash_completion.d/kfguard"
    )]
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Back up only these parts (comma-separated) [default: every configured part]
    #[arg(long, value_enum, value_delimiter = ',', value_name = "PARTS")]
    pub only: Vec<Component>,

    /// Parallel connections per database source
    #[arg(long, env = "KFGUARD_JOBS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// Bucket requests in flight at once: HEADs of new and changed objects per source, and
    /// object downloads (GETs, whole or ranged) over the whole backup
    #[arg(long, env = "KFGUARD_TRANSFERS", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub transfers: u16,

    /// Tag the snapshot (repeatable)
    #[arg(long = "tag", value_name = "TAG", value_parser = parse_tag)]
    pub tags: Vec<String>,

    /// Read the sources and show what would be stored, without writing a snapshot
    #[arg(long)]
    pub dry_run: bool,

    /// Back up only shard I of N (0-based, e.g. `$(JOB_COMPLETION_INDEX)/4`) of the bucket keys,
    /// as a partial snapshot; needs `--only buckets` and a run id
    #[arg(
        long,
        env = "KFGUARD_SHARD",
        value_name = "I/N",
        conflicts_with = "merge_shards"
    )]
    pub shard: Option<Shard>,

    /// The run a shard belongs to, shared by the N shards of one night and by their merge
    /// (e.g. the Indexed Job's uid)
    #[arg(long, env = "KFGUARD_SHARD_RUN", value_name = "ID")]
    pub shard_run: Option<String>,

    /// Join the N shard snapshots of one run (--shard-run, or the newest unmerged run) into one
    /// snapshot, with the databases and Kubernetes backed up by this run and the cross-check
    #[arg(long)]
    pub merge_shards: bool,

    /// With --merge-shards: wait up to this long (e.g. 6h) for the run's shards to finish
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "merge_shards")]
    pub wait: Option<std::time::Duration>,

    /// Back up a local folder under /files/ (for testing and ad-hoc use)
    #[arg(long, hide = true, value_name = "DIR")]
    pub from_dir: Vec<PathBuf>,

    /// Back up a command's stdout as PATH=COMMAND (run with sh -c); a non-zero exit fails the backup
    #[arg(long, hide = true, value_name = "PATH=COMMAND")]
    pub from_command: Vec<String>,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id (or a unique prefix), or `latest`
    pub snapshot: String,

    /// Restore only these parts (comma-separated) [default: every part in the snapshot]
    #[arg(long, value_enum, value_delimiter = ',', value_name = "PARTS")]
    pub only: Vec<Component>,

    /// Restore only this database: SOURCE/DB, or SOURCE for all of a source's databases (repeatable)
    #[arg(long = "database", value_name = "SRC/DB")]
    pub databases: Vec<String>,

    /// Restore the database under another name (needs exactly one database selected); with
    /// `--only buckets`, the bucket to upload into (needs exactly one bucket selected)
    #[arg(long, value_name = "NAME")]
    pub into: Option<String>,

    /// Restore only this bucket: SOURCE/BUCKET, or SOURCE (repeatable)
    #[arg(long = "bucket", value_name = "SRC/BUCKET")]
    pub buckets: Vec<String>,

    /// Restore only objects whose key starts with this prefix
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,

    /// What to do with an object that already exists in the target [default: fail for bucket
    /// objects, skip for Kubernetes objects]
    #[arg(long, value_enum)]
    pub existing: Option<Existing>,

    /// Restore Kubernetes objects of namespace FROM into namespace TO (repeatable)
    #[arg(long, value_name = "FROM:TO", value_parser = parse_namespace_map)]
    pub namespace_map: Vec<(String, String)>,

    /// Restore only these Kubernetes kinds: Kind or group/Kind, comma-separated (e.g.
    /// ConfigMap,kubeflow.org/Profile)
    #[arg(long, value_delimiter = ',', value_name = "KINDS", value_parser = crate::kube::kinds::parse_kind)]
    pub include_kinds: Vec<String>,

    /// Restore KFP ScheduledWorkflows and Argo CronWorkflows enabled; by default they come back
    /// disabled, so that a restore does not start a storm of catch-up runs
    #[arg(long)]
    pub resume_schedules: bool,

    /// Parallel connections per database
    #[arg(long, env = "KFGUARD_JOBS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// Bucket objects restored at once (each read from the repository, uploaded and verified)
    #[arg(long, env = "KFGUARD_TRANSFERS", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub transfers: u16,

    /// Replace the tables of a database that already has some
    #[arg(long)]
    pub force: bool,

    /// Show what would be restored, change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Also list snapshots left incomplete by a failed or interrupted backup
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Snapshot id (or a unique prefix), or `latest`
    pub snapshot: String,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Snapshot id (or a unique prefix), or `latest`
    pub snapshot: String,
    /// Path inside the snapshot, e.g. kfguard.json
    pub path: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Snapshot id (or a unique prefix), or `latest`
    pub snapshot: String,
    /// Archive to write; `-` for stdout
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Archive to read; `-` for stdin
    #[arg(value_name = "FILE")]
    pub archive: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Read and verify every data pack
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,

    /// Read and verify the N-th of M parts of the data packs (e.g. 1/7)
    #[arg(long, value_name = "N/M", value_parser = crate::repo::check::parse_subset)]
    pub read_data_subset: Option<(u32, u32)>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Snapshot id (or a unique prefix), or `latest`
    pub snapshot: String,
}

#[derive(Debug, Subcommand)]
pub enum RunbookCommand {
    /// The runbooks of [runbooks] dir, each with the first line of its header comment
    List,
    /// Compile and lint a runbook without running it; lists its parameters and steps
    #[command(after_help = "Example:\n  kfguard runbook check runbooks/verify-health.rhai")]
    Check(RunbookCheckArgs),
    /// Run a runbook, step by step
    #[command(
        after_help = "Examples:\n  kfguard runbook run verify-health --set namespace=kubeflow\n  kfguard runbook run reconcile-crds --dry-run\n  kfguard runbook run restore-cluster --resume RUN_ID\n  kfguard runbook run verify-health --report run.json --junit run.xml\n  kfguard runbook run nightly --metrics-file /var/lib/node-exporter/textfile/kfguard.prom\n\nExit code 0: every step passed; 1: a step failed; 2: the script does not compile or a parameter is wrong; 3: warnings or findings."
    )]
    Run(RunbookRunArgs),
    /// Past runs in [runbooks] state_dir, with their state
    Runs,
    /// The host API reference, generated from the engine's registry: markdown, or JSON with
    /// `--output json`
    #[command(
        after_help = "Examples:\n  kfguard runbook api --output markdown\n  kfguard runbook api --output json"
    )]
    Api(RunbookApiArgs),
}

#[derive(Debug, Args)]
pub struct RunbookCheckArgs {
    /// A runbook name (from [runbooks] dir) or a .rhai file
    pub runbook: String,
}

#[derive(Debug, Args)]
pub struct RunbookRunArgs {
    /// A runbook name (from [runbooks] dir) or a .rhai file
    pub runbook: String,
    /// Set a parameter the runbook declares with param(...); repeat for more
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Plan every change instead of making it; reads stay real
    #[arg(long)]
    pub dry_run: bool,
    /// Answer yes to every confirm(...)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Resume a run: skip the steps that already succeeded
    #[arg(long, value_name = "RUN_ID")]
    pub resume: Option<String>,
    /// With --resume: go on although the script changed since the run began
    #[arg(long, requires = "resume")]
    pub force: bool,
    /// Stop the run after this long, e.g. 30m (finally steps still run)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Write the whole run as JSON: steps, findings, plan and timings
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write the run as JUnit XML for CI (Jenkins, GitLab): one testcase per step, failed and
    /// skipped steps marked, messages and findings in each step's output
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the drill report: one self-contained HTML page with the steps on a timeline, the
    /// findings by severity, the verified counts and the RTO
    #[arg(long, value_name = "FILE")]
    pub report_html: Option<PathBuf>,
    /// Exit 3 from this severity of finding up, or exit 1 (`error`: error findings fail the run)
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<FailOn>,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// Where `backup`, `restore` and `runbook run` write their Prometheus metrics, whatever the
/// run's outcome. Each flag is layered over its `KFGUARD_*` variable and `[metrics]` in the
/// config; see the README's Metrics section for the families.
#[derive(Debug, Args, Clone, Default)]
pub struct MetricsArgs {
    /// Write the run's metrics to this textfile for node-exporter's textfile collector
    /// (replaced atomically) [env: KFGUARD_METRICS_FILE; config: [metrics] file]
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,

    /// Push the run's metrics to this Pushgateway, grouped by job and cluster; a failed push
    /// is a warning (exit 3) [env: KFGUARD_PUSHGATEWAY; config: [metrics] pushgateway]
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
}

/// `--fail-on`: the finding severity from which a run counts as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Warning,
    Error,
}

/// `runbook api` prints markdown (as in runbooks/README.md) by default, and rhai's function
/// metadata with `--output json`.
#[derive(Debug, Args)]
pub struct RunbookApiArgs {
    /// The old spelling of `--output markdown|json`; it wins over `--output` when given
    #[arg(long = "format", value_enum, hide = true)]
    pub format: Option<ApiOutput>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApiOutput {
    Markdown,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum CrdsCommand {
    #[command(
        after_help = "Example:\n  kfguard crds diff --against crds.yaml\n\nExit code 0: the live CRDs match; 3: drift; 2: the pinned file is missing, holds no CRD, or holds something other than CRDs."
    )]
    /// Compare the live CRDs with pinned manifests: missing CRDs, served and storage versions,
    /// schema changes
    Diff(CrdsDiffArgs),
}

#[derive(Debug, Args)]
pub struct CrdsDiffArgs {
    /// YAML file with the pinned CustomResourceDefinitions (several documents)
    #[arg(long, value_name = "FILE")]
    pub against: PathBuf,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Namespace of the KFP install
    #[arg(long, short = 'n', default_value = "kubeflow")]
    pub namespace: String,
}

fn parse_namespace_map(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(':') => {
            Ok((a.to_string(), b.to_string()))
        }
        _ => Err(format!(
            "`{s}` is not FROM:TO, e.g. kubeflow-user-alice:alice-restored"
        )),
    }
}

fn parse_tag(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("a tag may not be empty".into());
    }
    if s.contains(',') {
        return Err(format!(
            "`{s}`: a tag may not contain commas; repeat --tag instead"
        ));
    }
    if crate::snapshot::is_reserved_tag(s) {
        return Err(format!(
            "`{s}`: tags starting with `kfguard` are reserved for kfguard's own; choose another tag"
        ));
    }
    Ok(s.to_string())
}

#[derive(Debug, Args, Default)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub keep: KeepPolicy,
    /// Also remove data no snapshot uses any more
    #[arg(long)]
    pub prune: bool,
    /// Show what would be removed, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration, secrets redacted
    #[command(
        after_help = "Example:\n  KFGUARD_REPO=s3://kf-backups/prod kfguard config show --output json"
    )]
    Show,
}

#[derive(Debug, Args)]
pub struct RbacArgs {
    /// Which role: what a backup reads, or what a restore reads and writes
    #[arg(value_enum)]
    pub role: RbacRole,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RbacRole {
    Backup,
    Restore,
}

#[derive(Debug, Args)]
pub struct SupportBundleArgs {
    /// Where to write the bundle (a .tar.gz); `-` writes it to stdout
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,

    /// The last lines of each container's log
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..))]
    pub log_lines: i64,

    /// Only log lines newer than this, e.g. 2h
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,

    /// How many of the last runbook runs to include, with their journals
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub runs: usize,

    /// Leave the cluster out: only kfguard's own state, config and version
    #[arg(long)]
    pub no_cluster: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate completions for
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
