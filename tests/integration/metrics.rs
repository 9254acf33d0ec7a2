//! Prometheus metrics after `backup` and `runbook run`: the textfile for node-exporter, read
//! back with a parser of its own (prometheus-parse, and promtool where it is installed), and
//! pushes received by a Pushgateway stand-in: a real HTTP server on the loopback that records
//! each request and answers `GET /metrics` with a group it was given.
// The values compared are counts and timestamps read back verbatim: exact in f64.
#![allow(clippy::float_cmp)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus_parse::{Scrape, Value};

use crate::common;
use common::db::{mysql_exec, Db};
use common::runbook::{sources, workspace};
use common::{code, stderr, Kf};

/// Three rows in one table, in a new MariaDB database.
fn seed_mysql(database: &str) {
    mysql_exec(None, &[&format!("CREATE DATABASE `{database}`")]);
    mysql_exec(
        Some(database),
        &[
            "CREATE TABLE runs (id int PRIMARY KEY, state varchar(32) NOT NULL)",
            "INSERT INTO runs VALUES (1, 'Succeeded'), (2, 'Failed'), (3, 'Running')",
        ],
    );
}

/// Parses exposition text with prometheus-parse, and with `promtool check metrics` when the
/// machine has it (Debian's `prometheus` package).
fn parse(text: &str) -> Scrape {
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        // promtool's lint asks for `_total` on counters and such; only a parse error fails.
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !said.contains("error while linting"),
            "promtool: {said}\n{text}"
        );
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("exposition text parses")
}

/// The value of the one sample of `metric` whose labels include all of `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{metric} is not a gauge: {other:?}"),
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{metric}{labels:?}: expected one sample, found {found:?} in {:#?}",
        scrape.samples
    );
    found[0]
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_backup_writes_a_textfile_with_its_bytes_rows_objects_and_last_success() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("metrics");
    seed_mysql(&my);
    let kf = workspace();
    sources(&kf, Some(&my), None, None);
    kf.ok(&["init"]);
    std::fs::create_dir(kf.path().join("textfile")).unwrap();
    let before = now();
    kf.ok(&["backup", "--metrics-file", "textfile/kfguard.prom"]);

    let path = kf.path().join("textfile/kfguard.prom");
    let m = parse(&read(&path));
    let backup = [("cluster", "kubeflow"), ("operation", "backup")];
    assert!(value(&m, "kfguard_added_bytes", &backup) > 0.0);
    assert!(value(&m, "kfguard_stored_bytes", &backup) > 0.0);
    assert!(value(&m, "kfguard_read_bytes", &backup) > 0.0);
    let db = format!("kfp/{my}");
    assert_eq!(
        value(
            &m,
            "kfguard_rows",
            &[("operation", "backup"), ("database", &db)]
        ),
        3.0
    );
    assert_eq!(
        value(
            &m,
            "kfguard_component_success",
            &[("component", &format!("database:{db}"))]
        ),
        1.0
    );
    let last = value(&m, "kfguard_last_success_timestamp_seconds", &backup);
    assert!(last >= before.floor() && last <= now() + 1.0, "{last}");
    assert_eq!(
        value(&m, "kfguard_last_run_timestamp_seconds", &backup),
        last
    );
    assert_eq!(value(&m, "kfguard_last_run_success", &backup), 1.0);
    assert_eq!(value(&m, "kfguard_last_run_exit_code", &backup), 0.0);
    assert!(value(&m, "kfguard_run_duration_seconds", &backup) > 0.0);

    // Readable by node-exporter's user, and no temporary file left beside it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    let names: Vec<String> = std::fs::read_dir(kf.path().join("textfile"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["kfguard.prom"]);
}

