//! The command line: help, config layering and errors, and exit codes for bad usage.

use crate::common;

use common::{code, error_line, stderr, Kf};

#[test]
fn every_command_has_help_with_an_example() {
    let kf = Kf::local();
    for cmd in [
        vec!["init"],
        vec!["backup"],
        vec!["snapshots"],
        vec!["show"],
        vec!["dump"],
        vec!["check"],
        vec!["forget"],
        vec!["config", "show"],
        vec!["completions"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let out = kf.ok(&args);
        assert!(
            out.contains("Example"),
            "{cmd:?} --help has no example:\n{out}"
        );
    }
}

#[test]
fn malformed_toml_is_a_config_error_with_file_and_line() {
    let kf = Kf::local();
    kf.write(
        "kfguard.toml",
        "cluster = \"a\"\n[repository\nurl = \"x\"\n",
    );
    let out = kf.run(&["snapshots"]);
    assert_eq!(code(&out), 2);
    let line = error_line(&out);
    assert!(line.contains("kfguard.toml:2:"), "{line}");
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let kf = Kf::local();
    kf.write(
        "kfguard.toml",
        "cluster = \"a\"\n\n[repository]\nurll = \"./r\"\n",
    );
    let out = kf.run(&["config", "show"]);
    assert_eq!(code(&out), 2);
    let line = error_line(&out);
    assert!(
        line.contains("kfguard.toml:4:1: unknown key `urll`"),
        "{line}"
    );
    assert!(
        line.contains("`url`"),
        "the message lists the valid keys: {line}"
    );
}

#[test]
fn bad_value_names_the_key() {
    let kf = Kf::local();
    kf.write(
        "kfguard.toml",
        "[[databases]]\nname = \"kfp\"\nengine = \"oracle\"\nurl = \"x\"\n",
    );
    let out = kf.run(&["config", "show"]);
    assert_eq!(code(&out), 2);
    let line = error_line(&out);
    assert!(line.contains("kfguard.toml:3:"), "{line}");
    assert!(line.contains("`engine`"), "{line}");
}

#[test]
fn explicit_config_that_does_not_exist_fails() {
    let kf = Kf::local();
    let out = kf.run(&["--config", "nope.toml", "config", "show"]);
    assert_eq!(code(&out), 2);
    assert!(error_line(&out).contains("nope.toml"));
}

#[test]
fn layering_flag_over_env_over_file() {
    let kf = Kf::local();
    kf.write(
        "kfguard.toml",
        "cluster = \"from-file\"\n[repository]\nurl = \"./from-file\"\n",
    );
    // The test harness sets KFGUARD_REPO; file < env < flag.
    let v = kf.json(&["config", "show"]);
    assert_eq!(
        v["repository"]["url"],
        kf.repo.as_str(),
        "env beats the file"
    );
    assert_eq!(v["cluster"], "from-file");
    let v = kf.json(&["--repo", "./from-flag", "config", "show"]);
    assert_eq!(v["repository"]["url"], "./from-flag", "the flag beats env");
    let out = kf
        .cmd()
        .env_remove("KFGUARD_REPO")
        .args(["--output", "json", "config", "show"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["repository"]["url"], "./from-file",
        "the file applies when nothing overrides it"
    );
    let v = kf
        .cmd()
        .env("KFGUARD_CLUSTER", "from-env")
        .args(["--output", "json", "config", "show"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(v["cluster"], "from-env");
    let v = kf
        .cmd()
        .env("KFGUARD_CLUSTER", "from-env")
        .args([
            "--cluster",
            "from-flag",
            "--output",
            "json",
            "config",
            "show",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(v["cluster"], "from-flag", "--cluster beats KFGUARD_CLUSTER");
}

#[test]
fn config_show_redacts_secrets() {
    let kf = Kf::local();
    kf.write(
        "kfguard.toml",
        "[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"mysql://root:hunter2@db:3306\"\npassword_env = \"KFP_DB_PASSWORD\"\n",
    );
    for format in ["text", "json"] {
        let out = kf.ok(&["--output", format, "config", "show"]);
        assert!(
            !out.contains("hunter2"),
            "{format} leaks the password:\n{out}"
        );
        assert!(out.contains("root:***@db"), "{format}:\n{out}");
        assert!(
            out.contains("KFP_DB_PASSWORD"),
            "env references stay visible:\n{out}"
        );
    }
}

#[test]
fn missing_password_is_a_usage_error() {
    let kf = Kf::local();
    let out = kf
        .cmd()
        .env_remove("KFGUARD_PASSWORD_FILE")
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        error_line(&out).contains("no repository password"),
        "{}",
        error_line(&out)
    );
}

#[test]
fn password_file_that_does_not_exist_is_named() {
    let kf = Kf::local();
    let out = kf.run(&["--password-file", "missing-pw", "init"]);
    assert_eq!(code(&out), 2);
    assert!(
        error_line(&out).contains("missing-pw"),
        "{}",
        error_line(&out)
    );
}

#[test]
fn forget_without_policy_is_a_usage_error() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    let out = kf.run(&["forget"]);
    assert_eq!(code(&out), 2);
    assert!(error_line(&out).contains("no retention policy"));
}

#[test]
fn bad_subset_is_rejected_by_the_parser() {
    let kf = Kf::local();
    let out = kf.run(&["check", "--read-data-subset", "9/3"]);
    assert_eq!(code(&out), 2);
}

#[test]
fn completions_print_a_script() {
    let kf = Kf::local();
    let out = kf.ok(&["completions", "bash"]);
    assert!(out.contains("kfguard"), "{out}");
}

#[test]
fn bad_from_command_is_a_usage_error() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    let out = kf.run(&["backup", "--from-command", "../escape=echo hi"]);
    assert_eq!(code(&out), 2);
    assert!(error_line(&out).contains("`..`"), "{}", error_line(&out));
}

#[test]
fn forget_that_keeps_nothing_is_refused() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    kf.ok(&["backup", "--from-command", "a=echo a"]);
    let out = kf.run(&["forget", "--keep-daily", "0"]);
    assert_eq!(code(&out), 2);
    assert!(
        error_line(&out).contains("keeps no snapshot"),
        "{}",
        error_line(&out)
    );
    assert_eq!(kf.json(&["snapshots"]).as_array().unwrap().len(), 1);
}

#[test]
fn empty_or_comma_tags_are_usage_errors() {
    let kf = Kf::local();
    for tag in ["", "a,b"] {
        let out = kf.run(&["backup", "--tag", tag]);
        assert_eq!(code(&out), 2, "{tag:?}");
    }
}

/// Tags starting with `kfguard` carry meaning (scope, incompleteness): a user's tag of that
/// form could move a snapshot to another retention group or hide it, so it is refused.
#[test]
fn reserved_kfguard_tags_are_usage_errors_and_save_nothing() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    for tag in [
        "kfguard-scope=buckets",
        "kfguard-incomplete",
        "kfguard",
        "KFGuard-mine",
    ] {
        let out = kf.run(&["backup", "--from-command", "a=echo a", "--tag", tag]);
        assert_eq!(code(&out), 2, "{tag}");
        assert!(
            common::stderr(&out).contains("reserved"),
            "{tag}: {}",
            common::stderr(&out)
        );
    }
    assert_eq!(kf.json(&["snapshots", "--all"]), serde_json::json!([]));
    // Other tags, even ones that mention kfguard later, are fine.
    kf.ok(&[
        "backup",
        "--from-command",
        "a=echo a",
        "--tag",
        "nightly-kfguard",
    ]);
}

#[test]
fn config_show_redacts_query_passwords() {
    let kf = Kf::local();
    kf.write(
        "kfguard.toml",
        "[[databases]]\nname = \"kfp\"\nengine = \"postgres\"\nurl = \"postgres://u@h:5432/x?password=hunter2\"\n",
    );
    let out = kf.ok(&["config", "show"]);
    assert!(!out.contains("hunter2"), "{out}");
}

#[test]
fn help_examples_stay_one_command_per_line_when_piped() {
    let kf = Kf::local();
    for cmd in [
        vec!["init"],
        vec!["backup"],
        vec!["restore"],
        vec!["snapshots"],
        vec!["show"],
        vec!["dump"],
        vec!["check"],
        vec!["forget"],
        vec!["diff"],
        vec!["crds", "diff"],
        vec!["discover"],
        vec!["config", "show"],
        vec!["completions"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let out = kf.ok(&args);
        let examples: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.starts_with("Example"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .collect();
        assert!(!examples.is_empty(), "{cmd:?}: no example\n{out}");
        for line in examples {
            assert!(
                line.starts_with("  kfguard ") || line.starts_with("  KFGUARD_"),
                "{cmd:?} --help wraps an example onto `{line}`:\n{out}"
            );
        }
    }
}

#[test]
fn existing_has_one_spelling_in_help_and_parser() {
    let kf = Kf::local();
    let help = kf.ok(&["restore", "--help"]);
    assert!(help.contains("overwrite"), "{help}");
    assert!(!help.contains("update"), "{help}");
    let out = kf.run(&["restore", "latest", "--existing", "update"]);
    assert_eq!(code(&out), 2);
    let err = common::stderr(&out);
    assert!(
        err.contains("invalid value 'update'") && err.contains("overwrite"),
        "the refusal names the spelling to use: {err}"
    );
}

#[test]
fn forget_prune_dry_run_says_what_it_would_repack() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    kf.ok(&["backup", "--from-command", "a=echo a"]);
    kf.ok(&["backup", "--from-command", "a=echo b"]);
    let out = kf.ok(&["forget", "--keep-last", "1", "--prune", "--dry-run"]);
    assert!(out.contains("would repack"), "{out}");
    assert!(
        !out.contains("repacked"),
        "a dry run repacks nothing:\n{out}"
    );
    assert_eq!(kf.json(&["snapshots"]).as_array().unwrap().len(), 2);
}

#[test]
fn sigint_stops_a_backup_with_no_snapshot_and_a_usable_repository() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    let started = kf.path().join("started");
    // A source that never ends, as a slow dump would.
    let source = format!(
        "slow=touch {}; while :; do echo data; sleep 0.02; done",
        started.display()
    );
    let child = kf
        .std_cmd()
        .args(["backup", "--from-command", &source])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_for_file(&started, 60);
    std::thread::sleep(std::time::Duration::from_millis(300));
    common::signal(&child, "INT");
    let out = common::wait_for(child, 30);
    assert_eq!(code(&out), 130, "{}", common::stderr(&out));
    let line = error_line(&out);
    assert!(
        line.contains("interrupted by SIGINT") && line.contains("no snapshot was saved"),
        "{line}"
    );
    assert!(
        out.stdout.is_empty(),
        "no result is printed for a stopped backup"
    );
    assert_eq!(kf.json(&["snapshots"]), serde_json::json!([]));

    // Nothing is left locked or broken: the next backup works, and stock restic agrees.
    kf.ok(&["backup", "--from-command", "a=echo after"]);
    assert_eq!(kf.json(&["snapshots"]).as_array().unwrap().len(), 1);
    let check = std::process::Command::new(common::restic())
        .args(["check", "--no-cache"])
        .env("RESTIC_REPOSITORY", &kf.repo)
        .env("RESTIC_PASSWORD", common::PASSWORD)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn postgres_key_value_connection_string_is_refused_and_its_password_never_printed() {
    let kf = Kf::local();
    kf.write(
        "kfguard.toml",
        "[[databases]]\nname = \"mlmd\"\nengine = \"postgres\"\nurl = \"host=db user=mlmd password=hunter2 dbname=metadb\"\n",
    );
    for args in [
        vec!["config", "show"],
        vec!["--output", "json", "config", "show"],
        vec!["backup", "--only", "databases"],
    ] {
        let out = kf.run(&args);
        assert_eq!(code(&out), 2, "{args:?}");
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(
            !all.contains("hunter2"),
            "{args:?} leaks the password:\n{all}"
        );
        let line = error_line(&out);
        assert!(
            line.contains("kfguard.toml:4:7: invalid config: `databases[0].url`"),
            "{line}"
        );
        assert!(
            line.contains("postgres://") && line.contains("password_env"),
            "{line}"
        );
    }
}

#[test]
fn a_database_listed_twice_in_one_source_is_refused_at_load() {
    let kf = Kf::local();
    kf.write(
        "kfguard.toml",
        "[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"mysql://root@db:3306\"\ndatabases = [\"mlpipeline\", \"cachedb\", \"mlpipeline\"]\n",
    );
    let out = kf.run(&["config", "show"]);
    assert_eq!(code(&out), 2);
    let line = error_line(&out);
    assert!(
        line.contains("kfguard.toml:5:39: invalid config: `databases[0].databases[2]`"),
        "{line}"
    );
    assert!(line.contains("`mlpipeline` is listed twice"), "{line}");
}

/// Each of these passed `config show` and failed only once a backup reached the source.
#[test]
fn config_mistakes_a_backup_would_hit_fail_at_load_with_file_line_and_key() {
    let kf = Kf::local();
    let db = |extra: &str| {
        format!("[[databases]]\nname = \"kfp\"\nengine = \"postgres\"\nurl = \"postgres://u@db:5432\"\n{extra}")
    };
    let cases = [
        (
            "[[databases]]\nname = \"kfp\"\nengine = \"postgres\"\nurl = \"mysql://root@db:3306\"\n".to_string(),
            "kfguard.toml:4:7: invalid config: `databases[0].url`",
            "engine = \"mysql\"",
        ),
        (
            db("include_tables = [\"run*\", \"jobs[\"]\n"),
            "kfguard.toml:5:27: invalid config: `databases[0].include_tables[1]`",
            "`jobs[` is not a valid glob",
        ),
        (
            db("exclude_tables = [\"[z-a]\"]\n"),
            "kfguard.toml:5:19: invalid config: `databases[0].exclude_tables[0]`",
            "not a valid glob",
        ),
        (
            "[kubernetes]\nnamespaces = [\"kubeflow\", \"kubeflow-user-[\"]\n".to_string(),
            "kfguard.toml:2:27: invalid config: `kubernetes.namespaces[1]`",
            "`kubeflow-user-[` is not a valid glob",
        ),
        (
            "[kubernetes]\ncrd_groups = [\"kubeflow.org\", \"[z-a].io\"]\n".to_string(),
            "kfguard.toml:2:31: invalid config: `kubernetes.crd_groups[1]`",
            "use `*`, `?` and `[...]`",
        ),
        (
            "[repository.s3]\nendpoint = \"minio.kubeflow:9000\"\n".to_string(),
            "kfguard.toml:2:12: invalid config: `repository.s3.endpoint`",
            "not an http:// or https:// URL",
        ),
        (
            "[[buckets]]\nname = \"kfp\"\nbucket = \"mlpipeline\"\nendpoint = \"seaweedfs\"\n"
                .to_string(),
            "kfguard.toml:4:12: invalid config: `buckets[0].endpoint`",
            "http://minio.kubeflow:9000",
        ),
    ];
    for (toml, at, hint) in cases {
        kf.write("kfguard.toml", &toml);
        let out = kf.run(&["config", "show"]);
        assert_eq!(code(&out), 2, "{toml}");
        let line = error_line(&out);
        assert!(line.contains(at) && line.contains(hint), "{toml}\n{line}");
    }
}

#[test]
fn an_unknown_kind_in_include_kinds_is_refused_before_the_repository_is_opened() {
    let kf = Kf::local();
    // No repository exists: the kinds are checked first.
    for (kinds, hint) in [
        (
            "core/Pod",
            "it captures Namespace, ServiceAccount, ConfigMap",
        ),
        ("ConfigMap,configmaps", "write the kind, ConfigMap"),
        ("Config Map", "write Kind or group/Kind"),
    ] {
        let out = kf.run(&["restore", "latest", "--include-kinds", kinds, "--dry-run"]);
        assert_eq!(code(&out), 2, "{kinds}");
        let err = stderr(&out);
        assert!(
            err.contains("--include-kinds") && err.contains(hint),
            "{kinds}:\n{err}"
        );
        assert!(!err.contains("no repository"), "{err}");
    }
}

#[test]
fn boolean_environment_values_are_accepted_for_quiet() {
    let kf = Kf::local();
    for value in ["1", "0", "true", "false", "yes", "no"] {
        let out = kf
            .cmd()
            .env("KFGUARD_QUIET", value)
            .args(["config", "show"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "KFGUARD_QUIET={value}: {}", stderr(&out));
    }
    let out = kf
        .cmd()
        .env("KFGUARD_QUIET", "maybe")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    // A flag beats the environment: -v is not a conflict with KFGUARD_QUIET.
    for value in ["1", "0"] {
        let out = kf
            .cmd()
            .env("KFGUARD_QUIET", value)
            .args(["-v", "config", "show"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "KFGUARD_QUIET={value} -v: {}", stderr(&out));
    }
}

#[test]
fn an_empty_environment_variable_counts_as_unset() {
    let kf = Kf::local();
    kf.write("kfguard.toml", "cluster = \"from-file\"\n");
    for name in [
        "KFGUARD_OUTPUT",
        "KFGUARD_CONFIG",
        "KFGUARD_KUBECONFIG",
        "KFGUARD_CLUSTER",
        "KFGUARD_QUIET",
        "KFGUARD_LOG",
        "KFGUARD_KUBE_CONTEXT",
    ] {
        let out = kf
            .cmd()
            .env(name, "")
            .args(["config", "show"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{name}=: {}", stderr(&out));
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains("cluster = \"from-file\""),
            "{name}=:\n{shown}"
        );
    }
}

#[test]
fn a_bad_log_filter_is_a_clear_usage_error() {
    let kf = Kf::local();
    let out = kf
        .cmd()
        .env("KFGUARD_LOG", "kfguard=loud")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    let line = error_line(&out);
    assert!(
        line.contains("invalid KFGUARD_LOG filter `kfguard=loud`") && line.contains("debug"),
        "{line}"
    );
    let out = kf
        .cmd()
        .env("KFGUARD_LOG", "kfguard=debug")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}
