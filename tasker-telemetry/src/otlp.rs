//! What the OTLP exporters (spans, metrics) share: the transport to the collector, its TLS, and
//! how their diagnostics keep credentials out of errors, logs and `/health/status`.
//!
//! Settings (endpoint, headers, compression, timeout, certificates) come from
//! [`TelemetryConfig`](crate::TelemetryConfig), per signal, as
//! [`ExporterSettings`](crate::config::ExporterSettings).

pub(crate) mod redact;
#[cfg(feature = "otlp")]
pub(crate) mod tls;
#[cfg(feature = "otlp")]
pub(crate) mod transport;
