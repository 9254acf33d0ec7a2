//! Runbooks: the sandbox stops what would hang or exhaust the runner, steps are journaled and
//! resumable, parameters and confirmation behave, and the API reference cannot drift.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common;

use common::{code, error_line, stderr, Kf};

/// Runs `kfguard runbook run FILE args…` in a workspace holding `script` as `rb/FILE`.
fn run_script(kf: &Kf, file: &str, script: &str, args: &[&str]) -> std::process::Output {
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

/// The element's children named `name`.
fn children<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Vec<roxmltree::Node<'a, 'i>> {
    node.children().filter(|c| c.has_tag_name(name)).collect()
}

fn count_attr(node: roxmltree::Node, name: &str) -> usize {
    node.attribute(name)
        .unwrap_or_else(|| panic!("<{}> has no {name}", node.tag_name().name()))
        .parse()
        .unwrap()
}

#[test]
fn the_junit_report_has_a_testcase_per_step_with_failure_and_skipped_elements() {
    let kf = Kf::local();
    let (junit, report) = (kf.path().join("out.xml"), kf.path().join("out.json"));
    let out = run_script(
        &kf,
        "nightly.rhai",
        "finally(\"clean up\", || info(\"cleaned up\"));\n\
         step(\"fine\", || 1);\n\
         step(\"pvcs bound\", || finding(\"KF-PVC-PENDING\", \"warning\", \"kubeflow/minio-pvc\", \"claim is Pending\", \"check the StorageClass\"));\n\
         step(\"restore dbs\", || fail(\"the metadata DB is unreachable\"));\n\
         step(\"verify\", || 2);\n",
        &["--junit", junit.to_str().unwrap(), "--report", report.to_str().unwrap()],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let xml = std::fs::read_to_string(&junit).expect("--junit is written when the run fails");
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}:\n{xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites = children(root, "testsuite");
    assert_eq!(suites.len(), 1, "{xml}");
    let suite = suites[0];
    assert_eq!(suite.attribute("name"), Some("nightly"));
    for node in [root, suite] {
        assert_eq!(count_attr(node, "tests"), 5, "{xml}");
        assert_eq!(count_attr(node, "failures"), 1, "{xml}");
        assert_eq!(count_attr(node, "skipped"), 1, "{xml}");
        assert_eq!(count_attr(node, "errors"), 0, "{xml}");
        assert!(node.attribute("time").unwrap().parse::<f64>().is_ok());
    }

    let cases = children(suite, "testcase");
    let names: Vec<&str> = cases.iter().filter_map(|c| c.attribute("name")).collect();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let reported: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        names, reported,
        "one testcase per step, in the report's order"
    );
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["clean up", "fine", "pvcs bound", "restore dbs", "verify"]
    );

    let case = |name: &str| {
        *cases
            .iter()
            .find(|c| c.attribute("name") == Some(name))
            .unwrap()
    };
    let out_text = |name: &str| {
        children(case(name), "system-out")
            .first()
            .and_then(roxmltree::Node::text)
            .unwrap_or_default()
            .to_string()
    };
    for c in &cases {
        assert_eq!(c.attribute("classname"), Some("nightly"));
        assert!(c.attribute("time").unwrap().parse::<f64>().is_ok());
    }
    let failures = children(case("restore dbs"), "failure");
    assert_eq!(failures.len(), 1, "{xml}");
    assert_eq!(failures[0].attribute("type"), Some("step failed"));
    assert!(
        failures[0]
            .attribute("message")
            .unwrap()
            .contains("the metadata DB is unreachable"),
        "{xml}"
    );
    assert!(failures[0]
        .text()
        .unwrap()
        .contains("the metadata DB is unreachable"));
    let skipped = children(case("verify"), "skipped");
    assert_eq!(skipped.len(), 1, "{xml}");
    assert!(
        skipped[0].attribute("message").unwrap().contains("not run"),
        "{xml}"
    );
    // A warning passes: no failure, its finding in its output.
    for name in ["fine", "pvcs bound", "clean up"] {
        assert!(children(case(name), "failure").is_empty(), "{name}: {xml}");
        assert!(children(case(name), "skipped").is_empty(), "{name}: {xml}");
    }
    let warned = out_text("pvcs bound");
    assert!(
        warned.contains("KF-PVC-PENDING") && warned.contains("kubeflow/minio-pvc"),
        "{xml}"
    );
    assert_eq!(out_text("clean up"), "cleaned up");
}

