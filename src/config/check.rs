//! Validation of the effective config, at load: everything that can be checked without
//! reaching a server fails here with exit code 2, `file:line:column` and the key.

use std::collections::BTreeSet;

use super::globs::BadGlob;
use super::origin::{key_name, Origin, Seg};
use super::tables::TableFilter;
use super::{Config, ConfigError, Engine};

/// restic's backends that kfguard does not speak, written `NAME:...` without `//`.
const RESTIC_PREFIXES: [&str; 8] = [
    "s3:", "gs:", "azure:", "b2:", "swift:", "sftp:", "rest:", "rclone:",
];
const SUPPORTED_REPOSITORIES: &str = "a local path (e.g. ./kfguard-repo) or s3://BUCKET/PREFIX";

struct Checker<'a> {
    origin: Option<&'a Origin>,
}

impl Checker<'_> {
    fn err(&self, keys: &[Seg], message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            at: self.origin.and_then(|o| o.locate(keys)),
            key: key_name(keys),
            message: message.into(),
        }
    }
}

pub(super) fn validate(config: &mut Config) -> Result<(), ConfigError> {
    use Seg::{Index, Key};
    let origin = config.layers.file.clone();
    let c = Checker {
        origin: origin.as_ref(),
    };
    let url_key = [Key("repository"), Key("url")];
    if let Err(message) = check_repository_url(&config.repository.url) {
        return Err(if config.layers.repo_from_cli {
            ConfigError::Invalid {
                at: None,
                key: "--repo / KFGUARD_REPO".into(),
                message,
            }
        } else {
            c.err(&url_key, message)
        });
    }
    if config.cluster.trim().is_empty() {
        return Err(c.err(
            &[Key("cluster")],
            "is empty; name the cluster, e.g. prod-kubeflow",
        ));
    }
    if let Some(endpoint) = &config.repository.s3.endpoint {
        check_endpoint(endpoint)
            .map_err(|m| c.err(&[Key("repository"), Key("s3"), Key("endpoint")], m))?;
    }
    let mut names = BTreeSet::new();
    for (i, db) in config.databases.iter().enumerate() {
        let key = |k| [Key("databases"), Index(i), Key(k)];
        check_name(&db.name, &mut names).map_err(|m| c.err(&key("name"), m))?;
        check_database_url(db.engine, &db.url).map_err(|m| c.err(&key("url"), m))?;
        let mut seen = BTreeSet::new();
        for (j, name) in db.databases.iter().enumerate() {
            if !seen.insert(name.as_str()) {
                return Err(c.err(
                    &[Key("databases"), Index(i), Key("databases"), Index(j)],
                    format!("`{name}` is listed twice; list each database once"),
                ));
            }
        }
    }
    if let Some(url) = &config.metrics.pushgateway {
        if let Err(message) = super::check_pushgateway(url) {
            return Err(if config.layers.pushgateway_from_env {
                ConfigError::Invalid {
                    at: None,
                    key: "KFGUARD_PUSHGATEWAY".into(),
                    message,
                }
            } else {
                c.err(&[Key("metrics"), Key("pushgateway")], message)
            });
        }
    }
    let mut names = BTreeSet::new();
    for (i, b) in config.buckets.iter().enumerate() {
        let key = |k| [Key("buckets"), Index(i), Key(k)];
        check_name(&b.name, &mut names).map_err(|m| c.err(&key("name"), m))?;
        if let Some(endpoint) = &b.endpoint {
            check_endpoint(endpoint).map_err(|m| c.err(&key("endpoint"), m))?;
        }
    }
    Ok(())
}

/// Compiles every glob of the file, once, as it is read (globs come only from the file): each
/// database source's table globs and the namespace and CRD group globs of `[kubernetes]`. A bad
/// glob would otherwise match nothing, and silently leave tables or namespaces out of a backup.
pub(super) fn compile_globs(config: &mut Config) -> Result<(), ConfigError> {
    use Seg::{Index, Key};
    let origin = config.layers.file.clone();
    let c = Checker {
        origin: origin.as_ref(),
    };
    let bad = |at: &[Seg], e: BadGlob| {
        let mut keys = at.to_vec();
        keys.extend([Key(e.list), Index(e.index)]);
        c.err(&keys, format!("{e}; use `*`, `?` and `[...]`"))
    };
    for (i, db) in config.databases.iter_mut().enumerate() {
        db.tables = TableFilter::new(&db.include_tables, &db.exclude_tables)
            .map_err(|e| bad(&[Key("databases"), Index(i)], e))?;
    }
    config
        .kubernetes
        .compile_globs()
        .map_err(|e| bad(&[Key("kubernetes")], e))?;
    Ok(())
}

fn check_name(name: &str, seen: &mut BTreeSet<String>) -> Result<(), String> {
    if !is_path_safe_name(name) {
        return Err(format!(
            "`{name}` must be non-empty and use only letters, digits, `-`, `_` and `.`"
        ));
    }
    if !seen.insert(name.to_string()) {
        return Err(format!("`{name}` is used twice"));
    }
    Ok(())
}

