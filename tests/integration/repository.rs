//! The repository on a local folder: lifecycle, bad inputs, and the two archive-path traps.

use crate::common;

use common::db::{mysql_exec, mysql_rows, mysql_url, unique_db};
use common::{code, error_line, restic, sample_folder, Kf, PASSWORD};

fn backup_ids(kf: &Kf) -> Vec<String> {
    kf.json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn lifecycle_init_backup_snapshots_check_forget_prune() {
    let kf = Kf::local();
    let init = kf.json(&["init"]);
    assert_eq!(init["repository"], kf.repo.as_str());
    let dir = sample_folder(&kf, "data");
    let dir = dir.to_str().unwrap();

    let first = kf.json(&["backup", "--from-dir", dir, "--tag", "nightly"]);
    assert!(first["id"].is_string(), "{first}");
    assert_eq!(first["files"], 5, "4 files + manifest: {first}");
    std::fs::write(kf.path().join("data/hello.txt"), "changed\n").unwrap();
    let second = kf.json(&["backup", "--from-dir", dir]);
    assert_eq!(second["parent"], first["id"]);
    // Only the changed file and the manifest are new: the 3 MiB file deduplicates.
    assert!(
        second["bytes_added"].as_u64().unwrap() < 100_000,
        "{second}"
    );

    let snaps = kf.json(&["snapshots"]);
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[0]["tags"], serde_json::json!(["nightly"]));
    assert_eq!(snaps[0]["complete"], true);

    let shown = kf.json(&["show", "latest"]);
    assert_eq!(shown["snapshot"]["id"], second["id"]);
    assert_eq!(shown["manifest"]["cluster"], "kubeflow");
    assert_eq!(shown["manifest"]["format_version"], 1);
    let big = shown["manifest"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "files/data/nested/deeper/big.bin")
        .expect("big.bin in the manifest");
    assert_eq!(big["bytes"], 3 * 1024 * 1024);

    let check = kf.json(&["check", "--read-data"]);
    assert_eq!(check["errors"], serde_json::json!([]));
    kf.ok(&["check", "--read-data-subset", "1/2"]);

    let dry = kf.json(&["forget", "--keep-last", "1", "--prune", "--dry-run"]);
    assert_eq!(dry["remove"].as_array().unwrap().len(), 1);
    assert_eq!(backup_ids(&kf).len(), 2, "dry run removes nothing");

    let forgot = kf.json(&["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(forgot["remove"][0]["id"], first["id"]);
    assert_eq!(
        backup_ids(&kf),
        vec![second["id"].as_str().unwrap().to_string()]
    );
    kf.ok(&["check", "--read-data"]);
    // The surviving snapshot still restores byte for byte.
    let out = kf
        .cmd()
        .args(["dump", "latest", "files/data/nested/deeper/big.bin"])
        .output()
        .unwrap();
    assert_eq!(
        out.stdout,
        std::fs::read(kf.path().join("data/nested/deeper/big.bin")).unwrap()
    );
}

#[test]
fn retention_from_config_is_used_when_no_flag_is_given() {
    let kf = Kf::local();
    kf.write("kfguard.toml", "[retention]\nkeep_last = 2\n");
    kf.ok(&["init"]);
    for i in 0..3 {
        kf.ok(&["backup", "--from-command", &format!("n.txt=echo {i}")]);
    }
    let forgot = kf.json(&["forget"]);
    assert_eq!(forgot["keep"].as_array().unwrap().len(), 2);
    assert_eq!(backup_ids(&kf).len(), 2);
}

#[test]
fn second_backup_restores_the_change_not_the_parent() {
    // Pitfall 1: a stream with the same size and path as in the parent must be read again.
    let kf = Kf::local();
    kf.ok(&["init"]);
    kf.ok(&[
        "backup",
        "--from-command",
        "db/table.tsv=printf 'row-1\\told\\n'",
    ]);
    kf.ok(&[
        "backup",
        "--from-command",
        "db/table.tsv=printf 'row-1\\tnew\\n'",
    ]);
    let out = kf
        .cmd()
        .args(["dump", "latest", "files/db/table.tsv"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "row-1\tnew\n");
    let ids = backup_ids(&kf);
    let out = kf
        .cmd()
        .args(["dump", &ids[0], "files/db/table.tsv"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "row-1\told\n");
}

#[test]
fn a_source_failing_mid_stream_fails_the_backup_and_leaves_no_snapshot() {
    // Pitfall 2: the archiver would skip the failed file and save the snapshot anyway.
    let kf = Kf::local();
    kf.ok(&["init"]);
    let dir = sample_folder(&kf, "data");
    let out = kf.run(&[
        "backup",
        "--from-dir",
        dir.to_str().unwrap(),
        "--from-command",
        "dumps/mlpipeline.sql=head -c 200000 /dev/zero; exit 7",
    ]);
    assert_eq!(code(&out), 1);
    let line = error_line(&out);
    assert!(line.contains("dumps/mlpipeline.sql"), "{line}");
    assert!(line.contains("exit status: 7"), "{line}");
    assert!(line.contains("no snapshot was kept"), "{line}");
    let all = kf.json(&["snapshots", "--all"]);
    assert_eq!(
        all,
        serde_json::json!([]),
        "no snapshot, complete or not, is left"
    );
    let out = kf.run(&["show", "latest"]);
    assert_eq!(code(&out), 1);
    assert!(error_line(&out).contains("no snapshot"));
}

#[test]
fn wrong_password_is_one_clear_line() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    kf.write("wrong", "not the password\n");
    let out = kf.run(&["--password-file", "wrong", "snapshots"]);
    assert_eq!(code(&out), 1);
    let line = error_line(&out);
    assert!(line.contains("wrong password"), "{line}");
    assert!(!line.contains(common::PASSWORD));
}

#[test]
fn missing_repository_says_to_run_init() {
    let kf = Kf::local();
    let out = kf.run(&["snapshots"]);
    assert_eq!(code(&out), 1);
    let line = error_line(&out);
    assert!(line.contains("no repository at"), "{line}");
    assert!(line.contains("kfguard init"), "{line}");
}

#[test]
fn init_twice_refuses_and_keeps_the_repository() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    kf.ok(&["backup", "--from-command", "a=echo a"]);
    let out = kf.run(&["init"]);
    assert_eq!(code(&out), 1);
    assert!(error_line(&out).contains("already exists"));
    assert_eq!(backup_ids(&kf).len(), 1);
}

#[test]
fn json_output_is_one_document_and_logs_stay_on_stderr() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    let out = kf.run(&[
        "-v",
        "--output",
        "json",
        "backup",
        "--from-command",
        "a=echo a",
    ]);
    assert_eq!(code(&out), 0, "{}", common::stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is pure JSON");
    assert!(v["id"].is_string());
    assert!(!common::stderr(&out).is_empty(), "-v logs go to stderr");
}

#[test]
fn backup_without_sources_warns_with_exit_3() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    let out = kf.run(&["backup"]);
    assert_eq!(code(&out), 3, "{}", common::stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("only its manifest"));
}

#[test]
fn unknown_snapshot_and_path_are_clear_errors() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    kf.ok(&["backup", "--from-command", "a=echo a"]);
    let out = kf.run(&["show", "deadbeef"]);
    assert_eq!(code(&out), 1);
    assert!(error_line(&out).contains("no snapshot matches `deadbeef`"));
    let out = kf.run(&["dump", "latest", "files/nope"]);
    assert_eq!(code(&out), 1);
    assert!(error_line(&out).contains("`files/nope` is not in snapshot"));
}

