//! Cross-check of database artifact references against bucket objects: a seeded MLMD/KFP-like
//! MariaDB database whose URIs point at objects on the local S3 server, some of them missing.

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use common::db::{mysql_exec, Db};
use common::{code, create_bucket, s3_endpoint, unique_bucket, Kf};

fn put(bucket: &str, keys: &[&str]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = common::s3_client().await;
        for k in keys {
            c.put_object()
                .bucket(bucket)
                .key(*k)
                .body(ByteStream::from(format!("content of {k}").into_bytes()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {k}: {e:?}"));
        }
    });
}

/// An `Artifact` and a `pipeline_versions` table referencing `uris` and `specs`.
fn seed(db: &str, uris: &[&str], specs: &[&str], manifest: &str) {
    mysql_exec(None, &[&format!("CREATE DATABASE `{db}`")]);
    let mut sqls = vec![
        "CREATE TABLE Artifact (id int NOT NULL PRIMARY KEY, type_id int NOT NULL DEFAULT 1, uri text)".to_string(),
        "CREATE TABLE pipeline_versions (UUID varchar(64) NOT NULL PRIMARY KEY, PipelineSpecURI longtext NOT NULL)".to_string(),
        "CREATE TABLE run_details (UUID varchar(64) NOT NULL PRIMARY KEY, WorkflowRuntimeManifest longtext)".to_string(),
        "INSERT INTO Artifact (id, uri) VALUES (1000, NULL)".to_string(),
    ];
    for (i, u) in uris.iter().enumerate() {
        sqls.push(format!(
            "INSERT INTO Artifact (id, uri) VALUES ({i}, '{u}')"
        ));
    }
    for (i, u) in specs.iter().enumerate() {
        sqls.push(format!(
            "INSERT INTO pipeline_versions VALUES ('v{i}', '{u}')"
        ));
    }
    sqls.push(format!(
        "INSERT INTO run_details VALUES ('r1', '{}')",
        manifest.replace('\\', "\\\\").replace('\'', "''")
    ));
    let refs: Vec<&str> = sqls.iter().map(String::as_str).collect();
    mysql_exec(Some(db), &refs);
}

fn config(kf: &Kf, db: &str, bucket: &str) {
    kf.write(
        "kfguard.toml",
        &format!(
            "[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"{}\"\ndatabases = [\"{db}\"]\n\n\
             [[buckets]]\nname = \"store\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\npath_style = true\nbucket = \"{bucket}\"\naccess_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"\n",
            common::db::mysql_url(),
            s3_endpoint()
        ),
    );
}

