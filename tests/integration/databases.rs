//! Database backup and restore through the CLI, against the real MariaDB and PostgreSQL:
//! round trips compared row by row with independent SQL, second nights, consistency under
//! concurrent writers, and bad inputs that must leave no snapshot behind.

use crate::common;

use common::db::{self, mysql_exec, mysql_rows, pg_exec, pg_text_rows, Db};
use common::{code, error_line, Kf};

const MYSQL_TABLES: [(&str, &str); 6] = [
    ("pipelines", "UUID"),
    ("pipeline_versions", "UUID"),
    ("run_details", "UUID"),
    ("Artifact", "id"),
    ("ArtifactProperty", "artifact_id, name, is_custom_property"),
    ("no_pk_log", "msg, at"),
];

/// `restore latest --database kfp/DB --into INTO` plus extra flags.
fn restore_into(db: &str, into: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "restore",
        "latest",
        "--database",
        &format!("kfp/{db}"),
        "--into",
        into,
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(std::string::ToString::to_string));
    args
}

fn all_bytes_hex() -> String {
    (0..=255u8).map(|b| format!("{b:02X}")).collect()
}

/// A KFP-like `mlpipeline` + MLMD subset on MariaDB.
fn seed_mysql(db: &str) {
    mysql_exec(
        None,
        &[&format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4")],
    );
    let manifest = format!(
        "REPEAT('{{\"kind\":\"Workflow\",\"spec\":\"\\\\t\"}}\\n', {})",
        70_000
    );
    mysql_exec(
        Some(db),
        &[
            "CREATE TABLE pipelines (UUID varchar(64) NOT NULL PRIMARY KEY, CreatedAtInSec bigint NOT NULL, Name varchar(128) NOT NULL, Description longtext NOT NULL, Namespace varchar(63) DEFAULT '', UNIQUE KEY name_ns (Name, Namespace)) DEFAULT CHARSET=utf8mb4",
            "CREATE TABLE pipeline_versions (UUID varchar(64) NOT NULL PRIMARY KEY, PipelineId varchar(64) NOT NULL, Name varchar(128) NOT NULL, PipelineSpecURI longtext NOT NULL, CONSTRAINT fk_pv FOREIGN KEY (PipelineId) REFERENCES pipelines(UUID) ON DELETE CASCADE) DEFAULT CHARSET=utf8mb4",
            "CREATE TABLE run_details (UUID varchar(64) NOT NULL PRIMARY KEY, DisplayName varchar(255), State varchar(64), WorkflowRuntimeManifest longtext, FinishedAt datetime(6) NULL, Score double) DEFAULT CHARSET=utf8mb4",
            "CREATE TABLE Artifact (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, type_id int NOT NULL, uri text, name varchar(255), create_time_since_epoch bigint unsigned NOT NULL DEFAULT 0) DEFAULT CHARSET=utf8mb4",
            "CREATE TABLE ArtifactProperty (artifact_id int NOT NULL, name varchar(255) NOT NULL, is_custom_property tinyint(1) NOT NULL, double_value double, string_value mediumtext, byte_value mediumblob, PRIMARY KEY (artifact_id, name, is_custom_property))",
            "CREATE TABLE no_pk_log (msg text, at datetime(3))",
            "INSERT INTO pipelines VALUES ('p1', 1700000000, 'train', 'tabs\\there\\nnewline \\\\ backslash', 'kubeflow-user-a'), ('p2', 1700000001, 'eval 🚀', '', ''), ('p3', 1700000002, 'literal', '\\\\N', 'ns')",
            "INSERT INTO pipeline_versions VALUES ('v1', 'p1', 'v1', 'minio://mlpipeline/pipelines/p1'), ('v2', 'p2', 'v2', 's3://mlpipeline/pipelines/p2')",
            &format!("INSERT INTO run_details VALUES ('r1', 'run one', 'Succeeded', {manifest}, '2026-11-26 10:11:12.123456', 0.30000000000000004), ('r2', NULL, '', NULL, NULL, 1e-300)"),
            "INSERT INTO Artifact (type_id, uri, name, create_time_since_epoch) VALUES (1, 'minio://mlpipeline/v2/artifacts/a/1', 'model', 18446744073709551615), (2, NULL, '', 0)",
            &format!("INSERT INTO ArtifactProperty VALUES (1, 'bytes', 1, NULL, NULL, UNHEX('{}')), (1, 'acc', 0, 0.1, 'x', NULL), (2, 'empty', 1, NULL, '', '')", all_bytes_hex()),
            "INSERT INTO no_pk_log VALUES ('b', '2026-01-01 00:00:00.5'), ('a', NULL), ('a', NULL)",
        ],
    );
}

fn mysql_config(kf: &Kf, db: &str, url: &str) {
    kf.write(
        "kfguard.toml",
        &format!("[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"{url}\"\ndatabases = [\"{db}\"]\n"),
    );
}

fn assert_mysql_equal(a: &str, b: &str) {
    for (table, order) in MYSQL_TABLES {
        let sql = format!("SELECT * FROM `{table}` ORDER BY {order}");
        let (x, y) = (mysql_rows(a, &sql), mysql_rows(b, &sql));
        assert!(
            !x.is_empty() || table == "no_pk_log",
            "{table} is empty in the source"
        );
        assert_eq!(x, y, "table {table} differs between {a} and {b}");
        let sum = |d: &str| mysql_rows(d, &format!("CHECKSUM TABLE `{table}`"))[0][1].clone();
        assert_eq!(sum(a), sum(b), "CHECKSUM TABLE {table}");
    }
}

#[test]
fn mysql_round_trip_into_a_new_name() {
    let mut fx = Db::cli();
    let (db, into) = (fx.mysql_name("rt"), fx.mysql_name("rt_r"));
    seed_mysql(&db);
    let kf = Kf::local();
    mysql_config(&kf, &db, &db::mysql_url());
    kf.ok(&["init"]);
    let out = kf.run(&["--output", "json", "backup", "--only", "databases"]);
    // A table without a primary key is a warning: exit 3.
    assert_eq!(code(&out), 3, "{}", common::stderr(&out));
    let backup: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = &backup["manifest"]["databases"][0];
    assert_eq!(entry["database"], db.as_str());
    assert_eq!(entry["engine"], "mysql");
    let tables = entry["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 6, "{entry}");
    let runs = tables.iter().find(|t| t["name"] == "run_details").unwrap();
    assert_eq!(runs["rows"], 2);
    assert!(backup["manifest"]["warnings"]
        .to_string()
        .contains("no_pk_log"));

    let plan = kf.json(&restore_into(&db, &into, &["--dry-run"]));
    assert!(
        !plan["databases"][0]["plan"].as_array().unwrap().is_empty(),
        "{plan}"
    );
    assert!(
        mysql_rows(&db, &format!("SHOW DATABASES LIKE '{into}'")).is_empty(),
        "dry run created nothing"
    );

    let restored = kf.json(&restore_into(&db, &into, &[]));
    assert_eq!(restored["databases"][0]["target"], into.as_str());
    assert_mysql_equal(&db, &into);
    // The auto-increment counter survives: the next artifact gets id 3.
    mysql_exec(Some(&into), &["INSERT INTO Artifact (type_id) VALUES (9)"]);
    assert_eq!(
        mysql_rows(&into, "SELECT MAX(id) FROM Artifact")[0][0].as_deref(),
        Some(&b"3"[..])
    );

    // Restoring again into the now non-empty database is refused without --force.
    let out = kf.run(&restore_into(&db, &into, &[]));
    assert_eq!(code(&out), 1);
    let line = error_line(&out);
    assert!(
        line.contains("already has") && line.contains("--force"),
        "{line}"
    );
    kf.ok(&restore_into(&db, &into, &["--force"]));
    assert_mysql_equal(&db, &into);
}

#[test]
fn mysql_second_night_restores_the_changed_rows() {
    let mut fx = Db::cli();
    let (db, into) = (fx.mysql_name("night"), fx.mysql_name("night_r"));
    seed_mysql(&db);
    let kf = Kf::local();
    mysql_config(&kf, &db, &db::mysql_url());
    kf.ok(&["init"]);
    kf.run(&["backup", "--only", "databases"]);
    // Same sizes, different content: the parent snapshot must not be reused.
    mysql_exec(
        Some(&db),
        &[
            "UPDATE pipelines SET Name = 'TRAIN' WHERE UUID = 'p1'",
            "INSERT INTO Artifact (type_id, name) VALUES (3, 'new')",
        ],
    );
    let out = kf.run(&["backup", "--only", "databases"]);
    assert_eq!(code(&out), 3, "{}", common::stderr(&out));
    kf.ok(&restore_into(&db, &into, &[]));
    assert_mysql_equal(&db, &into);
    assert_eq!(
        mysql_rows(&into, "SELECT Name FROM pipelines WHERE UUID = 'p1'")[0][0].as_deref(),
        Some(&b"TRAIN"[..])
    );
}

#[test]
fn mysql_schema_read_by_stock_restic_is_valid_ddl_for_the_stock_client() {
    let mut fx = Db::cli();
    let (db, scratch) = (fx.mysql_name("ddl"), fx.mysql_name("ddl_scratch"));
    seed_mysql(&db);
    let kf = Kf::local();
    mysql_config(&kf, &db, &db::mysql_url());
    kf.ok(&["init"]);
    kf.run(&["backup", "--only", "databases"]);
    // Read it with the stock restic, as a recovery without kfguard would.
    let schema = std::process::Command::new(common::restic())
        .args([
            "dump",
            "--no-cache",
            "latest",
            &format!("/databases/kfp/{db}/schema.sql"),
        ])
        .env("RESTIC_REPOSITORY", &kf.repo)
        .env("RESTIC_PASSWORD", common::PASSWORD)
        .output()
        .unwrap();
    assert!(
        schema.status.success(),
        "{}",
        String::from_utf8_lossy(&schema.stderr)
    );
    let text = String::from_utf8(schema.stdout).unwrap();
    assert!(text.contains("CREATE TABLE"), "{text}");
    mysql_exec(None, &[&format!("CREATE DATABASE `{scratch}`")]);
    let client = ["mariadb", "mysql"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok()
        })
        .expect("the mariadb client is needed (scripts/services.sh installs it)");
    let mut child = std::process::Command::new(client)
        .args(["-h", "127.0.0.1", "-u", "root", &scratch])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "the stock client rejects schema.sql"
    );
    assert_eq!(mysql_rows(&scratch, "SHOW TABLES").len(), 6);
}

