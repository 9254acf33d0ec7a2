//! Artifact buckets on the local S3 server: round trip with awkward keys, incremental backups
//! that download only changed objects, and clear failures.

use crate::common;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use common::proxy::{Faults, Proxy};
use common::{code, create_bucket, error_line, s3_endpoint, unique_bucket, Kf};
use kfguard::repo::s3::{client, S3Settings};
use sha2::{Digest, Sha256};

struct S3 {
    rt: tokio::runtime::Runtime,
    client: Client,
}

struct Obj {
    body: Vec<u8>,
    content_type: Option<String>,
    metadata: HashMap<String, String>,
}

impl S3 {
    fn new() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = rt.block_on(client(&S3Settings {
            endpoint: Some(s3_endpoint()),
            region: Some("us-east-1".into()),
            path_style: true,
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            ..S3Settings::default()
        }));
        Self { rt, client }
    }

    fn put(&self, bucket: &str, key: &str, body: &[u8], ct: Option<&str>, meta: &[(&str, &str)]) {
        let mut req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()));
        if let Some(ct) = ct {
            req = req.content_type(ct);
        }
        for (k, v) in meta {
            req = req.metadata(*k, *v);
        }
        self.rt
            .block_on(req.send())
            .unwrap_or_else(|e| panic!("put {key:?}: {e:?}"));
    }

    fn keys(&self, bucket: &str) -> Vec<String> {
        self.rt.block_on(async {
            let mut keys = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .into_paginator()
                .send();
            while let Some(p) = pages.next().await {
                for o in p.unwrap().contents() {
                    keys.push(o.key().unwrap().to_string());
                }
            }
            keys
        })
    }

    fn get(&self, bucket: &str, key: &str) -> Obj {
        self.rt.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {key:?}: {e:?}"));
            let content_type = out.content_type().map(str::to_string);
            let metadata = out.metadata().cloned().unwrap_or_default();
            let body = out.body.collect().await.unwrap().into_bytes().to_vec();
            Obj {
                body,
                content_type,
                metadata,
            }
        })
    }

    /// Uploads a file from disk, streamed: large objects never sit in test memory.
    fn put_file(&self, bucket: &str, key: &str, file: &std::path::Path, meta: &[(&str, &str)]) {
        self.rt.block_on(async {
            let mut req = self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from_path(file).await.unwrap());
            for (k, v) in meta {
                req = req.metadata(*k, *v);
            }
            req.send()
                .await
                .unwrap_or_else(|e| panic!("put {key:?}: {e:?}"));
        });
    }

    /// Size, SHA-256 and user metadata of an object, read as a stream.
    fn digest(&self, bucket: &str, key: &str) -> (u64, [u8; 32], HashMap<String, String>) {
        self.rt.block_on(async {
            let mut out = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {key:?}: {e:?}"));
            let metadata = out.metadata().cloned().unwrap_or_default();
            let mut h = Sha256::new();
            let mut n = 0u64;
            while let Some(chunk) = out.body.next().await {
                let chunk = chunk.unwrap();
                n += chunk.len() as u64;
                h.update(&chunk);
            }
            (n, h.finalize().into(), metadata)
        })
    }

    fn all(&self, bucket: &str) -> BTreeMap<String, Obj> {
        self.all_but(bucket, &[])
    }

    /// Every object but the `skip` keys, read into memory.
    fn all_but(&self, bucket: &str, skip: &[&str]) -> BTreeMap<String, Obj> {
        self.keys(bucket)
            .into_iter()
            .filter(|k| !skip.contains(&k.as_str()))
            .map(|k| {
                let o = self.get(bucket, &k);
                (k, o)
            })
            .collect()
    }
}

fn bucket_config(kf: &Kf, bucket: &str) {
    bucket_config_at(kf, bucket, &s3_endpoint(), "AWS_ACCESS_KEY_ID");
}

/// A bucket source `kfp` at `endpoint`, whose access key id is read from the variable `key_env`.
fn bucket_config_at(kf: &Kf, bucket: &str, endpoint: &str, key_env: &str) {
    kf.write(
        "kfguard.toml",
        &format!(
            "[[buckets]]\nname = \"kfp\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\npath_style = true\nbucket = \"{bucket}\"\naccess_key_id_env = \"{key_env}\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"\n",
        ),
    );
}

