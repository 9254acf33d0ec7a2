//! The last successes to keep: a failed run must not erase when the last good run ended. They
//! are read back from the previous textfile, or from the Pushgateway's current group.
//!
//! The read is hand-rolled and narrow on purpose: it only picks the samples of
//! `kfguard_last_success_timestamp_seconds` out of exposition text (kfguard's own file, or a
//! Pushgateway's `/metrics`). prometheus-parse, the small parser of the text format, splits
//! label values on `,` and `=` without undoing escapes, and brings chrono and regex along;
//! this reader follows the format's escaping for that one family and skips every other line.

use std::collections::BTreeSet;

use super::encode::{common, seconds, Labels, LAST_SUCCESS};
use super::Export;

/// The labels this family carries; any other label (a Pushgateway's `job`, `instance`) is
/// dropped when a sample is read back.
const KEPT_LABELS: &[&str] = &["cluster", "operation", "runbook"];

/// One sample of `kfguard_last_success_timestamp_seconds`.
#[derive(Debug, Clone, PartialEq)]
pub struct LastSuccess {
    pub labels: Labels,
    pub value: f64,
}

/// The samples of the family in `text` whose labels `keep` accepts (it sees every label),
/// with only the family's own labels left.
pub(super) fn read(text: &str, keep: impl Fn(&Labels) -> bool) -> Vec<LastSuccess> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(LAST_SUCCESS)?;
            let (labels, rest) = match rest.strip_prefix('{') {
                Some(inner) => parse_labels(inner)?,
                None if rest.starts_with([' ', '\t']) => (Vec::new(), rest),
                None => return None,
            };
            let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
            if !keep(&labels) {
                return None;
            }
            let mut labels: Labels = labels
                .into_iter()
                .filter(|(k, _)| KEPT_LABELS.contains(&k.as_str()))
                .collect();
            labels.sort_by_key(|(k, _)| KEPT_LABELS.iter().position(|n| *n == k.as_str()));
            Some(LastSuccess { labels, value })
        })
        .collect()
}

/// `name="value",...}` and what follows the `}`; values unescaped (`\\`, `\"`, `\n`).
fn parse_labels(mut s: &str) -> Option<(Labels, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (name, rest) = s.split_once('=')?;
        let mut chars = rest.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name.trim().to_string(), value));
        s = &rest[1 + end + 1..];
    }
}

/// The family as it must be written: this export's successes, then every earlier sample of a
/// label set no run of this export succeeded with (a failed run's, or another operation's).
pub(super) fn merge(export: &Export, earlier: Vec<LastSuccess>) -> Vec<LastSuccess> {
    let mut out: Vec<LastSuccess> = export
        .runs
        .iter()
        .filter(|r| r.succeeded())
        .map(|r| LastSuccess {
            labels: common(&export.cluster, r),
            value: seconds(r.timing.ended),
        })
        .collect();
    let mut seen: BTreeSet<Labels> = out.iter().map(|s| s.labels.clone()).collect();
    for s in earlier {
        if seen.insert(s.labels.clone()) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_success_family_is_read_with_escapes_undone() {
        let text = concat!(
            "# HELP kfguard_last_success_timestamp_seconds x\n",
            "kfguard_last_run_success{cluster=\"a\",operation=\"backup\"} 0\n",
            "kfguard_last_success_timestamp_seconds{cluster=\"a \\\"b\\\", c\",operation=\"backup\",job=\"kfguard-backup\"} 1700000000.5\n",
            "kfguard_last_success_timestamp_seconds_other{cluster=\"a\"} 3\n",
            "kfguard_last_success_timestamp_seconds 42\n",
        );
        let got = read(text, |_| true);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[0].labels,
            vec![
                ("cluster".to_string(), "a \"b\", c".to_string()),
                ("operation".to_string(), "backup".to_string())
            ]
        );
        assert!((got[0].value - 1_700_000_000.5).abs() < 1e-6);
        assert!((got[1].value - 42.0).abs() < 1e-9);
        let none = read(text, |l| l.iter().any(|(k, v)| k == "job" && v == "other"));
        assert!(none.is_empty());
    }
}
