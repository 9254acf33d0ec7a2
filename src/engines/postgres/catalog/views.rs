//! Views and materialized views, created after what they depend on (a view that needs a
//! relation not in the backup is reported); materialized views are refreshed in `post.sql`.

use std::collections::{HashMap, HashSet};

use super::tables::Rel;
use super::Catalog;
use crate::engines::postgres::quote::literal;
use crate::engines::DbError;

pub(super) struct Views {
    /// `CREATE [MATERIALIZED] VIEW` statements, for `schema.sql`.
    pub(super) ddl: String,
    /// `REFRESH MATERIALIZED VIEW` of the populated ones, for `post.sql`.
    pub(super) refreshes: String,
    /// The views captured.
    pub(super) oids: HashSet<u32>,
}

/// The views of `rels` whose dependencies are in the backup (`table_oids`); their comments go
/// to `comments`.
pub(super) async fn capture(
    cat: &mut Catalog<'_>,
    rels: &[Rel],
    table_oids: &HashSet<u32>,
    comments: &mut String,
) -> Result<Views, DbError> {
    let deps = cat
        .rows(
            "SELECT DISTINCT r.ev_class, d.refobjid FROM pg_rewrite r \
             JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid \
               AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class",
        )
        .await?;
    let mut view_deps: HashMap<u32, Vec<u32>> = HashMap::new();
    for r in &deps {
        view_deps.entry(r.get(0)).or_default().push(r.get(1));
    }
    let views: Vec<&Rel> = rels
        .iter()
        .filter(|r| r.kind == "v" || r.kind == "m")
        .collect();
    let by_oid: HashMap<u32, &Rel> = rels.iter().map(|r| (r.oid, r)).collect();
    let ordered = order_views(&views, &view_deps, |oid| match by_oid.get(&oid) {
        None => Dep::Present,
        Some(r) if table_oids.contains(&r.oid) => Dep::Present,
        Some(r) if r.kind == "v" || r.kind == "m" => Dep::View,
        Some(r) => Dep::Missing(format!("table {}", r.name)),
    });
    let mut out = Views {
        ddl: String::new(),
        refreshes: String::new(),
        oids: HashSet::new(),
    };
    for (view, missing) in ordered {
        if let Some(missing) = missing {
            cat.warn(format!(
                "view {} not captured: it depends on {missing}, which is not in the backup",
                view.name
            ));
            continue;
        }
        out.oids.insert(view.oid);
        create_view(view, &mut out, comments);
    }
    Ok(out)
}

fn create_view(view: &Rel, out: &mut Views, comments: &mut String) {
    let def = view.viewdef.as_deref().unwrap_or_default().trim_end();
    let def = def.strip_suffix(';').unwrap_or(def).trim_end();
    let with = view
        .options
        .as_ref()
        .map(|o| format!(" WITH ({o})"))
        .unwrap_or_default();
    if view.kind == "m" {
        out.ddl.push_str(&format!(
            "CREATE MATERIALIZED VIEW {}{with} AS\n{def}\nWITH NO DATA;\n\n",
            view.qname
        ));
        if view.populated {
            out.refreshes
                .push_str(&format!("REFRESH MATERIALIZED VIEW {};\n", view.qname));
        }
    } else {
        out.ddl
            .push_str(&format!("CREATE VIEW {}{with} AS\n{def};\n\n", view.qname));
    }
    if let Some(comment) = &view.comment {
        let kind = if view.kind == "m" {
            "MATERIALIZED VIEW"
        } else {
            "VIEW"
        };
        comments.push_str(&format!(
            "COMMENT ON {kind} {} IS {};\n",
            view.qname,
            literal(comment)
        ));
    }
}

enum Dep {
    /// Not a user relation, or a table in the backup.
    Present,
    /// A view or materialized view: created first, if it can be.
    View,
    /// A user relation not in the backup.
    Missing(String),
}

/// Orders views so that each comes after the views it uses (creation order otherwise); a view
/// that needs a relation not in the backup is returned with that relation's name.
fn order_views<'a>(
    views: &[&'a Rel],
    deps: &HashMap<u32, Vec<u32>>,
    classify: impl Fn(u32) -> Dep,
) -> Vec<(&'a Rel, Option<String>)> {
    let names: HashMap<u32, &str> = views.iter().map(|v| (v.oid, v.name.as_str())).collect();
    // View oid -> whether it is created.
    let mut done: HashMap<u32, bool> = HashMap::new();
    let mut out = Vec::new();
    let mut remaining: Vec<&Rel> = views.to_vec();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|v| {
            let mut missing = None;
            for dep in deps.get(&v.oid).map(Vec::as_slice).unwrap_or_default() {
                match classify(*dep) {
                    Dep::Present => {}
                    Dep::Missing(name) => missing = missing.or(Some(name)),
                    Dep::View => match done.get(dep) {
                        None => return true,
                        Some(false) => {
                            missing = missing.or_else(|| {
                                Some(format!("view {}", names.get(dep).unwrap_or(&"?")))
                            });
                        }
                        Some(true) => {}
                    },
                }
            }
            done.insert(v.oid, missing.is_none());
            out.push((*v, missing));
            false
        });
        if remaining.len() == before {
            // A dependency cycle cannot happen between views; do not loop if it does.
            for v in remaining.drain(..) {
                out.push((v, Some("a view dependency cycle".into())));
            }
        }
    }
    out
}
