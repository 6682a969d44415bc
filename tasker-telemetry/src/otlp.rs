//! What the OTLP exporters (spans, metrics, logs) share: the transport to the collector, its TLS, and
//! how their diagnostics keep credentials out of errors, logs and `/health/status`.
//!
//! Settings (endpoint, headers, compression, timeout, certificates) come from
//! [`TelemetryConfig`](crate::TelemetryConfig), per signal, as
//! [`ExporterSettings`](crate::config::ExporterSettings).

#[cfg(feature = "otlp-grpc")]
pub(crate) mod grpc;
#[cfg(feature = "otlp")]
pub(crate) mod tls;
#[cfg(feature = "otlp")]
pub(crate) mod transport;

/// The crates an export runs through. Their spans and events never become exported spans, span
/// events or log records, whatever the filters let through: exporting them would make more of
/// them (each gRPC export's tonic and h2 spans were exported by the next export, forever, in an
/// idle process).
const EXPORT_STACK: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
    "rustls",
    "tonic",
    "tower",
    "tokio_rustls",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
    "opentelemetry_appender_tracing",
];

/// Whether `metadata` comes from one of the [`EXPORT_STACK`] crates (its target is the crate
/// or one of its modules).
pub(crate) fn is_export_stack(metadata: &tracing::Metadata<'_>) -> bool {
    let target = metadata.target();
    let krate = target.split("::").next().unwrap_or(target);
    EXPORT_STACK.contains(&krate)
}

/// Configures an OTLP/HTTP exporter builder (spans' or logs') for `settings`, sending through
/// `transport`.
#[cfg(feature = "otlp")]
pub(crate) fn configure_http<B>(
    builder: B,
    settings: &crate::config::ExporterSettings,
    transport: transport::HttpTransport,
) -> B
where
    B: opentelemetry_otlp::WithExportConfig + opentelemetry_otlp::WithHttpConfig,
{
    let builder = builder
        .with_http_client(transport)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(settings.endpoint.as_str())
        .with_timeout(settings.timeout);
    match settings.compression {
        crate::config::OtlpCompression::Gzip => {
            builder.with_compression(opentelemetry_otlp::Compression::Gzip)
        }
        _ => builder,
    }
}

/// The account of a failed export to report: the transport's, when it gave one (masked, and with
/// the collector's answer), else the SDK's error masked (it may quote the URL's credentials).
pub(crate) fn failure_message(
    transport_error: &std::sync::Mutex<Option<String>>,
    sdk_error: &dyn std::fmt::Display,
) -> String {
    transport_error
        .lock()
        .ok()
        .and_then(|mut t| t.take())
        .unwrap_or_else(|| crate::redact::text(&sdk_error.to_string()))
}
