//! The S3 client the repository backend and the artifact buckets share: its settings (with
//! secrets that never print) and the builder that turns them into an `aws-sdk-s3` client.

use std::{fmt, time::Duration};

use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_s3::{
    config::{RequestChecksumCalculation, ResponseChecksumValidation},
    Client,
};
use secrecy::{ExposeSecret, SecretString};
use tracing::warn;

use super::INITIAL_BACKOFF;

const DEFAULT_MAX_ATTEMPTS: u32 = 4;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(120);
/// Connection settings, already resolved by the config layer (secrets are plain values here; never log them).
#[derive(Clone, Default)]
pub struct S3Settings {
    /// Custom endpoint, e.g. `http://127.0.0.1:9000`; `None` = AWS.
    pub endpoint: Option<String>,
    /// `None` => "us-east-1" when an endpoint is set, else the default chain.
    pub region: Option<String>,
    pub path_style: bool,
    /// When both keys are `None`, the default AWS credential chain is used.
    pub access_key_id: Option<String>,
    /// Exposed only where the credentials are handed to the SDK.
    pub secret_access_key: Option<SecretString>,
    pub session_token: Option<SecretString>,
    pub profile: Option<String>,
    /// `false` => checksums only "when required" (S3-compatible stores such as
    /// old `MinIO` and R2 reject the SDK's default CRC trailers).
    pub full_checksums: bool,
    /// 0 => default 4.
    pub max_attempts: u32,
    /// `Duration::ZERO` => default 5 s.
    pub connect_timeout: Duration,
    /// Per-attempt timeout; `Duration::ZERO` => default 120 s.
    pub operation_timeout: Duration,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn redact<T: ?Sized>(secret: Option<&T>) -> Option<&'static str> {
            secret.map(|_| "***")
        }
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &redact(self.access_key_id.as_ref()))
            .field(
                "secret_access_key",
                &redact(self.secret_access_key.as_ref()),
            )
            .field("session_token", &redact(self.session_token.as_ref()))
            .field("profile", &self.profile)
            .field("full_checksums", &self.full_checksums)
            .field("max_attempts", &self.max_attempts)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

/// Builds the S3 client shared by the repository backend and the artifact buckets.
pub async fn client(settings: &S3Settings) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    match (&settings.region, &settings.endpoint) {
        (Some(region), _) => loader = loader.region(Region::new(region.clone())),
        // S3-compatible stores rarely care about the region, but SigV4 needs one.
        (None, Some(_)) => loader = loader.region(Region::new("us-east-1")),
        (None, None) => {}
    }
    match (&settings.access_key_id, &settings.secret_access_key) {
        (Some(id), Some(secret)) => {
            loader = loader.credentials_provider(Credentials::new(
                id,
                secret.expose_secret(),
                settings
                    .session_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_string()),
                None,
                "kfguard",
            ));
        }
        (None, None) => {}
        _ => warn!(
            "only one of the S3 access key id and secret access key is set; \
             ignoring it and using the default AWS credential chain"
        ),
    }
    let sdk_config = loader.load().await;

    let max_attempts = match settings.max_attempts {
        0 => DEFAULT_MAX_ATTEMPTS,
        n => n,
    };
    // The attempt timeout covers sending the request and receiving the response
    // headers; GetObject bodies are streamed afterwards (guarded by the SDK's
    // stalled-stream protection), so big packs are not cut off by it.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(non_zero_or(
            settings.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        ))
        .operation_attempt_timeout(non_zero_or(
            settings.operation_timeout,
            DEFAULT_OPERATION_TIMEOUT,
        ))
        .build();

    let mut builder = aws_sdk_s3::config::Builder::from(&sdk_config)
        .force_path_style(settings.path_style)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(max_attempts)
                .with_initial_backoff(INITIAL_BACKOFF),
        )
        .timeout_config(timeouts);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    if !settings.full_checksums {
        builder = builder
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    }
    Client::from_conf(builder.build())
}

fn non_zero_or(value: Duration, default: Duration) -> Duration {
    if value.is_zero() {
        default
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let settings = S3Settings {
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("topsecret".into()),
            session_token: Some("tok".into()),
            ..S3Settings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("AKIDEXAMPLE") && !shown.contains("topsecret"));
        assert!(!shown.contains("tok\""));
        assert!(shown.contains("\"***\""));
    }
}
