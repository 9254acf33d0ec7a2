//! X.509 certificates as Kubernetes keeps them: PEM in a Secret's `tls.crt` (base64 in the
//! object), base64 PEM in a webhook's `caBundle`. What verify-health needs to know of them:
//! names, validity, and whether a CA bundle signed a serving certificate.

use base64::Engine as _;
use serde::Serialize;
use x509_parser::pem::Pem;
use x509_parser::prelude::{GeneralName, X509Certificate};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("not a PEM certificate, nor base64 of one; pass a Secret's tls.crt or a caBundle")]
    NotPem,
    #[error("a PEM block is not a valid X.509 certificate: {0}")]
    Invalid(String),
}

/// One certificate, as a runbook sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// RFC 3339.
    pub not_before: String,
    pub not_after: String,
    /// Unix seconds of `not_after`, to compare with `now`.
    pub not_after_unix: i64,
    pub dns_names: Vec<String>,
    pub is_ca: bool,
}

/// The PEM text of `input`: as it is, or decoded from base64 (how objects carry it).
fn pem_text(input: &str) -> Result<Vec<u8>, CertError> {
    if input.contains("-----BEGIN") {
        return Ok(input.as_bytes().to_vec());
    }
    let compact: String = input.split_whitespace().collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| CertError::NotPem)?;
    if decoded.windows(10).any(|w| w == b"-----BEGIN") {
        Ok(decoded)
    } else {
        Err(CertError::NotPem)
    }
}

/// The DER of every certificate block of `input`.
fn blocks(input: &str) -> Result<Vec<Pem>, CertError> {
    let text = pem_text(input)?;
    let pems: Vec<Pem> = Pem::iter_from_buffer(&text)
        .filter_map(Result::ok)
        .filter(|p| p.label == "CERTIFICATE")
        .collect();
    if pems.is_empty() {
        return Err(CertError::NotPem);
    }
    Ok(pems)
}

fn parse_one(pem: &Pem) -> Result<X509Certificate<'_>, CertError> {
    pem.parse_x509()
        .map_err(|e| CertError::Invalid(e.to_string()))
}

fn rfc3339(unix: i64) -> String {
    rustic_core::jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Every certificate of a PEM text or of base64 of one, leaf first as the file has them.
pub fn parse(input: &str) -> Result<Vec<CertInfo>, CertError> {
    blocks(input)?
        .iter()
        .map(|pem| {
            let cert = parse_one(pem)?;
            let dns_names = cert
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|san| {
                    san.value
                        .general_names
                        .iter()
                        .filter_map(|n| match n {
                            GeneralName::DNSName(d) => Some((*d).to_string()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let not_after_unix = cert.validity().not_after.timestamp();
            Ok(CertInfo {
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                not_before: rfc3339(cert.validity().not_before.timestamp()),
                not_after: rfc3339(not_after_unix),
                not_after_unix,
                dns_names,
                is_ca: cert.is_ca(),
            })
        })
        .collect()
}

/// Whether the first certificate of `cert` was signed by one of the certificates of `bundle`
/// (or is one of them): what the API server checks when it calls a webhook.
pub fn signed_by(cert: &str, bundle: &str) -> Result<bool, CertError> {
    let leaf_pems = blocks(cert)?;
    let leaf = parse_one(&leaf_pems[0])?;
    let ca_pems = blocks(bundle)?;
    for pem in &ca_pems {
        let ca = parse_one(pem)?;
        if pem.contents == leaf_pems[0].contents {
            return Ok(true);
        }
        if leaf.issuer() == ca.subject() && leaf.verify_signature(Some(ca.public_key())).is_ok() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, IsCa, KeyPair};

    fn ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        (cert, rcgen::Issuer::new(p, key))
    }

    fn serving(issuer: &rcgen::Issuer<'_, KeyPair>, dns: &str) -> String {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![dns.to_string()]).unwrap();
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        p.signed_by(&key, issuer).unwrap().pem()
    }

    #[test]
    fn a_serving_certificate_is_read_and_checked_against_its_ca_and_another() {
        let (ca_cert, issuer) = ca("kfp-cache-ca");
        let leaf = serving(&issuer, "cache-server.kubeflow.svc");
        let b64 = base64::engine::general_purpose::STANDARD.encode(&leaf);
        let info = &parse(&b64).unwrap()[0];
        assert_eq!(info.dns_names, ["cache-server.kubeflow.svc"]);
        assert_eq!(info.not_after, "2021-01-01T00:00:00Z");
        assert!(!info.is_ca);
        assert!(signed_by(&leaf, &ca_cert.pem()).unwrap());
        let (other, _) = ca("another-ca");
        assert!(!signed_by(&leaf, &other.pem()).unwrap());
        assert!(matches!(parse("not a cert"), Err(CertError::NotPem)));
    }
}