fn is_path_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The scheme of `scheme://...`, if the string starts with one.
fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once("://")?;
    let mut chars = scheme.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some(scheme)
}

/// Whether a repository URL names a backend rather than a local folder.
pub(super) fn has_scheme(url: &str) -> bool {
    scheme(url).is_some() || RESTIC_PREFIXES.iter().any(|p| url.starts_with(p))
}

/// Only a local folder and `s3://` are supported; anything else would silently become a
/// local folder named like the URL.
fn check_repository_url(url: &str) -> Result<(), String> {
    let url = url.trim();
    if url.is_empty() {
        return Err(format!("is empty; set {SUPPORTED_REPOSITORIES}"));
    }
    if url.starts_with("s3://") {
        return crate::repo::s3::parse_url(url)
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    match scheme(url) {
        Some(s) if s.eq_ignore_ascii_case("s3") => Err(format!(
            "`{s}://` is not supported; write the scheme in lower case: s3://BUCKET/PREFIX"
        )),
        Some(s) if s.eq_ignore_ascii_case("file") => Err(format!(
            "`{s}://` is not supported; write the folder's path itself (supported: {SUPPORTED_REPOSITORIES})"
        )),
        Some(s) => Err(format!(
            "`{s}://` repositories are not supported; use {SUPPORTED_REPOSITORIES}"
        )),
        None => match RESTIC_PREFIXES.iter().find(|p| url.starts_with(**p)) {
            Some(p) => Err(format!(
                "restic's `{p}` form is not supported; use {SUPPORTED_REPOSITORIES} (the S3 endpoint goes in repository.s3.endpoint)"
            )),
            None => Ok(()),
        },
    }
}

/// A server URL that fits the engine. libpq's `key=value` form is refused: it carries the
/// password inline, where it would reach `config show` and error messages.
fn check_database_url(engine: Engine, url: &str) -> Result<(), String> {
    let (expected, schemes, other) = match engine {
        Engine::Mysql => ("mysql://USER@HOST:3306", ["mysql", "mariadb"], "postgres"),
        Engine::Postgres => (
            "postgres://USER@HOST:5432",
            ["postgres", "postgresql"],
            "mysql",
        ),
    };
    let Some(s) = scheme(url) else {
        return Err(if url.contains('=') {
            format!("key=value connection strings are not accepted; write a URL such as {expected} and give the password with password_env or password_file")
        } else {
            format!("is not a URL; write it as {expected}")
        });
    };
    if schemes.contains(&s.to_ascii_lowercase().as_str()) {
        return Ok(());
    }
    let engine_name = engine.name();
    let hint = if s.eq_ignore_ascii_case(other) || (other == "postgres" && s == "postgresql") {
        format!(", or set engine = \"{other}\"")
    } else {
        String::new()
    };
    Err(format!(
        "a `{s}://` URL does not fit engine = \"{engine_name}\"; write {expected}{hint}"
    ))
}

/// An S3 endpoint: an http(s) URL with a host.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    match url::Url::parse(endpoint) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{}` is not an http:// or https:// URL; write e.g. http://minio.kubeflow:9000",
            super::redact_url(endpoint)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls_are_a_local_path_or_s3() {
        for ok in [
            "./r",
            "/srv/r",
            "local:./r",
            "s3://b/p",
            "s3://b",
            "C-drive:x",
        ] {
            assert!(check_repository_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "gs://b/p",
            "S3://b/p",
            "file:///srv/r",
            "http://h/r",
            "s3:h/b",
            "sftp:u@h:/r",
        ] {
            let err = check_repository_url(bad).unwrap_err();
            assert!(err.contains("s3://"), "{bad}: {err}");
        }
    }

    #[test]
    fn database_urls_fit_the_engine() {
        assert!(check_database_url(Engine::Mysql, "mysql://root@db:3306").is_ok());
        assert!(check_database_url(Engine::Mysql, "mariadb://root@db").is_ok());
        assert!(check_database_url(Engine::Postgres, "postgresql://u@h/x").is_ok());
        let err = check_database_url(Engine::Postgres, "mysql://root@db:3306").unwrap_err();
        assert!(err.contains("engine = \"mysql\""), "{err}");
        let err =
            check_database_url(Engine::Postgres, "host=db user=u password=hunter2").unwrap_err();
        assert!(
            !err.contains("hunter2") && err.contains("password_env"),
            "{err}"
        );
    }

    #[test]
    fn endpoints_are_http_urls() {
        assert!(check_endpoint("http://minio.kubeflow:9000").is_ok());
        assert!(check_endpoint("https://s3.example.com").is_ok());
        for bad in ["minio:9000", "minio.kubeflow", "ftp://h", ""] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
