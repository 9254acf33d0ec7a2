//! Runbook reports and journals: JUnit for CI, the JSON report, secrets kept out of both and
//! out of the journal, and a journal kept beside an S3 repository for a resume in another pod.

use crate::common;
use crate::runbooks::run_script;
use common::runbook::all_text;

use common::{code, error_line, stderr, Kf};

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
