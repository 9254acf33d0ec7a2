//! The drill report (`runbook run --report-html`): one self-contained HTML page of a run, with
//! the steps as an SVG Gantt chart, the findings by severity, the verified counts and the RTO.
//!
//! Everything on the page comes from the redacted [`Report`]; this module lays it out (bar
//! positions, time axis, sums, durations as text) and `templates/drill.html` renders it through
//! minijinja, whose HTML auto-escaping covers every text and attribute taken from the run.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::steps::{Outcome, Severity, StepRecord};
use super::Report;

const TEMPLATE_NAME: &str = "drill.html";
const TEMPLATE: &str = include_str!("templates/drill.html");

/// The chart's drawing, in SVG user units; the page scales it to its width.
const CHART_WIDTH: f64 = 1000.0;
/// The step names, right-aligned against the bars.
const LABEL_WIDTH: f64 = 250.0;
/// Room right of the longest bar for its duration text.
const RIGHT_PAD: f64 = 160.0;
const AXIS_HEIGHT: f64 = 30.0;
const ROW_HEIGHT: f64 = 32.0;
const BAR_HEIGHT: f64 = 20.0;
/// A step of no measurable time still shows as a sliver.
const MIN_BAR: f64 = 4.0;
/// Step names longer than this are cut in the chart (the table and the tooltip hold them whole).
const LABEL_CHARS: usize = 30;

/// The page of a run. Text is escaped by the template; the report is redacted already.
pub fn html(report: &Report) -> String {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.add_template(TEMPLATE_NAME, TEMPLATE)
        .expect("the drill template compiles: the unit tests render it");
    env.get_template(TEMPLATE_NAME)
        .and_then(|t| t.render(Value::from(Serde(Page::of(report)))))
        .expect("the drill template renders: the unit tests render it")
}

#[derive(Serialize)]
struct Page {
    name: String,
    runbook: String,
    run_id: String,
    dry_run: bool,
    outcome: &'static str,
    icon: &'static str,
    verdict: &'static str,
    started: String,
    started_iso: String,
    duration: String,
    rto: Rto,
    error: Option<String>,
    failed: Vec<Failure>,
    tally: Vec<Tally>,
    severity_tally: Vec<Tally>,
    chart: Option<Chart>,
    steps: Vec<Row>,
    findings: Vec<Group>,
    finding_count: usize,
    verified: Vec<Count>,
    planned: Vec<Planned>,
    messages: Vec<String>,
}

/// The recovery time: the run's wall time, if it ended green.
#[derive(Serialize)]
struct Rto {
    reached: bool,
    time: String,
    why: String,
}

#[derive(Serialize)]
struct Failure {
    step: Option<String>,
    error: String,
}

#[derive(Serialize)]
struct Tally {
    class: &'static str,
    label: &'static str,
    count: usize,
}

#[derive(Serialize)]
struct Chart {
    width: f64,
    height: f64,
    plot_left: f64,
    plot_right: f64,
    axis_y: f64,
    row_height: f64,
    bar_height: f64,
    ticks: Vec<Tick>,
    bars: Vec<Bar>,
    run_end: f64,
}

#[derive(Serialize)]
struct Tick {
    x: f64,
    label: String,
}

#[derive(Serialize)]
struct Bar {
    name: String,
    label: String,
    class: &'static str,
    resumed: bool,
    row_y: f64,
    y: f64,
    text_y: f64,
    x: f64,
    width: f64,
    text_x: f64,
    text: String,
    tooltip: String,
}

#[derive(Serialize)]
struct Row {
    number: usize,
    name: String,
    class: &'static str,
    outcome: &'static str,
    resumed: bool,
    always: bool,
    started: String,
    duration: String,
    attempts: u32,
    error: Option<String>,
    /// Why a skipped step did not run.
    note: Option<String>,
    messages: Vec<String>,
}

#[derive(Serialize)]
struct Group {
    class: &'static str,
    label: &'static str,
    items: Vec<FindingRow>,
}

#[derive(Serialize)]
struct FindingRow {
    code: String,
    object: String,
    message: String,
    hint: String,
    step: String,
}

#[derive(Serialize)]
struct Count {
    key: String,
    total: String,
    steps: String,
}

