//! Pushes to a Prometheus Pushgateway: a POST to
//! `<url>/metrics/job/kfguard-<operation>[-<runbook>]/cluster/<cluster>`. POST, not PUT: it
//! replaces only the families it sends, so a failed run's push leaves the group's other
//! families alone; the last success it must not replace is read back from the group first.
//!
//! The HTTP client is hyper's, with hyper-rustls, both already linked for the Kubernetes and
//! S3 clients.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use url::Url;

use super::{encode, previous, Export, MetricsError};
use crate::config::{check_pushgateway, redact_url};

/// The most a push (with the read of the group before it) may take: a Pushgateway that does
/// not answer must not hold the CronJob.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A Pushgateway's base URL, its credentials taken out into a basic auth header.
#[derive(Clone)]
pub struct Pushgateway {
    base: Url,
    authorization: Option<String>,
    /// The URL as messages show it, password redacted.
    shown: String,
}

impl std::fmt::Debug for Pushgateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Pushgateway {
    pub fn parse(url: &str) -> Result<Self, MetricsError> {
        let mut base = check_pushgateway(url).map_err(MetricsError::BadUrl)?;
        let authorization = (!base.username().is_empty() || base.password().is_some()).then(|| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let pair = format!(
                "{}:{}",
                decode(base.username()),
                decode(base.password().unwrap_or(""))
            );
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        // Cannot fail on an http(s) URL with a host.
        let _ = base.set_username("");
        let _ = base.set_password(None);
        Ok(Self {
            base,
            authorization,
            shown: redact_url(url),
        })
    }

    /// `<url>/metrics/job/<job>/cluster/<cluster>`; a value with a `/` (or empty) goes base64
    /// encoded, as the Pushgateway's `label@base64` form.
    fn group_url(&self, export: &Export) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("an http URL has a path");
            path.pop_if_empty().push("metrics");
            for (name, value) in [("job", export.job()), ("cluster", export.cluster.clone())] {
                if value.is_empty() || value.contains('/') {
                    path.push(&format!("{name}@base64"));
                    path.push(&base64::engine::general_purpose::URL_SAFE.encode(value));
                } else {
                    path.push(name);
                    path.push(&value);
                }
            }
        }
        url
    }

    fn metrics_url(&self) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http URL has a path")
            .pop_if_empty()
            .push("metrics");
        url
    }

    /// Pushes `export` into its group; an error says why, in one line, password redacted.
    pub async fn push(&self, export: &Export) -> Result<(), MetricsError> {
        let fail = |detail: String| MetricsError::Push {
            url: self.shown.clone(),
            detail,
        };
        tokio::time::timeout(TIMEOUT, self.push_inner(export))
            .await
            .map_err(|_| fail(format!("no answer within {}s", TIMEOUT.as_secs())))?
            .map_err(fail)
    }

    async fn push_inner(&self, export: &Export) -> Result<(), String> {
        let client = client(&self.base)?;
        let job = export.job();
        let in_group = |labels: &super::encode::Labels| {
            let has = |k: &str, v: &str| labels.iter().any(|(a, b)| a == k && b == v);
            has("job", &job) && has("cluster", &export.cluster)
        };
        // The group's last successes, so that a POST of this family does not drop those of
        // the runs that failed now, or of operations this run did not do.
        let earlier = match self
            .send(&client, Method::GET, self.metrics_url(), None)
            .await
        {
            Ok(body) => Some(previous::read(&body, in_group)),
            Err(e) => {
                tracing::debug!("cannot read the Pushgateway's metrics before the push: {e}");
                None
            }
        };
        let last_success = match earlier {
            Some(earlier) => previous::merge(export, earlier),
            // Unknown: a run that failed sends no last success at all, leaving the group's.
            None if !export.all_succeeded() => Vec::new(),
            None => previous::merge(export, Vec::new()),
        };
        let body = encode(export, &last_success);
        self.send(&client, Method::POST, self.group_url(export), Some(body))
            .await
            .map(|_| ())
    }

    async fn send(
        &self,
        client: &Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
        method: Method,
        url: Url,
        body: Option<String>,
    ) -> Result<String, String> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .header(
                header::USER_AGENT,
                concat!("kfguard/", env!("CARGO_PKG_VERSION")),
            );
        if body.is_some() {
            // The text format; `# EOF` and the rest of OpenMetrics' text are comments to it.
            req = req.header(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            );
        }
        if let Some(auth) = &self.authorization {
            req = req.header(header::AUTHORIZATION, auth);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let resp = client.request(req).await.map_err(|e| describe(&e))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status.is_success() {
            return Ok(text);
        }
        let first = text.lines().next().unwrap_or("").trim();
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                format!("{method} answered {status}; check the user and password in the URL")
            }
            _ if first.is_empty() => format!("{method} answered {status}"),
            _ => format!("{method} answered {status}: {first}"),
        })
    }
}

/// An HTTP and HTTPS client; the system's roots are only loaded for an https URL.
fn client(
    base: &Url,
) -> Result<Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>, String> {
    let tls = if base.scheme() == "https" {
        use hyper_rustls::ConfigBuilderExt;
        rustls::ClientConfig::builder()
            .with_native_roots()
            .map_err(|e| format!("cannot load the system's CA certificates: {e}"))?
            .with_no_client_auth()
    } else {
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// hyper's client error with its cause (connection refused, DNS), which its own text leaves out.
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_and_the_messages() {
        let gw = Pushgateway::parse("http://ops:s3cret@pushgateway.monitoring:9091/").unwrap();
        assert_eq!(gw.base.as_str(), "http://pushgateway.monitoring:9091/");
        assert!(gw.authorization.as_deref().unwrap().starts_with("Basic "));
        assert!(!format!("{gw:?}").contains("s3cret"));
        let export = Export {
            cluster: "prod/eu".into(),
            runs: Vec::new(),
        };
        assert_eq!(
            gw.group_url(&export).as_str(),
            "http://pushgateway.monitoring:9091/metrics/job/kfguard/cluster@base64/cHJvZC9ldQ=="
        );
    }

    #[test]
    fn a_url_that_is_not_http_is_the_users_to_fix() {
        let e = Pushgateway::parse("pushgateway:9091").unwrap_err();
        assert!(e.is_usage(), "{e}");
    }
}
