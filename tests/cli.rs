//! The command line: help, config layering and errors, and exit codes for bad usage.

mod common;

use common::{code, error_line, Kf};

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