#[derive(Serialize)]
struct Planned {
    step: String,
    changes: Vec<String>,
}

impl Page {
    fn of(r: &Report) -> Self {
        let outcome = r.outcome();
        let failed: Vec<Failure> = r
            .steps
            .iter()
            .filter(|s| s.outcome == Outcome::Failed)
            .map(|s| Failure {
                step: Some(s.name.clone()),
                error: s.error.clone().unwrap_or_else(|| "the step failed".into()),
            })
            .chain(r.error.iter().map(|e| Failure {
                step: None,
                error: e.clone(),
            }))
            .collect();
        let tally = [
            Outcome::Ok,
            Outcome::Warning,
            Outcome::Failed,
            Outcome::Skipped,
        ]
        .into_iter()
        .map(|o| Tally {
            class: class(o),
            label: class(o),
            count: r.steps.iter().filter(|s| s.outcome == o).count(),
        })
        .collect();
        let severity_tally = [
            (Severity::Error, "error"),
            (Severity::Warning, "warning"),
            (Severity::Info, "info"),
        ]
        .into_iter()
        .map(|(severity, class)| Tally {
            class,
            label: class,
            count: r.findings().filter(|f| f.severity == severity).count(),
        })
        .collect();
        let findings = findings(r);
        Self {
            name: Path::new(&r.runbook)
                .file_stem()
                .map_or_else(|| r.runbook.clone(), |s| s.to_string_lossy().into_owned()),
            runbook: r.runbook.clone(),
            run_id: r.run_id.clone(),
            dry_run: r.dry_run,
            outcome: class(outcome),
            icon: match outcome {
                Outcome::Ok => "✓",
                Outcome::Warning => "⚠",
                Outcome::Failed => "✗",
                Outcome::Skipped => "–",
            },
            verdict: match outcome {
                Outcome::Ok => "passed",
                Outcome::Warning => "passed with warnings",
                Outcome::Failed => "failed",
                Outcome::Skipped => "did not run",
            },
            started: started(&r.started),
            started_iso: r.started.clone(),
            duration: duration(r.duration_ms),
            rto: rto(r, outcome, &failed),
            error: r.error.clone(),
            failed,
            tally,
            severity_tally,
            chart: (!r.steps.is_empty()).then(|| chart(r)),
            steps: r.steps.iter().enumerate().map(|(i, s)| row(i, s)).collect(),
            finding_count: findings.iter().map(|g| g.items.len()).sum(),
            findings,
            verified: verified(&r.steps),
            planned: r
                .steps
                .iter()
                .filter(|s| !s.planned.is_empty())
                .map(|s| Planned {
                    step: s.name.clone(),
                    changes: s.planned.clone(),
                })
                .collect(),
            messages: r.messages.clone(),
        }
    }
}

/// The CSS class of an outcome: the colour of its bar and badge.
fn class(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Warning => "warning",
        Outcome::Failed => "failed",
        Outcome::Skipped => "skipped",
    }
}

/// A green run (ok or warning) reached its RTO at its end; any other did not, and says why.
fn rto(r: &Report, outcome: Outcome, failed: &[Failure]) -> Rto {
    if matches!(outcome, Outcome::Ok | Outcome::Warning) {
        let why = if r.dry_run {
            "wall time of the run; a dry run changed nothing".to_string()
        } else {
            "wall time of the run, from its start to a green end".to_string()
        };
        return Rto {
            reached: true,
            time: duration(r.duration_ms),
            why,
        };
    }
    let why = match failed.first() {
        Some(Failure { step: Some(s), .. }) => format!("step “{s}” failed"),
        Some(Failure { step: None, .. }) => "the runbook stopped outside any step".into(),
        None => "no step ran".into(),
    };
    Rto {
        reached: false,
        time: "not reached".into(),
        why,
    }
}

fn row(i: usize, s: &StepRecord) -> Row {
    Row {
        number: i + 1,
        name: s.name.clone(),
        class: class(s.outcome),
        outcome: class(s.outcome),
        resumed: s.resumed,
        always: s.always,
        started: format!("+{}", duration(s.started_ms)),
        duration: duration(s.duration_ms),
        attempts: s.attempts,
        error: s.error.clone(),
        note: (s.outcome == Outcome::Skipped)
            .then(|| s.messages.first().cloned())
            .flatten(),
        messages: match s.outcome {
            Outcome::Skipped => s.messages.get(1..).unwrap_or_default().to_vec(),
            _ => s.messages.clone(),
        },
    }
}

