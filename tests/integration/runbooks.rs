//! Runbooks: the sandbox stops what would hang or exhaust the runner, steps are journaled and
//! resumable, parameters and confirmation behave, and the API reference cannot drift.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common;

use common::{code, error_line, stderr, Kf};

/// Runs `kfguard runbook run FILE args…` in a workspace holding `script` as `rb/FILE`.
pub(crate) fn run_script(kf: &Kf, file: &str, script: &str, args: &[&str]) -> std::process::Output {
    kf.write(&format!("rb/{file}"), script);
    let path = format!("rb/{file}");
    let mut all = vec!["runbook", "run", path.as_str()];
    all.extend_from_slice(args);
    kf.run(&all)
}

/// A runbook the sandbox must stop: non-zero, one clear error line naming `expect`, no panic,
/// and well inside the bound (the bound is liveness, not speed).
fn stopped(script: &str, args: &[&str], expect: &str) -> String {
    let kf = Kf::local();
    let started = Instant::now();
    let out = run_script(&kf, "bad.rhai", script, args);
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
    let err = stderr(&out);
    assert_ne!(code(&out), 0, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let line = error_line(&out);
    assert!(line.contains(expect), "expected {expect:?} in:\n{err}");
    line
}

#[test]
fn an_infinite_loop_is_stopped_by_the_operations_limit() {
    stopped(
        "step(\"spin\", || { loop { } });",
        &[],
        "step `spin` failed",
    );
}

#[test]
fn a_runaway_string_array_and_map_hit_their_size_limits() {
    let kf = Kf::local();
    // Lower than the defaults, so that the size limits trip before the operations limit.
    kf.write(
        "kfguard.toml",
        "[runbooks.limits]\nmax_operations = 5000000\nmax_string_size = 1000000\nmax_array_size = 10000\nmax_map_size = 10000\n",
    );
    for (name, body) in [
        ("string", "let s = \"xxxxxxxxxx\"; loop { s += s; }"),
        ("array", "let a = [1]; loop { a += a; }"),
        (
            "map",
            "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
        ),
    ] {
        let out = run_script(
            &kf,
            &format!("{name}.rhai"),
            &format!("step(\"grow {name}\", || {{ {body} }});"),
            &["--output", "json"],
        );
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let error = report["steps"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        // rhai checks a map's size when it is built, not on `m[k] = v`: a map grown key by
        // key is stopped by the operations limit instead.
        assert!(
            error.contains("too large")
                || error.contains("size")
                || (name == "map" && error.contains("too many operations")),
            "{name}: {error}"
        );
    }
}

#[test]
fn deep_recursion_is_stopped_by_the_call_depth_limit() {
    let line = stopped(
        "fn down(n) { down(n + 1) }\nstep(\"recurse\", || down(0));",
        &[],
        "recurse",
    );
    assert!(line.contains("step `recurse` failed"), "{line}");
}

#[test]
fn eval_is_not_part_of_the_language_and_the_error_names_the_line() {
    let line = stopped("let x = 1;\neval(\"x + 1\");\n", &[], "bad.rhai:2:");
    assert_eq!(line.matches('\n').count(), 0);
    let line = stopped("let x = 1;\nlet y = ;\n", &[], "bad.rhai:2:");
    assert!(line.contains("runbook check"), "{line}");
}

#[test]
fn imports_cannot_leave_the_runbook_folder() {
    let kf = Kf::local();
    kf.write("outside.rhai", "export const SECRET = \"outside-value\";");
    kf.write("rb/inside.rhai", "export const VALUE = 7;");
    std::os::unix::fs::symlink(
        kf.path().join("outside.rhai"),
        kf.path().join("rb/link.rhai"),
    )
    .unwrap();
    let abs = kf.path().join("outside.rhai");
    for (name, import, expect) in [
        ("dotdot", "../outside".to_string(), "`..` is refused"),
        (
            "absolute",
            abs.display().to_string(),
            "absolute paths are refused",
        ),
        (
            "symlink",
            "link".to_string(),
            "outside the runbook's folder",
        ),
    ] {
        let out = run_script(
            &kf,
            &format!("{name}.rhai"),
            &format!("import \"{import}\" as m;\nstep(\"use\", || m::SECRET);"),
            &[],
        );
        assert_ne!(code(&out), 0);
        let err = stderr(&out);
        assert!(err.contains(expect), "{name}: {err}");
        assert!(!err.contains("outside-value"), "{name}: {err}");
        assert_eq!(
            error_line(&out).matches("refused").count(),
            1,
            "{name}: one line: {err}"
        );
    }
    let out = run_script(
        &kf,
        "ok.rhai",
        "import \"inside\" as m;\nstep(\"use\", || ensure(m::VALUE == 7, \"wrong value\"));",
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn the_deadline_stops_a_run_inside_a_host_call_and_finally_still_runs() {
    let kf = Kf::local();
    let started = Instant::now();
    let out = run_script(
        &kf,
        "slow.rhai",
        "finally(\"clean up\", || info(\"cleaned\"));\nstep(\"wait\", || sleep(3600));",
        &["--timeout", "2s", "--output", "json"],
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps[0]["outcome"], "failed");
    assert!(
        steps[0]["error"].as_str().unwrap().contains("--timeout"),
        "{steps:?}"
    );
    assert_eq!(steps[1]["name"], "clean up");
    assert_eq!(steps[1]["outcome"], "ok");
    assert_eq!(steps[1]["messages"][0], "cleaned");
}

#[test]
fn a_step_timeout_fails_the_step_and_retries_run_again() {
    let kf = Kf::local();
    let out = run_script(
        &kf,
        "retry.rhai",
        "step(\"flaky\", #{ retries: 2, backoff: \"10ms\", timeout: \"300ms\" }, || sleep(5));\nstep(\"after\", || 1);",
        &["--output", "json"],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["steps"][0]["attempts"], 3);
    assert!(report["steps"][0]["error"]
        .as_str()
        .unwrap()
        .contains("step's timeout"));
    assert_eq!(report["steps"][1]["name"], "after");
    assert_eq!(report["steps"][1]["outcome"], "skipped");
}

#[test]
fn warnings_and_findings_exit_3_and_fail_on_moves_the_threshold() {
    let kf = Kf::local();
    let script = "step(\"pvcs bound\", || {\n  finding(\"KF-PVC-PENDING\", \"warning\", \"kubeflow/minio-pvc\", \"claim is Pending\", \"check the StorageClass\");\n});";
    let out = run_script(&kf, "find.rhai", script, &[]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("KF-PVC-PENDING"));
    let out = run_script(&kf, "find.rhai", script, &["--fail-on", "warning"]);
    assert_eq!(code(&out), 1);
    let out = run_script(&kf, "find.rhai", script, &["--fail-on", "error"]);
    assert_eq!(code(&out), 3);
    let out = run_script(&kf, "ok.rhai", "step(\"fine\", || 1);", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_panicking_or_failing_step_fails_the_run_without_a_crash() {
    let out = stopped(
        "step(\"one\", || 1);\nstep(\"two\", || fail(\"the metadata DB is unreachable\"));\nstep(\"three\", || 3);",
        &[],
        "step `two` failed",
    );
    assert!(out.contains("--resume"), "{out}");
}

#[test]
fn resume_skips_the_steps_that_succeeded_and_refuses_a_changed_script_without_force() {
    let kf = Kf::local();
    let v1 = "step(\"one\", || { print(\"ran one\"); #{ pods: 3 } });\nstep(\"two\", || { print(\"ran two\"); 2 });\nlet out = step(\"three\", || fail(\"injected fault\"));";
    let out = run_script(&kf, "drill.rhai", v1, &["--output", "json"]);
    assert_eq!(code(&out), 1);
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = first["run_id"].as_str().unwrap().to_string();
    assert!(stderr(&out).contains(&id), "the run id is printed");

    // The fault is fixed in the script: the hash changed, so --resume alone is refused.
    let v2 = "let one = step(\"one\", || { print(\"ran one\"); #{ pods: 3 } });\nstep(\"two\", || { print(\"ran two\"); 2 });\nstep(\"three\", || ensure(one.pods == 3, \"lost the output of step one\"));";
    let out = run_script(&kf, "drill.rhai", v2, &["--resume", &id]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(error_line(&out).contains("--force"));

    let out = run_script(
        &kf,
        "drill.rhai",
        v2,
        &["--resume", &id, "--force", "--output", "json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let second: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(second["run_id"], id.as_str());
    let steps = second["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for s in &steps[..2] {
        assert_eq!(s["resumed"], true, "{s}");
    }
    assert_eq!(steps[2]["outcome"], "ok");
    // The journal shows steps one and two ran once, in the first run only.
    let journal = std::fs::read_to_string(
        kf.path()
            .join(".kfguard/runs")
            .join(&id)
            .join("journal.jsonl"),
    )
    .unwrap();
    assert_eq!(
        journal.matches("\"ran one\"").count(),
        2,
        "once run, once copied on resume:\n{journal}"
    );
    let runs = kf.ok(&["runbook", "runs"]);
    assert!(runs.contains(&id) && runs.contains("ok"), "{runs}");
}

#[test]
fn confirm_needs_yes_in_a_non_interactive_run() {
    let kf = Kf::local();
    let script = "step(\"apply crds\", || { confirm(\"apply 3 CRDs?\"); info(\"applied\"); });";
    let out = run_script(&kf, "confirm.rhai", script, &["--output", "json"]);
    assert_eq!(code(&out), 1);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["steps"][0]["error"]
        .as_str()
        .unwrap()
        .contains("--yes"));
    let out = run_script(&kf, "confirm.rhai", script, &["--yes"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn parameters_are_declared_by_the_script_and_an_unknown_one_is_refused() {
    let kf = Kf::local();
    let script = "// Checks a namespace.\nlet ns = param(\"namespace\", \"kubeflow\");\nlet n = param(\"threshold\", 5);\nstep(\"show\", || { ensure(n == 7, `threshold is ${n}`); info(`ns ${ns}`); });";
    let out = run_script(
        &kf,
        "params.rhai",
        script,
        &[
            "--set",
            "threshold=7",
            "--set",
            "namespace=team-a",
            "--output",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["steps"][0]["messages"][0], "ns team-a");
    let out = run_script(&kf, "params.rhai", script, &["--set", "nmespace=x"]);
    assert_eq!(code(&out), 2);
    let line = error_line(&out);
    assert!(
        line.contains("nmespace") && line.contains("namespace, threshold"),
        "{line}"
    );
    let check = kf.ok(&["runbook", "check", "rb/params.rhai"]);
    assert!(
        check.contains("param namespace") && check.contains("param threshold"),
        "{check}"
    );
    let listed = kf.ok(&["runbook", "list"]);
    assert!(
        listed.is_empty() || !listed.contains("params"),
        "rb/ is not the runbook folder"
    );
}

#[test]
fn check_reports_unknown_functions_and_duplicate_steps_without_running() {
    let kf = Kf::local();
    kf.write(
        "rb/lint.rhai",
        "step(\"a\", || 1);\nstep(\"a\", || 2);\nstep(\"b\", || kubectl_apply(\"x\"));",
    );
    let out = kf.run(&["runbook", "check", "rb/lint.rhai"]);
    assert_eq!(code(&out), 2);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("lint.rhai:2:") && text.contains("declared twice"),
        "{text}"
    );
    assert!(text.contains("unknown function `kubectl_apply`"), "{text}");
}

#[test]
fn secrets_given_as_parameters_or_env_stay_out_of_the_journal_and_report() {
    let kf = Kf::local().env("KFGUARD_TEST_DB_PASSWORD", "hunter2-from-env");
    let report = kf.path().join("report.json");
    let out = run_script(
        &kf,
        "secret.rhai",
        "let p = param(\"db_password\", \"\");\nstep(\"leak\", || { print(`pw ${p}`); #{ pw: p, env: \"hunter2-from-env\" } });",
        &["--set", "db_password=s3cr3t-param", "--report", report.to_str().unwrap()],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut all = std::fs::read_to_string(&report).unwrap();
    for entry in std::fs::read_dir(kf.path().join(".kfguard/runs")).unwrap() {
        all.push_str(
            &std::fs::read_to_string(entry.unwrap().path().join("journal.jsonl")).unwrap(),
        );
    }
    assert!(all.contains("<redacted>"), "{all}");
    for secret in ["s3cr3t-param", "hunter2-from-env"] {
        assert!(!all.contains(secret), "{secret} leaked:\n{all}");
    }
}

#[test]
fn the_api_reference_in_runbooks_readme_is_what_the_engine_registers() {
    let kf = Kf::local();
    let generated = kf.ok(&["runbook", "api", "--output", "markdown"]);
    assert!(
        generated.contains("### `step(name: &str, body: FnPtr)"),
        "{generated}"
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks/README.md"))
            .unwrap();
    let reference = readme
        .split_once("## Host API reference")
        .map(|(_, r)| format!("## Host API reference{r}"))
        .expect("runbooks/README.md has a reference section");
    assert_eq!(
        reference.trim_end(),
        generated.trim_end(),
        "runbooks/README.md is stale: regenerate its reference with `kfguard runbook api --output markdown`"
    );
    // Text, the default, is the markdown too; `--format` is the old spelling, still taken.
    assert_eq!(kf.ok(&["runbook", "api"]), generated);
    assert_eq!(
        kf.ok(&["runbook", "api", "--format", "markdown"]),
        generated
    );
    for args in [
        &["runbook", "api", "--output", "json"][..],
        &["runbook", "api", "--format", "json"][..],
    ] {
        let json: serde_json::Value = serde_json::from_str(&kf.ok(args)).unwrap();
        let names: Vec<&str> = json["functions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["name"].as_str())
            .collect();
        assert!(
            names.contains(&"step") && names.contains(&"confirm"),
            "{names:?}"
        );
    }
}

/// Runs `kfguard runbook run FILE args…` on a pseudo-terminal, as a person at a shell would,
/// answers the first `confirm` with `answer`, and returns the exit code and what it printed.
pub(crate) fn run_on_a_terminal(
    kf: &Kf,
    file: &str,
    args: &[&str],
    prompt: &str,
    answer: &str,
) -> (i32, String) {
    let _server = common::db::shared();
    let mut cmd = kf.std_cmd();
    cmd.args(["runbook", "run", file]).args(args);
    // The bound is liveness, not speed: a missing prompt fails the test instead of hanging it.
    let mut tty = rexpect::session::spawn_command(cmd, Some(120_000))
        .expect("kfguard starts on a pseudo-terminal");
    let before = tty
        .exp_string(prompt)
        .unwrap_or_else(|e| panic!("no prompt {prompt:?}: {e}"));
    tty.send_line(answer).unwrap();
    let after = tty.exp_eof().expect("kfguard ends");
    let status = tty.process().wait().unwrap();
    let rexpect::process::WaitStatus::Exited(_, code) = status else {
        panic!("kfguard did not exit: {status:?}\n{before}{prompt}{after}");
    };
    // rexpect hands over each byte as a char of its own: put the UTF-8 back together.
    let bytes: Vec<u8> = format!("{before}{prompt}{after}")
        .chars()
        .map(|c| u8::try_from(c).expect("one byte per char"))
        .collect();
    (code, String::from_utf8_lossy(&bytes).into_owned())
}

#[test]
fn confirm_on_a_terminal_asks_and_the_answer_decides_the_step() {
    let kf = Kf::local();
    kf.write(
        "rb/confirm.rhai",
        "step(\"apply crds\", || { confirm(\"apply?\"); info(\"applied\"); });",
    );
    let report = |answer: &str| kf.path().join(format!("report-{answer}.json"));
    let read = |path: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };

    let yes = report("y");
    let (code, screen) = run_on_a_terminal(
        &kf,
        "rb/confirm.rhai",
        &["--report", yes.to_str().unwrap()],
        "apply? [y/N]",
        "y",
    );
    assert_eq!(code, 0, "{screen}");
    let step = &read(&yes)["steps"][0];
    assert_eq!(step["outcome"], "ok", "{step}");
    assert_eq!(step["messages"][0], "confirmed on the terminal: apply?");
    assert_eq!(step["messages"][1], "applied");
    assert!(screen.contains("✓ apply crds"), "{screen}");

    let no = report("n");
    let (code, screen) = run_on_a_terminal(
        &kf,
        "rb/confirm.rhai",
        &["--report", no.to_str().unwrap()],
        "apply? [y/N]",
        "n",
    );
    assert_eq!(code, 1, "{screen}");
    let step = &read(&no)["steps"][0];
    assert_eq!(step["outcome"], "failed", "{step}");
    assert!(
        step["error"]
            .as_str()
            .unwrap()
            .contains("not confirmed: apply?"),
        "{step}"
    );
    assert!(!step["messages"].to_string().contains("applied"), "{step}");
    assert!(screen.contains("not confirmed"), "{screen}");
}