#[test]
fn init_refuses_an_unsupported_repository_scheme_and_creates_no_folder() {
    let kf = Kf::local();
    for url in [
        "gs://b/p",
        "S3://b/p",
        "file:///srv/kfguard",
        "http://h/r",
        "s3:h/b",
    ] {
        let out = kf.run(&["--repo", url, "init"]);
        assert_eq!(code(&out), 2, "{url}");
        let line = error_line(&out);
        assert!(line.contains("--repo"), "{url}: {line}");
        assert!(line.contains("s3://"), "{url}: {line}");
    }
    for junk in ["gs:", "S3:", "file:", "http:", "s3:h"] {
        assert!(!kf.path().join(junk).exists(), "{junk} was created");
    }
    kf.write("kfguard.toml", "[repository]\nurl = \"gs://b/p\"\n");
    let out = kf
        .cmd()
        .env_remove("KFGUARD_REPO")
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    let line = error_line(&out);
    assert!(
        line.contains("kfguard.toml:2:7: invalid config: `repository.url`: `gs://`"),
        "{line}"
    );
    assert!(line.contains("a local path"), "{line}");
}

#[test]
fn the_password_layers_flag_then_environment_then_file() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    kf.write("wrong", "not the password\n");
    kf.write("kfguard.toml", "[repository]\npassword_file = \"wrong\"\n");
    // KFGUARD_PASSWORD beats the file's password_file.
    let env_only = || {
        let mut c = kf.cmd();
        c.env_remove("KFGUARD_PASSWORD_FILE")
            .env("KFGUARD_PASSWORD", common::PASSWORD);
        c
    };
    let out = env_only().arg("snapshots").output().unwrap();
    assert_eq!(code(&out), 0, "{}", common::stderr(&out));
    // ... and beats the file's password_env too.
    kf.write(
        "kfguard.toml",
        "[repository]\npassword_env = \"NOT_SET_ANYWHERE\"\n",
    );
    let out = env_only().arg("snapshots").output().unwrap();
    assert_eq!(code(&out), 0, "{}", common::stderr(&out));
    // The flag beats the environment.
    let out = env_only()
        .args(["--password-file", "wrong", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(error_line(&out).contains("wrong password"));
    // With nothing else set, the file's password applies.
    kf.write("kfguard.toml", "[repository]\npassword_file = \"wrong\"\n");
    let out = kf
        .cmd()
        .env_remove("KFGUARD_PASSWORD_FILE")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(error_line(&out).contains("wrong password"));
}

#[test]
fn relative_paths_in_a_config_file_resolve_from_its_folder() {
    let kf = Kf::local();
    kf.write(
        "conf/kfguard.toml",
        "[repository]\nurl = \"./relrepo\"\npassword_file = \"pw\"\n",
    );
    kf.write("conf/pw", &format!("{}\n", common::PASSWORD));
    std::fs::create_dir_all(kf.path().join("elsewhere")).unwrap();
    let run = |cwd: &str, config: &str, args: &[&str]| {
        kf.cmd()
            .current_dir(kf.path().join(cwd))
            .env_remove("KFGUARD_REPO")
            .env_remove("KFGUARD_PASSWORD_FILE")
            .arg("--config")
            .arg(config)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(".", "conf/kfguard.toml", &["init"]);
    assert_eq!(code(&out), 0, "{}", common::stderr(&out));
    assert!(kf.path().join("conf/relrepo/config").is_file());
    let out = run(
        "elsewhere",
        "../conf/kfguard.toml",
        &["backup", "--from-command", "a=echo a"],
    );
    assert_eq!(code(&out), 0, "{}", common::stderr(&out));
    let out = run("conf", "kfguard.toml", &["--output", "json", "snapshots"]);
    assert_eq!(code(&out), 0, "{}", common::stderr(&out));
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        1,
        "one repository: {snaps}"
    );
    assert!(!kf.path().join("relrepo").exists() && !kf.path().join("elsewhere/relrepo").exists());
    // Paths from flags still resolve from the working directory.
    let out = run(
        "elsewhere",
        "../conf/kfguard.toml",
        &["--repo", "./flagrepo", "init"],
    );
    assert_eq!(code(&out), 0, "{}", common::stderr(&out));
    assert!(kf.path().join("elsewhere/flagrepo/config").is_file());
}

#[cfg(unix)]
#[test]
fn a_local_repository_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let kf = Kf::local();
    // The repository's parent is open to all, like /srv or a home folder often is.
    std::fs::set_permissions(kf.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    kf.ok(&["init"]);
    kf.ok(&["backup", "--from-command", "a=echo a"]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = std::path::PathBuf::from(&kf.repo);
    let mut dirs = vec![root.clone()];
    let (mut folders, mut files) = (0, 0);
    while let Some(dir) = dirs.pop() {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        folders += 1;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                assert_eq!(mode(&p), 0o400, "{}", p.display());
                files += 1;
            }
        }
    }
    // The root, the folders of each file type and the 256 pack folders; config, a key, a
    // snapshot, an index and packs.
    assert!(folders > 256, "{folders} folders");
    assert!(files >= 5, "{files} files");
    // Another local user cannot copy a key file to guess the password offline.
    let key = std::fs::read_dir(root.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let as_nobody = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(&key)
        .output();
    match as_nobody {
        // Only root can switch to another user; elsewhere the modes above are the check.
        Ok(out) if common::is_root() => {
            assert!(!out.status.success(), "another user read {}", key.display());
            assert!(out.stdout.is_empty());
        }
        _ => {}
    }
}

/// Two clusters back up into one repository, each with a database source named `kfp` holding
/// a database of the same name. `latest` is the configured cluster's own, holding the part
/// asked for; `--cluster` picks another cluster's.
#[test]
fn latest_is_the_newest_snapshot_of_the_configured_cluster_that_holds_the_part() {
    let db = unique_db("latest");
    mysql_exec(None, &[&format!("CREATE DATABASE `{db}`")]);
    mysql_exec(
        Some(&db),
        &[
            "CREATE TABLE t (id INT PRIMARY KEY, who VARCHAR(16))",
            "INSERT INTO t VALUES (1, 'alpha')",
        ],
    );
    let kf = Kf::local();
    kf.write(
        "kfguard.toml",
        &format!(
            "cluster = \"alpha\"\n[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"{}\"\ndatabases = [\"{db}\"]\n",
            mysql_url()
        ),
    );
    kf.ok(&["init"]);
    let alpha = kf.json(&["backup"]);
    // The other cluster backs up later, with other rows under the same names.
    mysql_exec(Some(&db), &["UPDATE t SET who = 'beta'"]);
    let out = kf
        .cmd()
        .env("KFGUARD_CLUSTER", "beta")
        .args(["--output", "json", "backup"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", common::stderr(&out));
    let beta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let restored = unique_db("latest_r");
    let r = kf.json(&[
        "restore",
        "latest",
        "--database",
        &format!("kfp/{db}"),
        "--into",
        &restored,
    ]);
    assert_eq!(r["snapshot"], alpha["id"]);
    let rows = mysql_rows(&restored, "SELECT who FROM t");
    assert_eq!(rows, vec![vec![Some(b"alpha".to_vec())]]);
    assert_eq!(kf.json(&["show", "latest"])["snapshot"]["id"], alpha["id"]);
    let manifest: serde_json::Value =
        serde_json::from_str(&kf.ok(&["dump", "latest", "kfguard.json"])).unwrap();
    assert_eq!(manifest["cluster"], "alpha");
    let other = kf.json(&["--cluster", "beta", "show", "latest"]);
    assert_eq!(other["snapshot"]["id"], beta["id"]);

    // A newer snapshot of alpha holding only Kubernetes objects is passed over by
    // `--only databases`, and is the one `diff latest` compares with.
    let (server, kubeconfig) = common::kube::standin(&kf, "alpha");
    server
        .seed_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: kubeflow}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: kubeflow}\ndata: {k: v}\n",
        )
        .expect("seed the cluster");
    let kc = kubeconfig.to_str().unwrap();
    let kube = kf.json(&["--kubeconfig", kc, "backup", "--only", "kubernetes"]);
    let again = unique_db("latest_r");
    let r = kf.json(&["restore", "latest", "--only", "databases", "--into", &again]);
    assert_eq!(r["snapshot"], alpha["id"]);
    assert_eq!(
        mysql_rows(&again, "SELECT who FROM t"),
        vec![vec![Some(b"alpha".to_vec())]]
    );
    kf.ok(&["backup", "--only", "databases"]);
    let diff = kf.json(&["--kubeconfig", kc, "diff", "latest"]);
    assert_eq!(diff["snapshot"], kube["id"]);

    // A cluster without snapshots has no `latest`; the message names those there are.
    let out = kf.run(&["--cluster", "gamma", "show", "latest"]);
    assert_eq!(code(&out), 1);
    let line = error_line(&out);
    assert!(
        line.contains("cluster `gamma`")
            && line.contains("`alpha`, `beta`")
            && line.contains("--cluster"),
        "{line}"
    );
}

