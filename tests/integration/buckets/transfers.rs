//! Requests and transfers: large objects read in ranges, concurrency within `--transfers`, and
//! the requests a backup or restore makes to an S3 repository.

use super::*;

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
    let big = noise(5 * MIB + 123, 9);
    s3.put(&src, "model/weights.bin", &big, None, &[]);
    let medium = noise(MIB - 1, 10);
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
        let body = noise(100 + (i * 37) % 3000, i as u64 + 5);
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
