//! Functions and procedures, as `pg_get_functiondef` prints them (aggregates and other kinds
//! without a definition are reported).

use super::{not_extension, Catalog};
use crate::engines::postgres::USER_NS;
use crate::engines::DbError;

pub(super) struct Functions {
    /// Functions with a string body, created before the tables.
    pub(super) plain: String,
    /// SQL-standard bodies (`BEGIN ATOMIC`) are checked on creation, so they come after the
    /// tables and views they may use.
    pub(super) atomic: String,
}

pub(super) async fn capture(cat: &mut Catalog<'_>, version_num: i32) -> Result<Functions, DbError> {
    let atomic = if version_num >= 140000 {
        "p.prosqlbody IS NOT NULL"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT p.prokind::text, p.oid::regprocedure::text, \
           CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid) END, {atomic} \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE {USER_NS} AND {} ORDER BY p.oid",
        not_extension("pg_proc", "p.oid")
    );
    let mut out = Functions {
        plain: String::new(),
        atomic: String::new(),
    };
    for r in cat.rows(&sql).await? {
        let kind: String = r.get(0);
        let signature: String = r.get(1);
        match r.get::<_, Option<String>>(2) {
            Some(def) => {
                let target = if r.get::<_, bool>(3) {
                    &mut out.atomic
                } else {
                    &mut out.plain
                };
                target.push_str(def.trim_end());
                target.push_str(";\n\n");
            }
            None if kind == "a" => cat.warn(format!("aggregate {signature} not captured")),
            None => cat.warn(format!("function {signature} not captured")),
        }
    }
    Ok(out)
}