/// Writes `len` pseudo-random bytes to a file, 1 MiB at a time; returns their SHA-256.
fn pseudo_random_file(path: &std::path::Path, len: u64, seed: u64) -> [u8; 32] {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut h = Sha256::new();
    let mut x = seed | 1;
    let mut left = len;
    let mut buf = vec![0u8; 1024 * 1024];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        for word in buf[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
    h.finalize().into()
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn weird_keys() -> Vec<String> {
    vec![
        "a//b".into(),
        "../x".into(),
        "./y".into(),
        "dir/".into(),
        "dir/inside.txt".into(),
        "plain".into(),
        "plain/child".into(),
        format!("long/{}", "s".repeat(300)),
        format!("long/{}/tail", "ü".repeat(200)),
        "with space/and %20 percent%.txt".into(),
        "ünïcødé/日本語.json".into(),
        "a/./b/../c".into(),
        "trailing dot./x".into(),
    ]
}

fn bucket_manifest(v: &serde_json::Value) -> &serde_json::Value {
    &v["manifest"]["buckets"][0]
}

/// 100 MiB: over the default 64 MiB thresholds, so that the backup reads it with ranged GETs
/// and the restore sends it as a multipart upload, neither lowered for the test.
const HUNDRED_MIB: u64 = 100 * 1024 * 1024 + 77;

#[test]
fn round_trip_with_weird_keys_metadata_and_multipart() {
    let s3 = S3::new();
    let src = unique_bucket("brt");
    let dst = unique_bucket("brt-dst");
    create_bucket(&src);
    create_bucket(&dst);
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (i, key) in weird_keys().into_iter().enumerate() {
        let body = format!("weird {i} {key}").into_bytes();
        s3.put(&src, &key, &body, None, &[]);
        expected.insert(key, body);
    }
    for i in 0..900 {
        let key = format!("v2/artifacts/pipe/run-{}/task/out-{i}.json", i % 17);
        let body = format!("{{\"i\": {i}}}").into_bytes();
        s3.put(
            &src,
            &key,
            &body,
            Some("application/json"),
            &[("run", &format!("r{i}"))],
        );
        expected.insert(key, body);
    }
    for i in 0..5 {
        let key = format!("empty/{i}");
        s3.put(&src, &key, b"", None, &[]);
        expected.insert(key, Vec::new());
    }
    let big = pseudo_random(20 * 1024 * 1024 + 123, 42);
    s3.put(
        &src,
        "models/big.bin",
        &big,
        Some("application/octet-stream"),
        &[("kind", "model"), ("owner", "kfp")],
    );
    expected.insert("models/big.bin".into(), big);
    let scratch = tempfile::tempdir().unwrap();
    let huge_file = scratch.path().join("huge.bin");
    let huge_digest = pseudo_random_file(&huge_file, HUNDRED_MIB, 7);
    s3.put_file(
        &src,
        "models/huge.bin",
        &huge_file,
        &[("kind", "checkpoint")],
    );
    std::fs::remove_file(&huge_file).unwrap();
    let listed = s3.keys(&src);
    assert_eq!(
        listed.len(),
        expected.len() + 1,
        "the S3 server did not keep every key: {:?}",
        expected
            .keys()
            .filter(|k| !listed.contains(k))
            .collect::<Vec<_>>()
    );

    // The real thresholds: the 100 MiB object is read in 8 MiB ranges and restored as a
    // multipart upload; the 20 MiB one in one GET and one PUT.
    let kf = Kf::local();
    bucket_config(&kf, &src);
    kf.ok(&["init"]);
    let first = kf.json(&["backup", "--only", "buckets"]);
    let b = bucket_manifest(&first);
    let count = expected.len() as u64 + 1;
    assert_eq!(b["objects"], count, "{b}");
    assert_eq!(b["fetched"], count, "{b}");
    assert_eq!(
        b["ranged_gets"],
        HUNDRED_MIB.div_ceil(8 * 1024 * 1024),
        "{b}"
    );
    assert_eq!(
        b["bytes"],
        expected.values().map(|v| v.len() as u64).sum::<u64>() + HUNDRED_MIB
    );
    // The stock index is readable, one line per object.
    let index = kf.ok(&["dump", "latest", &format!("buckets/kfp/{src}/index.jsonl")]);
    assert_eq!(index.lines().count() as u64, count);

    // A dry run changes nothing.
    let plan = kf.json(&[
        "restore",
        "latest",
        "--only",
        "buckets",
        "--into",
        &dst,
        "--dry-run",
    ]);
    assert_eq!(plan["buckets"][0]["objects"], count);
    assert_eq!(plan["buckets"][0]["multipart"], 1);
    assert!(s3.keys(&dst).is_empty());

    let report = kf.json(&["restore", "latest", "--only", "buckets", "--into", &dst]);
    assert_eq!(report["buckets"][0]["multipart"], 1, "{report}");
    let (size, digest, meta) = s3.digest(&dst, "models/huge.bin");
    assert_eq!(size, HUNDRED_MIB);
    assert!(digest == huge_digest, "the restored 100 MiB object differs");
    assert_eq!(meta.get("kind").map(String::as_str), Some("checkpoint"));
    let got = s3.all_but(&dst, &["models/huge.bin"]);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (k, body) in &expected {
        assert!(got[k].body == *body, "content of {k:?} differs");
    }
    let json = &got["v2/artifacts/pipe/run-3/task/out-3.json"];
    assert_eq!(json.content_type.as_deref(), Some("application/json"));
    assert_eq!(json.metadata.get("run").map(String::as_str), Some("r3"));
    let big = &got["models/big.bin"];
    assert_eq!(
        big.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(big.metadata.get("kind").map(String::as_str), Some("model"));
    assert_eq!(big.metadata.get("owner").map(String::as_str), Some("kfp"));

    // Restoring again: refused by default, skipped on request.
    let out = kf.run(&["restore", "latest", "--only", "buckets", "--into", &dst]);
    assert_eq!(code(&out), 1);
    assert!(
        error_line(&out).contains("already exist"),
        "{}",
        error_line(&out)
    );
    let again = kf.json(&[
        "restore",
        "latest",
        "--only",
        "buckets",
        "--into",
        &dst,
        "--existing",
        "skip",
        "--prefix",
        "v2/",
    ]);
    assert_eq!(again["buckets"][0]["skipped"], 900);
    assert_eq!(again["buckets"][0]["objects"], 0);
}

#[test]
fn incremental_backup_downloads_only_changed_objects() {
    let s3 = S3::new();
    let src = unique_bucket("binc");
    create_bucket(&src);
    for i in 0..40 {
        s3.put(
            &src,
            &format!("obj/{i:02}"),
            format!("version one of {i:02}").as_bytes(),
            None,
            &[],
        );
    }
    let kf = Kf::local();
    bucket_config(&kf, &src);
    kf.ok(&["init"]);
    let first = kf.json(&["backup", "--only", "buckets"]);
    assert_eq!(bucket_manifest(&first)["fetched"], 40);

    // Two rewrites of another size, one of the same size, one new object.
    s3.put(
        &src,
        "obj/03",
        b"changed, and longer than before",
        None,
        &[],
    );
    s3.put(&src, "obj/07", b"short", None, &[]);
    s3.put(&src, "obj/11", b"VERSION TWO OF 11", None, &[]);
    let second = kf.json(&["backup", "--only", "buckets"]);
    assert_eq!(second["parent"], first["id"]);
    let b = bucket_manifest(&second);
    assert_eq!(b["objects"], 40);
    assert_eq!(b["fetched"], 3, "{b}");
    assert_eq!(b["heads"], 3, "{b}");
    let out = kf.ok(&[
        "dump",
        "latest",
        &format!("buckets/kfp/{src}/objects/obj/11"),
    ]);
    assert_eq!(out, "VERSION TWO OF 11");
    let out = kf.ok(&[
        "dump",
        "latest",
        &format!("buckets/kfp/{src}/objects/obj/03"),
    ]);
    assert_eq!(out, "changed, and longer than before");

    // Unchanged: nothing is downloaded, and the content is still there.
    let third = kf.json(&["backup", "--only", "buckets"]);
    assert_eq!(bucket_manifest(&third)["fetched"], 0);
    assert_eq!(bucket_manifest(&third)["heads"], 0);
    let out = kf.ok(&[
        "dump",
        "latest",
        &format!("buckets/kfp/{src}/objects/obj/05"),
    ]);
    assert_eq!(out, "version one of 05");
}

/// Each part of a backup has one parent, the newest snapshot holding that part: a snapshot of
/// other parts in between costs no HEAD and no download of unchanged objects.
#[test]
fn a_snapshot_of_other_parts_in_between_costs_no_extra_pass() {
    let s3 = S3::new();
    let src = unique_bucket("bpar");
    create_bucket(&src);
    for i in 0..20 {
        s3.put(
            &src,
            &format!("obj/{i:02}"),
            format!("object {i:02}").as_bytes(),
            None,
            &[],
        );
    }
    let kf = Kf::local();
    bucket_config(&kf, &src);
    kf.write("files.toml", "");
    let dir = common::sample_folder(&kf, "data");
    let dir = dir.to_str().unwrap();
    kf.ok(&["init"]);
    let first = kf.json(&["backup", "--only", "buckets"]);
    assert_eq!(bucket_manifest(&first)["fetched"], 20);
    assert_eq!(bucket_manifest(&first)["heads"], 20);

    // The same cluster, with a config without buckets: a snapshot of files only.
    let files = kf.json(&["--config", "files.toml", "backup", "--from-dir", dir]);
    let buckets_only = kf.json(&["backup", "--only", "buckets"]);
    let b = bucket_manifest(&buckets_only);
    assert_eq!(
        (b["heads"].as_u64(), b["fetched"].as_u64()),
        (Some(0), Some(0)),
        "{b}"
    );
    assert_eq!(buckets_only["parents"], serde_json::json!([first["id"]]));

    // Buckets and files together: each part reuses its own parent.
    let both = kf.json(&["backup", "--from-dir", dir]);
    let b = bucket_manifest(&both);
    assert_eq!(
        (b["heads"].as_u64(), b["fetched"].as_u64()),
        (Some(0), Some(0)),
        "{b}"
    );
    assert_eq!(
        both["parents"],
        serde_json::json!([buckets_only["id"], files["id"]])
    );
    assert!(both["bytes_added"].as_u64().unwrap() < 100_000, "{both}");
    let out = kf.ok(&[
        "dump",
        "latest",
        &format!("buckets/kfp/{src}/objects/obj/07"),
    ]);
    assert_eq!(out, "object 07");
}

#[test]
fn same_size_rewrite_is_read_again() {
    let s3 = S3::new();
    let src = unique_bucket("bsame");
    create_bucket(&src);
    s3.put(&src, "model.bin", b"AAAAAAAAAAAAAAAA", None, &[]);
    let kf = Kf::local();
    bucket_config(&kf, &src);
    kf.ok(&["init"]);
    kf.json(&["backup", "--only", "buckets"]);
    s3.put(&src, "model.bin", b"BBBBBBBBBBBBBBBB", None, &[]);
    let second = kf.json(&["backup", "--only", "buckets"]);
    assert_eq!(bucket_manifest(&second)["fetched"], 1);
    let out = kf.ok(&[
        "dump",
        "latest",
        &format!("buckets/kfp/{src}/objects/model.bin"),
    ]);
    assert_eq!(out, "BBBBBBBBBBBBBBBB");
}

#[test]
fn missing_bucket_fails_without_a_snapshot() {
    let kf = Kf::local();
    bucket_config(&kf, &unique_bucket("bnone"));
    kf.ok(&["init"]);
    let out = kf.run(&["backup", "--only", "buckets"]);
    assert_eq!(code(&out), 1);
    let line = error_line(&out);
    assert!(line.contains("does not exist"), "{line}");
    assert!(line.contains("bucket source `kfp`"), "{line}");
    assert_eq!(kf.json(&["snapshots", "--all"]), serde_json::json!([]));
}

#[test]
fn only_buckets_without_a_source_is_a_usage_error() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    let out = kf.run(&["backup", "--only", "buckets"]);
    assert_eq!(code(&out), 2);
}

/// The bucket source of `bucket_config`, for library-driven backups (default credential chain).
fn lib_source(bucket: &str) -> kfguard::config::BucketSource {
    // The default credential chain: these are moto's test keys.
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    kfguard::config::BucketSource {
        name: "kfp".into(),
        endpoint: Some(s3_endpoint()),
        region: Some("us-east-1".into()),
        path_style: Some(true),
        bucket: bucket.into(),
        prefixes: Vec::new(),
        access_key_id_env: None,
        secret_access_key_env: None,
        access_key_id_file: None,
        secret_access_key_file: None,
    }
}

/// Writes a snapshot of prepared bucket files into the workspace's repository, as `backup` does.
fn lib_write(
    kf: &Kf,
    s3: &S3,
    started: rustic_core::jiff::Timestamp,
    mut listed: kfguard::backup::buckets::BucketFiles,
) -> kfguard::snapshot::writer::Written {
    use kfguard::config::RepositoryConfig;
    use kfguard::repo::Location;
    use kfguard::snapshot::manifest::Manifest;
    use kfguard::snapshot::writer::{self, Request};
    let cfg = RepositoryConfig {
        url: kf.repo.clone(),
        ..RepositoryConfig::default()
    };
    let location = Location::resolve(&cfg, s3.rt.handle()).unwrap();
    let repo = location.open(common::PASSWORD, true).unwrap();
    let parents = kfguard::snapshot::select::Parents::choose(
        &repo,
        &location.display,
        "kubeflow",
        &["buckets"],
    )
    .unwrap();
    let files = std::mem::take(&mut listed.files);
    writer::write(
        repo,
        &location.display,
        Request {
            cluster: "kubeflow".into(),
            scope: "buckets".into(),
            parents,
            tags: Vec::new(),
            files,
            streams: Vec::new(),
            manifest: Manifest::new("kubeflow", started.to_string()),
            finalize: Box::new(move |ledger, m| {
                let (entries, warnings) = listed.manifest_entries(ledger);
                m.buckets = entries;
                m.warnings.extend(warnings);
            }),
            dry_run: false,
        },
    )
    .unwrap()
}

/// A same-size rewrite within the same second as the backed-up version (same size and
/// last-modified, another ETag) must still be read: the ETag-derived ctime tells them apart.
#[test]
fn same_size_rewrite_in_the_same_second_is_read_again() {
    use kfguard::backup::buckets;
    let s3 = S3::new();
    let src = unique_bucket("bsec");
    create_bucket(&src);
    s3.put(&src, "m.bin", b"11111111", None, &[]);
    let kf = Kf::local();
    kf.ok(&["init"]);
    let source = [lib_source(&src)];
    let none = Default::default();
    let started = rustic_core::jiff::Timestamp::now();
    let first = buckets::start(s3.rt.handle(), &source, &none, 4, started).unwrap();
    let path = format!("buckets/kfp/{src}/objects/m.bin");
    let mtime = first
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap()
        .meta
        .mtime;
    lib_write(&kf, &s3, started, first);

    s3.put(&src, "m.bin", b"22222222", None, &[]);
    let mut second = buckets::start(s3.rt.handle(), &source, &none, 4, started).unwrap();
    // As if the rewrite had happened within the same second as the first version.
    second
        .files
        .iter_mut()
        .find(|f| f.path == path)
        .unwrap()
        .meta
        .mtime = mtime;
    let written = lib_write(&kf, &s3, started, second);
    assert_eq!(written.manifest.buckets[0].fetched, 1);
    let out = kf.cmd().args(["dump", "latest", &path]).output().unwrap();
    assert_eq!(out.stdout, b"22222222");
}

/// An object deleted between LIST and GET: a warning recorded in the manifest, and a complete
/// snapshot without it. Driven through the library, to delete the object at the right moment.
#[test]
fn object_vanishing_between_list_and_get_is_a_warning() {
    use kfguard::backup::buckets;

    let s3 = S3::new();
    let src = unique_bucket("bvan");
    let dst = unique_bucket("bvan-dst");
    create_bucket(&src);
    create_bucket(&dst);
    for key in ["keep/1", "gone", "keep/2"] {
        s3.put(&src, key, key.as_bytes(), None, &[]);
    }
    let kf = Kf::local();
    bucket_config(&kf, &src);
    kf.ok(&["init"]);

    let started = rustic_core::jiff::Timestamp::now();
    let listed = buckets::start(
        s3.rt.handle(),
        &[lib_source(&src)],
        &Default::default(),
        4,
        started,
    )
    .unwrap();
    s3.rt
        .block_on(s3.client.delete_object().bucket(&src).key("gone").send())
        .unwrap();
    let written = lib_write(&kf, &s3, started, listed);
    assert!(written.id.is_some());
    let b = &written.manifest.buckets[0];
    assert_eq!(b.vanished, vec!["gone".to_string()]);
    assert_eq!(b.objects, 2);
    assert_eq!(b.bytes, 12);
    assert!(
        written
            .manifest
            .warnings
            .iter()
            .any(|w| w.contains("`gone` vanished")),
        "{:?}",
        written.manifest.warnings
    );

    // The snapshot is complete and restores without the vanished object.
    kf.json(&["restore", "latest", "--only", "buckets", "--into", &dst]);
    assert_eq!(
        s3.keys(&dst),
        vec!["keep/1".to_string(), "keep/2".to_string()]
    );
}

/// Large objects are read with ranged GETs, all parts through one `--transfers` permit, and
/// restore byte for byte; the proxy sees the ranges that the manifest counts.
#[test]
fn large_objects_are_read_in_ranges_within_the_transfer_limit() {
    let s3 = S3::new();
    let src = unique_bucket("brange");
    let dst = unique_bucket("brange-dst");
    create_bucket(&src);
    create_bucket(&dst);
    const MIB: usize = 1024 * 1024;
    let big = pseudo_random(5 * MIB + 123, 9);
    s3.put(&src, "model/weights.bin", &big, None, &[]);
    let medium = pseudo_random(MIB - 1, 10);
    s3.put(&src, "model/config.bin", &medium, None, &[]);
    for i in 0..20 {
        s3.put(
            &src,
            &format!("metrics/{i:02}.json"),
            format!("{{\"step\": {i}}}").as_bytes(),
            None,
            &[],
        );
    }
    let proxy = Proxy::start(&s3_endpoint(), Faults::default());
    let kf = Kf::local()
        .env("KFGUARD_RANGED_THRESHOLD", &MIB.to_string())
        .env("KFGUARD_RANGE_PART_SIZE", &MIB.to_string());
    bucket_config_at(&kf, &src, &proxy.endpoint, "AWS_ACCESS_KEY_ID");
    kf.ok(&["init"]);
    let backup = kf.json(&["backup", "--only", "buckets", "--transfers", "1"]);
    let b = bucket_manifest(&backup);
    assert_eq!(b["objects"], 22, "{b}");
    assert_eq!(b["fetched"], 22, "{b}");
    // 5 MiB + 123 bytes in 1 MiB parts: six ranged GETs; the object of 1 MiB - 1 is read whole.
    assert_eq!(b["ranged_gets"], 6, "{b}");
    let ranges = proxy.ranges();
    assert_eq!(ranges.len(), 6, "{ranges:?}");
    assert!(
        ranges.contains(&format!("bytes=0-{}", MIB - 1)),
        "{ranges:?}"
    );
    assert!(
        ranges.contains(&format!("bytes={}-{}", 5 * MIB, 5 * MIB + 122)),
        "{ranges:?}"
    );

    bucket_config(&kf, &src);
    kf.json(&["restore", "latest", "--only", "buckets", "--into", &dst]);
    let got = s3.all(&dst);
    assert_eq!(got.len(), 22);
    assert!(
        got["model/weights.bin"].body == big,
        "the ranged object differs"
    );
    assert!(got["model/config.bin"].body == medium);
    assert_eq!(got["metrics/07.json"].body, b"{\"step\": 7}");
}

/// Credentials the endpoint refuses: one clear line naming the source, the endpoint and what
/// to check, exit code 1 (like a refused repository), and no snapshot at all.
#[test]
fn refused_credentials_fail_with_a_clear_error_and_no_snapshot() {
    let s3 = S3::new();
    let src = unique_bucket("bdeny");
    create_bucket(&src);
    s3.put(&src, "a.json", b"{}", None, &[]);
    for refusal in ["InvalidAccessKeyId", "SignatureDoesNotMatch"] {
        let proxy = Proxy::start(
            &s3_endpoint(),
            Faults {
                deny: Some(("AKIAWRONGKEY".into(), refusal)),
                ..Faults::default()
            },
        );
        let kf = Kf::local().env("KFG_TEST_BAD_KEY", "AKIAWRONGKEY");
        bucket_config_at(&kf, &src, &proxy.endpoint, "KFG_TEST_BAD_KEY");
        kf.ok(&["init"]);
        let out = kf.run(&["backup", "--only", "buckets"]);
        assert_eq!(code(&out), 1, "{}", common::stderr(&out));
        let line = error_line(&out);
        for want in [
            "bucket source `kfp`",
            proxy.endpoint.as_str(),
            "check the source's credentials",
            refusal,
        ] {
            assert!(line.contains(want), "{want:?} missing from: {line}");
        }
        assert!(proxy.requests() >= 1);
        assert_eq!(kf.json(&["snapshots", "--all"]), serde_json::json!([]));
    }
}

/// The endpoint goes away part-way through the downloads: the backup ends within a bounded
/// time with exit code 1 and a line naming the source and the endpoint, publishes nothing, and
/// the previous snapshot still restores.
#[test]
fn endpoint_going_away_mid_backup_fails_cleanly() {
    let s3 = S3::new();
    let src = unique_bucket("bdie");
    let dst = unique_bucket("bdie-dst");
    create_bucket(&src);
    create_bucket(&dst);
    let keys: Vec<String> = (0..40).map(|i| format!("runs/{i:02}/out.bin")).collect();
    let mut first_version = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        let body = pseudo_random(256 * 1024, i as u64 + 1);
        s3.put(&src, key, &body, None, &[]);
        first_version.insert(key.clone(), body);
    }
    let kf = Kf::local();
    bucket_config(&kf, &src);
    kf.ok(&["init"]);
    let first = kf.json(&["backup", "--only", "buckets"]);
    let first_id = first["id"].as_str().unwrap().to_string();

    // Every object changes, so the next backup downloads all 10 MiB; the endpoint dies after 3.
    for (i, key) in keys.iter().enumerate() {
        s3.put(
            &src,
            key,
            &pseudo_random(256 * 1024, i as u64 + 1000),
            None,
            &[],
        );
    }
    let proxy = Proxy::start(
        &s3_endpoint(),
        Faults {
            die_after_bytes: Some(3 * 1024 * 1024),
            ..Faults::default()
        },
    );
    bucket_config_at(&kf, &src, &proxy.endpoint, "AWS_ACCESS_KEY_ID");
    let started = std::time::Instant::now();
    let out = kf.run(&["backup", "--only", "buckets"]);
    let took = started.elapsed();
    assert!(
        proxy.is_dead(),
        "the proxy never cut the connection: {}",
        common::stderr(&out)
    );
    assert_eq!(code(&out), 1, "{}", common::stderr(&out));
    let line = error_line(&out);
    assert!(line.contains("no snapshot was kept"), "{line}");
    assert!(line.contains("bucket source `kfp`"), "{line}");
    assert!(line.contains(&proxy.endpoint), "{line}");
    assert!(
        took < std::time::Duration::from_secs(60),
        "the failed backup took {took:?}"
    );
    // Only the first snapshot, complete; the failed one is not even kept as incomplete.
    let all = kf.json(&["snapshots", "--all"]);
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![first_id.as_str()], "{all}");

    bucket_config(&kf, &src);
    kf.json(&["restore", "latest", "--only", "buckets", "--into", &dst]);
    let got = s3.all(&dst);
    assert_eq!(got.len(), first_version.len());
    for (k, body) in &first_version {
        assert!(got[k].body == *body, "content of {k:?} differs");
    }
}

