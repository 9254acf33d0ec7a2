//! Portable archives: a snapshot of a real MariaDB database and a bucket on the test S3 server
//! exported as a tar, imported into other repositories (a local folder, and S3 through a pipe),
//! restored there byte-equal; damaged and foreign tars refused without leaving a snapshot.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;

use aws_sdk_s3::primitives::ByteStream;
use common::db::{mysql_exec, mysql_rows, Db};
use common::{code, create_bucket, error_line, unique_bucket, Kf};

/// Appears in exactly one bucket object, so a test can find that object's bytes in the tar.
const MARKER: &str = "ARCHIVE-TEST-MARKER";

fn s3(
    f: impl AsyncFnOnce(aws_sdk_s3::Client) -> BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Vec<u8>> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = common::s3_client().await;
        f(c).await
    })
}

fn put_objects(bucket: &str, objects: &BTreeMap<String, Vec<u8>>) {
    let objects = objects.clone();
    s3(async move |c| {
        for (k, v) in objects {
            c.put_object()
                .bucket(bucket)
                .key(&k)
                .body(ByteStream::from(v))
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {k}: {e:?}"));
        }
        BTreeMap::new()
    });
}

fn objects(bucket: &str) -> BTreeMap<String, Vec<u8>> {
    s3(async move |c| {
        let mut out = BTreeMap::new();
        let listed = c.list_objects_v2().bucket(bucket).send().await.unwrap();
        for o in listed.contents() {
            let key = o.key().unwrap().to_string();
            let body = c
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
            out.insert(
                key,
                body.body.collect().await.unwrap().into_bytes().to_vec(),
            );
        }
        out
    })
}

/// The source: a database with a few tables (one with multi-MiB rows) and a bucket with
/// small, empty, long-named and multi-MiB objects, backed up into a local repository.
struct Source {
    kf: Kf,
    db: String,
    bucket: String,
    objects: BTreeMap<String, Vec<u8>>,
}

fn source(fx: &mut Db) -> Source {
    let db = fx.mysql_name("arch");
    mysql_exec(None, &[&format!("CREATE DATABASE `{db}`")]);
    let mut sqls = vec![
        "CREATE TABLE Artifact (id int NOT NULL PRIMARY KEY, uri text, payload longblob)".to_string(),
        "CREATE TABLE runs (uuid varchar(64) NOT NULL PRIMARY KEY, state varchar(16), at datetime(6))".to_string(),
    ];
    for i in 0..3 {
        sqls.push(format!(
            "INSERT INTO Artifact VALUES ({i}, 's3://b/{i}', x'{}')",
            hex::encode(common::noise(2 * 1024 * 1024 + i * 77, 10 + i as u64))
        ));
    }
    for i in 0..500 {
        sqls.push(format!(
            "INSERT INTO runs VALUES ('run-{i}', 'Succeeded', '2026-01-02 03:04:05.{i:06}')"
        ));
    }
    let refs: Vec<&str> = sqls.iter().map(String::as_str).collect();
    mysql_exec(Some(&db), &refs);

    let bucket = unique_bucket("arch");
    create_bucket(&bucket);
    let mut objs = BTreeMap::new();
    objs.insert(
        "marker.txt".to_string(),
        format!("{MARKER} in one object\n").into_bytes(),
    );
    objs.insert("empty".to_string(), Vec::new());
    objs.insert(
        format!("deep/{}/name.json", "long-folder-name".repeat(12)),
        b"{}".to_vec(),
    );
    objs.insert(
        "models/big.bin".to_string(),
        common::noise(9 * 1024 * 1024 + 5, 99),
    );
    for i in 0..40 {
        objs.insert(
            format!("v2/run-{}/out-{i}.json", i % 7),
            format!("{{\"i\": {i}}}").into_bytes(),
        );
    }
    put_objects(&bucket, &objs);

    let kf = Kf::local();
    common::write_db_and_bucket_config(&kf, &db, &bucket);
    kf.ok(&["init"]);
    kf.ok(&["backup", "--tag", "nightly"]);
    Source {
        kf,
        db,
        bucket,
        objects: objs,
    }
}

