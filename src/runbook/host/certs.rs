//! `certs::`: the X.509 certificates webhooks serve and the CA bundles that vouch for them,
//! through `crate::kube::certs`.

use rhai::{Array, Dynamic, Module};

use super::{func, to_dynamic, Res};
use crate::kube::certs;
use crate::runbook::steps::error;

pub(super) fn module(_host: &std::sync::Arc<super::Host>) -> Module {
    let mut m = Module::new();
    func(
        "parse",
        &["pem: &str", "Array"],
        "The certificates of a PEM text, or of base64 of one (a Secret's `tls.crt` or a \
         webhook's `caBundle` as the object holds it): each a map of `subject`, `issuer`, \
         `not_before`, `not_after`, `days_left` (negative once expired), `dns_names` and `is_ca`.",
        r#"let cert = certs::parse(secret.data["tls.crt"])[0]; if cert.days_left < 30 { warn(`expires ${cert.not_after}`); }"#,
    )
    .set_into_module(&mut m, |pem: &str| parse(pem));
    func(
        "signed_by",
        &["cert: &str", "bundle: &str", "bool"],
        "Whether the first certificate of `cert` was signed by a certificate of `bundle` (or is \
         one): whether the API server, holding `bundle` as a webhook's caBundle, trusts a \
         webhook serving `cert`.",
        r#"ensure(certs::signed_by(secret.data["tls.crt"], hook.clientConfig.caBundle), "caBundle mismatch");"#,
    )
    .set_into_module(&mut m, |cert: &str, bundle: &str| {
        certs::signed_by(cert, bundle).map_err(|e| error(format!("certs::signed_by: {e}")))
    });
    m
}

fn parse(pem: &str) -> Res<Array> {
    let now = rustic_core::jiff::Timestamp::now().as_second();
    let found = certs::parse(pem).map_err(|e| error(format!("certs::parse: {e}")))?;
    found
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            v["days_left"] = ((c.not_after_unix - now).div_euclid(86_400)).into();
            to_dynamic(&v).map(Dynamic::from)
        })
        .collect()
}