#[test]
fn an_error_outside_any_step_is_a_failed_script_testcase() {
    let kf = Kf::local();
    let junit = kf.path().join("out.xml");
    let junit_arg = junit.to_str().unwrap();
    let script_failure = || {
        let xml = std::fs::read_to_string(&junit).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let suite = children(doc.root_element(), "testsuite")[0];
        let script = children(suite, "testcase")
            .into_iter()
            .find(|c| c.attribute("name") == Some("<script>"))
            .unwrap_or_else(|| panic!("no <script> testcase:\n{xml}"));
        assert_eq!(count_attr(suite, "failures"), 1, "{xml}");
        children(script, "failure")[0]
            .attribute("message")
            .unwrap()
            .to_string()
    };

    let out = run_script(
        &kf,
        "broken.rhai",
        "step(\"fine\", || 1);\nfail(\"no cluster to check\");\n",
        &["--junit", junit_arg],
    );
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    let message = script_failure();
    assert!(
        message.contains("broken.rhai:2:") && message.contains("no cluster to check"),
        "{message}"
    );

    // A runbook that does not compile never runs, and still leaves its report.
    let out = run_script(&kf, "broken.rhai", "let y = ;\n", &["--junit", junit_arg]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let message = script_failure();
    assert!(message.contains("broken.rhai:1:"), "{message}");
}

/// Every file below `dir`, read as text.
fn all_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&all_text(&path));
        } else {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    text
}