#[test]
fn a_failed_backup_writes_success_0_and_its_exit_code_and_keeps_the_last_success() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    kf.write("data/a.txt", "hello");
    kf.ok(&[
        "backup",
        "--from-dir",
        "data",
        "--metrics-file",
        "kfguard.prom",
    ]);
    let path = kf.path().join("kfguard.prom");
    let backup = [("cluster", "kubeflow"), ("operation", "backup")];
    let first = parse(&read(&path));
    let last_success = value(&first, "kfguard_last_success_timestamp_seconds", &backup);

    // The environment names the file this time; a source command that fails fails the run.
    let kf = kf.env("KFGUARD_METRICS_FILE", "kfguard.prom");
    let out = kf.run(&["backup", "--from-command", "broken.txt=exit 7"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));

    let m = parse(&read(&path));
    assert_eq!(value(&m, "kfguard_last_run_success", &backup), 0.0);
    assert_eq!(value(&m, "kfguard_last_run_exit_code", &backup), 1.0);
    assert!(value(&m, "kfguard_last_run_timestamp_seconds", &backup) > last_success);
    assert_eq!(
        value(&m, "kfguard_last_success_timestamp_seconds", &backup),
        last_success,
        "the failed run must keep the last success"
    );
    // What only a finished backup knows is not claimed.
    assert!(m.samples.iter().all(|s| s.metric != "kfguard_added_bytes"));
}

/// A runbook with a backup, a check with findings, and a step that fails.
const RUNBOOK: &str = r#"
// metrics-drill: a backup, findings, a failure.
step("backup", || { backup::run(); });
step("look", || {
    finding("KF-PVC-PENDING", "error", "kubeflow/a", "claim is Pending", "check the StorageClass");
    finding("KF-PVC-PENDING", "error", "kubeflow/b", "claim is Pending", "check the StorageClass");
    finding("KF-OLD-CERT", "warning", "kubeflow/webhook", "expires soon", "rotate it");
});
step("break", || { fail("on purpose"); });
step("after", || { info("never reached"); });
"#;

/// A Pushgateway stand-in: records every request as (method, path, body), and answers
/// `GET /metrics` with `group`.
struct Gateway {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<(String, String, String)>>>,
    _rt: tokio::runtime::Runtime,
}

impl Gateway {
    fn start(group: &'static str) -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let got: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
        let seen = got.clone();
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().path().to_string();
                            let body = req.into_body().collect().await?.to_bytes();
                            let answer = if method == "GET" { group } else { "" };
                            seen.lock().unwrap().push((
                                method,
                                path,
                                String::from_utf8_lossy(&body).into_owned(),
                            ));
                            Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(answer))))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, got, _rt: rt }
    }

    fn requests(&self) -> Vec<(String, String, String)> {
        self.got.lock().unwrap().clone()
    }
}

/// The group as a Pushgateway shows it: the runbook's last success of an earlier night, with
/// the grouping labels and `instance` it adds, beside another group's.
const GROUP: &str = concat!(
    "# TYPE kfguard_last_success_timestamp_seconds gauge\n",
    "kfguard_last_success_timestamp_seconds{cluster=\"kubeflow\",instance=\"\",job=\"kfguard-runbook-drill\",operation=\"runbook\",runbook=\"drill\"} 1.7e+09\n",
    "kfguard_last_success_timestamp_seconds{cluster=\"other\",instance=\"\",job=\"kfguard-runbook-drill\",operation=\"runbook\",runbook=\"drill\"} 5\n",
    "push_time_seconds{cluster=\"kubeflow\",instance=\"\",job=\"kfguard-runbook-drill\"} 1.7e+09\n",
);

