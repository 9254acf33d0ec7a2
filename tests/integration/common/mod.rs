//! Test helpers: a scratch folder with a password, the kfguard binary, and the test services.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

pub(crate) mod db;
pub(crate) mod kube;
pub(crate) mod proxy;
pub(crate) mod runbook;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// One scratch workspace: a temp dir holding a password file and, usually, a local repository.
pub(crate) struct Kf {
    pub dir: TempDir,
    pub repo: String,
    envs: Vec<(String, String)>,
}

impl Kf {
    /// A workspace whose repository is a local folder inside it.
    pub(crate) fn local() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo").to_string_lossy().into_owned();
        Self::with_repo(dir, repo)
    }

    /// A workspace whose repository is `s3://BUCKET/PREFIX` on the test S3 server.
    pub(crate) fn s3(bucket: &str, prefix: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let kf = Self::with_repo(dir, format!("s3://{bucket}/{prefix}"));
        let endpoint = s3_endpoint();
        kf.write(
            "kfguard.toml",
            &format!(
                "[repository.s3]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\npath_style = true\naccess_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"\nmax_attempts = 2\n"
            ),
        );
        kf
    }

    fn with_repo(dir: TempDir, repo: String) -> Self {
        std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).unwrap();
        Self {
            dir,
            repo,
            envs: Vec::new(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p
    }

    pub(crate) fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }

    /// `kfguard` run in the workspace, with the repository and password set through env.
    pub(crate) fn cmd(&self) -> Command {
        let mut c = Command::from_std(self.std_cmd());
        c.timeout(std::time::Duration::from_secs(300));
        c
    }

    /// [`Kf::cmd`] as a plain `std::process::Command`, to spawn and signal it.
    pub(crate) fn std_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kfguard"));
        c.current_dir(self.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("KFGUARD_") && !k.starts_with("KFGUARD_TEST_") {
                c.env_remove(&k);
            }
        }
        c.env_remove("AWS_CA_BUNDLE");
        // Tests name their cluster explicitly; never the developer's own.
        c.env_remove("KUBECONFIG");
        c.env("KFGUARD_REPO", &self.repo);
        c.env("KFGUARD_PASSWORD_FILE", self.dir.path().join("password"));
        c.env("AWS_ACCESS_KEY_ID", "test");
        c.env("AWS_SECRET_ACCESS_KEY", "test");
        c.env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c
    }

    /// Runs kfguard with args and returns the output, whatever the exit code.
    pub(crate) fn run<S: AsRef<str>>(&self, args: &[S]) -> Output {
        let _server = db::shared();
        self.cmd()
            .args(args.iter().map(AsRef::as_ref))
            .output()
            .expect("run kfguard")
    }

    /// Runs kfguard and insists on exit code 0.
    pub(crate) fn ok<S: AsRef<str>>(&self, args: &[S]) -> String {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "kfguard {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8 stdout")
    }

    /// Runs kfguard with `--output json` and parses stdout, which must be one JSON document.
    pub(crate) fn json<S: AsRef<str>>(&self, args: &[S]) -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend(args.iter().map(AsRef::as_ref));
        let out = self.ok(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{out}"))
    }
}

pub(crate) fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The last line kfguard printed on stderr: its one-line error.
pub(crate) fn error_line(out: &Output) -> String {
    stderr(out)
        .lines()
        .rev()
        .find(|l| l.starts_with("kfguard: error:"))
        .unwrap_or_else(|| panic!("no error line in stderr:\n{}", stderr(out)))
        .to_string()
}

/// The S3 endpoint started by `scripts/services.sh`. Tests fail, never skip, without it.
pub(crate) fn s3_endpoint() -> String {
    std::env::var("KFGUARD_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("KFGUARD_TEST_S3_ENDPOINT is not set: run the tests with scripts/test.sh, or `eval \"$(scripts/services.sh env)\"` first")
    })
}

/// An S3 client of the test server, built by the same code (and settings type) kfguard uses.
pub(crate) async fn s3_client() -> aws_sdk_s3::Client {
    kfguard::repo::s3::client(&kfguard::repo::s3::S3Settings {
        endpoint: Some(s3_endpoint()),
        region: Some("us-east-1".into()),
        path_style: true,
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..kfguard::repo::s3::S3Settings::default()
    })
    .await
}

/// Pseudo-random bytes (xorshift from `seed`): they neither compress nor deduplicate.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
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

/// A `kfguard.toml` for cluster `prod` with MariaDB database `db` (source `kfp`) and the test
/// server's bucket `bucket` (source `store`).
pub(crate) fn write_db_and_bucket_config(kf: &Kf, db: &str, bucket: &str) {
    kf.write(
        "kfguard.toml",
        &format!(
            "cluster = \"prod\"\n\n[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"{}\"\ndatabases = [\"{db}\"]\n\n\
             [[buckets]]\nname = \"store\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\npath_style = true\nbucket = \"{bucket}\"\naccess_key_id_env = \"AWS_ACCESS_KEY_ID\"\nsecret_access_key_env = \"AWS_SECRET_ACCESS_KEY\"\n",
            db::mysql_url(),
            s3_endpoint()
        ),
    );
}

/// Creates a bucket on the test S3 server (unique per test).
pub(crate) fn create_bucket(name: &str) {
    let endpoint = s3_endpoint();
    let status = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .arg(format!("{endpoint}/{name}"))
        .output()
        .expect("curl is needed to create test buckets");
    let code = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        code == "200",
        "creating bucket {name} at {endpoint} answered HTTP {code}"
    );
}

/// A bucket name unique to this test run.
pub(crate) fn unique_bucket(tag: &str) -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("kfg-{tag}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// Path of the stock restic binary; tests that need it fail when it is missing.
pub(crate) fn restic() -> String {
    for p in ["/usr/bin/restic", "/usr/local/bin/restic"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("restic is not installed: scripts/services.sh up installs it (apt-get install restic)")
}

/// Every file below `root`, as relative path -> bytes.
pub(crate) fn tree_bytes(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(base).unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A folder of sample files: text, binary, empty, nested, and one larger than a chunk.
pub(crate) fn sample_folder(kf: &Kf, name: &str) -> PathBuf {
    let root = kf.path().join(name);
    std::fs::create_dir_all(root.join("nested/deeper")).unwrap();
    std::fs::write(root.join("hello.txt"), "hello kubeflow\n").unwrap();
    std::fs::write(root.join("empty"), "").unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    std::fs::write(root.join("nested/binary.bin"), &binary).unwrap();
    // ~3 MiB of pseudo-random bytes spans several chunks.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let big: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(root.join("nested/deeper/big.bin"), &big).unwrap();
    root
}

/// Sends `signal` (e.g. "INT", "TERM") to a spawned kfguard.
pub(crate) fn signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {}", child.id());
}

/// Waits for a spawned kfguard to exit, at most `secs` seconds, and returns its output.
pub(crate) fn wait_for(mut child: std::process::Child, secs: u64) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().expect("try_wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("kfguard did not exit within {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Waits until `path` exists, at most `secs` seconds.
pub(crate) fn wait_for_file(path: &Path, secs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} did not appear within {secs} s",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether the tests run as root (who can switch to another user, and whom modes do not stop).
pub(crate) fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
