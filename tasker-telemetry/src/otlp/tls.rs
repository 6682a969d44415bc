//! TLS for the OTLP/HTTP transport: rustls with the ring provider (no process-wide provider is
//! installed: a library must not choose one for its user), trusting either the CA the user names
//! (`OTEL_EXPORTER_OTLP_CERTIFICATE`, then only that) or the system's roots and webpki's, and
//! presenting a client certificate when one is configured.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::{ExporterSettings, TlsFiles};

/// Why a TLS setting could not be used, naming the file.
pub(crate) fn describe(what: &str, path: &Path, error: impl std::fmt::Display) -> String {
    format!("{what} {}: {error}", path.display())
}

/// The certificates in a PEM file; an error when there are none.
pub(crate) fn certificates(
    what: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| describe(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| describe(what, path, e))?;
    if certs.is_empty() {
        return Err(describe(what, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| describe("client key", path, e))
}

/// The rustls configuration for `files`. `https` says whether an endpoint needs TLS at all:
/// without it the system's roots are not loaded.
pub(crate) fn client_config(files: &TlsFiles, https: bool) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match &files.certificate {
        Some(ca) => {
            for cert in certificates("CA certificate", ca)? {
                roots
                    .add(cert)
                    .map_err(|e| describe("CA certificate", ca, e))?;
            }
        }
        None if https => {
            // Certificates the system store could not parse are skipped, as every client does.
            let native = rustls_native_certs::load_native_certs();
            let _ = roots.add_parsable_certificates(native.certs);
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        None => {}
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = match (&files.client_certificate, &files.client_key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(certificates("client certificate", cert)?, private_key(key)?)
            .map_err(|e| describe("client certificate", cert, e))?,
        (None, None) => builder.with_no_client_auth(),
        // Refused by the configuration's validation; kept total here.
        (Some(_), None) | (None, Some(_)) => {
            return Err("a client certificate needs its key, and a key its certificate".into());
        }
    };
    // reqwest is built for HTTP/1.1 only (no h2 feature): offer only that.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

// Here rather than beside the settings: the configuration never depends on the transport.
impl ExporterSettings {
    /// The TLS client configuration the exporter uses for an `https://` endpoint: the CA file
    /// (`OTEL_EXPORTER_OTLP_CERTIFICATE`) if one is set, else the system's roots and webpki's;
    /// the client certificate and key if set. For diagnostics that shake hands with the
    /// endpoint themselves, as `tasker-telemetry doctor` does (cargo feature `otlp`).
    ///
    /// ```
    /// use tasker_telemetry::TelemetryConfig;
    /// use tasker_telemetry::config::Signal;
    ///
    /// let config = TelemetryConfig::builder().otlp_endpoint("https://collector:4318").build()?;
    /// let tls = config.exporter_settings(Signal::Traces).unwrap().tls_client_config()?;
    /// assert_eq!(tls.alpn_protocols, [b"http/1.1".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::SpanExport`](crate::Error::SpanExport) naming the file that could not be used.
    pub fn tls_client_config(&self) -> Result<rustls::ClientConfig, crate::Error> {
        let https = self.endpoint.starts_with("https://");
        client_config(&self.tls, https).map_err(|message| crate::Error::SpanExport { message })
    }
}