/// A workspace whose repository is `s3://REPO_BUCKET/kfg` reached at `repo_endpoint`, with the
/// bucket source `kfp` for `bucket` at `bucket_endpoint`.
fn s3_repo_config(kf: &Kf, repo_endpoint: &str, bucket: &str, bucket_endpoint: &str) {
    kf.write(
        "kfguard.toml",
        &format!(
            "[repository.s3]\nendpoint = \"{repo_endpoint}\"\nregion = \"us-east-1\"\npath_style = true\naccess_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"\n\n[[buckets]]\nname = \"kfp\"\nendpoint = \"{bucket_endpoint}\"\nregion = \"us-east-1\"\npath_style = true\nbucket = \"{bucket}\"\naccess_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"\n",
        ),
    );
}

/// Small KFP-like outputs in nested run folders, some with a content-type and user metadata.
fn put_small_outputs(s3: &S3, bucket: &str, count: usize) {
    for i in 0..count {
        let key = format!(
            "v2/artifacts/pipeline-{}/run-{:02}/out-{i}.json",
            i % 3,
            i % 20
        );
        let body = pseudo_random(100 + (i * 37) % 3000, i as u64 + 5);
        let run = format!("r{i}");
        let meta: &[(&str, &str)] = if i % 2 == 0 { &[("run", &run)] } else { &[] };
        let ct = (i % 3 == 0).then_some("application/json");
        s3.put(bucket, &key, &body, ct, meta);
    }
}

