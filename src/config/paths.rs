//! Relative paths in a config file are resolved from the file's folder, as kubectl does for a
//! kubeconfig: the same file then means the same repository from any working directory.
//! Paths from flags and the environment stay relative to the working directory.

use std::path::{Component, Path, PathBuf};

use super::origin::{Origin, Seg};
use super::Config;

/// Rebases every relative path the file itself sets onto the file's folder.
pub(super) fn resolve(config: &mut Config, origin: &Origin) {
    let base = origin.base();
    if base.as_os_str().is_empty() {
        return;
    }
    let rebase_key = |keys: &[Seg], p: &mut PathBuf| {
        if origin.has(keys) {
            *p = rebase(base, p);
        }
    };
    use Seg::{Index, Key};
    let repo = &mut config.repository;
    if origin.has(&[Key("repository"), Key("url")]) && is_local(&repo.url) {
        let (prefix, path) = match repo.url.strip_prefix("local:") {
            Some(path) => ("local:", path),
            None => ("", repo.url.as_str()),
        };
        repo.url = format!("{prefix}{}", rebase(base, Path::new(path)).display());
    }
    if let Some(p) = &mut repo.password_file {
        rebase_key(&[Key("repository"), Key("password_file")], p);
    }
    for (key, p) in [
        ("access_key_id_file", &mut repo.s3.access_key_id_file),
        (
            "secret_access_key_file",
            &mut repo.s3.secret_access_key_file,
        ),
    ] {
        if let Some(p) = p {
            rebase_key(&[Key("repository"), Key("s3"), Key(key)], p);
        }
    }
    for (i, db) in config.databases.iter_mut().enumerate() {
        if let Some(p) = &mut db.password_file {
            rebase_key(&[Key("databases"), Index(i), Key("password_file")], p);
        }
    }
    for (i, b) in config.buckets.iter_mut().enumerate() {
        for (key, p) in [
            ("access_key_id_file", &mut b.access_key_id_file),
            ("secret_access_key_file", &mut b.secret_access_key_file),
        ] {
            if let Some(p) = p {
                rebase_key(&[Key("buckets"), Index(i), Key(key)], p);
            }
        }
    }
    if let Some(p) = &mut config.kubernetes.kubeconfig {
        rebase_key(&[Key("kubernetes"), Key("kubeconfig")], p);
    }
    if let Some(p) = &mut config.metrics.file {
        rebase_key(&[Key("metrics"), Key("file")], p);
    }
    rebase_key(&[Key("runbooks"), Key("dir")], &mut config.runbooks.dir);
    rebase_key(
        &[Key("runbooks"), Key("state_dir")],
        &mut config.runbooks.state_dir,
    );
}

/// A repository URL that names a local folder (no scheme, or `local:`).
fn is_local(url: &str) -> bool {
    url.starts_with("local:") || !super::check::has_scheme(url)
}

fn rebase(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || p.as_os_str().is_empty() {
        return p.to_owned();
    }
    let rel: PathBuf = p
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    base.join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_move_to_the_files_folder() {
        let text = "[repository]\nurl = \"./relrepo\"\npassword_file = \"pw\"\n[kubernetes]\nkubeconfig = \"/abs/kc\"\n";
        let path = Path::new("conf/kfguard.toml");
        let mut c = Config::from_toml(text, path).unwrap();
        assert_eq!(c.repository.url, "conf/relrepo");
        assert_eq!(c.repository.password_file, Some("conf/pw".into()));
        assert_eq!(c.kubernetes.kubeconfig, Some("/abs/kc".into()));
        assert_eq!(
            c.runbooks.dir,
            PathBuf::from("./runbooks"),
            "a default stays"
        );
        let mut s3 = Config::from_toml("[repository]\nurl = \"s3://b/p\"\n", path).unwrap();
        resolve(&mut s3, &Origin::new(path, ""));
        assert_eq!(s3.repository.url, "s3://b/p");
        resolve(&mut c, &Origin::new(Path::new("kfguard.toml"), text));
        assert_eq!(
            c.repository.url, "conf/relrepo",
            "a file in . changes nothing"
        );
    }
}
