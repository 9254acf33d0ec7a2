//! Schema capture: reads the catalogs of one database inside the dump's snapshot and writes
//! `schema.sql` (run before the data) and `post.sql` (run after it), warning about every object
//! it does not capture. One file per catalog area; this one puts the sections in order.

mod constraints;
mod functions;
mod indexes;
mod schemas;
mod sequences;
mod tables;
mod triggers;
mod types;
mod uncaptured;
mod views;

use std::collections::{BTreeMap, HashMap, HashSet};

use tokio_postgres::{Client, Row};

use super::connect::query_err;
use super::copy::{table_plans, TablePlan};
use crate::engines::{file_stem, DbError, DumpOptions};

pub(super) struct Capture {
    pub(super) schema_sql: String,
    pub(super) post_sql: String,
    /// Selected tables, sorted by file stem.
    pub(super) tables: Vec<TablePlan>,
    pub(super) warnings: Vec<String>,
}

/// The connection and database being captured, and the warnings collected so far.
struct Catalog<'a> {
    c: &'a Client,
    db: &'a str,
    warnings: Vec<String>,
}

impl Catalog<'_> {
    async fn rows(&self, sql: &str) -> Result<Vec<Row>, DbError> {
        self.c
            .query(sql, &[])
            .await
            .map_err(|e| query_err("read schema", self.db, None, &e))
    }

    fn warn(&mut self, msg: String) {
        self.warnings.push(format!("{}: {msg}", self.db));
    }
}

/// Reads the schema of the connected database inside the snapshot transaction and writes
/// `schema.sql` and `post.sql`.
pub(super) async fn capture_schema(
    c: &Client,
    db: &str,
    opts: &DumpOptions,
    version_num: i32,
) -> Result<Capture, DbError> {
    let mut cat = Catalog {
        c,
        db,
        warnings: Vec::new(),
    };
    let (mut ddl, mut post) = schemas::headers(&cat).await?;
    push_section(
        &mut ddl,
        "Schemas and extensions",
        &schemas::schemas_and_extensions(&cat).await?,
    );
    push_section(&mut ddl, "Types", &types::capture(&mut cat).await?);
    let functions = functions::capture(&mut cat, version_num).await?;
    push_section(&mut ddl, "Functions", &functions.plain);
    let sequences = sequences::read(&cat).await?;

    let rels = tables::relations(&cat).await?;
    let plans = table_plans(c, db).await?;
    let tables = tables::select(&mut cat, &rels, opts);
    let table_oids: HashSet<u32> = tables.iter().map(|t| t.oid).collect();
    let columns = tables::columns(&cat, &table_oids).await?;
    push_section(&mut ddl, "Sequences", &sequences::create(&sequences));
    let mut comments = String::new();
    push_section(
        &mut ddl,
        "Tables",
        &tables::create(&tables, &columns, &sequences, &mut comments),
    );
    let views = views::capture(&mut cat, &rels, &table_oids, &mut comments).await?;
    push_section(&mut ddl, "Views", &views.ddl);
    push_section(
        &mut ddl,
        "Functions with SQL-standard bodies",
        &functions.atomic,
    );
    push_section(&mut ddl, "Comments", &comments);

    let in_backup = |rel: u32| table_oids.contains(&rel) || views.oids.contains(&rel);
    push_section(
        &mut post,
        "Constraints",
        &constraints::capture(&mut cat, &tables, &table_oids).await?,
    );
    push_section(
        &mut post,
        "Indexes and statistics",
        &indexes::capture(&cat, in_backup).await?,
    );
    let by_oid: HashMap<u32, &tables::Rel> = rels.iter().map(|r| (r.oid, r)).collect();
    push_section(
        &mut post,
        "Triggers",
        &triggers::capture(&cat, &by_oid, in_backup).await?,
    );
    push_section(&mut post, "Materialized views", &views.refreshes);
    push_section(
        &mut post,
        "Sequence values",
        &sequences::values(&sequences, &tables, &columns),
    );

    uncaptured::warn_all(&mut cat).await?;
    let selected = selected_plans(&mut cat, &tables, plans)?;
    Ok(Capture {
        schema_sql: ddl,
        post_sql: post,
        tables: selected,
        warnings: cat.warnings,
    })
}

/// The tables to dump, in consumption order.
fn selected_plans(
    cat: &mut Catalog<'_>,
    tables: &[&tables::Rel],
    mut plans: BTreeMap<u32, TablePlan>,
) -> Result<Vec<TablePlan>, DbError> {
    let mut selected: Vec<TablePlan> = Vec::new();
    for t in tables {
        let Some(plan) = plans.remove(&t.oid) else {
            continue;
        };
        if plan.pk.is_empty() {
            cat.warn(format!(
                "table {} has no primary key: row order is not guaranteed stable",
                plan.name
            ));
        }
        selected.push(plan);
    }
    selected.sort_by_cached_key(|t| file_stem(&t.name));
    if let Some(w) = selected.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(DbError::Query {
            what: "read schema".into(),
            database: cat.db.into(),
            table: Some(w[0].name.clone()),
            detail: "two tables have the same backup name (a public table whose name contains a \
                     dot, and a schema-qualified table); rename one or exclude it"
                .into(),
        });
    }
    Ok(selected)
}

/// SQL condition: the object is not a member of an extension.
pub(super) fn not_extension(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend dx WHERE dx.classid = '{catalog}'::regclass \
         AND dx.objid = {oid} AND dx.deptype = 'e')"
    )
}

/// SQL expression: ` COLLATE schema.name` when a column's (or domain's) collation `coll`
/// differs from its type `typ`'s, else empty.
fn collate(coll: &str, typ: &str) -> String {
    format!(
        "COALESCE((SELECT ' COLLATE ' || quote_ident(cn.nspname) || '.' || \
           quote_ident(co.collname) FROM pg_collation co \
           JOIN pg_namespace cn ON cn.oid = co.collnamespace \
         WHERE co.oid = {coll} AND {coll} <> 0 \
           AND {coll} <> (SELECT ty.typcollation FROM pg_type ty WHERE ty.oid = {typ})), '')"
    )
}

fn push_section(out: &mut String, title: &str, body: &str) {
    if !body.is_empty() {
        out.push_str(&format!("\n-- {title}\n{body}"));
    }
}
