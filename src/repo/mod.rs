//! The backup repository: restic format v2 through rustic_core, on a local folder or S3.

pub mod check;
mod local;
pub mod s3;
pub mod treepacks;

use std::path::Path;
use std::sync::Arc;

use rustic_core::{
    ConfigOptions, Credentials, FileType, KeyOptions, OpenStatus, ReadBackend, Repository,
    RepositoryBackends, RepositoryOptions, RusticError, WriteBackend,
};

use sha2::Digest as _;

use crate::config::{self, ConfigError, RepositoryConfig};
use crate::progress::Bars;

/// An open, decrypted repository.
pub type Repo = Repository<OpenStatus>;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("no repository password: set --password-file, KFGUARD_PASSWORD_FILE, KFGUARD_PASSWORD, or repository.password_file / password_env in kfguard.toml")]
    NoPassword,
    #[error("cannot read the repository password from file {}", path.display())]
    PasswordFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the repository password from environment variable {name}: it is not set")]
    PasswordEnv { name: String },
    #[error("the repository password is empty ({from}); use a non-empty password")]
    EmptyPassword { from: String },
    #[error("no repository at {location}: run `kfguard init` to create one, or check --repo / repository.url")]
    NotFound { location: String },
    #[error(
        "a repository already exists at {location}; use it as it is, or choose another --repo"
    )]
    AlreadyExists { location: String },
    #[error("wrong password for the repository at {location}: no key matches; check --password-file / KFGUARD_PASSWORD")]
    WrongPassword { location: String },
    #[error(transparent)]
    S3(#[from] s3::S3Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{op} failed on the repository at {location}: {detail}")]
    Rustic {
        op: &'static str,
        location: String,
        detail: String,
    },
}

impl RepoError {
    /// Wraps a rustic_core error as one line, without its multi-line report.
    pub fn rustic(op: &'static str, location: &str, err: &RusticError) -> Self {
        if err.is_incorrect_password() {
            return Self::WrongPassword {
                location: location.into(),
            };
        }
        let detail = err.display_log();
        let detail = detail
            .strip_prefix("Error: ")
            .unwrap_or(&detail)
            .replace('\n', " ");
        Self::Rustic {
            op,
            location: location.into(),
            detail,
        }
    }

    /// True when the problem is the user's configuration rather than the repository.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::NoPassword
                | Self::PasswordFile { .. }
                | Self::PasswordEnv { .. }
                | Self::EmptyPassword { .. }
                | Self::Config(_)
                | Self::S3(s3::S3Error::InvalidUrl { .. })
        )
    }
}

/// Where the repository lives, with the backend that reaches it.
pub struct Location {
    /// Printable location without credentials.
    pub display: String,
    backend: Arc<dyn WriteBackend>,
    /// The S3 backend again, for the files kfguard keeps beside a remote repository.
    side: Option<s3::S3Backend>,
}

/// Small files kfguard keeps beside a remote repository, under its prefix, where stock restic
/// does not look: run journals, so that another pod can resume a run.
#[derive(Clone, Debug)]
pub struct SideFiles {
    backend: s3::S3Backend,
    pub display: String,
}

impl SideFiles {
    pub fn put(&self, rel: &str, body: Vec<u8>) -> Result<(), RepoError> {
        Ok(self.backend.put_side_file(rel, body)?)
    }

    pub fn get(&self, rel: &str) -> Result<Option<Vec<u8>>, RepoError> {
        Ok(self.backend.get_side_file(rel)?)
    }

    /// The side files under `rel_dir`, as paths relative to the repository's prefix.
    pub fn list(&self, rel_dir: &str) -> Result<Vec<String>, RepoError> {
        Ok(self.backend.list_side_files(rel_dir)?)
    }
}

impl Location {
    /// Resolves `repository.url` into a backend. S3 URLs are probed so that a missing bucket
    /// or an unreachable endpoint fails fast with a clear message.
    pub fn resolve(cfg: &RepositoryConfig, rt: &tokio::runtime::Handle) -> Result<Self, RepoError> {
        if cfg.url.starts_with("s3://") || cfg.url.starts_with("s3:") {
            let (bucket, prefix) = s3::parse_url(&cfg.url)?;
            let settings = s3_settings(&cfg.s3)?;
            let client = rt.block_on(s3::client(&settings));
            let backend = s3::S3Backend::new(client, bucket.clone(), prefix.clone(), rt.clone());
            backend.probe()?;
            let endpoint = cfg.s3.endpoint.as_deref().unwrap_or("AWS");
            Ok(Self {
                display: format!("s3://{bucket}/{prefix} at {endpoint}"),
                side: Some(backend.clone()),
                backend: Arc::new(backend),
            })
        } else {
            let path = cfg.url.strip_prefix("local:").unwrap_or(&cfg.url);
            let backend = local::PrivateLocal::new(path)
                .map_err(|e| RepoError::rustic("opening the local backend", path, &e))?;
            Ok(Self {
                display: path.to_string(),
                backend: Arc::new(backend),
                side: None,
            })
        }
    }

    /// Where side files go: a remote repository only; a local one shares the run's disk.
    pub fn side_files(&self) -> Option<SideFiles> {
        self.side.clone().map(|backend| SideFiles {
            backend,
            display: self.display.clone(),
        })
    }