#[test]
fn a_runbook_run_records_its_steps_findings_and_its_backup_in_the_file_and_the_push() {
    let mut fx = Db::cli();
    let my = fx.mysql_name("metrics_rb");
    seed_mysql(&my);
    let kf = workspace();
    sources(&kf, Some(&my), None, None);
    kf.ok(&["init"]);
    kf.write("rb/drill.rhai", RUNBOOK);
    let gw = Gateway::start(GROUP);
    let out = kf.run(&[
        "runbook",
        "run",
        "rb/drill.rhai",
        "--metrics-file",
        "drill.prom",
        "--pushgateway",
        &format!("http://{}", gw.addr),
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));

    let rb = [
        ("cluster", "kubeflow"),
        ("operation", "runbook"),
        ("runbook", "drill"),
    ];
    let file = parse(&read(&kf.path().join("drill.prom")));
    let requests = gw.requests();
    let posts: Vec<_> = requests.iter().filter(|(m, _, _)| m == "POST").collect();
    assert_eq!(posts.len(), 1, "{requests:?}");
    assert_eq!(
        posts[0].1,
        "/metrics/job/kfguard-runbook-drill/cluster/kubeflow"
    );
    let pushed = parse(&posts[0].2);

    for m in [&file, &pushed] {
        assert_eq!(value(m, "kfguard_last_run_success", &rb), 0.0);
        assert_eq!(value(m, "kfguard_last_run_exit_code", &rb), 1.0);
        let step = |name: &str| {
            let component = format!("step:{name}");
            value(
                m,
                "kfguard_component_success",
                &[("runbook", "drill"), ("component", component.as_str())],
            )
        };
        assert_eq!(step("backup"), 1.0);
        assert_eq!(step("look"), 1.0);
        assert_eq!(step("break"), 0.0);
        assert_eq!(step("after"), 0.0, "a step never reached did not succeed");
        let finding = |severity: &str, code: &str| {
            value(
                m,
                "kfguard_findings",
                &[("runbook", "drill"), ("severity", severity), ("code", code)],
            )
        };
        assert_eq!(finding("error", "KF-PVC-PENDING"), 2.0);
        assert_eq!(finding("warning", "KF-OLD-CERT"), 1.0);
        assert_eq!(finding("info", ""), 0.0);

        // The backup the runbook took counts as a backup of its own, for the backup alerts.
        let backup = [("cluster", "kubeflow"), ("operation", "backup")];
        assert_eq!(value(m, "kfguard_last_run_success", &backup), 1.0);
        let db = format!("kfp/{my}");
        assert_eq!(
            value(
                m,
                "kfguard_rows",
                &[("operation", "backup"), ("database", &db)]
            ),
            3.0
        );
        assert!(value(m, "kfguard_last_success_timestamp_seconds", &backup) > 1.7e9);
    }
    // The failed runbook has no success of its own: the file had none before; the push keeps
    // the group's, which a POST of the family would otherwise replace.
    assert!(!file.samples.iter().any(|s| {
        s.metric == "kfguard_last_success_timestamp_seconds"
            && s.labels.get("operation") == Some("runbook")
    }));
    assert_eq!(
        value(&pushed, "kfguard_last_success_timestamp_seconds", &rb),
        1.7e9
    );
    assert!(
        pushed
            .samples
            .iter()
            .all(|s| s.labels.get("cluster") == Some("kubeflow")),
        "only this group's samples are pushed back"
    );
}

#[test]
fn an_unreachable_pushgateway_is_one_warning_and_the_file_is_still_written() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    kf.write("data/a.txt", "hello");
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    kf.write(
        "kfguard.toml",
        &format!("[metrics]\nfile = \"out/kfguard.prom\"\npushgateway = \"http://ops:hunter2-secret@127.0.0.1:{port}\"\n"),
    );
    std::fs::create_dir(kf.path().join("out")).unwrap();
    let out = kf.run(&["--quiet", "backup", "--from-dir", "data"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 3, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("cannot push the metrics to the Pushgateway")
            && lines[0].contains(&format!("http://ops:***@127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("hunter2-secret"), "{err}");
    let m = parse(&read(&kf.path().join("out/kfguard.prom")));
    assert_eq!(
        value(&m, "kfguard_last_run_exit_code", &[("operation", "backup")]),
        0.0,
        "the run's own exit code, before the push"
    );
}

#[test]
fn config_show_prints_the_metrics_targets_with_the_password_redacted() {
    let kf = Kf::local()
        .env(
            "KFGUARD_PUSHGATEWAY",
            "https://ops:hunter2-secret@pushgateway.example:9091",
        )
        .env("KFGUARD_METRICS_FILE", "/var/lib/textfile/kfguard.prom");
    let shown = kf.json(&["config", "show"]);
    assert_eq!(
        shown["metrics"]["pushgateway"],
        "https://ops:***@pushgateway.example:9091"
    );
    assert_eq!(shown["metrics"]["file"], "/var/lib/textfile/kfguard.prom");
    assert!(!shown.to_string().contains("hunter2-secret"));

    let out = kf
        .env("KFGUARD_PUSHGATEWAY", "pushgateway:9091")
        .run(&["config", "show"]);
    assert_eq!(code(&out), 2);
    assert!(
        common::error_line(&out).contains("KFGUARD_PUSHGATEWAY"),
        "{}",
        stderr(&out)
    );
}
