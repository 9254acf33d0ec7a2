//! The bundle as it is written: a gzip-compressed tar streamed to its sink entry by entry,
//! every entry passed through the redactor first, and the list of what it holds.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;

use super::SupportError;
use crate::redact::Redactor;

/// One file of the bundle, as the index lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub path: String,
    pub bytes: u64,
}

/// Counts what goes through, for the bundle's size.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub(super) struct Archive<W: Write> {
    tar: tar::Builder<GzEncoder<Counting<W>>>,
    /// The folder every entry sits in, so that unpacking makes one folder.
    root: String,
    mtime: u64,
    pub(super) redactor: Redactor,
    pub(super) entries: Vec<Entry>,
}

impl<W: Write> Archive<W> {
    pub(super) fn new(out: W, root: String, redactor: Redactor) -> Self {
        let gz = GzEncoder::new(
            Counting {
                inner: out,
                bytes: 0,
            },
            Compression::default(),
        );
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            tar: tar::Builder::new(gz),
            root,
            mtime,
            redactor,
            entries: Vec::new(),
        }
    }

    /// Adds `text` at `path`, with every secret value the redactor knows hidden.
    pub(super) fn text(&mut self, path: &str, text: &str) -> Result<(), SupportError> {
        let clean = self.redactor.text(text);
        self.raw(path, clean.as_bytes())
    }

    /// Adds `value` as pretty JSON, redacted.
    pub(super) fn json(&mut self, path: &str, value: &impl Serialize) -> Result<(), SupportError> {
        let v = serde_json::to_value(value).unwrap_or_default();
        let clean = self.redactor.json(v);
        let mut body = serde_json::to_string_pretty(&clean).unwrap_or_default();
        body.push('\n');
        // Redacted before escaping: a secret holding a quote is still found.
        self.raw(path, body.as_bytes())
    }

    /// Adds bytes as they are: only for what the redactor has already seen.
    fn raw(&mut self, path: &str, body: &[u8]) -> Result<(), SupportError> {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        let full = format!("{}/{path}", self.root);
        self.tar
            .append_data(&mut header, &full, body)
            .map_err(|source| SupportError::Write {
                what: full.clone(),
                source,
            })?;
        self.entries.push(Entry {
            path: path.to_string(),
            bytes: body.len() as u64,
        });
        Ok(())
    }

    /// Ends the tar and the gzip stream; the compressed size.
    pub(super) fn finish(self) -> Result<u64, SupportError> {
        let fail = |source| SupportError::Write {
            what: "the end of the bundle".into(),
            source,
        };
        let gz = self.tar.into_inner().map_err(fail)?;
        let mut counting = gz.finish().map_err(fail)?;
        counting.flush().map_err(fail)?;
        Ok(counting.bytes)
    }
}