/// A second repository with the same sources configured, so that it can restore them.
fn target(src: &Source) -> Kf {
    let kf = Kf::local();
    common::write_db_and_bucket_config(&kf, &src.db, &src.bucket);
    kf.ok(&["init"]);
    kf
}

/// `show`'s manifest, files and snapshot time, cluster and tags: what an import must keep.
fn shown(kf: &Kf, id: &str) -> serde_json::Value {
    let v = kf.json(&["show", id]);
    serde_json::json!({
        "manifest": v["manifest"],
        "files": v["files"],
        "time": v["snapshot"]["time"],
        "cluster": v["snapshot"]["cluster"],
        "tags": v["snapshot"]["tags"],
    })
}

fn snapshot_count(kf: &Kf) -> usize {
    kf.json(&["snapshots", "--all"])
        .as_array()
        .map_or(0, Vec::len)
}

fn checksums(db: &str) -> Vec<Option<Vec<u8>>> {
    ["Artifact", "runs"]
        .iter()
        .map(|t| mysql_rows(db, &format!("CHECKSUM TABLE `{t}`"))[0][1].clone())
        .collect()
}

#[test]
fn an_exported_snapshot_imports_into_another_repository_and_restores_byte_equal() {
    let mut fx = Db::cli();
    let src = source(&mut fx);
    let tar = src.kf.path().join("snap.tar");
    let exported = src
        .kf
        .json(&["export", "latest", "-o", tar.to_str().unwrap()]);
    let source_id = exported["snapshot"].as_str().unwrap().to_string();

    // A plain tar: the files at their snapshot paths, the manifest, and the checksums last.
    let listing = std::process::Command::new("tar")
        .arg("tf")
        .arg(&tar)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(names.first(), Some(&"kfguard-archive/ARCHIVE.json"));
    assert_eq!(names.last(), Some(&"kfguard-archive/SHA256SUMS"));
    assert!(names.contains(&"kfguard.json"), "{listing}");

    let dst = target(&src);
    let imported = dst.json(&["import", tar.to_str().unwrap()]);
    assert_eq!(imported["source"]["id"], source_id.as_str());
    let new_id = imported["id"].as_str().unwrap();
    assert_eq!(dst.json(&["snapshots"]).as_array().unwrap().len(), 1);
    assert_eq!(shown(&dst, new_id), shown(&src.kf, &source_id));
    // Same content, byte for byte: the same kfguard.json.
    assert_eq!(
        dst.ok(&["dump", "latest", "kfguard.json"]),
        src.kf.ok(&["dump", "latest", "kfguard.json"])
    );
    dst.ok(&["check", "--read-data"]);

    // Restored from the second repository, the database and the bucket equal the originals.
    let into = fx.mysql_name("arch_r");
    dst.ok(&[
        "restore",
        "latest",
        "--database",
        &format!("kfp/{}", src.db),
        "--into",
        &into,
    ]);
    assert_eq!(checksums(&into), checksums(&src.db));
    let bucket_r = unique_bucket("arch-r");
    create_bucket(&bucket_r);
    dst.ok(&[
        "restore",
        "latest",
        "--bucket",
        &format!("store/{}", src.bucket),
        "--into",
        &bucket_r,
    ]);
    assert_eq!(objects(&bucket_r), src.objects);
}

