//! Secret values out of text: the `Redactor` that knows the secret values of a run (variables
//! and parameters named as secrets, the config's passwords, Secrets read on the way) and hides
//! them wherever they appear. Runbook journals and reports and the support bundle share it.

use base64::Engine as _;
use serde_json::Value;

/// What stands where a secret was.
pub const HIDDEN: &str = "<redacted>";

/// Secrets shorter than this are hidden where they stand as a word of their own only: a
/// password `test` must not turn `latest` into `la<redacted>`.
const WHOLE_WORD_BELOW: usize = 8;

/// Values shorter than this are never learned: they would blank out ordinary words.
const SHORTEST: usize = 4;

/// Replaces secret values in text and JSON.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is hidden whole.
    secrets: Vec<String>,
}

/// `text` with each occurrence of `word` that no letter or digit touches replaced.
fn replace_words(text: &str, word: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(at) = rest.find(word) {
        let prev = rest[..at]
            .chars()
            .next_back()
            .or(if at == 0 { before } else { None });
        let next = rest[at + word.len()..].chars().next();
        let alone =
            !prev.is_some_and(char::is_alphanumeric) && !next.is_some_and(char::is_alphanumeric);
        out.push_str(&rest[..at]);
        out.push_str(if alone { HIDDEN } else { word });
        before = word.chars().next_back();
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

/// Whether a variable, parameter or key name says it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    // Where a secret is, or whose it is, is not the secret: `DB_PASSWORD_FILE` holds a path,
    // `AWS_ACCESS_KEY_ID` names a key.
    if ["_FILE", "_PATH", "_ENV", "_ID"]
        .iter()
        .any(|s| n.ends_with(s))
    {
        return false;
    }
    [
        "PASSWORD",
        "SECRET",
        "TOKEN",
        "CREDENTIAL",
        "ACCESS_KEY",
        "PRIVATE_KEY",
    ]
    .iter()
    .any(|w| n.contains(w))
}

impl Redactor {
    /// Knows the values of this process's environment variables named as secrets, of the
    /// `named` pairs named as secrets, and every one of `secrets`.
    pub fn from_env(
        named: impl IntoIterator<Item = (String, String)>,
        secrets: impl IntoIterator<Item = String>,
    ) -> Self {
        let values: Vec<String> = std::env::vars()
            .chain(named)
            .filter(|(k, _)| is_secret_name(k))
            .map(|(_, v)| v)
            .chain(secrets)
            .collect();
        let mut r = Self::default();
        r.learn(values);
        r
    }

    /// Hides values read during the run too: a Secret's data, as a host call read it.
    pub fn learn(&mut self, values: impl IntoIterator<Item = String>) {
        self.secrets
            .extend(values.into_iter().filter(|v| v.len() >= SHORTEST));
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self.secrets.dedup();
    }

    /// Like `learn`, and each value's base64 form too: what a Secret's `data`, a kubeconfig or
    /// a Basic auth header shows of it.
    pub fn learn_with_base64(&mut self, values: impl IntoIterator<Item = String>) {
        let values: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= SHORTEST)
            .flat_map(|v| {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&v);
                [v, b64]
            })
            .collect();
        self.learn(values);
    }

    /// The values of the Secrets among `objects`: each `data` value as stored (base64) and
    /// decoded, and each `stringData` value. A service account token's `namespace` and
    /// `ca.crt` are public (every pod mounts them) and left out: `kubeflow` must stay readable.
    pub fn secret_values(objects: &[Value]) -> Vec<String> {
        let mut values = Vec::new();
        for o in objects.iter().filter(|o| o["kind"] == "Secret") {
            let sa_token = o["type"] == "kubernetes.io/service-account-token";
            for field in ["data", "stringData"] {
                let Some(map) = o[field].as_object() else {
                    continue;
                };
                for (k, v) in map {
                    let Some(v) = v.as_str() else { continue };
                    if sa_token && (k == "namespace" || k == "ca.crt") {
                        continue;
                    }
                    values.push(v.to_string());
                    if field == "data" {
                        if let Ok(text) = base64::engine::general_purpose::STANDARD
                            .decode(v)
                            .map(String::from_utf8)
                        {
                            values.extend(text.ok());
                        }
                    }
                }
            }
        }
        values
    }

    /// How many values it hides.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in &self.secrets {
            if !out.contains(secret.as_str()) {
                continue;
            }
            out = if secret.chars().count() >= WHOLE_WORD_BELOW {
                out.replace(secret.as_str(), HIDDEN)
            } else {
                replace_words(&out, secret)
            };
        }
        out
    }

    pub fn json(&self, v: Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(&s)),
            Value::Array(a) => Value::Array(a.into_iter().map(|x| self.json(x)).collect()),
            // Keys too: a script may key a map by a value it read.
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, x)| (self.text(&k), self.json(x)))
                    .collect(),
            ),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_secret_is_hidden_as_a_word_and_a_long_one_anywhere() {
        let r = Redactor {
            secrets: vec!["hunter2-long-secret".into(), "test".into()],
        };
        assert_eq!(
            r.text("the latest test: pw=test, key=xhunter2-long-secretx"),
            "the latest <redacted>: pw=<redacted>, key=x<redacted>x"
        );
        assert_eq!(r.text("testtest test"), "testtest <redacted>");
    }

    #[test]
    fn where_a_secret_is_kept_is_not_a_secret_name() {
        assert!(is_secret_name("DB_PASSWORD"));
        assert!(is_secret_name("AWS_SECRET_ACCESS_KEY"));
        assert!(!is_secret_name("DB_PASSWORD_FILE"));
        assert!(!is_secret_name("AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn a_value_learned_with_base64_is_hidden_in_both_forms() {
        let mut r = Redactor::default();
        r.learn_with_base64(["s3cr3t-value".to_string()]);
        assert_eq!(
            r.text("plain s3cr3t-value, encoded czNjcjN0LXZhbHVl"),
            "plain <redacted>, encoded <redacted>"
        );
    }

    #[test]
    fn a_service_account_tokens_namespace_is_not_learned_but_its_token_is() {
        let objects = vec![serde_json::json!({
            "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "data": {"namespace": "a3ViZWZsb3c=", "token": "dG9rZW4tdmFsdWU="}})];
        let values = Redactor::secret_values(&objects);
        assert!(values.contains(&"token-value".to_string()), "{values:?}");
        assert!(!values.contains(&"kubeflow".to_string()), "{values:?}");
    }
}
