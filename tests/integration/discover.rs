//! `kfguard discover`: a kfguard.toml read off a KFP install on the stand-in API server, with
//! secrets named, never copied.

use crate::common;

use std::path::PathBuf;

use common::{code, stderr, Kf};
use kube_standin::{Options, Server};

const DB_PASSWORD: &str = "Sup3r-Secret-DB-pw";
const ACCESS_KEY: &str = "minio-AK-7731";
const SECRET_KEY: &str = "minio-SK-9912-secret";
const KATIB_PASSWORD: &str = "katib-root-pw-4410";
const PG_PASSWORD: &str = "pg-pass-5521";

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | u32::from(c) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// KFP on MySQL with MinIO, and Katib's MySQL, as the KFP manifests create them.
fn mysql_install() -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: kubeflow}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: pipeline-install-config, namespace: kubeflow}}
data:
  appName: pipeline
  appVersion: 2.4.1
  dbHost: mysql
  dbPort: "3306"
  mysqlHost: mysql
  mysqlPort: "3306"
  dbType: mysql
  mlmdDb: metadb
  cacheDb: cachedb
  pipelineDb: mlpipeline
  bucketName: mlpipeline
---
apiVersion: v1
kind: Secret
metadata: {{name: mysql-secret, namespace: kubeflow}}
type: Opaque
data: {{username: {user}, password: {pw}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: mlpipeline-minio-artifact, namespace: kubeflow}}
type: Opaque
data: {{accesskey: {ak}, secretkey: {sk}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: katib-mysql-secrets, namespace: kubeflow}}
type: Opaque
data: {{MYSQL_ROOT_PASSWORD: {katib}}}
---
apiVersion: v1
kind: Service
metadata: {{name: minio-service, namespace: kubeflow}}
spec:
  selector: {{app: minio}}
  ports:
  - {{name: http, port: 9000, protocol: TCP, targetPort: 9000}}
---
apiVersion: v1
kind: Service
metadata: {{name: mysql, namespace: kubeflow}}
spec:
  selector: {{app: mysql}}
  ports:
  - {{port: 3306, targetPort: 3306}}
---
apiVersion: v1
kind: Service
metadata: {{name: katib-mysql, namespace: kubeflow}}
spec:
  selector: {{app: katib-mysql}}
  ports:
  - {{name: dbapi, port: 3306, targetPort: 3306}}
"#,
        user = b64("root"),
        pw = b64(DB_PASSWORD),
        ak = b64(ACCESS_KEY),
        sk = b64(SECRET_KEY),
        katib = b64(KATIB_PASSWORD),
    )
}

/// KFP on PostgreSQL with SeaweedFS, in another namespace.
fn postgres_install() -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: ml}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: pipeline-install-config, namespace: ml}}
data:
  appVersion: 2.5.0
  dbType: postgres
  postgresHost: postgres-service
  postgresPort: "5432"
  mlmdDb: metadb
  cacheDb: cachedb
  pipelineDb: mlpipeline
  bucketName: kfp-artifacts
---
apiVersion: v1
kind: Secret
metadata: {{name: postgres-secret-extended, namespace: ml}}
type: Opaque
data: {{username: {user}, password: {pw}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: mlpipeline-minio-artifact, namespace: ml}}
type: Opaque
data: {{accesskey: {ak}, secretkey: {sk}}}
---
apiVersion: v1
kind: Service
metadata: {{name: seaweedfs, namespace: ml}}
spec:
  selector: {{app: seaweedfs}}
  ports:
  - {{name: filer, port: 8888, targetPort: 8888}}
  - {{name: s3, port: 8333, targetPort: 8333}}
"#,
        user = b64("kfp"),
        pw = b64(PG_PASSWORD),
        ak = b64(ACCESS_KEY),
        sk = b64(SECRET_KEY),
    )
}

fn standin(kf: &Kf, yaml: &str) -> (Server, PathBuf) {
    let server = Server::start(Options::default());
    server.seed_yaml(yaml).expect("seed the install");
    let path = kf.path().join("standin.kubeconfig");
    server.write_kubeconfig(&path).unwrap();
    (server, path)
}

/// Runs discover and checks that no secret value, plain or base64, shows anywhere.
fn discover(kf: &Kf, args: &[&str]) -> (i32, String, String) {
    let out = kf.run(args);
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
    );
    for secret in [
        DB_PASSWORD,
        ACCESS_KEY,
        SECRET_KEY,
        KATIB_PASSWORD,
        PG_PASSWORD,
    ] {
        for form in [secret.to_string(), b64(secret)] {
            assert!(
                !stdout.contains(&form),
                "{secret} leaked on stdout:\n{stdout}"
            );
            assert!(!err.contains(&form), "{secret} leaked on stderr:\n{err}");
        }
    }
    (code(&out), stdout, err)
}

