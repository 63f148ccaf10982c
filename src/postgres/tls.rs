//! TLS to PostgreSQL with libpq's `sslmode` / `sslrootcert` meaning, on rustls with the one
//! crypto provider of the process (aws-lc-rs).
//!
//! | sslmode | TLS | certificate chain | host name |
//! |---|---|---|---|
//! | `disable` | never | – | – |
//! | `prefer` (default) | if the server offers it | checked only when a root certificate is given | – |
//! | `require` | always | checked only when a root certificate is given | – |
//! | `verify-ca` | always | always | – |
//! | `verify-full` | always | always | always |
//!
//! As in libpq, the root certificate is `sslrootcert=FILE`, else `~/.postgresql/root.crt` when it
//! exists; `sslrootcert=system` uses the system's CAs and needs `verify-full`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether to ask for TLS and whether it may go without.
    pub fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// Where the CA certificates that sign the server's certificate come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// `sslrootcert=system`: the system's trusted CAs.
    System,
}

impl RootCert {
    pub fn parse(s: &str) -> Self {
        if s == "system" {
            RootCert::System
        } else {
            RootCert::File(PathBuf::from(s))
        }
    }

    fn describe(&self) -> String {
        match self {
            RootCert::File(p) => format!("sslrootcert={}", p.display()),
            RootCert::System => "the system's CAs (sslrootcert=system)".into(),
        }
    }
}

/// libpq's default root certificate, used when the URL names none and the file exists.
fn default_root_cert() -> Option<RootCert> {
    let home = std::env::var_os("HOME")?;
    let p = Path::new(&home).join(".postgresql/root.crt");
    p.is_file().then_some(RootCert::File(p))
}

fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

fn load_roots(root: &RootCert) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            let bad = |why: String| {
                Error::input(format!(
                    "sslrootcert={}: {why}; give the PEM file of the CA that signed the server's certificate",
                    path.display()
                ))
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(format!("cannot read it ({e})")))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("not a PEM certificate file ({e})")))?;
            for c in certs {
                store
                    .add(c)
                    .map_err(|e| bad(format!("holds an unusable certificate ({e})")))?;
            }
            if store.is_empty() {
                return Err(bad("holds no certificate".into()));
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(Error::input(
                    "sslrootcert=system: no trusted CA certificates found on this system; give \
                     sslrootcert=FILE with the CA that signed the server's certificate",
                ));
            }
        }
    }
    Ok(store)
}

/// The rustls client configuration for `mode`, or `None` for `disable`.
pub fn client_config(mode: SslMode, root: Option<&RootCert>) -> Result<Option<ClientConfig>> {
    if mode == SslMode::Disable {
        return Ok(None);
    }
    if root == Some(&RootCert::System) && mode != SslMode::VerifyFull {
        return Err(Error::input(format!(
            "sslrootcert=system needs sslmode=verify-full (found sslmode={}): with the public CAs \
             only the host name check makes the certificate mean anything",
            mode.as_str()
        )));
    }
    let root = root.cloned().or_else(default_root_cert);
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match (&root, mode) {
        (None, SslMode::VerifyCa | SslMode::VerifyFull) => {
            return Err(Error::input(format!(
                "sslmode={} checks the server's certificate, but no CA was given: add \
                 sslrootcert=FILE (the CA that signed the server's certificate) to the URL, or put \
                 it at ~/.postgresql/root.crt",
                mode.as_str()
            )));
        }
        (None, _) => Arc::new(Relaxed {
            chain: None,
            provider: provider.clone(),
        }),
        (Some(root), mode) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(load_roots(root)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| Error::input(format!("{}: {e}", root.describe())))?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                // libpq checks the chain whenever it has a root certificate, the name only
                // with verify-full.
                Arc::new(Relaxed {
                    chain: Some(webpki),
                    provider: provider.clone(),
                })
            }
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::other(format!("TLS setup for PostgreSQL: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(config))
}

/// The checks short of WebPKI's full ones, in libpq's sense: `prefer` / `require` without a
/// root certificate accept any certificate (encrypted, the server not authenticated);
/// `verify-ca` (and `prefer` / `require` with one) checks the chain but not the host name. The
/// handshake signatures are always checked.
#[derive(Debug)]
struct Relaxed {
    /// The chain check; `None`: no check.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls error under a failed connection, if TLS is what failed.
fn rustls_cause(e: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(cause) = next {
        if let Some(r) = cause.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // io::Error's source() skips the error it wraps: look inside.
        if let Some(inner) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        next = cause.source();
    }
    None
}

/// What to tell the operator when TLS failed: the reason and the fix. `None` when the failure
/// was not about TLS.
pub fn explain(
    e: &tokio_postgres::Error,
    host: &str,
    mode: SslMode,
    root: Option<&RootCert>,
) -> Option<String> {
    let roots = root
        .cloned()
        .or_else(default_root_cert)
        .map(|r| r.describe())
        .unwrap_or_else(|| "the given CA".into());
    if let Some(r) = rustls_cause(e) {
        let why = match r {
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "the server's certificate is not valid for the host name {host} ({r}); connect \
                 with a name the certificate holds (its subjectAltName), or use sslmode=verify-ca \
                 to check only that {roots} signed it"
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => format!(
                "the server's certificate is not signed by {roots} ({r}); give sslrootcert=FILE \
                 holding the CA that signed the server's certificate"
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. },
            ) => format!(
                "the server's certificate is outside its validity period ({r}); renew it on the \
                 server, or check this machine's clock"
            ),
            other => format!(
                "the TLS handshake failed ({other}); check the server's certificate and sslmode={}",
                mode.as_str()
            ),
        };
        return Some(why);
    }
    let text = e.to_string();
    if text.contains("server does not support TLS") {
        return Some(format!(
            "the server does not accept TLS connections but sslmode={} requires TLS; enable ssl on \
             the server, or (on a trusted network only) use sslmode=prefer or disable",
            mode.as_str()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_parse() {
        for m in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(SslMode::parse(m).unwrap().as_str(), m);
        }
        assert!(SslMode::parse("verify_full").is_none());
    }

    #[test]
    fn verifying_modes_need_a_ca_and_system_roots_need_verify_full() {
        let e = client_config(SslMode::VerifyFull, None);
        // The machine may hold ~/.postgresql/root.crt; only without it is this an error.
        if default_root_cert().is_none() {
            let e = e.unwrap_err().to_string();
            assert!(e.contains("sslrootcert=FILE"), "{e}");
        }
        let e = client_config(SslMode::Require, Some(&RootCert::System)).unwrap_err();
        assert!(e.to_string().contains("verify-full"), "{e}");
        assert!(client_config(SslMode::Disable, None).unwrap().is_none());
    }

    #[test]
    fn a_missing_or_empty_root_certificate_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = RootCert::File(dir.path().join("nope.pem"));
        let e = client_config(SslMode::VerifyFull, Some(&missing)).unwrap_err();
        assert!(e.to_string().contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = client_config(SslMode::VerifyCa, Some(&RootCert::File(empty))).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
    }
}