#[test]
fn mysql_backup_is_consistent_under_concurrent_writers() {
    let mut fx = Db::cli();
    let (db, into) = (fx.mysql_name("cons"), fx.mysql_name("cons_r"));
    mysql_exec(None, &[&format!("CREATE DATABASE `{db}`")]);
    mysql_exec(
        Some(&db),
        &[
            "CREATE TABLE runs (id int PRIMARY KEY, payload varchar(200)) ENGINE=InnoDB",
            "CREATE TABLE tasks (id int PRIMARY KEY, run_id int) ENGINE=InnoDB",
        ],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            // Each transaction writes both tables: a consistent snapshot has equal id sets.
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && i < 20_000 {
                let sqls: Vec<String> = (0..50)
                    .map(|k| i + k)
                    .flat_map(|n| {
                        [
                            format!("INSERT INTO runs VALUES ({n}, REPEAT('x', 150))"),
                            format!("INSERT INTO tasks VALUES ({n}, {n})"),
                        ]
                    })
                    .collect();
                let mut all = vec!["START TRANSACTION".to_string()];
                all.extend(sqls);
                all.push("COMMIT".into());
                let refs: Vec<&str> = all.iter().map(String::as_str).collect();
                mysql_exec(Some(&db), &refs);
                i += 50;
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    let kf = Kf::local();
    mysql_config(&kf, &db, &db::mysql_url());
    kf.ok(&["init"]);
    kf.ok(&["backup", "--only", "databases", "--jobs", "2"]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    kf.ok(&restore_into(&db, &into, &[]));
    let runs = mysql_rows(&into, "SELECT id FROM runs ORDER BY id");
    let tasks = mysql_rows(&into, "SELECT id FROM tasks ORDER BY id");
    assert!(
        !runs.is_empty(),
        "the writer had written rows before the backup"
    );
    assert_eq!(
        runs, tasks,
        "runs and tasks come from different points in time"
    );
}

#[test]
fn mysql_bad_inputs_leave_no_snapshot() {
    let mut fx = Db::cli();
    let db = fx.mysql_name("bad");
    mysql_exec(
        None,
        &[
            &format!("CREATE DATABASE `{db}`"),
            &format!("CREATE TABLE `{db}`.t (id int primary key)"),
        ],
    );
    let cases = [
        ("mysql://root@127.0.0.1:1", db.clone(), "cannot connect"),
        (
            "mysql://kfguard_no_such_user@127.0.0.1:3306",
            db.clone(),
            "refused the credentials",
        ),
        (
            "mysql://root@127.0.0.1:3306",
            format!("{db}_missing"),
            "does not exist",
        ),
    ];
    for (url, database, expect) in cases {
        let kf = Kf::local();
        mysql_config(&kf, &database, url);
        kf.ok(&["init"]);
        let started = std::time::Instant::now();
        let out = kf.run(&["backup", "--only", "databases"]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{url} took too long"
        );
        assert_eq!(code(&out), 1, "{url}: {}", common::stderr(&out));
        let line = error_line(&out);
        assert!(line.contains(expect), "{url}: {line}");
        assert_eq!(
            kf.json(&["snapshots", "--all"]),
            serde_json::json!([]),
            "{url} left a snapshot"
        );
    }
}

/// A KFP-like subset on PostgreSQL.
fn seed_pg(db: &str) {
    pg_exec("postgres", &[&format!("CREATE DATABASE \"{db}\"")]);
    pg_exec(
        db,
        &[
            "CREATE TABLE pipelines (uuid text PRIMARY KEY, name text NOT NULL, description text, created timestamptz(6))",
            "CREATE TABLE run_details (uuid text PRIMARY KEY, pipeline text REFERENCES pipelines(uuid), manifest text, score double precision, params jsonb, tags text[])",
            "CREATE TABLE artifact (id serial PRIMARY KEY, uri text, byte_value bytea, amount numeric(30,10))",
            "CREATE INDEX artifact_uri ON artifact (uri)",
            "INSERT INTO pipelines VALUES ('p1', 'train 🚀', E'tabs\\there\\nand \\\\ backslash', '2026-11-26 10:11:12.123456+00'), ('p2', '', NULL, NULL), ('p3', '\\N', '', NULL)",
            "INSERT INTO run_details VALUES ('r1', 'p1', repeat('{\"kind\":\"Workflow\"}' || E'\\n', 70000), 0.1 + 0.2, '{\"a\": [1, 2]}', ARRAY['x', NULL, 'q\"uote']), ('r2', 'p2', NULL, 'NaN', NULL, '{}')",
            "INSERT INTO artifact (uri, byte_value, amount) SELECT 'minio://mlpipeline/a/' || g, decode(lpad(to_hex(g), 2, '0'), 'hex'), g / 7.0 FROM generate_series(0, 255) g",
        ],
    );
}

fn pg_config(kf: &Kf, db: &str) {
    kf.write(
        "kfguard.toml",
        &format!("[[databases]]\nname = \"kfp\"\nengine = \"postgres\"\nurl = \"{}\"\ndatabases = [\"{db}\"]\n", db::pg_url()),
    );
}

fn assert_pg_equal(a: &str, b: &str) {
    for (table, order) in [
        ("pipelines", "uuid"),
        ("run_details", "uuid"),
        ("artifact", "id"),
    ] {
        let sql = format!("SELECT t::text FROM \"{table}\" t ORDER BY {order}");
        let (x, y) = (pg_text_rows(a, &sql), pg_text_rows(b, &sql));
        assert!(!x.is_empty(), "{table} is empty in the source");
        assert_eq!(x, y, "table {table} differs between {a} and {b}");
    }
}

#[test]
fn postgres_round_trip_and_second_night() {
    let fx = Db::cli();
    let (db, into, into2) = (
        fx.pg_target("rt"),
        fx.pg_target("rt_r"),
        fx.pg_target("rt_r2"),
    );
    seed_pg(&db);
    let kf = Kf::local();
    pg_config(&kf, &db);
    kf.ok(&["init"]);
    kf.ok(&["backup", "--only", "databases"]);
    kf.ok(&restore_into(&db, &into, &[]));
    assert_pg_equal(&db, &into);
    let idx = pg_text_rows(
        &into,
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'artifact' ORDER BY 1",
    );
    assert!(idx.contains(&Some("artifact_uri".into())), "{idx:?}");
    // The sequence survives: the next artifact gets id 257.
    pg_exec(&into, &["INSERT INTO artifact (uri) VALUES ('next')"]);
    assert_eq!(
        pg_text_rows(&into, "SELECT max(id)::text FROM artifact"),
        vec![Some("257".into())]
    );

    pg_exec(
        &db,
        &[
            "UPDATE pipelines SET name = 'TRAIN 🚀' WHERE uuid = 'p1'",
            "DELETE FROM artifact WHERE id = 7",
        ],
    );
    kf.ok(&["backup", "--only", "databases"]);
    kf.ok(&restore_into(&db, &into2, &[]));
    assert_pg_equal(&db, &into2);
    assert_eq!(
        pg_text_rows(&into2, "SELECT name FROM pipelines WHERE uuid = 'p1'"),
        vec![Some("TRAIN 🚀".into())]
    );
}

#[test]
fn restore_into_a_system_database_is_refused_on_both_engines() {
    let mut fx = Db::cli();
    let (my, pg) = (fx.mysql_name("sys"), fx.pg_target("sys"));
    mysql_exec(
        None,
        &[
            &format!("CREATE DATABASE `{my}`"),
            &format!("CREATE TABLE `{my}`.t (id int PRIMARY KEY)"),
            &format!("INSERT INTO `{my}`.t VALUES (1)"),
        ],
    );
    pg_exec("postgres", &[&format!("CREATE DATABASE \"{pg}\"")]);
    pg_exec(
        &pg,
        &[
            "CREATE TABLE t (id int PRIMARY KEY)",
            "INSERT INTO t VALUES (1)",
        ],
    );
    let kf = Kf::local();
    kf.write(
        "kfguard.toml",
        &format!(
            "[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"{}\"\ndatabases = [\"{my}\"]\n\n[[databases]]\nname = \"mlmd\"\nengine = \"postgres\"\nurl = \"{}\"\ndatabases = [\"{pg}\"]\n",
            db::mysql_url(),
            db::pg_url()
        ),
    );
    kf.ok(&["init"]);
    kf.ok(&["backup", "--only", "databases"]);
    let system = [
        "mysql",
        "information_schema",
        "performance_schema",
        "sys",
        "template0",
        "template1",
    ];
    for (source, name) in [("kfp", &my), ("mlmd", &pg)] {
        for target in system {
            // A plan is refused like the real thing; one real attempt per engine is enough.
            let real = target == "mysql" || target == "template1";
            for extra in [&["--force", "--dry-run"][..], &["--force"][..]] {
                if extra.len() == 1 && !real {
                    continue;
                }
                let mut args = vec![
                    "restore".to_string(),
                    "latest".into(),
                    "--database".into(),
                    format!("{source}/{name}"),
                    "--into".into(),
                    target.into(),
                ];
                args.extend(extra.iter().map(std::string::ToString::to_string));
                let out = kf.run(&args);
                assert_eq!(
                    code(&out),
                    2,
                    "{source} into {target}: {}",
                    common::stderr(&out)
                );
                let line = error_line(&out);
                assert!(
                    line.contains(&format!("`{target}`"))
                        && line.contains("system database")
                        && line.contains("--into"),
                    "{line}"
                );
                assert!(out.stdout.is_empty(), "no plan is printed");
            }
        }
    }
    // The servers' own schemas are untouched.
    assert!(!mysql_rows("mysql", "SHOW TABLES").is_empty());
    assert!(mysql_rows("mysql", "SHOW TABLES LIKE 't'").is_empty());
}

#[test]
fn mysql_restore_without_insert_privilege_drops_the_database_it_created() {
    let mut fx = Db::cli();
    let (db, into) = (fx.mysql_name("noins"), fx.mysql_name("noins_r"));
    let user = fx.mysql_user("noins");
    mysql_exec(
        None,
        &[
            &format!("CREATE DATABASE `{db}`"),
            &format!("CREATE TABLE `{db}`.t (id int PRIMARY KEY, v text)"),
            &format!("INSERT INTO `{db}`.t VALUES (1, 'a'), (2, 'b')"),
            &format!("DROP USER IF EXISTS '{user}'@'%'"),
            &format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"),
            // Everything a restore needs but INSERT, which LOAD DATA needs.
            &format!("GRANT SELECT, CREATE, DROP, ALTER, INDEX, CREATE VIEW, TRIGGER, REFERENCES ON *.* TO '{user}'@'%'"),
        ],
    );
    let kf = Kf::local().env("KFG_TEST_DB_PASSWORD", "pw");
    mysql_config(&kf, &db, &db::mysql_url());
    kf.ok(&["init"]);
    kf.ok(&["backup", "--only", "databases"]);

    let limited = db::mysql_url().replace("root@", &format!("{user}@"));
    kf.write(
        "limited.toml",
        &format!("[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"{limited}\"\npassword_env = \"KFG_TEST_DB_PASSWORD\"\ndatabases = [\"{db}\"]\n"),
    );
    let mut args = vec!["--config".to_string(), "limited.toml".into()];
    args.extend(restore_into(&db, &into, &[]));
    let out = kf.run(&args);
    assert_eq!(code(&out), 1, "{}", common::stderr(&out));
    let line = error_line(&out);
    assert!(
        line.contains(&format!(
            "`{into}`, which this restore had created, was dropped"
        )) && line.contains("LOAD DATA"),
        "the message says what failed and what became of the target: {line}"
    );
    assert!(
        mysql_rows(&db, &format!("SHOW DATABASES LIKE '{into}'")).is_empty(),
        "no half-restored database is left behind"
    );
    // With the privilege, the same restore runs again without --force.
    kf.ok(&restore_into(&db, &into, &[]));
    assert_eq!(mysql_rows(&into, "SELECT v FROM t ORDER BY id").len(), 2);
}

#[test]
fn sigterm_stops_a_restore_and_drops_the_database_it_was_filling() {
    use mysql_async::prelude::Queryable;
    let mut fx = Db::cli();
    let (db, other) = (fx.mysql_name("term"), fx.mysql_name("term_ref"));
    let into = fx.mysql_name("term_r");
    mysql_exec(
        None,
        &[
            &format!("CREATE DATABASE `{other}`"),
            &format!("CREATE TABLE `{other}`.t (id int PRIMARY KEY)"),
            &format!("CREATE DATABASE `{db}`"),
            &format!("CREATE TABLE `{db}`.runs (id int PRIMARY KEY)"),
            &format!("INSERT INTO `{db}`.runs VALUES (1), (2)"),
            // Its restore waits while another session holds `other`.t: a slow step to stop in.
            &format!("CREATE VIEW `{db}`.v AS SELECT id FROM `{other}`.t"),
        ],
    );
    let kf = Kf::local();
    mysql_config(&kf, &db, &db::mysql_url());
    kf.ok(&["init"]);
    kf.ok(&["backup", "--only", "databases"]);

    // Another test's backup would wait behind the table lock and block this restore meanwhile.
    let server = db::exclusive();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let holder = {
        let other = other.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut c = mysql_async::Conn::from_url(db::mysql_url()).await.unwrap();
                c.query_drop(format!("LOCK TABLES `{other}`.t WRITE"))
                    .await
                    .unwrap();
                locked.send(()).unwrap();
                let _ = released.recv();
                c.query_drop("UNLOCK TABLES").await.unwrap();
                c.disconnect().await.unwrap();
            });
        })
    };
    is_locked.recv().unwrap();
    let mut child = kf
        .std_cmd()
        .args(restore_into(&db, &into, &[]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The data is in; the restore waits to create the view.
    let waiting = format!(
        "SELECT 1 FROM information_schema.PROCESSLIST WHERE DB = '{into}' AND STATE LIKE '%metadata lock%'"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while mysql_rows(&db, &waiting).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the restore never reached the view"
        );
        if child.try_wait().expect("try_wait").is_some() {
            let out = common::wait_for(child, 5);
            panic!(
                "the restore ended before the view: {}",
                common::stderr(&out)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    common::signal(&child, "TERM");
    // The statement in flight is finished, not left running on the server.
    std::thread::sleep(std::time::Duration::from_millis(500));
    release.send(()).unwrap();
    holder.join().unwrap();
    drop(server);
    let out = common::wait_for(child, 60);
    assert_eq!(code(&out), 143, "{}", common::stderr(&out));
    let line = error_line(&out);
    assert!(
        line.contains("interrupted by SIGTERM: restore stopped; restored: nothing")
            && line.contains(&format!("not restored: database kfp/{db}"))
            && line.contains(&format!(
                "`{into}`, which this restore had created, was dropped"
            )),
        "{line}"
    );
    assert!(
        mysql_rows(&db, &format!("SHOW DATABASES LIKE '{into}'")).is_empty(),
        "no half-restored database is left behind"
    );
    // Nothing is left locked: the same restore runs again, without --force.
    kf.ok(&restore_into(&db, &into, &[]));
    assert_eq!(mysql_rows(&into, "SELECT id FROM runs").len(), 2);
}

#[test]
fn table_globs_from_the_config_select_what_is_dumped() {
    let mut fx = Db::cli();
    let db = fx.mysql_name("globs");
    mysql_exec(None, &[&format!("CREATE DATABASE `{db}`")]);
    mysql_exec(
        Some(&db),
        &[
            "CREATE TABLE run_a (id int PRIMARY KEY)",
            "CREATE TABLE run_b (id int PRIMARY KEY)",
            "CREATE TABLE jobs (id int PRIMARY KEY)",
        ],
    );
    let kf = Kf::local();
    kf.write(
        "kfguard.toml",
        &format!(
            "[[databases]]\nname = \"kfp\"\nengine = \"mysql\"\nurl = \"{}\"\ndatabases = [\"{db}\"]\ninclude_tables = [\"run*\"]\nexclude_tables = [\"run_b\"]\n",
            db::mysql_url()
        ),
    );
    kf.ok(&["init"]);
    let out = kf.run(&["--output", "json", "backup", "--only", "databases"]);
    let backup: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    // Other tests share the server: a long statement of theirs can make the global read lock
    // time out, which the dump survives with a warning (exit 3). Any other warning is a failure.
    let warnings = backup["manifest"]["warnings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match code(&out) {
        0 => {}
        3 => assert!(
            warnings.iter().all(|w| w
                .as_str()
                .unwrap_or("")
                .contains("FLUSH TABLES WITH READ LOCK")),
            "{backup}"
        ),
        other => panic!("backup exited {other}: {}", common::stderr(&out)),
    }
    let tables: Vec<&str> = backup["manifest"]["databases"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tables, ["run_a"], "{backup}");
}