#[test]
fn dangling_references_warn_and_orphans_are_counted() {
    let bucket = unique_bucket("xc");
    create_bucket(&bucket);
    put(
        &bucket,
        &[
            "v2/artifacts/run1/model",
            "v2/artifacts/run1/metrics/part-0",
            "pipelines/p1",
            "artifacts/wf-1/pod-1/out.tgz",
            "logs/wf-1/main.log",
            "orphan/a.bin",
        ],
    );
    let mut fx = Db::cli();
    let db = fx.mysql_name("xc");
    let manifest = r#"{"status":{"nodes":{"n1":{"outputs":{"artifacts":[{"name":"out","s3":{"key":"artifacts/wf-1/pod-1/out.tgz"}},{"name":"gone","s3":{"key": "artifacts/wf-1/pod-1/gone.tgz"}}]}}}},"spec":{"env":[{"valueFrom":{"secretKeyRef":{"key":"accesskey","name":"mlpipeline-minio-artifact"}}}]}}"#;
    seed(
        &db,
        &[
            &format!("minio://{bucket}/v2/artifacts/run1/model"),
            &format!("s3://{bucket}/v2/artifacts/run1/metrics"),
            &format!("minio://{bucket}/v2/artifacts/run2/missing"),
            &format!("gs://{bucket}/v2/artifacts/run3/also-missing"),
            "minio://some-other-bucket/v2/x",
            "",
        ],
        &[
            &format!("minio://{bucket}/pipelines/p1"),
            "pipelines/p2-missing",
        ],
        manifest,
    );
    let kf = Kf::local();
    config(&kf, &db, &bucket);
    kf.ok(&["init"]);

    let out = kf.run(&["--output", "json", "backup"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        code(&out),
        3,
        "stdout: {stdout}\nstderr: {}",
        common::stderr(&out)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    let c = &v["manifest"]["crosscheck"];
    assert_eq!(c["dangling"], 4, "{c:#}");
    let dangling: Vec<&str> = c["dangling_examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reference"].as_str().unwrap())
        .collect();
    let missing_uri = format!("minio://{bucket}/v2/artifacts/run2/missing");
    let gs_uri = format!("gs://{bucket}/v2/artifacts/run3/also-missing");
    for want in [
        missing_uri.as_str(),
        gs_uri.as_str(),
        "pipelines/p2-missing",
        "artifacts/wf-1/pod-1/gone.tgz",
    ] {
        assert!(dangling.contains(&want), "{want} not in {dangling:?}");
    }
    assert!(c["dangling_examples"][0]["column"]
        .as_str()
        .unwrap()
        .starts_with(&format!("kfp/{db}/")));
    assert_eq!(c["unresolvable"], 1, "{c:#}");
    assert_eq!(c["resolved"], 4, "{c:#}");
    assert_eq!(c["objects"], 6, "{c:#}");
    assert_eq!(c["orphans"], 2, "{c:#}");
    let orphans: Vec<&str> = c["orphan_examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert_eq!(
        orphans,
        vec![
            format!("{bucket}/logs/wf-1/main.log"),
            format!("{bucket}/orphan/a.bin")
        ]
    );
    let warnings = v["manifest"]["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("4 artifact reference(s)")),
        "{warnings:?}"
    );

    // Recorded in the snapshot's kfguard.json, and shown by `show`.
    let stored = kf.json(&["show", "latest"]);
    assert_eq!(stored["manifest"]["crosscheck"]["dangling"], 4);
    let text = kf.ok(&["show", "latest"]);
    assert!(text.contains("4 dangling"), "{text}");
    assert!(text.contains(&format!("dangling: kfp/{db}/")), "{text}");
}

#[test]
fn no_dangling_references_exit_zero() {
    let bucket = unique_bucket("xc-ok");
    create_bucket(&bucket);
    put(&bucket, &["v2/artifacts/a/model", "pipelines/p1", "logs/x"]);
    let mut fx = Db::cli();
    let db = fx.mysql_name("xc_ok");
    seed(
        &db,
        &[&format!("minio://{bucket}/v2/artifacts/a/model")],
        &["pipelines/p1"],
        r#"{"spec":{}}"#,
    );
    let kf = Kf::local();
    config(&kf, &db, &bucket);
    kf.ok(&["init"]);
    let v = kf.json(&["backup"]);
    let c = &v["manifest"]["crosscheck"];
    assert_eq!(c["dangling"], 0, "{c:#}");
    assert_eq!(c["resolved"], 2, "{c:#}");
    assert_eq!(c["orphans"], 1, "{c:#}");
    assert_eq!(c["orphan_examples"][0], format!("{bucket}/logs/x"));
    assert!(v["manifest"]["warnings"].as_array().unwrap().is_empty());
}

#[test]
fn workflow_keys_written_with_json_escapes_resolve_to_their_objects() {
    let bucket = unique_bucket("xc-esc");
    create_bucket(&bucket);
    let emoji = "artifacts/wf-9/\u{1F600}/out.tgz";
    let accented = "artifacts/wf-9/caf\u{e9}/out.tgz";
    put(&bucket, &[emoji, accented]);
    let mut fx = Db::cli();
    let db = fx.mysql_name("xc_esc");
    // Argo writes non-ASCII as `\u` escapes; outside the BMP as a surrogate pair.
    let manifest = r#"{"outputs":{"artifacts":[{"s3":{"key":"artifacts\/wf-9\/\ud83d\ude00\/out.tgz"}},{"s3":{"key":"artifacts/wf-9/caf\u00e9/out.tgz"}}]}}"#;
    seed(&db, &[], &[], manifest);
    let kf = Kf::local();
    config(&kf, &db, &bucket);
    kf.ok(&["init"]);
    let v = kf.json(&["backup"]);
    let c = &v["manifest"]["crosscheck"];
    assert_eq!(c["references"], 2, "{c:#}");
    assert_eq!(c["resolved"], 2, "{c:#}");
    assert_eq!(c["dangling"], 0, "{c:#}");
    assert_eq!(c["orphans"], 0, "{c:#}");
}
