//! Objects changing under a running backup, driven through the library to act at the right
//! moment: a rewrite in the same second, an object deleted between LIST and GET.

use super::*;

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
            system_tags: Vec::new(),
            merge_with: Vec::new(),
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
    let first = buckets::start(s3.rt.handle(), &source, &none, 4, started, None).unwrap();
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
    let mut second = buckets::start(s3.rt.handle(), &source, &none, 4, started, None).unwrap();
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
        None,
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
