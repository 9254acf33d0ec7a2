//! Database helpers for tests: run SQL on the test MariaDB and PostgreSQL, read tables back.
#![allow(dead_code)]

use mysql_async::prelude::Queryable;

pub fn mysql_url() -> String {
    std::env::var("KFGUARD_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

pub fn pg_url() -> String {
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
pub fn unique_db(tag: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "kfg_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs statements on MariaDB, in `db` when given.
pub fn mysql_exec(db: Option<&str>, sqls: &[&str]) {
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
    })
}

/// Every row of a query as text (NULL as None), e.g. `SELECT * FROM t ORDER BY id`.
pub fn mysql_rows(db: &str, sql: &str) -> Vec<Vec<Option<Vec<u8>>>> {
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

pub fn pg_exec(db: &str, sqls: &[&str]) {
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
    })
}

/// Every row of a query, each rendered as text by PostgreSQL (`SELECT t::text FROM t ...`).
pub fn pg_text_rows(db: &str, sql: &str) -> Vec<Option<String>> {
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
