//! Everything else a database can hold that kfguard does not capture (operators, rules,
//! policies, casts, large objects, …): one warning per object, never dropped silently.

use super::{not_extension, Catalog};
use crate::engines::postgres::USER_NS;
use crate::engines::DbError;

/// Warns once per object not captured by the other catalog areas.
pub(super) async fn warn_all(cat: &mut Catalog<'_>) -> Result<(), DbError> {
    for msg in cat.rows(&uncaptured_sql()).await? {
        cat.warn(format!("{} not captured", msg.get::<_, String>(0)));
    }
    Ok(())
}

/// One query listing the kinds of objects kfguard does not capture, one line per object.
fn uncaptured_sql() -> String {
    let named = |label: &str, catalog: &str, ns_col: &str, name_col: &str| {
        format!(
            "SELECT '{label} ' || quote_ident(n.nspname) || '.' || quote_ident(x.{name_col}) \
             FROM {catalog} x JOIN pg_namespace n ON n.oid = x.{ns_col} \
             WHERE {USER_NS} AND {}",
            not_extension(catalog, "x.oid")
        )
    };
    let global = |label: &str, catalog: &str, name_col: &str| {
        format!(
            "SELECT '{label} ' || quote_ident(x.{name_col}) FROM {catalog} x WHERE {}",
            not_extension(catalog, "x.oid")
        )
    };
    let parts = [
        format!(
            "SELECT 'operator ' || x.oid::regoperator::text FROM pg_operator x \
             JOIN pg_namespace n ON n.oid = x.oprnamespace WHERE {USER_NS} AND {}",
            not_extension("pg_operator", "x.oid")
        ),
        named("operator class", "pg_opclass", "opcnamespace", "opcname"),
        named("operator family", "pg_opfamily", "opfnamespace", "opfname"),
        named("collation", "pg_collation", "collnamespace", "collname"),
        named("conversion", "pg_conversion", "connamespace", "conname"),
        named(
            "text search configuration",
            "pg_ts_config",
            "cfgnamespace",
            "cfgname",
        ),
        named(
            "text search dictionary",
            "pg_ts_dict",
            "dictnamespace",
            "dictname",
        ),
        named(
            "text search parser",
            "pg_ts_parser",
            "prsnamespace",
            "prsname",
        ),
        named(
            "text search template",
            "pg_ts_template",
            "tmplnamespace",
            "tmplname",
        ),
        format!(
            "SELECT 'rule ' || quote_ident(x.rulename) || ' on ' || quote_ident(n.nspname) || '.' \
               || quote_ident(c.relname) FROM pg_rewrite x JOIN pg_class c ON c.oid = x.ev_class \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE x.rulename <> '_RETURN' AND {USER_NS}"
        ),
        format!(
            "SELECT 'row-level security policy ' || quote_ident(x.polname) || ' on ' || \
               quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_policy x \
             JOIN pg_class c ON c.oid = x.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {USER_NS}"
        ),
        format!(
            "SELECT 'cast ' || format_type(x.castsource, NULL) || ' AS ' || \
               format_type(x.casttarget, NULL) FROM pg_cast x WHERE x.oid >= 16384 AND {}",
            not_extension("pg_cast", "x.oid")
        ),
        global("event trigger", "pg_event_trigger", "evtname"),
        global("foreign-data wrapper", "pg_foreign_data_wrapper", "fdwname"),
        global("foreign server", "pg_foreign_server", "srvname"),
        global("publication", "pg_publication", "pubname"),
        "SELECT count(*) || ' large object(s)' FROM pg_largeobject_metadata \
         HAVING count(*) > 0"
            .to_string(),
    ];
    format!(
        "SELECT msg FROM ({}) AS w(msg) ORDER BY msg",
        parts.join(" UNION ALL ")
    )
}
