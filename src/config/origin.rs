//! Where a config came from: the file and its text, to point errors at `file:line:column` and
//! to tell keys set in the file from defaults.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The config file a [`super::Config`] was read from.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub path: PathBuf,
    text: Arc<str>,
    /// The file parsed once for its spans; `None` if it does not parse (then nothing is located).
    doc: Option<Arc<toml_edit::ImDocument<String>>>,
}

impl Origin {
    pub(super) fn new(path: &Path, text: &str) -> Self {
        Self {
            path: path.to_owned(),
            text: text.into(),
            doc: toml_edit::ImDocument::parse(text.to_owned())
                .ok()
                .map(Arc::new),
        }
    }

    /// The folder relative paths in the file are resolved from (empty: the working directory).
    pub(super) fn base(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    /// Byte span of the value at `keys`, or of the deepest enclosing key the file has; `None`
    /// when not even the first key is in the file.
    fn span(&self, keys: &[Seg]) -> Option<(std::ops::Range<usize>, bool)> {
        let doc = self.doc.as_deref()?;
        let mut item = doc.as_item();
        let mut span = None;
        for (depth, seg) in keys.iter().enumerate() {
            let next = match seg {
                Seg::Key(k) => item.get(*k),
                Seg::Index(i) => item.get(*i),
            };
            match next {
                Some(next) => {
                    item = next;
                    span = item.span().or(span);
                }
                None => return span.map(|s| (s, false)).filter(|_| depth > 0),
            }
        }
        span.map(|s| (s, true))
    }

    /// Whether the file sets the key itself (rather than leaving it to the default).
    pub(super) fn has(&self, keys: &[Seg]) -> bool {
        self.span(keys).is_some_and(|(_, exact)| exact)
    }

    /// `file:line:column` of the key's value, or of its table when the key is not in the file;
    /// `None` when the file has neither.
    pub(super) fn locate(&self, keys: &[Seg]) -> Option<String> {
        let (span, _) = self.span(keys)?;
        let (line, column) = line_column(&self.text, span.start);
        Some(format!("{}:{line}:{column}", self.path.display()))
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// A key path for messages: `databases[1].url`.
pub(super) fn key_name(keys: &[Seg]) -> String {
    let mut out = String::new();
    for seg in keys {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_located_by_line_and_column() {
        let o = Origin::new(
            Path::new("k.toml"),
            "cluster = \"a\"\n[[databases]]\nname = \"x\"\n[[databases]]\nname = \"y\"\ninclude_tables = [\"a\", \"b[\"]\n",
        );
        let k = |i| [Seg::Key("databases"), Seg::Index(i), Seg::Key("name")];
        assert_eq!(o.locate(&k(1)).as_deref(), Some("k.toml:5:8"));
        assert_eq!(
            o.locate(&[
                Seg::Key("databases"),
                Seg::Index(1),
                Seg::Key("include_tables"),
                Seg::Index(1)
            ])
            .as_deref(),
            Some("k.toml:6:24")
        );
        assert!(o.has(&k(0)));
        assert!(!o.has(&[Seg::Key("databases"), Seg::Index(0), Seg::Key("url")]));
        assert!(!o.has(&[Seg::Key("repository"), Seg::Key("url")]));
        assert_eq!(key_name(&k(1)), "databases[1].name");
    }
}
