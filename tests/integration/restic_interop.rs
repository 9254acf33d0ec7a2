//! A repository written by kfguard is readable by a stock `restic`: list, check, restore.

use crate::common;

use std::process::Command;

use common::{
    create_bucket, restic, s3_endpoint, sample_folder, tree_bytes, unique_bucket, Kf, PASSWORD,
};

pub(crate) fn restic_cmd(kf: &Kf, repo: &str) -> Command {
    let mut c = Command::new(restic());
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", kf.path())
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", kf.path().join("restic-cache"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    c
}

pub(crate) fn restic_ok(kf: &Kf, repo: &str, args: &[&str]) -> Vec<u8> {
    let out = restic_cmd(kf, repo)
        .args(args)
        .output()
        .expect("run restic");
    assert!(
        out.status.success(),
        "restic {args:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn interop(kf: &Kf, restic_repo: &str) {
    kf.ok(&["init"]);
    let data = sample_folder(kf, "data");
    kf.ok(&["backup", "--from-dir", data.to_str().unwrap()]);
    // A change between two backups must reach restic's view of the latest snapshot too.
    std::fs::write(data.join("hello.txt"), "second night\n").unwrap();
    let second = kf.json(&[
        "backup",
        "--from-dir",
        data.to_str().unwrap(),
        "--from-command",
        "dumps/schema.sql=printf 'CREATE TABLE t (id INT PRIMARY KEY);\\n'",
    ]);
    let id = second["id"].as_str().unwrap();

    let listed: serde_json::Value =
        serde_json::from_slice(&restic_ok(kf, restic_repo, &["snapshots", "--json"])).unwrap();
    let ids: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    assert!(ids.contains(&id.to_string()));

    restic_ok(kf, restic_repo, &["check", "--read-data"]);

    let target = kf.path().join("restored");
    restic_ok(
        kf,
        restic_repo,
        &["restore", id, "--target", target.to_str().unwrap()],
    );
    assert_eq!(
        tree_bytes(&target.join("files/data")),
        tree_bytes(&data),
        "restored bytes differ"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("files/dumps/schema.sql")).unwrap(),
        "CREATE TABLE t (id INT PRIMARY KEY);\n"
    );
    let manifest = restic_ok(kf, restic_repo, &["dump", id, "/kfguard.json"]);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest is JSON");
    assert_eq!(manifest["format_version"], 1);
}

#[test]
fn restic_reads_a_local_kfguard_repository() {
    let kf = Kf::local();
    let repo = kf.repo.clone();
    interop(&kf, &repo);
}

#[test]
fn restic_reads_an_s3_kfguard_repository() {
    let bucket = unique_bucket("interop");
    create_bucket(&bucket);
    let kf = Kf::s3(&bucket, "kf/backups");
    let endpoint = s3_endpoint();
    interop(&kf, &format!("s3:{endpoint}/{bucket}/kf/backups"));
}

/// kfguard makes a local repository's folders 0700 and its files 0400, as restic does; restic
/// must still write into it (a backup, then forget and prune remove files) and check it.
#[cfg(unix)]
#[test]
fn restic_writes_and_prunes_a_private_local_kfguard_repository() {
    use std::os::unix::fs::PermissionsExt;
    let kf = Kf::local();
    let repo = kf.repo.clone();
    kf.ok(&["init"]);
    let ours = kf.json(&["backup", "--from-command", "a.txt=echo kfguard"]);
    let ours = ours["id"].as_str().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(std::path::Path::new(&repo)), 0o700);
    assert_eq!(mode(&std::path::Path::new(&repo).join("config")), 0o400);

    let data = sample_folder(&kf, "data");
    let backup = ["backup", "--host", "restic-host", data.to_str().unwrap()];
    restic_ok(&kf, &repo, &backup);
    std::fs::write(data.join("hello.txt"), "changed\n").unwrap();
    restic_ok(&kf, &repo, &backup);
    let forget = [
        "forget",
        "--host",
        "restic-host",
        "--keep-last",
        "1",
        "--prune",
    ];
    restic_ok(&kf, &repo, &forget);
    restic_ok(&kf, &repo, &["check", "--read-data"]);
    let check = kf.json(&["check", "--read-data"]);
    assert_eq!(check["errors"], serde_json::json!([]), "{check}");
    let out = kf
        .cmd()
        .args(["dump", ours, "files/a.txt"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kfguard\n");
}
