//! Sharded bucket backups: three shard snapshots plus a merge restore to the same bucket as a
//! single-pod backup, object for object; an unchanged second night through the shards adds
//! almost nothing; the merge refuses an incomplete or mixed set and saves nothing then.

use crate::common;

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use common::db::{mysql_exec, Db};
use common::{code, create_bucket, error_line, s3_endpoint, unique_bucket, Kf};
use sha2::{Digest, Sha256};

struct S3 {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl S3 {
    fn new() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = rt.block_on(common::s3_client());
        Self { rt, client }
    }

    fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.rt
            .block_on(
                self.client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .content_type("application/x-test")
                    .metadata("seed", key.len().to_string())
                    .body(ByteStream::from(body))
                    .send(),
            )
            .unwrap_or_else(|e| panic!("put {key:?}: {e:?}"));
    }

    /// Every object: key -> (size, SHA-256 hex, content-type, user metadata).
    fn digests(&self, bucket: &str) -> BTreeMap<String, (u64, String, String, String)> {
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
            let mut out = BTreeMap::new();
            for k in keys {
                let o = self
                    .client
                    .get_object()
                    .bucket(bucket)
                    .key(&k)
                    .send()
                    .await
                    .unwrap();
                let ct = o.content_type().unwrap_or_default().to_string();
                let meta = format!("{:?}", o.metadata());
                let body = o.body.collect().await.unwrap().into_bytes();
                let sha = hex::encode(Sha256::digest(&body));
                out.insert(k, (body.len() as u64, sha, ct, meta));
            }
            out
        })
    }
}

/// A few hundred objects of varied sizes, four of them several chunks long, and a key that is
/// also a folder of another key. Returns their total size.
fn seed_bucket(s3: &S3, bucket: &str) -> u64 {
    let mut total = 0;
    for i in 0..300u64 {
        let len = match i % 7 {
            0 => 0,
            1 => 17,
            2 => 1500,
            3 => 40_000,
            _ => usize::try_from(i * 333).unwrap(),
        };
        let key = format!("v2/artifacts/pipe-{}/run-{}/out-{i}.bin", i % 5, i % 23);
        total += len as u64;
        s3.put(bucket, &key, common::noise(len, i + 1));
    }
    for i in 0..4u64 {
        let len = 3 * 1024 * 1024 + usize::try_from(i).unwrap() * 777_777;
        total += len as u64;
        s3.put(
            bucket,
            &format!("models/m{i}.bin"),
            common::noise(len, 1000 + i),
        );
    }
    for key in ["clash/a", "clash/a/b", "pipelines/p1"] {
        total += key.len() as u64;
        s3.put(bucket, key, key.as_bytes().to_vec());
    }
    total
}

/// An MLMD-like `Artifact` table: two references to objects, one to an object that is missing.
fn seed_db(db: &str, bucket: &str) {
    mysql_exec(None, &[&format!("CREATE DATABASE `{db}`")]);
    mysql_exec(
        Some(db),
        &[
            "CREATE TABLE Artifact (id int NOT NULL PRIMARY KEY, type_id int NOT NULL DEFAULT 1, uri text)",
            &format!("INSERT INTO Artifact (id, uri) VALUES (1, 'minio://{bucket}/models/m1.bin'), (2, 'minio://{bucket}/v2/artifacts/pipe-0/run-0/out-0.bin'), (3, 'minio://{bucket}/models/gone.bin')"),
        ],
    );
}

