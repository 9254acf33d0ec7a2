//! The drill report (`runbook run --report-html`), loaded in headless Chromium as a person
//! would see it: the DOM the browser built holds the timeline and the counts, and its screenshot
//! shows the bars in their colours.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common;

use common::{code, stderr, Kf};

/// Debian's `chromium`; scripts/services.sh installs it.
fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("chromium is not installed: scripts/services.sh up installs it (apt-get install chromium)")
        })
}

/// Headless Chromium on `page` with `args` (`--dump-dom`, `--screenshot=…`): stdout. Root in a
/// container needs `--no-sandbox`; a profile of its own keeps parallel tests apart.
fn headless(kf: &Kf, page: &Path, args: &[&str]) -> Vec<u8> {
    let started = Instant::now();
    let out = assert_cmd::Command::new(chromium())
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            kf.path().join("chromium").display()
        ))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .env("HOME", kf.path())
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run chromium");
    eprintln!("chromium {args:?} took {:?}", started.elapsed());
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const DRILL: &str = r#"// drill: a restore that fails half-way, with findings and verified counts.
finally("scale controllers back", || info("scaled back"));
step("restore databases", || {
    sleep(0.3);
    #{ verified: #{ tables: 12, rows: 48000 } }
});
step("restore <metadb> & cachedb", || {
    sleep(0.2);
    #{ verified: #{ rows: 213, objects: 2040 } }
});
step("check health", || {
    finding("KF-CERT-EXPIRED", "error", "kubeflow/kserve-webhook-server-cert", "the serving certificate expired", "renew the certificate");
    finding("KF-PVC-PENDING", "warning", "kubeflow/minio-pvc", "claim is Pending", "check the StorageClass");
    finding("KF-PROFILES", "info", "kubeflow", "2 profiles checked", "");
    sleep(0.3);
    #{ verified: #{ kubernetes: 311 } }
});
step("restore bucket", || {
    sleep(0.2);
    fail("the S3 endpoint refused the upload");
});
step("verify health", || 1);
"#;

#[test]
fn the_drill_report_shows_the_timeline_findings_and_counts_in_a_browser() {
    let kf = Kf::local();
    kf.write("rb/drill.rhai", DRILL);
    let page = kf.path().join("drill.html");
    let out = kf.run(&[
        "runbook",
        "run",
        "rb/drill.rhai",
        "--report-html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        page.is_file(),
        "--report-html is written when the run fails"
    );

    let dom = String::from_utf8(headless(&kf, &page, &["--dump-dom"])).unwrap();
    assert!(dom.contains("<svg class=\"gantt\""), "no timeline:\n{dom}");
    let steps = [
        "restore databases",
        "restore &lt;metadb&gt; &amp; cachedb",
        "check health",
        "restore bucket",
        "verify health",
        "scale controllers back",
    ];
    assert_eq!(
        dom.matches("<rect class=\"bar ").count(),
        steps.len(),
        "one bar per step:\n{dom}"
    );
    for step in steps {
        assert!(
            dom.contains(&format!("data-step=\"{step}\"")),
            "no bar for {step}:\n{dom}"
        );
    }
    for outcome in ["ok", "warning", "failed", "skipped"] {
        assert!(
            dom.contains(&format!("<rect class=\"bar {outcome}\"")),
            "no {outcome} bar:\n{dom}"
        );
    }
    // A step name is text, not markup.
    assert!(!dom.contains("<metadb>"), "{dom}");

    // The verified counts, summed across the steps that reported them.
    for (what, total) in [
        ("tables", "12"),
        ("rows", "48,213"),
        ("objects", "2,040"),
        ("kubernetes", "311"),
    ] {
        assert!(
            dom.contains(&format!(
                "<td class=\"what\">{what}</td><td class=\"num total\">{total}</td>"
            )),
            "no {what} = {total}:\n{dom}"
        );
    }
    // Findings by severity, with their codes; the RTO of a failed run is not reached.
    let errors = dom.find("<h3>Errors").expect("an Errors group");
    let warnings = dom.find("<h3>Warnings").expect("a Warnings group");
    let info = dom.find("<h3>Info").expect("an Info group");
    assert!(errors < warnings && warnings < info, "{dom}");
    for code in ["KF-CERT-EXPIRED", "KF-PVC-PENDING", "KF-PROFILES"] {
        assert!(dom.contains(code), "{code}:\n{dom}");
    }
    assert!(dom.contains("<p class=\"big\">not reached</p>"), "{dom}");
    assert!(
        dom.contains("step “restore bucket” failed"),
        "the RTO names the failed step:\n{dom}"
    );
    assert!(dom.contains("the S3 endpoint refused the upload"), "{dom}");

    // What a person sees: a page drawn in more than a few colours, the bars among them, each
    // bar larger than its swatch in the legend (22×12 px).
    let shot = kf.path().join("drill.png");
    headless(
        &kf,
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600",
        ],
    );
    let colours = colours(&shot);
    assert!(
        colours.len() > 16,
        "the screenshot is nearly blank: {} colours",
        colours.len()
    );
    for (outcome, rgb) in [
        ("ok", [0x2d, 0xa4, 0x4e]),
        ("warning", [0xd4, 0xa7, 0x2c]),
        ("failed", [0xcf, 0x22, 0x2e]),
    ] {
        let pixels = colours.get(&rgb).copied().unwrap_or_default();
        assert!(
            pixels > 1_000,
            "the {outcome} bar's colour #{:02x}{:02x}{:02x} covers only {pixels} pixels",
            rgb[0],
            rgb[1],
            rgb[2]
        );
    }
}

/// The RGB colours of a PNG, with how many pixels each covers.
fn colours(path: &Path) -> HashMap<[u8; 3], usize> {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("no screenshot {}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a PNG of a sane size")];
    let frame = reader.next_frame(&mut buf).expect("a PNG frame");
    let channels = frame.color_type.samples();
    assert!(channels >= 3, "a colour screenshot: {:?}", frame.color_type);
    assert!(frame.width >= 1000, "width {}", frame.width);
    let mut counts = HashMap::new();
    for px in buf[..frame.buffer_size()].chunks_exact(channels) {
        *counts.entry([px[0], px[1], px[2]]).or_default() += 1;
    }
    counts
}

#[test]
fn a_runbook_that_never_begins_still_leaves_its_drill_report() {
    let kf = Kf::local();
    kf.write("rb/broken.rhai", "let y = ;\n");
    let page = kf.path().join("drill.html");
    let out = kf.run(&[
        "runbook",
        "run",
        "rb/broken.rhai",
        "--report-html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).expect("--report-html is written");
    assert!(html.contains("broken.rhai:1:"), "{html}");
    assert!(html.contains("not reached"), "{html}");
    assert!(html.contains("No step ran."), "{html}");
}