    fn has_config(&self) -> Result<bool, RepoError> {
        match self.backend.list(FileType::Config) {
            Ok(ids) => Ok(!ids.is_empty()),
            // A local folder that does not exist yet simply holds no repository.
            Err(_) if !self.display.starts_with("s3://") && !Path::new(&self.display).exists() => {
                Ok(false)
            }
            Err(e) => Err(RepoError::rustic("listing", &self.display, &e)),
        }
    }

    fn repository(&self, quiet: bool) -> Result<Repository<()>, RepoError> {
        let opts = RepositoryOptions::default().no_cache(true);
        // Tree reads come from whole tree packs fetched once: see `treepacks`.
        let backend = Arc::new(treepacks::TreePacks::new(self.backend.clone()));
        let backends = RepositoryBackends::new(backend, None);
        Repository::new_with_progress(&opts, &backends, Bars::new(quiet))
            .map_err(|e| RepoError::rustic("opening", &self.display, &e))
    }

    /// Creates a new repository here; refuses if one exists.
    pub fn init(&self, password: &str, quiet: bool) -> Result<Repo, RepoError> {
        if self.has_config()? {
            return Err(RepoError::AlreadyExists {
                location: self.display.clone(),
            });
        }
        self.repository(quiet)?
            .init(
                &Credentials::password(password),
                &KeyOptions::default(),
                &ConfigOptions::default(),
            )
            .map_err(|e| RepoError::rustic("init", &self.display, &e))
    }

    /// Opens an existing repository with the password.
    pub fn open(&self, password: &str, quiet: bool) -> Result<Repo, RepoError> {
        if !self.has_config()? {
            return Err(RepoError::NotFound {
                location: self.display.clone(),
            });
        }
        // A runbook opens the repository for each host call (backup, each restore,
        // snapshot::*), and deriving the key from the password (scrypt) took about 0.4 s each
        // time: the key found once is reused, for this location and password only.
        let cache_key = format!(
            "{}\n{}",
            self.display,
            hex::encode(sha2::Sha256::digest(password.as_bytes()))
        );
        let known = KEYS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&cache_key)
            .cloned();
        let credentials = match known {
            Some(key) => Credentials::Masterkey(key),
            None => Credentials::password(password),
        };
        let repo = self
            .repository(quiet)?
            .open(&credentials)
            .map_err(|e| RepoError::rustic("open", &self.display, &e))?;
        KEYS.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(cache_key, repo.key());
        Ok(repo)
    }
}

/// The master keys this process found, by location and password hash.
static KEYS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, rustic_core::repofile::MasterKey>>,
> = std::sync::LazyLock::new(Default::default);

/// Opens the configured repository: the password, then the location (probing S3), then the
/// repository itself; `quiet` hides rustic's progress.
pub fn open(
    cfg: &RepositoryConfig,
    rt: &tokio::runtime::Handle,
    quiet: bool,
) -> Result<(Repo, Location), RepoError> {
    let password = password(cfg)?;
    let location = Location::resolve(cfg, rt)?;
    let repo = location.open(&password, quiet)?;
    Ok((repo, location))
}

/// The repository password, from what the config layering chose: a file, a named variable,
/// or else `KFGUARD_PASSWORD`.
pub fn password(cfg: &RepositoryConfig) -> Result<String, RepoError> {
    let (password, from) = if let Some(path) = &cfg.password_file {
        let text = std::fs::read_to_string(path).map_err(|source| RepoError::PasswordFile {
            path: path.clone(),
            source,
        })?;
        (
            text.trim_end_matches(['\r', '\n']).to_string(),
            format!("file {}", path.display()),
        )
    } else if let Some(name) = &cfg.password_env {
        let v = std::env::var(name).map_err(|_| RepoError::PasswordEnv { name: name.clone() })?;
        (v, format!("environment variable {name}"))
    } else if let Ok(v) = std::env::var(config::PASSWORD_ENV) {
        (v, format!("environment variable {}", config::PASSWORD_ENV))
    } else {
        return Err(RepoError::NoPassword);
    };
    if password.is_empty() {
        return Err(RepoError::EmptyPassword { from });
    }
    Ok(password)
}

fn s3_settings(cfg: &crate::config::S3Config) -> Result<s3::S3Settings, RepoError> {
    let access_key_id = config::read_secret(
        "repository.s3.access_key_id",
        cfg.access_key_id_env.as_deref(),
        cfg.access_key_id_file.as_deref(),
    )?;
    let secret_access_key = config::read_secret(
        "repository.s3.secret_access_key",
        cfg.secret_access_key_env.as_deref(),
        cfg.secret_access_key_file.as_deref(),
    )?
    .map(Into::into);
    Ok(s3::S3Settings {
        endpoint: cfg.endpoint.clone(),
        region: cfg.region.clone(),
        path_style: cfg.path_style.unwrap_or(cfg.endpoint.is_some()),
        access_key_id,
        secret_access_key,
        session_token: None,
        profile: cfg.profile.clone(),
        full_checksums: cfg.full_checksums,
        max_attempts: cfg.max_attempts,
        connect_timeout: std::time::Duration::ZERO,
        operation_timeout: std::time::Duration::ZERO,
    })
}