/// Every object of `dst` equals the one of `src`: key, SHA-256, content-type and metadata.
fn assert_buckets_equal(s3: &S3, src: &str, dst: &str) {
    let (want, got) = (s3.all(src), s3.all(dst));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, w) in &want {
        let g = &got[k];
        assert!(
            Sha256::digest(&g.body) == Sha256::digest(&w.body),
            "content of {k:?} differs"
        );
        assert_eq!(g.content_type, w.content_type, "content-type of {k:?}");
        assert_eq!(g.metadata, w.metadata, "metadata of {k:?}");
    }
}

/// A restore from an S3 repository reads the snapshot's trees once, not once per object: the
/// repository requests grow by one GET per object, plus a fixed number, and the restored
/// bucket equals the original.
#[test]
fn restore_from_s3_reads_the_trees_once_and_each_object_once() {
    let s3 = S3::new();
    let src = unique_bucket("btree");
    let dst = unique_bucket("btree-dst");
    let repo_bucket = unique_bucket("btree-repo");
    for b in [&src, &dst, &repo_bucket] {
        create_bucket(b);
    }
    const N: u64 = 120;
    put_small_outputs(&s3, &src, N as usize);
    let proxy = Proxy::start(&s3_endpoint(), Faults::default());
    let kf = Kf::s3(&repo_bucket, "kfg");
    s3_repo_config(&kf, &proxy.endpoint, &src, &s3_endpoint());
    kf.ok(&["init"]);
    kf.json(&["backup", "--only", "buckets"]);

    let before = proxy.requests();
    let report = kf.json(&["restore", "latest", "--only", "buckets", "--into", &dst]);
    let requests = proxy.requests() - before;
    assert_eq!(report["buckets"][0]["objects"], N, "{report}");
    // Each object's path is 8 trees deep: looked up from the root, that was 9 GETs an object.
    assert!(
        requests <= N + 30,
        "{requests} repository requests to restore {N} objects"
    );
    assert_buckets_equal(&s3, &src, &dst);
}

