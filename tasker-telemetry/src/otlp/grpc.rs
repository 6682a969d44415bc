//! OTLP over gRPC: what tonic is given from one signal's settings (metadata, TLS, compression),
//! and the private runtime its exports run on.

use std::time::Duration;

use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;

use crate::config::{ExporterSettings, OtlpCompression};

/// One signal's gRPC exporter, being built: the runtime it will run on and its builder, given
/// the settings' endpoint, timeout, metadata (headers, marked sensitive), TLS and compression.
pub(crate) struct Tonic {
    pub(crate) runtime: tokio::runtime::Runtime,
    metadata: MetadataMap,
    tls: Option<ClientTlsConfig>,
}

impl Tonic {
    /// Reads what `settings` name (headers, certificate files); the error says which went wrong
    /// and never quotes a header value.
    pub(crate) fn new(settings: &ExporterSettings) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("gRPC export runtime: {e}"))?;
        let mut headers = http::HeaderMap::new();
        for (name, value) in &settings.headers {
            let key = http::HeaderName::try_from(name.as_str())
                .map_err(|e| format!("header name {name:?}: {e}"))?;
            let mut value = http::HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("header {name}: a value gRPC metadata cannot carry"))?;
            value.set_sensitive(true);
            headers.insert(key, value);
        }
        let read = |what: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| super::tls::describe(what, path, e))
        };
        let https = settings
            .endpoint
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"));
        let tls = if https {
            let mut tls = ClientTlsConfig::new();
            tls = match &settings.tls.certificate {
                Some(ca) => tls.ca_certificate(Certificate::from_pem(read("CA certificate", ca)?)),
                None => tls.with_native_roots().with_webpki_roots(),
            };
            if let (Some(cert), Some(key)) =
                (&settings.tls.client_certificate, &settings.tls.client_key)
            {
                tls = tls.identity(Identity::from_pem(
                    read("client certificate", cert)?,
                    read("client key", key)?,
                ));
            }
            Some(tls)
        } else {
            None
        };
        Ok(Self {
            runtime,
            metadata: MetadataMap::from_headers(headers),
            tls,
        })
    }

    /// Configures a tonic exporter builder (spans' or logs') and builds it inside the runtime,
    /// against which tonic builds its channel.
    pub(crate) fn build<B, E, Err>(
        self,
        settings: &ExporterSettings,
        builder: B,
        build: impl FnOnce(B) -> Result<E, Err>,
    ) -> Result<OnRuntime<E>, Err>
    where
        B: WithExportConfig + WithTonicConfig,
    {
        let mut builder = builder
            .with_endpoint(settings.endpoint.as_str())
            .with_timeout(settings.timeout)
            .with_metadata(self.metadata);
        if let Some(tls) = self.tls {
            builder = builder.with_tls_config(tls);
        }
        if settings.compression == OtlpCompression::Gzip {
            builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        let inner = {
            let _in_runtime = self.runtime.enter();
            build(builder)?
        };
        Ok(OnRuntime {
            runtime: self.runtime,
            inner,
        })
    }
}

/// Runs a tonic exporter on its own current-thread tokio runtime: the batch processor's thread
/// is not inside any runtime, and the application's runtime (if any) is none of ours to block.
#[derive(Debug)]
pub(crate) struct OnRuntime<E> {
    runtime: tokio::runtime::Runtime,
    inner: E,
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for OnRuntime<E>
{
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> OTelSdkResult {
        self.runtime.block_on(self.inner.export(batch))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _in_runtime = self.runtime.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _in_runtime = self.runtime.enter();
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(feature = "otlp-logs")]
impl<E: opentelemetry_sdk::logs::LogExporter> opentelemetry_sdk::logs::LogExporter
    for OnRuntime<E>
{
    async fn export(&self, batch: opentelemetry_sdk::logs::LogBatch<'_>) -> OTelSdkResult {
        self.runtime.block_on(self.inner.export(batch))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _in_runtime = self.runtime.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
