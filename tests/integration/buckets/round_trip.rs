//! A bucket round trip with awkward keys, user metadata and a multipart-sized object.

use super::*;

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
    let big = noise(20 * 1024 * 1024 + 123, 42);
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
