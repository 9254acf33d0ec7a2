//! Incremental backups: only changed objects are downloaded, and a changed object of the same
//! size is read again.

use super::*;

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
