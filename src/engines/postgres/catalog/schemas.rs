//! The heads of `schema.sql` and `post.sql` (with the database's encoding and locale), and the
//! schemas and extensions a database needs before anything else.

use super::{not_extension, Catalog};
use crate::engines::postgres::connect::query_err;
use crate::engines::postgres::quote::ident;
use crate::engines::postgres::{DATABASE_HEADER, FILE_SETTINGS, USER_NS};
use crate::engines::DbError;

/// The first lines of `schema.sql` and `post.sql`. The schema's header carries encoding and
/// locale, so a restore creates a database that sorts the same.
pub(super) async fn headers(cat: &Catalog<'_>) -> Result<(String, String), DbError> {
    let db = cat.db;
    let info = cat
        .c
        .query_one(
            "SELECT pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text \
             FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| query_err("read schema", db, None, &e))?;
    let header = serde_json::json!({
        "encoding": info.get::<_, String>(0),
        "lc_collate": info.get::<_, String>(1),
        "lc_ctype": info.get::<_, String>(2),
    });
    let ddl = format!(
        "-- kfguard: schema of PostgreSQL database {}, to run before the data; then post.sql.\n\
         -- Ownership and privileges are not included.\n{DATABASE_HEADER}{header}\n{FILE_SETTINGS}",
        ident(db)
    );
    let post = format!(
        "-- kfguard: constraints, indexes, triggers and sequence values of PostgreSQL database \
         {}, to run after the data.\n{FILE_SETTINGS}",
        ident(db)
    );
    Ok((ddl, post))
}

/// `CREATE SCHEMA` and `CREATE EXTENSION` statements (`public` and `plpgsql` exist already).
pub(super) async fn schemas_and_extensions(cat: &Catalog<'_>) -> Result<String, DbError> {
    let sql = format!(
        "SELECT n.nspname::text, quote_ident(n.nspname) FROM pg_namespace n \
         WHERE {USER_NS} AND {} ORDER BY n.nspname",
        not_extension("pg_namespace", "n.oid")
    );
    let mut section = String::new();
    for r in cat.rows(&sql).await? {
        let name: String = r.get(0);
        if name != "public" {
            section.push_str(&format!(
                "CREATE SCHEMA IF NOT EXISTS {};\n",
                r.get::<_, String>(1)
            ));
        }
    }
    let sql = "SELECT quote_ident(e.extname), n.nspname::text, quote_ident(n.nspname) \
               FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
               WHERE e.extname <> 'plpgsql' ORDER BY e.extname";
    for r in cat.rows(sql).await? {
        let schema: String = r.get(1);
        let with = if schema == "pg_catalog" {
            String::new()
        } else {
            format!(" WITH SCHEMA {}", r.get::<_, String>(2))
        };
        section.push_str(&format!(
            "CREATE EXTENSION IF NOT EXISTS {}{with};\n",
            r.get::<_, String>(0)
        ));
    }
    Ok(section)
}