/// `snapshots`, `show` and stock restic count the same files and bytes, on a first snapshot
/// and on one with a parent.
#[test]
fn snapshots_show_and_restic_agree_on_files_and_bytes() {
    let kf = Kf::local();
    kf.ok(&["init"]);
    let dir = sample_folder(&kf, "data");
    let dir = dir.to_str().unwrap();
    kf.ok(&["backup", "--from-dir", dir]);
    std::fs::write(kf.path().join("data/hello.txt"), "changed\n").unwrap();
    kf.ok(&["backup", "--from-dir", dir]);

    let listed = kf.json(&["snapshots"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    for snap in listed {
        let id = snap["id"].as_str().unwrap();
        let shown = kf.json(&["show", id]);
        let files = shown["files"].as_array().unwrap();
        let bytes: u64 = files.iter().map(|f| f["bytes"].as_u64().unwrap()).sum();
        assert_eq!(files.len(), 5, "4 files + manifest: {shown}");
        assert_eq!(snap["files"], 5, "{snap}");
        assert_eq!(snap["bytes"], bytes, "{snap}");
        assert_eq!(shown["snapshot"]["files"], 5);
        assert_eq!(shown["snapshot"]["bytes"], bytes);

        let out = std::process::Command::new(restic())
            .env_clear()
            .env("HOME", kf.path())
            .env("RESTIC_REPOSITORY", &kf.repo)
            .env("RESTIC_PASSWORD", PASSWORD)
            .env("RESTIC_CACHE_DIR", kf.path().join("restic-cache"))
            .args(["ls", "--json", id])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (mut n, mut size) = (0, 0);
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let node: serde_json::Value = serde_json::from_str(line).unwrap();
            if node["type"] == "file" {
                n += 1;
                size += node["size"].as_u64().unwrap();
            }
        }
        assert_eq!((n, size), (5, bytes), "restic ls of {id}");
    }
}
