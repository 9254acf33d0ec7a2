//! Secrets out of output: password-like keys, and passwords inside URLs and connection strings;
//! and the secret values a config names, for output that has no keys to go by.

use std::path::Path;

use super::{Config, PASSWORD_ENV};

/// Replaces inline secrets: password-like keys, and passwords inside URLs.
pub(super) fn redact(value: &mut serde_json::Value, key: Option<&str>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                redact(v, Some(k));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, key)),
        Value::String(s) => {
            let secret_key = key.is_some_and(|k| {
                let k = k.to_ascii_lowercase();
                !k.ends_with("_env")
                    && !k.ends_with("_file")
                    && (k.contains("password") || k.contains("secret") || k.contains("token"))
            });
            if secret_key {
                *s = "***".into();
            } else {
                *s = redact_url(s);
            }
        }
        _ => {}
    }
}

/// `scheme://user:pass@host/db?password=x` becomes `scheme://user:***@host/db?password=***`.
pub fn redact_url(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return redact_key_values(s);
    };
    let rest = &s[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!("{}{}:***{}", &s[..scheme_end + 3], user, &rest[at..]),
            None => s.to_string(),
        },
        None => s.to_string(),
    };
    // Connection strings also carry secrets as query parameters.
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_name(k) => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

fn is_secret_name(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.contains("token") || k == "pass"
}

/// libpq's `host=h user=u password=p` form: the value after a secret key becomes `***`. Such
/// strings are refused as database URLs, but may still reach messages (e.g. a typo'd key).
fn redact_key_values(s: &str) -> String {
    if !s.contains('=') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq]
            .rfind(|c: char| c.is_whitespace())
            .map_or(0, |i| i + 1);
        let key = rest[key_start..eq].trim();
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        if is_secret_name(key) {
            // A value is a single-quoted string (with `\'` escapes) or runs to the next space.
            let end = if let Some(quoted) = rest.strip_prefix('\'') {
                let mut escaped = false;
                quoted
                    .char_indices()
                    .find(|&(_, c)| {
                        let close = c == '\'' && !escaped;
                        escaped = c == '\\' && !escaped;
                        close
                    })
                    .map_or(rest.len(), |(i, _)| i + 2)
            } else {
                rest.find(char::is_whitespace).unwrap_or(rest.len())
            };
            out.push_str("***");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// The secret values `config` names: the repository password, the S3 secret keys, the
/// databases' passwords and the buckets' secret keys, read from their files and variables, and
/// the passwords inside its URLs. Access key IDs are left out: they are not secret, and one
/// such as `minio` would blank out every object named after it. A secret that cannot be read
/// is left out too; the command that needs it says so.
pub(super) fn secret_values(config: &Config) -> Vec<String> {
    let repo = &config.repository;
    let mut envs: Vec<&str> = vec![PASSWORD_ENV];
    let mut files: Vec<&Path> = Vec::new();
    let mut urls: Vec<&str> = vec![repo.url.as_str()];
    envs.extend(repo.password_env.as_deref());
    files.extend(repo.password_file.as_deref());
    envs.extend(repo.s3.secret_access_key_env.as_deref());
    files.extend(repo.s3.secret_access_key_file.as_deref());
    urls.extend(repo.s3.endpoint.as_deref());
    for db in &config.databases {
        envs.extend(db.password_env.as_deref());
        files.extend(db.password_file.as_deref());
        urls.push(&db.url);
    }
    urls.extend(config.metrics.pushgateway.as_deref());
    for b in &config.buckets {
        envs.extend(b.secret_access_key_env.as_deref());
        files.extend(b.secret_access_key_file.as_deref());
        urls.extend(b.endpoint.as_deref());
    }
    let from_env = envs.into_iter().filter_map(|e| std::env::var(e).ok());
    let from_files = files
        .into_iter()
        .filter_map(|f| super::read_secret("", None, Some(f)).ok().flatten());
    let in_urls = urls
        .into_iter()
        .filter_map(|u| url::Url::parse(u).ok()?.password().map(String::from))
        .flat_map(|p| {
            let decoded = percent_encoding::percent_decode_str(&p)
                .decode_utf8_lossy()
                .into_owned();
            [p, decoded]
        });
    let mut values: Vec<String> = from_env
        .chain(from_files)
        .chain(in_urls)
        .filter(|v| !v.is_empty())
        .collect();
    values.sort();
    values.dedup();
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_secret_keys_are_redacted() {
        assert_eq!(
            redact_url("mysql://root:hunter2@db:3306/x"),
            "mysql://root:***@db:3306/x"
        );
        assert_eq!(redact_url("mysql://root@db:3306"), "mysql://root@db:3306");
        assert_eq!(
            redact_url("postgres://u@h:5432/x?sslmode=require&password=hunter2"),
            "postgres://u@h:5432/x?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("http://ak:sk@127.0.0.1:9000"),
            "http://ak:***@127.0.0.1:9000"
        );
        let mut v =
            serde_json::json!({"password": "p", "password_env": "E", "url": "postgres://u:p@h/db"});
        redact(&mut v, None);
        assert_eq!(v["password"], "***");
        assert_eq!(v["password_env"], "E");
        assert_eq!(v["url"], "postgres://u:***@h/db");
    }

    #[test]
    fn key_value_connection_strings_are_redacted() {
        assert_eq!(
            redact_url("host=db user=kfp password=hunter2 dbname=x"),
            "host=db user=kfp password=*** dbname=x"
        );
        assert_eq!(
            redact_url("host=db password='hun ter\\'2' sslmode=require"),
            "host=db password=*** sslmode=require"
        );
        assert_eq!(redact_url("./kfguard-repo"), "./kfguard-repo");
    }

    #[test]
    fn the_secret_values_a_config_names_are_read_from_its_files_and_urls() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db-password"), "from-a-file\n").unwrap();
        std::fs::write(dir.path().join("bucket-key"), "bucket-secret").unwrap();
        let config = Config::from_toml(
            r#"
[[databases]]
name = "kfp"
engine = "postgres"
url = "postgres://kfp:in%40url@db:5432"
password_file = "db-password"
[[buckets]]
name = "art"
bucket = "mlpipeline"
access_key_id_file = "bucket-key"
secret_access_key_file = "bucket-key"
"#,
            &dir.path().join("kfguard.toml"),
        )
        .unwrap();
        let values = secret_values(&config);
        for v in ["from-a-file", "bucket-secret", "in%40url", "in@url"] {
            assert!(values.iter().any(|x| x == v), "{v} in {values:?}");
        }
        assert!(!values.iter().any(String::is_empty), "{values:?}");
    }
}
