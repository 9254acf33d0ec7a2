//! User-defined types: enums, domains and composite types (range and base types are reported,
//! not captured).

use super::{collate, not_extension, Catalog};
use crate::engines::postgres::quote::literal;
use crate::engines::postgres::USER_NS;
use crate::engines::DbError;

/// `CREATE TYPE` / `CREATE DOMAIN` statements, in creation (oid) order.
pub(super) async fn capture(cat: &mut Catalog<'_>) -> Result<String, DbError> {
    let sql = format!(
        "SELECT t.typtype::text, quote_ident(n.nspname) || '.' || quote_ident(t.typname), \
           ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid \
                 ORDER BY e.enumsortorder), \
           format_type(t.typbasetype, t.typtypmod), {}, t.typnotnull, pg_get_expr(t.typdefaultbin, 0), \
           ARRAY(SELECT 'CONSTRAINT ' || quote_ident(co.conname) || ' ' || \
                   pg_get_constraintdef(co.oid) FROM pg_constraint co \
                 WHERE co.contypid = t.oid AND co.contype = 'c' ORDER BY co.conname), \
           ARRAY(SELECT quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod) \
                   || {} FROM pg_attribute a \
                 WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum) \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE {USER_NS} AND {} AND ( \
           t.typtype IN ('e', 'd', 'r') \
           OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c') \
           OR (t.typtype = 'b' AND NOT EXISTS (SELECT 1 FROM pg_type et WHERE et.typarray = t.oid))) \
         ORDER BY t.oid",
        collate("t.typcollation", "t.typbasetype"),
        collate("a.attcollation", "a.atttypid"),
        not_extension("pg_type", "t.oid")
    );
    let mut section = String::new();
    for r in cat.rows(&sql).await? {
        let kind: String = r.get(0);
        let qname: String = r.get(1);
        match kind.as_str() {
            "e" => {
                let labels: Vec<String> = r.get(2);
                let labels: Vec<String> = labels.iter().map(|l| literal(l)).collect();
                section.push_str(&format!(
                    "CREATE TYPE {qname} AS ENUM ({});\n",
                    labels.join(", ")
                ));
            }
            "d" => {
                let mut s = format!(
                    "CREATE DOMAIN {qname} AS {}{}",
                    r.get::<_, String>(3),
                    r.get::<_, String>(4)
                );
                if let Some(default) = r.get::<_, Option<String>>(6) {
                    s.push_str(&format!(" DEFAULT {default}"));
                }
                if r.get::<_, bool>(5) {
                    s.push_str(" NOT NULL");
                }
                for check in r.get::<_, Vec<String>>(7) {
                    s.push_str(&format!(" {check}"));
                }
                section.push_str(&s);
                section.push_str(";\n");
            }
            "c" => {
                let attrs: Vec<String> = r.get(8);
                section.push_str(&format!("CREATE TYPE {qname} AS ({});\n", attrs.join(", ")));
            }
            "r" => cat.warn(format!("range type {qname} not captured")),
            _ => cat.warn(format!("base type {qname} not captured")),
        }
    }
    Ok(section)
}