fn findings(r: &Report) -> Vec<Group> {
    [
        (Severity::Error, "error", "Errors"),
        (Severity::Warning, "warning", "Warnings"),
        (Severity::Info, "info", "Info"),
    ]
    .into_iter()
    .map(|(severity, class, label)| Group {
        class,
        label,
        items: r
            .steps
            .iter()
            .flat_map(|s| s.findings.iter().map(move |f| (s, f)))
            .filter(|(_, f)| f.severity == severity)
            .map(|(s, f)| FindingRow {
                code: f.code.clone(),
                object: f.object.clone(),
                message: f.message.clone(),
                hint: f.hint.clone(),
                step: s.name.clone(),
            })
            .collect(),
    })
    .filter(|g| !g.items.is_empty())
    .collect()
}

/// The sums of the numbers in each step's `output.verified` map, per key, in the order the
/// keys first appear; other values (text, maps) are not counted.
fn verified(steps: &[StepRecord]) -> Vec<Count> {
    #[derive(Default)]
    struct Sum {
        whole: i128,
        fraction: Option<f64>,
        steps: Vec<String>,
    }
    let mut order: Vec<String> = Vec::new();
    let mut sums: BTreeMap<String, Sum> = BTreeMap::new();
    for step in steps {
        let Some(map) = step.output.get("verified").and_then(|v| v.as_object()) else {
            continue;
        };
        for (key, value) in map {
            let sum = if let Some(sum) = sums.get_mut(key) {
                sum
            } else {
                order.push(key.clone());
                sums.entry(key.clone()).or_default()
            };
            if let Some(n) = value.as_i64() {
                sum.whole += i128::from(n);
            } else if let Some(n) = value.as_u64() {
                sum.whole += i128::from(n);
            } else if let Some(x) = value.as_f64() {
                *sum.fraction.get_or_insert(0.0) += x;
            } else {
                continue;
            }
            sum.steps.push(step.name.clone());
        }
    }
    order
        .into_iter()
        .filter_map(|key| {
            let sum = sums.remove(&key)?;
            if sum.steps.is_empty() {
                return None;
            }
            let total = match sum.fraction {
                None => grouped(sum.whole),
                Some(x) => format!("{:.2}", x + sum.whole as f64),
            };
            Some(Count {
                key,
                total,
                steps: sum.steps.join(", "),
            })
        })
        .collect()
}

/// The Gantt chart: one bar per step at its start offset, as long as it took, on a time axis
/// that ends at a round value past the run's end.
fn chart(r: &Report) -> Chart {
    let end = r
        .steps
        .iter()
        .map(|s| s.started_ms.saturating_add(s.duration_ms))
        .chain([r.duration_ms, 1])
        .max()
        .unwrap_or(1);
    let step = tick_step(end);
    let axis_end = end.div_ceil(step) * step;
    let plot = CHART_WIDTH - LABEL_WIDTH - RIGHT_PAD;
    let x = |ms: u64| LABEL_WIDTH + plot * ms as f64 / axis_end as f64;
    let ticks = (0..=axis_end / step)
        .map(|i| Tick {
            x: round(x(i * step)),
            label: tick_label(i * step),
        })
        .collect();
    let bars = r
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let row_y = AXIS_HEIGHT + ROW_HEIGHT * i as f64;
            let left = x(s.started_ms);
            let width = (x(s.started_ms.saturating_add(s.duration_ms)) - left).max(MIN_BAR);
            let mut text = match s.outcome {
                Outcome::Skipped => "skipped".to_string(),
                Outcome::Failed => format!("{} · failed", duration(s.duration_ms)),
                _ => duration(s.duration_ms),
            };
            if s.resumed {
                text.push_str(" · resumed");
            }
            let mut tooltip = format!(
                "{}: {}, started +{}, took {}",
                s.name,
                class(s.outcome),
                duration(s.started_ms),
                duration(s.duration_ms)
            );
            if s.resumed {
                tooltip.push_str(", done in an earlier run of this run ID");
            }
            Bar {
                label: cut(&s.name, LABEL_CHARS),
                name: s.name.clone(),
                class: class(s.outcome),
                resumed: s.resumed,
                row_y,
                y: round(row_y + (ROW_HEIGHT - BAR_HEIGHT) / 2.0),
                text_y: round(row_y + ROW_HEIGHT / 2.0 + 4.5),
                x: round(left),
                width: round(width),
                text_x: round(left + width + 6.0),
                text,
                tooltip,
            }
        })
        .collect();
    Chart {
        width: CHART_WIDTH,
        height: AXIS_HEIGHT + ROW_HEIGHT * r.steps.len() as f64 + 8.0,
        plot_left: LABEL_WIDTH,
        plot_right: LABEL_WIDTH + plot,
        axis_y: AXIS_HEIGHT,
        row_height: ROW_HEIGHT,
        bar_height: BAR_HEIGHT,
        ticks,
        bars,
        run_end: round(x(r.duration_ms)),
    }
}