#[test]
fn export_to_stdout_pipes_into_import_from_stdin_on_s3() {
    let mut fx = Db::cli();
    let src = source(&mut fx);
    let repo_bucket = unique_bucket("arch-repo");
    create_bucket(&repo_bucket);
    let dst = Kf::s3(&repo_bucket, "dr");
    dst.ok(&["init"]);

    // The two processes share the database servers as `Kf::run` does; released before `show`.
    let server = common::db::shared();
    let mut export = src
        .kf
        .std_cmd()
        .args(["export", "latest", "-o", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = export.stdout.take().unwrap();
    let import = dst
        .std_cmd()
        .args(["--output", "json", "import", "-"])
        .stdin(pipe)
        .output()
        .unwrap();
    let exported = export.wait_with_output().unwrap();
    drop(server);
    assert!(
        exported.status.success(),
        "export: {}",
        String::from_utf8_lossy(&exported.stderr)
    );
    assert!(
        import.status.success(),
        "import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    // The summary of `-o -` goes to stderr: stdout is the archive.
    assert!(String::from_utf8_lossy(&exported.stderr).contains("exported snapshot"));
    let imported: serde_json::Value = serde_json::from_slice(&import.stdout).unwrap();
    let source_id = imported["source"]["id"].as_str().unwrap();
    assert_eq!(
        shown(&dst, imported["id"].as_str().unwrap()),
        shown(&src.kf, source_id)
    );
}

/// Imports `bytes` as an archive into `dst`; returns the exit code and the error line.
fn import_bytes(dst: &Kf, name: &str, bytes: &[u8]) -> (i32, String) {
    let path = dst.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    let out = dst.run(&["import", path.to_str().unwrap()]);
    (code(&out), error_line(&out))
}

fn position(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("marker in the archive")
}

#[test]
fn a_truncated_or_altered_archive_fails_and_leaves_no_snapshot() {
    let mut fx = Db::cli();
    let src = source(&mut fx);
    let tar = src.kf.path().join("snap.tar");
    src.kf
        .ok(&["export", "latest", "-o", tar.to_str().unwrap()]);
    let whole = std::fs::read(&tar).unwrap();
    let dst = target(&src);

    // Cut inside the big model object (its content is most of the archive's end).
    let (exit, line) = import_bytes(&dst, "cut.tar", &whole[..whole.len() * 2 / 3]);
    assert_eq!(exit, 1, "{line}");
    assert!(line.contains("the archive is truncated"), "{line}");
    assert!(line.contains("no snapshot was created"), "{line}");
    assert_eq!(snapshot_count(&dst), 0);

    // Cut at an entry boundary: right before the checksum list.
    let sums = position(&whole, b"kfguard-archive/SHA256SUMS");
    let (exit, line) = import_bytes(&dst, "cut2.tar", &whole[..sums / 512 * 512]);
    assert_eq!(exit, 1, "{line}");
    assert!(line.contains("truncated"), "{line}");
    assert_eq!(snapshot_count(&dst), 0);

    // One flipped byte in one object's content: the import names that entry.
    let mut flipped = whole.clone();
    let at = position(&whole, MARKER.as_bytes());
    flipped[at] ^= 0x01;
    let (exit, line) = import_bytes(&dst, "flipped.tar", &flipped);
    assert_eq!(exit, 1, "{line}");
    assert!(line.contains("is altered"), "{line}");
    assert!(line.contains("marker.txt"), "{line}");
    assert!(line.contains("no snapshot was created"), "{line}");
    assert_eq!(snapshot_count(&dst), 0);

    // The whole archive still imports afterwards.
    let ok_path = dst.path().join("whole.tar");
    std::fs::write(&ok_path, &whole).unwrap();
    dst.ok(&["import", ok_path.to_str().unwrap()]);
    assert_eq!(snapshot_count(&dst), 1);
}

#[test]
fn a_tar_not_written_by_kfguard_is_refused() {
    let dst = Kf::local();
    dst.ok(&["init"]);
    let dir = dst.path().join("stuff");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kfguard.json"), "{}").unwrap();
    let tar = dst.path().join("other.tar");
    let made = std::process::Command::new("tar")
        .arg("cf")
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .arg("kfguard.json")
        .status()
        .unwrap();
    assert!(made.success());
    let out = dst.run(&["import", tar.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", error_line(&out));
    assert!(
        error_line(&out).contains("not a kfguard archive"),
        "{}",
        error_line(&out)
    );
    assert!(Path::new(&dst.repo).exists());
    assert_eq!(snapshot_count(&dst), 0);

    // Random bytes are not a tar at all.
    let (exit, line) = import_bytes(&dst, "noise.tar", &common::noise(10_000, 3));
    assert_eq!(exit, 2, "{line}");
    assert!(line.contains("not a kfguard archive"), "{line}");
}