/// Runs `kfguard --output json ARGS`, expecting exit 0 or 3 (warnings: the dangling reference).
fn json_ok(kf: &Kf, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = kf.run(&all);
    assert!(
        matches!(code(&out), 0 | 3),
        "{args:?}: exit {}: {}",
        code(&out),
        common::stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn shard(kf: &Kf, i: u32, n: u32, run: &str) -> serde_json::Value {
    json_ok(
        kf,
        &[
            "backup",
            "--only",
            "buckets",
            "--shard",
            &format!("{i}/{n}"),
            "--shard-run",
            run,
        ],
    )
}

fn snapshot_count(kf: &Kf) -> usize {
    kf.json(&["snapshots", "--all"]).as_array().unwrap().len()
}

#[test]
fn three_shards_and_a_merge_restore_the_same_bucket_as_one_pod_and_a_second_night_adds_almost_nothing(
) {
    let s3 = S3::new();
    let src = unique_bucket("shard-src");
    create_bucket(&src);
    let total = seed_bucket(&s3, &src);
    let mut fx = Db::cli();
    let db = fx.mysql_name("shards");
    seed_db(&db, &src);
    let kf = Kf::local();
    common::write_db_and_bucket_config(&kf, &db, &src);
    kf.ok(&["init"]);

    // One pod, the reference.
    let single = json_ok(&kf, &["backup"]);
    let single_id = single["id"].as_str().unwrap().to_string();

    // Night 1: three shards, each a partial snapshot of about a third of the keys.
    let mut objects = 0;
    for i in 0..3 {
        let s = shard(&kf, i, 3, "night-1");
        let m = &s["manifest"];
        assert_eq!(m["shard"]["index"], i);
        assert_eq!(m["shard"]["run"], "night-1");
        assert!(m["crosscheck"].is_null(), "a shard has no cross-check");
        let n = m["buckets"][0]["objects"].as_u64().unwrap();
        assert!(n > 40 && n < 180, "shard {i} holds {n} of 307 objects");
        objects += n;
    }
    assert_eq!(objects, 307);
    // A shard is never `latest`: that is still the single-pod snapshot.
    assert_eq!(
        kf.json(&["show", "latest"])["snapshot"]["id"],
        single_id.as_str()
    );

    let merged = json_ok(&kf, &["backup", "--merge-shards", "--shard-run", "night-1"]);
    let m = &merged["manifest"];
    assert_eq!(m["merged_shards"]["count"], 3);
    assert_eq!(m["merged_shards"]["snapshots"].as_array().unwrap().len(), 3);
    let (a, b) = (&m["buckets"][0], &single["manifest"]["buckets"][0]);
    for field in ["source", "bucket", "objects", "bytes"] {
        assert_eq!(a[field], b[field], "{field}: merged {a} single {b}");
    }
    assert_eq!(a["bytes"], total);
    // The cross-check runs over the merged bucket index, as over one pod's.
    let (x, y) = (&m["crosscheck"], &single["manifest"]["crosscheck"]);
    for field in ["references", "resolved", "dangling", "objects", "orphans"] {
        assert_eq!(
            x[field], y[field],
            "crosscheck {field}: merged {x} single {y}"
        );
    }
    assert_eq!(x["dangling"], 1);
    assert_eq!(m["databases"][0]["database"], db.as_str());
    // The merge reads no object: it adds the index and the dump, not the bucket's data.
    let added = merged["bytes_added"].as_u64().unwrap();
    assert!(
        added < total / 20,
        "the merge added {added} bytes of {total}"
    );
    let merged_id = merged["id"].as_str().unwrap().to_string();
    assert_eq!(
        kf.json(&["show", "latest"])["snapshot"]["id"],
        merged_id.as_str()
    );

    // Both restore to the same bucket, object for object.
    let from_merge = unique_bucket("shard-merged");
    let from_single = unique_bucket("shard-single");
    create_bucket(&from_merge);
    create_bucket(&from_single);
    kf.ok(&[
        "restore",
        "latest",
        "--only",
        "buckets",
        "--into",
        &from_merge,
    ]);
    kf.ok(&[
        "restore",
        &single_id,
        "--only",
        "buckets",
        "--into",
        &from_single,
    ]);
    let want = s3.digests(&src);
    let got_merged = s3.digests(&from_merge);
    assert_eq!(got_merged.len(), 307);
    assert!(
        got_merged == s3.digests(&from_single),
        "merged and single-pod restores differ"
    );
    assert!(
        got_merged == want,
        "the merged restore differs from the source bucket"
    );

    // Night 2, nothing changed: each shard's parent is last night's shard, so it adds almost
    // nothing and downloads nothing.
    for i in 0..3 {
        let s = shard(&kf, i, 3, "night-2");
        let added = s["bytes_added"].as_u64().unwrap();
        assert!(
            added < total / 100,
            "shard {i} added {added} of {total} bytes"
        );
        assert_eq!(s["manifest"]["buckets"][0]["fetched"], 0, "shard {i}");
        assert_eq!(s["manifest"]["buckets"][0]["heads"], 0, "shard {i}");
    }
    // Without a run id, the merge takes the newest run not yet merged.
    let second = json_ok(&kf, &["backup", "--merge-shards"]);
    assert_eq!(second["manifest"]["merged_shards"]["run"], "night-2");
    assert_eq!(second["manifest"]["buckets"][0]["objects"], 307);
    assert!(second["bytes_added"].as_u64().unwrap() < total / 100);
}

#[test]
fn the_merge_refuses_an_incomplete_or_mixed_set_and_saves_nothing() {
    let s3 = S3::new();
    let src = unique_bucket("shard-refuse");
    create_bucket(&src);
    for i in 0..40u64 {
        s3.put(&src, &format!("k/{i}"), common::noise(100, i + 1));
    }
    let kf = Kf::local();
    kf.write(
        "kfguard.toml",
        &format!(
            "[[buckets]]\nname = \"store\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\npath_style = true\nbucket = \"{src}\"\naccess_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"\n",
            s3_endpoint()
        ),
    );
    kf.ok(&["init"]);

    shard(&kf, 0, 3, "partial");
    shard(&kf, 2, 3, "partial");
    let before = snapshot_count(&kf);
    let out = kf.run(&["backup", "--merge-shards", "--shard-run", "partial"]);
    assert_eq!(code(&out), 1, "{}", common::stderr(&out));
    let line = error_line(&out);
    assert!(line.contains("missing shard 1/3"), "{line}");
    assert_eq!(
        snapshot_count(&kf),
        before,
        "a refused merge saved a snapshot"
    );

    shard(&kf, 0, 2, "mixed");
    shard(&kf, 1, 3, "mixed");
    let before = snapshot_count(&kf);
    let out = kf.run(&["backup", "--merge-shards", "--shard-run", "mixed"]);
    assert_eq!(code(&out), 2, "{}", common::stderr(&out));
    let line = error_line(&out);
    assert!(line.contains("mixes shard counts (0/2, 1/3)"), "{line}");
    assert_eq!(
        snapshot_count(&kf),
        before,
        "a refused merge saved a snapshot"
    );

    // A shard needs `--only buckets` and a run id.
    let out = kf.run(&["backup", "--shard", "0/2", "--shard-run", "x"]);
    assert_eq!(code(&out), 2);
    assert!(
        error_line(&out).contains("--only buckets"),
        "{}",
        error_line(&out)
    );
    let out = kf
        .cmd()
        .env_remove("KFGUARD_SHARD_RUN")
        .args(["backup", "--only", "buckets", "--shard", "0/2"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        error_line(&out).contains("--shard-run"),
        "{}",
        error_line(&out)
    );
    let out = kf.run(&[
        "backup",
        "--only",
        "buckets",
        "--shard",
        "2/2",
        "--shard-run",
        "x",
    ]);
    assert_eq!(code(&out), 2);
    assert!(
        common::stderr(&out).contains("is not a shard"),
        "{}",
        common::stderr(&out)
    );
}
