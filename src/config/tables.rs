//! The table selection of a database source: `include_tables` / `exclude_tables` globs,
//! compiled once when the config is validated.

use super::globs::{BadGlob, Globs};

/// Which tables of a database a dump takes. The default takes every table.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    /// Empty: every table.
    include: Globs,
    exclude: Globs,
}

impl TableFilter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, BadGlob> {
        Ok(Self {
            include: Globs::new("include_tables", include)?,
            exclude: Globs::new("exclude_tables", exclude)?,
        })
    }

    /// Whether a table is selected: matched by an include glob (or there are none), and by
    /// no exclude glob.
    pub fn selects(&self, table: &str) -> bool {
        (self.include.is_empty() || self.include.is_match(table)) && !self.exclude.is_match(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> TableFilter {
        let v = |p: &[&str]| {
            p.iter()
                .map(std::string::ToString::to_string)
                .collect::<Vec<_>>()
        };
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