/// Objects are restored `--transfers` at a time: with every bucket request held for a while,
/// the proxy sees more than one, and never more than `--transfers`, in flight.
#[test]
fn restore_uploads_objects_concurrently_within_transfers() {
    let s3 = S3::new();
    let src = unique_bucket("bconc");
    let dst = unique_bucket("bconc-dst");
    create_bucket(&src);
    create_bucket(&dst);
    put_small_outputs(&s3, &src, 24);
    let kf = Kf::local();
    bucket_config(&kf, &src);
    kf.ok(&["init"]);
    kf.json(&["backup", "--only", "buckets"]);

    let proxy = Proxy::start(
        &s3_endpoint(),
        Faults {
            delay: Some(std::time::Duration::from_millis(150)),
            ..Faults::default()
        },
    );
    bucket_config_at(&kf, &src, &proxy.endpoint, "AWS_ACCESS_KEY_ID");
    let report = kf.json(&[
        "restore",
        "latest",
        "--only",
        "buckets",
        "--into",
        &dst,
        "--transfers",
        "3",
    ]);
    assert_eq!(report["buckets"][0]["objects"], 24, "{report}");
    let most = proxy.max_in_flight();
    assert!((2..=3).contains(&most), "{most} requests in flight at once");
    assert_buckets_equal(&s3, &src, &dst);
}

/// An unchanged backup reads its parent's trees from whole tree packs, not one GET per tree.
#[test]
fn unchanged_backup_from_s3_reads_the_parent_trees_in_a_few_requests() {
    let s3 = S3::new();
    let src = unique_bucket("bparent");
    let repo_bucket = unique_bucket("bparent-repo");
    create_bucket(&src);
    create_bucket(&repo_bucket);
    // 150 folders, each a tree of its own in the snapshot.
    for i in 0..150 {
        s3.put(
            &src,
            &format!("runs/run-{i:03}/metrics.json"),
            b"{}",
            None,
            &[],
        );
    }
    let proxy = Proxy::start(&s3_endpoint(), Faults::default());
    let kf = Kf::s3(&repo_bucket, "kfg");
    s3_repo_config(&kf, &proxy.endpoint, &src, &s3_endpoint());
    kf.ok(&["init"]);
    kf.json(&["backup", "--only", "buckets"]);
    let before = proxy.requests();
    let second = kf.json(&["backup", "--only", "buckets"]);
    let requests = proxy.requests() - before;
    assert_eq!(bucket_manifest(&second)["fetched"], 0, "{second}");
    assert!(
        requests < 60,
        "{requests} repository requests for an unchanged backup of 150 folders"
    );
}
