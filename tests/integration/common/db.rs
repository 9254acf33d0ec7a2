//! Database helpers for tests: run SQL on the test MariaDB and PostgreSQL, read tables back.
#![allow(dead_code)]

use mysql_async::prelude::Queryable;

pub(crate) fn mysql_url() -> String {
    std::env::var("KFGUARD_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

pub(crate) fn pg_url() -> String {
    std::env::var("KFGUARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A database name unique to this test and process.
pub(crate) fn unique_db(tag: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "kfg_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs statements on MariaDB, in `db` when given.
pub(crate) fn mysql_exec(db: Option<&str>, sqls: &[&str]) {
    rt().block_on(async {
        let mut url = mysql_url();
        if let Some(db) = db {
            url = format!("{url}/{db}");
        }
        let mut conn = mysql_async::Conn::from_url(url)
            .await
            .expect("connect to MariaDB");
        for sql in sqls {
            conn.query_drop(*sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        conn.disconnect().await.unwrap();
    });
}

/// Every row of a query as text (NULL as None), e.g. `SELECT * FROM t ORDER BY id`.
pub(crate) fn mysql_rows(db: &str, sql: &str) -> Vec<Vec<Option<Vec<u8>>>> {
    rt().block_on(async {
        let mut conn = mysql_async::Conn::from_url(format!("{}/{db}", mysql_url()))
            .await
            .expect("connect");
        let rows: Vec<mysql_async::Row> = conn
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.disconnect().await.unwrap();
        rows.into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => None,
                        mysql_async::Value::Bytes(b) => Some(b),
                        other => Some(other.as_sql(true).into_bytes()),
                    })
                    .collect()
            })
            .collect()
    })
}

pub(crate) fn pg_exec(db: &str, sqls: &[&str]) {
    rt().block_on(async {
        let (client, conn) =
            tokio_postgres::connect(&format!("{}/{db}", pg_url()), tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
        tokio::spawn(conn);
        for sql in sqls {
            client
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    });
}

/// Every row of a query, each rendered as text by PostgreSQL (`SELECT t::text FROM t ...`).
pub(crate) fn pg_text_rows(db: &str, sql: &str) -> Vec<Option<String>> {
    rt().block_on(async {
        let (client, conn) =
            tokio_postgres::connect(&format!("{}/{db}", pg_url()), tokio_postgres::NoTls)
                .await
                .expect("connect");
        tokio::spawn(conn);
        client
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_iter()
            .map(|r| r.get::<_, Option<String>>(0))
            .collect()
    })
}

/// The engine's connection settings for the test PostgreSQL, as a `pg` source.
pub(crate) fn pg_connection() -> kfguard::engines::Connection {
    kfguard::engines::Connection {
        source: "pg".into(),
        engine: kfguard::config::Engine::Postgres,
        url: pg_url(),
        password: None,
    }
}

/// The engine's connection settings for the test MariaDB, as a `kfp` source.
pub(crate) fn mysql_connection() -> kfguard::engines::Connection {
    kfguard::engines::Connection {
        source: "kfp".into(),
        engine: kfguard::config::Engine::Mysql,
        url: mysql_url(),
        password: None,
    }
}

/// `postgres://…/DB`: the test server's URL with `db` as its database (query and path dropped).
pub(crate) fn pg_db_url(db: &str) -> String {
    let base = pg_url();
    let base = base.split('?').next().unwrap_or(&base).to_string();
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let root = match base[after_scheme..].find('/') {
        Some(i) => base[..after_scheme + i].to_string(),
        None => base,
    };
    format!("{root}/{db}")
}

/// The runtime of a database test: the engine's tasks run on it while the test consumes the
/// part channels from its own thread, as the archiver does.
fn engine_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// One database test's world: the runtime, an admin connection to each server the test uses,
/// and the test's databases and accounts, each with a unique name, dropped (PostgreSQL's with
/// their sessions) when the fixture is, even when the test panics.
///
/// The MariaDB admin session runs in a zone other than UTC, so comparisons do not share
/// kfguard's session settings.
pub(crate) struct Db {
    _server: Option<Shared>,
    rt: tokio::runtime::Runtime,
    mysql: Option<mysql_async::Conn>,
    pg: Option<tokio_postgres::Client>,
    mysql_databases: Vec<String>,
    mysql_users: Vec<String>,
    pg_databases: std::sync::Mutex<Vec<String>>,
}

impl Db {
    /// A MySQL engine test: it dumps through the library, so it shares the server ([`shared`]).
    pub(crate) fn mysql() -> Self {
        let mut db = Self::empty(Some(shared()));
        db.connect_mysql();
        db
    }

    /// A PostgreSQL engine test.
    pub(crate) fn postgres() -> Self {
        let mut db = Self::empty(None);
        db.connect_pg();
        db
    }

    /// A test that drives the kfguard CLI against both servers. Each run shares the server
    /// itself ([`crate::common::Kf::run`]), so the fixture does not, and the test may take it
    /// [`exclusive`] for a while.
    pub(crate) fn cli() -> Self {
        let mut db = Self::empty(None);
        db.connect_mysql();
        db.connect_pg();
        db
    }

    fn empty(server: Option<Shared>) -> Self {
        Self {
            _server: server,
            rt: engine_runtime(),
            mysql: None,
            pg: None,
            mysql_databases: Vec::new(),
            mysql_users: Vec::new(),
            pg_databases: Default::default(),
        }
    }

    fn connect_mysql(&mut self) {
        self.mysql = Some(self.rt.block_on(async {
            let opts = mysql_async::Opts::from_url(&mysql_url()).expect("url");
            let mut c = mysql_async::Conn::new(opts)
                .await
                .expect("connect to the test MySQL");
            c.query_drop("SET time_zone = '+05:30'").await.unwrap();
            c
        }));
    }

    fn connect_pg(&mut self) {
        self.pg = Some(self.rt.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&pg_db_url("postgres"), tokio_postgres::NoTls)
                    .await
                    .expect("connect to the test PostgreSQL");
            tokio::spawn(connection);
            client
        }));
    }

    pub(crate) fn rt(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    // --- MariaDB

    /// A MariaDB database name for this test, named after `tag`; not created (the test or a
    /// restore creates it), dropped at the end.
    pub(crate) fn mysql_name(&mut self, tag: &str) -> String {
        assert!(
            self.mysql.is_some(),
            "this fixture has no MariaDB connection"
        );
        let name = unique_db(&format!("my_{tag}"));
        self.mysql_databases.push(name.clone());
        name
    }

    /// A MariaDB account the test creates, dropped at the end.
    pub(crate) fn mysql_user(&mut self, tag: &str) -> String {
        assert!(
            self.mysql.is_some(),
            "this fixture has no MariaDB connection"
        );
        let name = unique_db(&format!("user_{tag}"));
        self.mysql_users.push(name.clone());
        name
    }

    /// The runtime and the MariaDB admin connection, for the test's own SQL.
    pub(crate) fn mysql_parts(&mut self) -> (&tokio::runtime::Runtime, &mut mysql_async::Conn) {
        let conn = self
            .mysql
            .as_mut()
            .expect("this fixture has no MariaDB connection");
        (&self.rt, conn)
    }

    // --- PostgreSQL

    fn pg_admin(&self) -> &tokio_postgres::Client {
        self.pg
            .as_ref()
            .expect("this fixture has no PostgreSQL connection")
    }

    /// A new empty PostgreSQL database, named after `tag`.
    pub(crate) fn pg_database(&self, tag: &str) -> String {
        let name = self.pg_target(tag);
        self.pg_admin_sql(&format!("CREATE DATABASE \"{name}\""));
        name
    }

    /// A name for a PostgreSQL database the test creates (a restore target); dropped at the
    /// end too.
    pub(crate) fn pg_target(&self, tag: &str) -> String {
        self.pg_admin();
        let name = unique_db(&format!("pg_{tag}"));
        self.pg_databases.lock().unwrap().push(name.clone());
        name
    }

    pub(crate) fn pg_exists(&self, name: &str) -> bool {
        let rows = self
            .rt
            .block_on(
                self.pg_admin()
                    .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]),
            )
            .expect("look up database");
        !rows.is_empty()
    }

    /// Runs SQL (simple protocol) on PostgreSQL database `db` and returns every row as text cells.
    pub(crate) fn pg_sql(&self, db: &str, query: &str) -> Vec<Vec<Option<String>>> {
        use tokio_postgres::SimpleQueryMessage;
        self.rt.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&pg_db_url(db), tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {db}: {e}"));
            let task = tokio::spawn(connection);
            let msgs = client
                .simple_query(query)
                .await
                .unwrap_or_else(|e| panic!("{query}: {e:?}"));
            drop(client);
            let _ = task.await;
            msgs.into_iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                    }
                    _ => None,
                })
                .collect()
        })
    }

    /// The first cell of the first row of a PostgreSQL query, or "".
    pub(crate) fn pg_scalar(&self, db: &str, query: &str) -> String {
        self.pg_sql(db, query)
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default()
    }

    fn pg_admin_sql(&self, sql: &str) {
        self.rt
            .block_on(self.pg_admin().batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(admin) = self.mysql.as_mut() {
            let drops = self
                .mysql_databases
                .iter()
                .map(|db| format!("DROP DATABASE IF EXISTS `{db}`"))
                .chain(
                    self.mysql_users
                        .iter()
                        .map(|u| format!("DROP USER IF EXISTS '{u}'@'%'")),
                );
            for sql in drops.collect::<Vec<_>>() {
                let _ = self.rt.block_on(admin.query_drop(sql));
            }
        }
        if let Some(admin) = self.pg.as_ref() {
            for name in self
                .pg_databases
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
            {
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ = self.rt.block_on(admin.batch_execute(&sql));
            }
        }
    }
}

/// Tests share one MariaDB server. A backup's FLUSH TABLES WITH READ LOCK waits behind a table
/// that another test holds with LOCK TABLES, and while it waits it blocks every writer, that
/// test's own restore included: both stall until the lock wait times out. So a test that holds
/// a table lock takes this exclusively ([`exclusive`]), and every kfguard run and MySQL engine
/// fixture ([`Db::mysql`]) shares it ([`shared`]).
static SERVER: std::sync::RwLock<()> = std::sync::RwLock::new(());

thread_local! {
    /// Shared holds of this thread: a second one must not queue behind a waiting writer.
    static SHARED_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A shared hold of the server (see [`SERVER`]); nested holds on one thread are free.
pub(crate) struct Shared(Option<std::sync::RwLockReadGuard<'static, ()>>);

impl Drop for Shared {
    fn drop(&mut self) {
        SHARED_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

pub(crate) fn shared() -> Shared {
    let depth = SHARED_DEPTH.with(|d| {
        d.set(d.get() + 1);
        d.get()
    });
    Shared((depth == 1).then(|| {
        SERVER
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }))
}

/// The server to this test alone, e.g. while it holds a table lock.
pub(crate) fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    SERVER
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
