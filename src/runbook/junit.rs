//! The JUnit XML of a run (`runbook run --junit`): one testcase per step, in the shape Jenkins
//! and GitLab read, so that a CI pipeline shows each step as a test.

use std::io;
use std::path::Path;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use super::steps::{Outcome, Severity, StepRecord};
use super::Report;

/// The testcase that stands for an error outside any step: a name no step can clash with in
/// practice, and one a reader sees is not a step.
const SCRIPT_CASE: &str = "<script>";

/// The run as `<testsuites>` holding one `<testsuite>` named after the runbook: a testcase per
/// step (`finally` steps included) with `<failure>` or `<skipped>` when the step did not pass,
/// and its messages, findings and planned changes in `<system-out>`. A warning step passes; its
/// findings are in its output. A script error outside any step is the testcase `<script>`,
/// failed. The report is redacted already, so the XML holds no secret either.
pub fn junit(report: &Report) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    write(&mut w, report).expect("writing XML into memory does not fail");
    let mut xml = String::from_utf8(w.into_inner()).expect("XML written from strings is UTF-8");
    xml.push('\n');
    xml
}

fn write(w: &mut Writer<Vec<u8>>, r: &Report) -> io::Result<()> {
    let suite = suite_name(&r.runbook);
    let count = |o: Outcome| r.steps.iter().filter(|s| s.outcome == o).count();
    let broke = usize::from(r.error.is_some());
    let tests = (r.steps.len() + broke).to_string();
    let failures = (count(Outcome::Failed) + broke).to_string();
    let skipped = count(Outcome::Skipped).to_string();
    let time = seconds(r.duration_ms);
    // Every failure is a failed check, not an error of the harness: `errors` stays 0.
    let totals = [
        ("name", suite.as_str()),
        ("tests", tests.as_str()),
        ("failures", failures.as_str()),
        ("errors", "0"),
        ("skipped", skipped.as_str()),
        ("time", time.as_str()),
    ];
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("testsuites")
        .with_attributes(totals)
        .write_inner_content(|w| {
            w.create_element("testsuite")
                .with_attributes(totals)
                .write_inner_content(|w| {
                    properties(w, r)?;
                    for step in &r.steps {
                        testcase(w, &suite, step)?;
                    }
                    if let Some(e) = &r.error {
                        w.create_element("testcase")
                            .with_attributes([
                                ("name", SCRIPT_CASE),
                                ("classname", suite.as_str()),
                                ("time", "0.000"),
                            ])
                            .write_inner_content(|w| failure(w, e, "script error"))?;
                    }
                    if !r.messages.is_empty() {
                        text_element(w, "system-out", &r.messages.join("\n"))?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    Ok(())
}

/// The run ID, to find the journal, and whether it was a dry run.
fn properties(w: &mut Writer<Vec<u8>>, r: &Report) -> io::Result<()> {
    let mut props = vec![("dry_run", r.dry_run.to_string())];
    if !r.run_id.is_empty() {
        props.insert(0, ("run_id", r.run_id.clone()));
    }
    w.create_element("properties").write_inner_content(|w| {
        for (name, value) in &props {
            w.create_element("property")
                .with_attributes([("name", *name), ("value", clean(value).as_str())])
                .write_empty()?;
        }
        Ok(())
    })?;
    Ok(())
}

fn testcase(w: &mut Writer<Vec<u8>>, suite: &str, s: &StepRecord) -> io::Result<()> {
    let time = seconds(s.duration_ms);
    let case = w.create_element("testcase").with_attributes([
        ("name", clean(&s.name).as_str()),
        ("classname", suite),
        ("time", time.as_str()),
    ]);
    let out = system_out(s);
    if out.is_empty() && matches!(s.outcome, Outcome::Ok | Outcome::Warning) {
        case.write_empty()?;
        return Ok(());
    }
    case.write_inner_content(|w| {
        match s.outcome {
            Outcome::Failed => {
                failure(
                    w,
                    s.error.as_deref().unwrap_or("the step failed"),
                    "step failed",
                )?;
            }
            Outcome::Skipped => {
                let why = s.messages.first().map_or("not run", String::as_str);
                w.create_element("skipped")
                    .with_attribute(("message", clean(why).as_str()))
                    .write_empty()?;
            }
            Outcome::Ok | Outcome::Warning => {}
        }
        if !out.is_empty() {
            text_element(w, "system-out", &out)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// `<failure message="first line" type="...">the whole text</failure>`.
fn failure(w: &mut Writer<Vec<u8>>, text: &str, kind: &str) -> io::Result<()> {
    let message = clean(text.lines().next().unwrap_or_default());
    w.create_element("failure")
        .with_attributes([("message", message.as_str()), ("type", kind)])
        .write_text_content(BytesText::new(&clean(text)))?;
    Ok(())
}

fn text_element(w: &mut Writer<Vec<u8>>, name: &str, text: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(&clean(text)))?;
    Ok(())
}

/// What the step said: its messages, then its findings, then the changes it planned.
fn system_out(s: &StepRecord) -> String {
    let mut lines = Vec::new();
    if s.resumed {
        lines.push("done in an earlier run of this run ID; not run again".to_string());
    }
    // A skipped step's one message is why; `<skipped>` carries it already.
    let messages = match s.outcome {
        Outcome::Skipped => s.messages.get(1..).unwrap_or_default(),
        _ => &s.messages,
    };
    lines.extend(messages.iter().cloned());
    for f in &s.findings {
        let severity = match f.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        lines.push(format!(
            "finding {severity} {} {}: {} (try: {})",
            f.code, f.object, f.message, f.hint
        ));
    }
    lines.extend(s.planned.iter().map(|p| format!("plan: {p}")));
    lines.join("\n")
}

/// The runbook's file name without `.rhai`: a dotted path would read as packages and classes
/// to Jenkins.
fn suite_name(runbook: &str) -> String {
    let path = Path::new(runbook);
    path.file_stem()
        .map_or_else(|| runbook.to_string(), |s| s.to_string_lossy().into_owned())
}

fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// XML 1.0 cannot hold most control characters, even escaped (a terminal colour code in a
/// message would make the whole file unreadable): they become U+FFFD.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            let allowed =
                matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}');
            if allowed {
                c
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::Finding;

    fn step(name: &str, outcome: Outcome) -> StepRecord {
        StepRecord {
            name: name.into(),
            key: format!("{name}:0"),
            outcome,
            started_ms: 0,
            duration_ms: 1500,
            attempts: 1,
            messages: Vec::new(),
            findings: Vec::new(),
            planned: Vec::new(),
            output: serde_json::Value::Null,
            error: None,
            resumed: false,
            always: false,
        }
    }

    #[test]
    fn steps_become_testcases_with_failure_and_skipped_elements() {
        let mut failed = step("restore <dbs> & \"buckets\"", Outcome::Failed);
        failed.error = Some("line 3:5: the \x1b[31mbucket\x1b[0m is gone".into());
        let mut warned = step("pvcs bound", Outcome::Warning);
        warned.findings.push(Finding {
            code: "KF-PVC-PENDING".into(),
            severity: Severity::Warning,
            object: "kubeflow/minio-pvc".into(),
            message: "claim is Pending".into(),
            hint: "check the StorageClass".into(),
        });
        let mut skipped = step("after", Outcome::Skipped);
        skipped
            .messages
            .push("not run: an earlier step failed".into());
        let report = Report {
            run_id: "20260101T000000Z-abcd".into(),
            runbook: "runbooks/verify-health.rhai".into(),
            dry_run: false,
            started: "2026-01-01T00:00:00Z".into(),
            steps: vec![step("ok", Outcome::Ok), warned, failed, skipped],
            messages: vec!["top".into()],
            error: Some("verify-health.rhai:9:1: boom".into()),
            duration_ms: 4321,
            operations: Vec::new(),
        };
        let xml = junit(&report);
        assert!(
            xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testsuite name="verify-health" tests="5" failures="2" errors="0" skipped="1" time="4.321">"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase name="ok" classname="verify-health" time="1.500"/>"#),
            "{xml}"
        );
        assert!(xml.contains("finding warning KF-PVC-PENDING kubeflow/minio-pvc: claim is Pending (try: check the StorageClass)"), "{xml}");
        assert!(
            xml.contains("restore &lt;dbs&gt; &amp; &quot;buckets&quot;"),
            "{xml}"
        );
        assert!(!xml.contains('\x1b'), "{xml}");
        assert!(
            xml.contains(r#"<skipped message="not run: an earlier step failed"/>"#),
            "{xml}"
        );
        assert!(xml.contains(r#"name="&lt;script&gt;""#), "{xml}");
        assert!(xml.contains(r#"type="script error""#), "{xml}");
    }
}