/// A round tick interval that puts at most ten ticks on an axis of `end` ms.
fn tick_step(end: u64) -> u64 {
    const STEPS: [u64; 22] = [
        1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000,
        120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000,
    ];
    let wanted = end.div_ceil(10);
    STEPS
        .into_iter()
        .find(|&s| s >= wanted)
        .unwrap_or_else(|| wanted.div_ceil(3_600_000) * 3_600_000)
}

fn tick_label(ms: u64) -> String {
    if ms == 0 {
        "0".into()
    } else if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 && !ms.is_multiple_of(1_000) {
        format!("{:.1} s", ms as f64 / 1_000.0)
    } else if ms < 60_000 {
        format!("{} s", ms / 1_000)
    } else if ms < 3_600_000 {
        match (ms / 60_000, ms % 60_000 / 1_000) {
            (m, 0) => format!("{m} min"),
            (m, s) => format!("{m}m {s:02}s"),
        }
    } else {
        match (ms / 3_600_000, ms % 3_600_000 / 60_000) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h}h {m:02}m"),
        }
    }
}

/// A duration as a person reads it: `420 ms`, `12.3 s`, `4m 05s`, `1h 02m 03s`.
fn duration(ms: u64) -> String {
    let secs = ms / 1_000;
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1_000.0)
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!(
            "{}h {:02}m {:02}s",
            secs / 3_600,
            secs % 3_600 / 60,
            secs % 60
        )
    }
}