#[test]
fn no_secret_reaches_the_reports_the_journal_or_the_terminal() {
    const FROM_ENV: &str = "tok-from-env-5150";
    const FROM_PARAM: &str = "param-secret-8086";
    const FROM_FILE: &str = "file-secret-6502";
    const FROM_CONFIG_ENV: &str = "bucket-key-1701";
    // The bucket key's variable has no secret's name: only the config says it is one.
    let kf = Kf::local()
        .env("KFGUARD_TEST_API_TOKEN", FROM_ENV)
        .env("KFGUARD_TEST_ART_SK", FROM_CONFIG_ENV);
    kf.write("db-password", &format!("{FROM_FILE}\n"));
    kf.write(
        "kfguard.toml",
        "[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306\"\npassword_file = \"db-password\"\n\n\
         [[buckets]]\nname = \"art\"\nbucket = \"mlpipeline\"\naccess_key_id_env = \"KFGUARD_TEST_ART_AK\"\nsecret_access_key_env = \"KFGUARD_TEST_ART_SK\"\n",
    );
    let (junit, report) = (kf.path().join("out.xml"), kf.path().join("out.json"));
    let page = kf.path().join("out.html");
    let script = format!(
        "let pw = param(\"db_password\", \"\");\n\
         let secrets = [\"{FROM_ENV}\", pw, \"{FROM_FILE}\", \"{FROM_CONFIG_ENV}\"];\n\
         info(`top ${{secrets}}`);\n\
         warn(`top ${{secrets}}`);\n\
         step(\"leak\", || {{\n\
           let keyed = #{{}};\n\
           for s in secrets {{\n\
             info(`info ${{s}}`);\n\
             warn(`warn ${{s}}`);\n\
             finding(\"KF-LEAK\", \"warning\", `object ${{s}}`, `message ${{s}}`, `hint ${{s}}`);\n\
             keyed[s] = s;\n\
           }}\n\
           #{{ values: secrets, keyed: keyed }}\n\
         }});\n\
         step(\"log in\", || fail(`cannot log in with ${{secrets}}`));\n"
    );
    let out = run_script(
        &kf,
        "leak.rhai",
        &script,
        &[
            "--set",
            &format!("db_password={FROM_PARAM}"),
            "--junit",
            junit.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--report-html",
            page.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));

    let xml = std::fs::read_to_string(&junit).unwrap();
    // What a reader of the XML sees: its text and attributes, unescaped.
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let xml_read: String = doc
        .descendants()
        .flat_map(|n| {
            n.attributes()
                .map(|a| a.value().to_string())
                .chain(n.text().map(String::from))
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let json = std::fs::read_to_string(&report).unwrap();
    let journal = all_text(&kf.path().join(".kfguard/runs"));
    let outputs = [
        ("--report", json.as_str()),
        ("--junit", xml.as_str()),
        ("--junit, as read", xml_read.as_str()),
        ("--report-html", &std::fs::read_to_string(&page).unwrap()),
        ("journal", journal.as_str()),
        ("stdout", &String::from_utf8_lossy(&out.stdout)),
        ("stderr", &stderr(&out)),
    ];
    for (what, text) in outputs {
        for secret in [FROM_ENV, FROM_PARAM, FROM_FILE, FROM_CONFIG_ENV] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into {what}:\n{text}"
            );
        }
        // XML and HTML hold it escaped; the page's footer explains the marker, so look for it
        // where a secret was.
        let shown = match what {
            "--junit" => "&lt;redacted&gt;",
            "--report-html" => "message &lt;redacted&gt;",
            _ => "<redacted>",
        };
        assert!(text.contains(shown), "{what} shows no redaction:\n{text}");
    }
    // Each place a secret went is redacted, not dropped.
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let leak = &report["steps"][0];
    assert_eq!(leak["outcome"], "warning", "{leak}");
    assert_eq!(leak["findings"].as_array().unwrap().len(), 4);
    assert_eq!(leak["findings"][1]["message"], "message <redacted>");
    assert_eq!(leak["output"]["values"][2], "<redacted>");
    assert!(
        leak["output"]["keyed"].get("<redacted>").is_some(),
        "{leak}"
    );
    assert!(report["messages"][1]
        .as_str()
        .unwrap()
        .contains("<redacted>"));
    let failed = &report["steps"][1];
    assert_eq!(failed["outcome"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("cannot log in with"),
        "{failed}"
    );
}

#[test]
fn a_run_begun_in_one_pod_resumes_in_another_from_the_journal_beside_an_s3_repository() {
    let bucket = common::unique_bucket("journal");
    common::create_bucket(&bucket);
    let kf = Kf::s3(&bucket, "kf/backups");
    kf.ok(&["init"]);
    let broken = "step(\"one\", || 1);\nstep(\"two\", || { fail(\"injected fault\"); 2 });\n";
    let fixed = "step(\"one\", || 1);\nstep(\"two\", || 2);\n";
    let first = run_script(&kf, "nightly.rhai", broken, &["--output", "json"]);
    assert_eq!(code(&first), 1, "{}", stderr(&first));
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let run_id = report["run_id"].as_str().unwrap().to_string();

    // The pod dies with its emptyDir: the local state folder is gone.
    std::fs::remove_dir_all(kf.path().join(".kfguard")).unwrap();
    let again = run_script(
        &kf,
        "nightly.rhai",
        fixed,
        &["--resume", &run_id, "--force", "--output", "json"],
    );
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["run_id"], run_id.as_str());
    assert_eq!(report["steps"][0]["resumed"], true, "{report:#}");
    assert_eq!(report["steps"][1]["output"], 2, "{report:#}");

    // Stock restic still reads the repository: it does not see the journal beside it.
    let endpoint = common::s3_endpoint();
    crate::restic_interop::restic_ok(
        &kf,
        &format!("s3:{endpoint}/{bucket}/kf/backups"),
        &["check"],
    );
}

#[test]
fn a_secret_parameter_must_be_given_again_to_resume() {
    let kf = Kf::local();
    let script = "let pw = param(\"db_password\", \"\");\nstep(\"one\", || 1);\nstep(\"two\", || fail(\"injected fault\"));\n";
    let first = run_script(
        &kf,
        "secret.rhai",
        script,
        &["--set", "db_password=hunter2-secret", "--output", "json"],
    );
    assert_eq!(code(&first), 1, "{}", stderr(&first));
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let again = run_script(&kf, "secret.rhai", script, &["--resume", &run_id]);
    assert_eq!(code(&again), 2, "{}", stderr(&again));
    let line = error_line(&again);
    assert!(
        line.contains("secret parameter `db_password`") && line.contains("--set db_password="),
        "{line}"
    );
}
