//! The repository on S3 (the local test server): lifecycle, and failures that must be quick and clear.

use crate::common;

use std::time::{Duration, Instant};

use common::{code, create_bucket, error_line, sample_folder, unique_bucket, Kf};

#[test]
fn lifecycle_on_s3() {
    let bucket = unique_bucket("life");
    create_bucket(&bucket);
    let kf = Kf::s3(&bucket, "kubeflow/prod");
    kf.ok(&["init"]);
    let dir = sample_folder(&kf, "data");
    let first = kf.json(&["backup", "--from-dir", dir.to_str().unwrap()]);
    std::fs::write(dir.join("hello.txt"), "changed on s3\n").unwrap();
    let second = kf.json(&["backup", "--from-dir", dir.to_str().unwrap()]);
    assert_eq!(second["parent"], first["id"]);
    assert_eq!(kf.json(&["snapshots"]).as_array().unwrap().len(), 2);
    let check = kf.json(&["check", "--read-data"]);
    assert_eq!(check["errors"], serde_json::json!([]));
    let forgot = kf.json(&["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(forgot["remove"][0]["id"], first["id"]);
    assert_eq!(kf.json(&["snapshots"]).as_array().unwrap().len(), 1);
    kf.ok(&["check", "--read-data"]);
    let out = kf
        .cmd()
        .args(["dump", "latest", "files/data/hello.txt"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"changed on s3\n");
    let out = kf
        .cmd()
        .args(["dump", "latest", "files/data/nested/deeper/big.bin"])
        .output()
        .unwrap();
    assert_eq!(
        out.stdout,
        std::fs::read(dir.join("nested/deeper/big.bin")).unwrap()
    );
}

#[test]
fn missing_bucket_is_named() {
    let kf = Kf::s3(&unique_bucket("absent"), "x");
    let started = Instant::now();
    let out = kf.run(&["snapshots"]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(code(&out), 1);
    let line = error_line(&out);
    assert!(line.contains("does not exist"), "{line}");
}

#[test]
fn missing_repository_in_an_existing_bucket() {
    let bucket = unique_bucket("norepo");
    create_bucket(&bucket);
    let kf = Kf::s3(&bucket, "nothing-here");
    let out = kf.run(&["snapshots"]);
    assert_eq!(code(&out), 1);
    assert!(
        error_line(&out).contains("kfguard init"),
        "{}",
        error_line(&out)
    );
}

#[test]
fn wrong_password_on_s3() {
    let bucket = unique_bucket("pw");
    create_bucket(&bucket);
    let kf = Kf::s3(&bucket, "r");
    kf.ok(&["init"]);
    kf.write("wrong", "nope\n");
    let out = kf.run(&["--password-file", "wrong", "snapshots"]);
    assert_eq!(code(&out), 1);
    assert!(
        error_line(&out).contains("wrong password"),
        "{}",
        error_line(&out)
    );
}

fn kf_with_endpoint(endpoint: &str) -> Kf {
    let kf = Kf::s3("any-bucket", "r");
    kf.write(
        "kfguard.toml",
        &format!("[repository.s3]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\naccess_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"\n"),
    );
    kf
}

#[test]
fn unreachable_endpoint_fails_fast() {
    // Nothing listens on port 1 of loopback: connection refused.
    let kf = kf_with_endpoint("http://127.0.0.1:1");
    let started = Instant::now();
    let out = kf.run(&["snapshots"]);
    let took = started.elapsed();
    assert_eq!(code(&out), 1);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let line = error_line(&out);
    assert!(
        line.contains("cannot reach S3 endpoint http://127.0.0.1:1"),
        "{line}"
    );
}

#[test]
fn silent_endpoint_times_out_instead_of_hanging() {
    // A listener that accepts connections but never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let kf = kf_with_endpoint(&format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    let out = kf.run(&["snapshots"]);
    let took = started.elapsed();
    drop(listener);
    assert_eq!(code(&out), 1);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(
        error_line(&out).contains(&format!("127.0.0.1:{port}")),
        "{}",
        error_line(&out)
    );
}

#[test]
fn invalid_s3_url_is_a_usage_error() {
    let kf = Kf::s3("", "");
    let out = kf.run(&["--repo", "s3://", "snapshots"]);
    assert_eq!(code(&out), 2);
    assert!(error_line(&out).contains("s3://"), "{}", error_line(&out));
}

#[test]
fn credentials_from_files_and_a_missing_file_is_named() {
    let bucket = unique_bucket("credfile");
    create_bucket(&bucket);
    let kf = Kf::s3(&bucket, "r");
    kf.write("ak", "test\n");
    kf.write("sk", "test\n");
    kf.write(
        "kfguard.toml",
        &format!(
            "[repository.s3]\nendpoint = \"{}\"\naccess_key_id_file = \"ak\"\nsecret_access_key_file = \"sk\"\n",
            common::s3_endpoint()
        ),
    );
    kf.ok(&["init"]);
    kf.ok(&["snapshots"]);
    std::fs::remove_file(kf.path().join("sk")).unwrap();
    let out = kf.run(&["snapshots"]);
    assert_eq!(code(&out), 2);
    let line = error_line(&out);
    assert!(
        line.contains("repository.s3.secret_access_key") && line.contains("sk"),
        "{line}"
    );
}
