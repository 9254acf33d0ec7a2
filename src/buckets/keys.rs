//! Object keys as snapshot paths: a reversible escaping, and the ETag-derived node time.
//!
//! **Key escaping.** An S3 key is any UTF-8 string, but a snapshot path is a tree of named
//! segments. [`escape_key`] maps every key to a safe, unique, `/`-separated path and
//! [`unescape`] maps it back to the exact key. The key is split on `/` and each segment becomes:
//! - the empty segment (`a//b`, a leading `/`, the directory marker `a/`): `%-`;
//! - `.` and `..`: `%2E` and `%2E%2E`;
//! - otherwise the segment with `%`, control bytes and `\` percent-encoded (`%25`, `%0A`, …);
//!   spaces and non-ASCII characters stay as they are, so paths remain readable;
//! - a segment longer than [`MAX_SEGMENT`] bytes once escaped is split into several path
//!   segments, each but the last ending in the marker `%+` ("continues in the next segment").
//!
//! Since a literal `%` is always escaped, `%-`, `%+` and the collision marker `%!` (see
//! [`LEAF_SUFFIX`]) cannot come from a key. S3 allows both `a` and `a/b` as keys, which a tree
//! cannot hold as a file and a folder of the same name; the backup then appends `%!` to the
//! file's name, which [`unescape`] drops. The exact key is also stored in `index.jsonl`.

use rustic_core::jiff::Timestamp;

/// Longest path segment produced, in bytes (file systems allow 255).
pub const MAX_SEGMENT: usize = 240;
/// Appended to an object's file name when a folder of the same name is needed.
pub const LEAF_SUFFIX: &str = "%!";
const EMPTY: &str = "%-";
const CONTINUES: &str = "%+";

/// The snapshot path (relative, `/`-separated) for an object key.
pub fn escape_key(key: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for seg in key.split('/') {
        let escaped = match seg {
            "" => EMPTY.to_string(),
            "." => "%2E".to_string(),
            ".." => "%2E%2E".to_string(),
            s => {
                let mut e = String::with_capacity(s.len());
                for c in s.chars() {
                    if c == '%' || c == '\\' || c.is_control() {
                        let mut buf = [0u8; 4];
                        for b in c.encode_utf8(&mut buf).bytes() {
                            e.push_str(&format!("%{b:02X}"));
                        }
                    } else {
                        e.push(c);
                    }
                }
                e
            }
        };
        split_long(&escaped, &mut out);
    }
    out.join("/")
}

/// Splits an escaped segment into pieces of at most [`MAX_SEGMENT`] bytes, never inside a
/// character or a `%XX` escape.
fn split_long(seg: &str, out: &mut Vec<String>) {
    if seg.len() <= MAX_SEGMENT {
        out.push(seg.to_string());
        return;
    }
    let limit = MAX_SEGMENT - CONTINUES.len();
    let mut rest = seg;
    while rest.len() > MAX_SEGMENT {
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // Do not cut a `%XX` escape: back up to its `%` when it straddles the cut.
        if let Some(p) = rest[..cut].rfind('%') {
            if p + 3 > cut {
                cut = p;
            }
        }
        out.push(format!("{}{CONTINUES}", &rest[..cut]));
        rest = &rest[cut..];
    }
    out.push(rest.to_string());
}

/// The object key for a snapshot path made by [`escape_key`]; `None` if it is not one.
pub fn unescape(path: &str) -> Option<String> {
    let mut segments: Vec<String> = Vec::new();
    let mut pending = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    let last = parts.len() - 1;
    for (i, raw) in parts.into_iter().enumerate() {
        let raw = if i == last {
            raw.strip_suffix(LEAF_SUFFIX).unwrap_or(raw)
        } else {
            raw
        };
        if let Some(piece) = raw.strip_suffix(CONTINUES) {
            pending.push_str(piece);
            continue;
        }
        pending.push_str(raw);
        let seg = std::mem::take(&mut pending);
        segments.push(if seg == EMPTY {
            String::new()
        } else {
            decode_segment(&seg)?
        });
    }
    if !pending.is_empty() {
        return None;
    }
    Some(segments.join("/"))
}

fn decode_segment(seg: &str) -> Option<String> {
    if seg.is_empty() || seg == "." || seg == ".." {
        return None;
    }
    crate::snapshot::layout::percent_decode(seg)
}

/// A value derived from the ETag, stored as the node's ctime: the archiver reuses a parent's
/// content only when size, mtime and ctime all match, so a same-size rewrite within the same
/// second (same last-modified) is still read again.
pub fn etag_time(etag: &str) -> Timestamp {
    use sha2::Digest;
    let h = sha2::Sha256::digest(etag.as_bytes());
    let a = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    let b = u32::from_be_bytes(h[8..12].try_into().expect("4 bytes"));
    // Seconds within about 190 years after the epoch: always a valid timestamp.
    let secs = (a % 6_000_000_000) as i64;
    let nanos = (b % 1_000_000_000) as i32;
    Timestamp::new(secs, nanos).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let long = "x".repeat(700);
        let long_pct = "%".repeat(300);
        let long_uni = "é".repeat(400);
        for key in [
            "a",
            "a/b/c.json",
            "a//b",
            "../x",
            "./y",
            "dir/",
            "/lead",
            "",
            "/",
            "//",
            ".",
            "..",
            "a/./b/../c",
            "with space/and %25 percent%",
            "ünïcødé/日本語",
            "back\\slash",
            "tab\tnew\nline",
            "%-",
            "%+",
            "%!",
            long.as_str(),
            long_pct.as_str(),
            long_uni.as_str(),
        ] {
            let p = escape_key(key);
            for seg in p.split('/') {
                assert!(
                    !seg.is_empty() && seg != "." && seg != "..",
                    "{key:?} -> {p:?}"
                );
                assert!(seg.len() <= 255, "{key:?} -> {p:?}");
            }
            assert_eq!(unescape(&p).as_deref(), Some(key), "{key:?} -> {p:?}");
            assert_eq!(
                unescape(&format!("{p}{LEAF_SUFFIX}")).as_deref(),
                Some(key),
                "{key:?}"
            );
        }
        assert_ne!(escape_key("a//b"), escape_key("a/b"));
        assert_ne!(escape_key("a/"), escape_key("a"));
    }

    #[test]
    fn etag_time_is_stable_and_distinct() {
        assert_eq!(etag_time("\"abc\""), etag_time("\"abc\""));
        assert_ne!(etag_time("\"abc\""), etag_time("\"abd\""));
    }
}