#[test]
fn mysql_minio_and_katib() {
    let kf = Kf::local();
    let (_server, kubeconfig) = standin(&kf, &mysql_install());
    let kc = kubeconfig.to_str().unwrap();
    let (status, stdout, err) = discover(&kf, &["--kubeconfig", kc, "discover"]);
    assert_eq!(status, 0, "{err}");

    let t: toml::Value = toml::from_str(&stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    assert_eq!(
        t["cluster"].as_str(),
        Some("standin"),
        "the kubeconfig's context"
    );
    let db = &t["databases"][0];
    assert_eq!(db["name"].as_str(), Some("kfp"));
    assert_eq!(db["engine"].as_str(), Some("mysql"));
    assert_eq!(db["url"].as_str(), Some("mysql://root@mysql.kubeflow:3306"));
    assert_eq!(db["password_env"].as_str(), Some("KFP_DB_PASSWORD"));
    let dbs: Vec<&str> = db["databases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(dbs, ["mlpipeline", "metadb", "cachedb"]);
    let katib = &t["databases"][1];
    assert_eq!(katib["name"].as_str(), Some("katib"));
    assert_eq!(
        katib["url"].as_str(),
        Some("mysql://root@katib-mysql.kubeflow:3306")
    );
    assert_eq!(katib["password_env"].as_str(), Some("KATIB_DB_PASSWORD"));
    let b = &t["buckets"][0];
    assert_eq!(
        b["endpoint"].as_str(),
        Some("http://minio-service.kubeflow:9000")
    );
    assert_eq!(b["bucket"].as_str(), Some("mlpipeline"));
    assert_eq!(b["access_key_id_env"].as_str(), Some("KFP_S3_ACCESS_KEY"));
    assert_eq!(
        b["secret_access_key_env"].as_str(),
        Some("KFP_S3_SECRET_KEY")
    );
    assert_eq!(t["kubernetes"]["enabled"].as_bool(), Some(true));

    // How to fetch each secret, with the same kubeconfig, as comments.
    for (env, secret, key) in [
        ("KFP_DB_PASSWORD", "mysql-secret", "password"),
        (
            "KFP_S3_ACCESS_KEY",
            "mlpipeline-minio-artifact",
            "accesskey",
        ),
        (
            "KFP_S3_SECRET_KEY",
            "mlpipeline-minio-artifact",
            "secretkey",
        ),
        (
            "KATIB_DB_PASSWORD",
            "katib-mysql-secrets",
            "MYSQL_ROOT_PASSWORD",
        ),
    ] {
        let want = format!(
            "#   export {env}=\"$(kubectl --kubeconfig {kc} -n kubeflow get secret {secret} -o jsonpath='{{.data.{key}}}' | base64 -d)\""
        );
        assert!(
            stdout.lines().any(|l| l == want),
            "no line {want}\n{stdout}"
        );
    }

    // kfguard itself accepts the file.
    kf.write("discovered.toml", &stdout);
    let shown = kf.json(&["--config", "discovered.toml", "config", "show"]);
    assert_eq!(
        shown["databases"][0]["url"],
        "mysql://root@mysql.kubeflow:3306"
    );
    assert_eq!(shown["kubernetes"]["enabled"], true);

    // JSON: the config as a string, and what it was made from.
    let (status, stdout, _) = discover(&kf, &["--kubeconfig", kc, "--output", "json", "discover"]);
    assert_eq!(status, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let config: toml::Value = toml::from_str(v["config"].as_str().unwrap()).unwrap();
    assert_eq!(
        config["databases"][0]["url"].as_str(),
        Some("mysql://root@mysql.kubeflow:3306")
    );
    assert_eq!(v["sources"]["kfp_version"], "2.4.1");
    let read: Vec<&str> = v["sources"]["read"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(read.contains(&"Secret kubeflow/mysql-secret"), "{read:?}");
    assert!(read.contains(&"Service kubeflow/minio-service"), "{read:?}");
    let envs: Vec<&str> = v["sources"]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["env"].as_str())
        .collect();
    assert_eq!(
        envs,
        [
            "KFP_DB_PASSWORD",
            "KATIB_DB_PASSWORD",
            "KFP_S3_ACCESS_KEY",
            "KFP_S3_SECRET_KEY"
        ]
    );
}

#[test]
fn postgres_and_seaweedfs_in_another_namespace() {
    let kf = Kf::local();
    let (_server, kubeconfig) = standin(&kf, &postgres_install());
    let kc = kubeconfig.to_str().unwrap();
    let (status, stdout, err) = discover(
        &kf,
        &[
            "--kubeconfig",
            kc,
            "--context",
            "standin",
            "discover",
            "-n",
            "ml",
        ],
    );
    assert_eq!(status, 0, "{err}");
    let t: toml::Value = toml::from_str(&stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    let db = &t["databases"][0];
    assert_eq!(db["engine"].as_str(), Some("postgres"));
    assert_eq!(
        db["url"].as_str(),
        Some("postgres://kfp@postgres-service.ml:5432")
    );
    assert_eq!(db["password_env"].as_str(), Some("KFP_DB_PASSWORD"));
    assert_eq!(t["databases"].as_array().unwrap().len(), 1, "no Katib here");
    let b = &t["buckets"][0];
    assert_eq!(b["endpoint"].as_str(), Some("http://seaweedfs.ml:8333"));
    assert_eq!(b["bucket"].as_str(), Some("kfp-artifacts"));
    let ns: Vec<&str> = t["kubernetes"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(ns[0], "ml");
    assert!(stdout.contains("kubectl --kubeconfig"), "{stdout}");
    assert!(
        stdout.contains("--context standin -n ml get secret postgres-secret-extended"),
        "{stdout}"
    );
    kf.write("discovered.toml", &stdout);
    kf.ok(&["--config", "discovered.toml", "config", "show"]);
}

#[test]
fn a_namespace_without_kfp_is_a_usage_error() {
    let kf = Kf::local();
    let (_server, kubeconfig) = standin(&kf, &mysql_install());
    let (status, stdout, err) = discover(
        &kf,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "discover",
            "-n",
            "default",
        ],
    );
    assert_eq!(status, 2, "{err}");
    assert!(stdout.is_empty(), "{stdout}");
    let line = err
        .lines()
        .find(|l| l.starts_with("kfguard: error:"))
        .unwrap_or_default();
    assert!(
        line.contains("pipeline-install-config")
            && line.contains("namespace default")
            && line.contains("--namespace"),
        "{err}"
    );
}