/// The start time in UTC to the second, or as recorded when it does not parse.
fn started(rfc3339: &str) -> String {
    rfc3339.parse::<rustic_core::jiff::Timestamp>().map_or_else(
        |_| rfc3339.to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// `48213` as `48,213`.
fn grouped(n: i128) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::Finding;

    fn step(name: &str, outcome: Outcome, started_ms: u64, duration_ms: u64) -> StepRecord {
        StepRecord {
            name: name.into(),
            key: format!("{name}:0"),
            outcome,
            started_ms,
            duration_ms,
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

    fn report(steps: Vec<StepRecord>, error: Option<&str>) -> Report {
        Report {
            run_id: "20260101T000000Z-abcd".into(),
            runbook: "runbooks/restore-cluster.rhai".into(),
            dry_run: false,
            started: "2026-01-01T03:00:00.250Z".into(),
            steps,
            messages: Vec::new(),
            error: error.map(String::from),
            duration_ms: 252_000,
            operations: Vec::new(),
        }
    }

    fn finding(code: &str, severity: Severity, object: &str) -> Finding {
        Finding {
            code: code.into(),
            severity,
            object: object.into(),
            message: "claim is Pending".into(),
            hint: "check the StorageClass".into(),
        }
    }

    #[test]
    fn text_from_the_run_is_escaped_in_the_page_and_the_chart() {
        let mut evil = step("<script>alert(1)</script>", Outcome::Warning, 0, 1_000);
        evil.findings.push(finding(
            "KF-<b>X</b>",
            Severity::Warning,
            "ns/\"quoted\" & 'single'",
        ));
        evil.messages.push("<img src=x onerror=alert(1)>".into());
        let page = html(&report(vec![evil], None));
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img src=x"), "{page}");
        assert!(!page.contains("<b>X</b>"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{page}"
        );
        assert!(
            page.contains("&quot;quoted&quot; &amp; &#x27;single&#x27;"),
            "{page}"
        );
        // Self-contained: no script at all, nothing fetched from elsewhere.
        for outside in ["<script", "<link", "<img", "http", "@import", "@font-face"] {
            assert!(!page.contains(outside), "{outside} in {page}");
        }
    }

    #[test]
    fn a_failed_run_has_no_rto_and_names_the_failed_step() {
        let mut failed = step("restore bucket", Outcome::Failed, 2_000, 3_000);
        failed.error = Some("line 4:1: the S3 endpoint refused the upload".into());
        let r = report(
            vec![
                step("restore databases", Outcome::Ok, 0, 2_000),
                failed,
                step("verify", Outcome::Skipped, 5_000, 0),
            ],
            None,
        );
        let page = Page::of(&r);
        assert!(!page.rto.reached);
        assert_eq!(page.rto.time, "not reached");
        assert_eq!(page.rto.why, "step “restore bucket” failed");
        assert_eq!(page.outcome, "failed");
        let text = html(&r);
        assert!(text.contains("not reached"), "{text}");
        assert!(
            text.contains("the S3 endpoint refused the upload"),
            "{text}"
        );
        assert_eq!(text.matches("<rect class=\"bar ").count(), 3, "{text}");
        assert!(text.contains("<rect class=\"bar failed\""), "{text}");
        assert!(text.contains("<rect class=\"bar skipped\""), "{text}");

        // A run that never began: its error is the one failure, and no chart is drawn.
        let never = report(Vec::new(), Some("restore.rhai:1:9: syntax error"));
        let page = Page::of(&never);
        assert_eq!(page.rto.why, "the runbook stopped outside any step");
        assert!(page.chart.is_none());
        assert!(html(&never).contains("restore.rhai:1:9: syntax error"));
    }

    #[test]
    fn a_green_run_reaches_its_rto_at_its_wall_time() {
        let r = report(
            vec![
                step("restore databases", Outcome::Ok, 0, 2_000),
                step("verify", Outcome::Warning, 2_000, 250_000),
            ],
            None,
        );
        let page = Page::of(&r);
        assert!(page.rto.reached);
        assert_eq!(page.rto.time, "4m 12s");
        assert_eq!(page.started, "2026-01-01 03:00:00 UTC");
    }

    #[test]
    fn verified_counts_are_summed_per_key_across_steps() {
        let mut dbs = step("databases", Outcome::Ok, 0, 10);
        dbs.output = serde_json::json!({ "verified": { "tables": 12, "rows": 48_000 } });
        let mut more = step("more databases", Outcome::Ok, 10, 10);
        more.output =
            serde_json::json!({ "verified": { "rows": 213, "note": "text is not counted" } });
        let mut bucket = step("bucket", Outcome::Ok, 20, 10);
        bucket.output = serde_json::json!({ "verified": { "objects": 2040 }, "other": 5 });
        let plain = step("plain", Outcome::Ok, 30, 10);
        let counts = verified(&[dbs, more, bucket, plain]);
        let found: BTreeMap<&str, (&str, &str)> = counts
            .iter()
            .map(|c| (c.key.as_str(), (c.total.as_str(), c.steps.as_str())))
            .collect();
        assert_eq!(found.len(), 3, "text values are not counted");
        assert_eq!(found["rows"], ("48,213", "databases, more databases"));
        assert_eq!(found["tables"], ("12", "databases"));
        assert_eq!(found["objects"], ("2,040", "bucket"));
    }

    #[test]
    fn the_time_axis_ends_on_a_round_tick_past_the_run() {
        assert_eq!(tick_step(252_000), 30_000);
        assert_eq!(tick_label(240_000), "4 min");
        assert_eq!(tick_label(270_000), "4m 30s");
        assert_eq!(tick_step(803), 100);
        assert_eq!(tick_label(400), "400 ms");
        assert_eq!(tick_label(1_000), "1 s");
        assert_eq!(tick_label(1_400), "1.4 s");
        assert_eq!(duration(420), "420 ms");
        assert_eq!(duration(12_345), "12.3 s");
        assert_eq!(duration(3_723_000), "1h 02m 03s");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(-12), "-12");
    }
}
