//! Shell-style glob lists (`*`, `?`, `[...]`), compiled once when the config file is read: the
//! table selection of a database source and the namespaces and CRD groups of `[kubernetes]`.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// One list of globs; a name matches when any of them matches it. An empty list matches nothing.
#[derive(Debug, Clone, Default)]
pub struct Globs(GlobSet);

/// A pattern that does not compile: which list, its position there, and why.
#[derive(Debug, thiserror::Error)]
#[error("`{pattern}` is not a valid glob: {detail}")]
pub struct BadGlob {
    /// The config key of the list, e.g. `include_tables` or `namespaces`.
    pub list: &'static str,
    pub index: usize,
    pub pattern: String,
    pub detail: String,
}

impl Globs {
    /// Compiles the patterns of the config list `list`.
    pub fn new(list: &'static str, patterns: &[String]) -> Result<Self, BadGlob> {
        let mut set = GlobSetBuilder::new();
        for (index, pattern) in patterns.iter().enumerate() {
            // One syntax for every list: `*` crosses `/`, `\` and braces are literal.
            let glob = GlobBuilder::new(&literal_braces(pattern))
                .literal_separator(false)
                .backslash_escape(false)
                .build()
                .map_err(|e| BadGlob {
                    list,
                    index,
                    pattern: pattern.clone(),
                    detail: e.kind().to_string(),
                })?;
            set.add(glob);
        }
        set.build().map(Self).map_err(|e| BadGlob {
            list,
            index: 0,
            pattern: patterns.join(", "),
            detail: e.kind().to_string(),
        })
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.0.is_match(name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The globs of `[kubernetes]`, compiled.
#[derive(Debug, Clone, Default)]
pub struct KubeGlobs {
    pub namespaces: Globs,
    pub exclude_namespaces: Globs,
    pub crd_groups: Globs,
}

impl KubeGlobs {
    pub fn new(
        namespaces: &[String],
        exclude_namespaces: &[String],
        crd_groups: &[String],
    ) -> Result<Self, BadGlob> {
        Ok(Self {
            namespaces: Globs::new("namespaces", namespaces)?,
            exclude_namespaces: Globs::new("exclude_namespaces", exclude_namespaces)?,
            crd_groups: Globs::new("crd_groups", crd_groups)?,
        })
    }
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

    #[test]
    fn kubernetes_globs_match_names_and_groups() {
        let v = |p: &[&str]| {
            p.iter()
                .map(std::string::ToString::to_string)
                .collect::<Vec<_>>()
        };
        let g = KubeGlobs::new(&v(&["kubeflow-user-*"]), &[], &v(&["*.kubeflow.org"])).unwrap();
        assert!(g.namespaces.is_match("kubeflow-user-alice"));
        assert!(!g.namespaces.is_match("kubeflow"));
        assert!(
            !g.exclude_namespaces.is_match("kubeflow"),
            "empty matches nothing"
        );
        assert!(g.crd_groups.is_match("pipelines.kubeflow.org"));
        let err = KubeGlobs::new(&[], &[], &v(&["kubeflow.org", "[z-a]"])).unwrap_err();
        assert_eq!((err.list, err.index), ("crd_groups", 1));
    }
}
