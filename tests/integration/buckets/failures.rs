//! Clear failures: a missing bucket, a usage error, refused credentials and an endpoint that
//! goes away, none of which leaves a snapshot.

use super::*;

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
        let body = noise(256 * 1024, i as u64 + 1);
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
        s3.put(&src, key, &noise(256 * 1024, i as u64 + 1000), None, &[]);
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
