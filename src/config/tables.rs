//! The table selection of a database source: `include_tables` / `exclude_tables` globs,
//! compiled once when the config is validated.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Which tables of a database a dump takes. The default takes every table.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    /// `None`: every table.
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

/// A pattern that does not compile: which list, its position there, and why.
#[derive(Debug, thiserror::Error)]
#[error("`{pattern}` is not a valid glob: {detail}")]
pub struct BadGlob {
    /// `include_tables` or `exclude_tables`.
    pub list: &'static str,
    pub index: usize,
    pub pattern: String,
    pub detail: String,
}

impl TableFilter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, BadGlob> {
        Ok(Self {
            include: compile("include_tables", include)?,
            exclude: compile("exclude_tables", exclude)?,
        })
    }

    /// Whether a table is selected: matched by an include glob (or there are none), and by
    /// no exclude glob.
    pub fn selects(&self, table: &str) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(table))
            && !self.exclude.as_ref().is_some_and(|set| set.is_match(table))
    }
}

fn compile(list: &'static str, patterns: &[String]) -> Result<Option<GlobSet>, BadGlob> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for (index, pattern) in patterns.iter().enumerate() {
        let bad = |detail: String| BadGlob {
            list,
            index,
            pattern: pattern.clone(),
            detail,
        };
        // The same syntax as before globset: `*` crosses `/`, `\` and braces are literal.
        let glob = GlobBuilder::new(&literal_braces(pattern))
            .literal_separator(false)
            .backslash_escape(false)
            .build()
            .map_err(|e| bad(e.kind().to_string()))?;
        set.add(glob);
    }
    set.build().map(Some).map_err(|e| BadGlob {
        list,
        index: 0,
        pattern: patterns.join(", "),
        detail: e.kind().to_string(),
    })
}

/// globset reads `{a,b}` as alternatives; table names may hold braces, so they stay literal.
fn literal_braces(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut in_class = false;
    let mut class_len = 0;
    for c in pattern.chars() {
        if in_class {
            // `]` right after `[` or `[!` is a member, not the end of the class.
            if c == ']' && class_len > 0 {
                in_class = false;
            } else if !(c == '!' && class_len == 0) {
                class_len += 1;
            }
            out.push(c);
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                class_len = 0;
                out.push(c);
            }
            '{' | '}' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> TableFilter {
        let v = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        TableFilter::new(&v(include), &v(exclude)).unwrap()
    }

    #[test]
    fn globs_select_as_before() {
        let f = filter(&["run*"], &["run_metrics"]);
        assert!(f.selects("run_details"));
        assert!(!f.selects("run_metrics"));
        assert!(!f.selects("jobs"));
        assert!(filter(&[], &[]).selects("anything"));
        let f = filter(&["t?_[a-c]", "[!x]y"], &[]);
        assert!(f.selects("t1_b") && f.selects("zy"));
        assert!(!f.selects("t1_d") && !f.selects("xy"));
        assert!(filter(&["a*"], &[]).selects("a/b"), "`*` crosses `/`");
        assert!(!filter(&["Run*"], &[]).selects("run"), "case matters");
    }

    #[test]
    fn braces_and_backslashes_are_literal() {
        let f = filter(&["t{1,2}", "a\\b"], &[]);
        assert!(f.selects("t{1,2}") && f.selects("a\\b"));
        assert!(!f.selects("t1"));
    }

    #[test]
    fn a_bad_pattern_is_an_error_naming_it() {
        let err = TableFilter::new(&[], &["ok".into(), "run[".into()]).unwrap_err();
        assert_eq!((err.list, err.index), ("exclude_tables", 1));
        assert!(err.to_string().contains("`run[`"), "{err}");
    }
}
