//! The OTLP exporters' settings: headers, compression, timeout and TLS files, shared by every
//! signal and overridden per signal (`OTEL_EXPORTER_OTLP_TRACES_*` over
//! `OTEL_EXPORTER_OTLP_*`, as the OpenTelemetry specification orders them), and what one
//! signal's exporter is given once they are resolved ([`ExporterSettings`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, OtlpProtocol, REDACTED, TelemetryConfig};

/// How OTLP request bodies are compressed.
///
/// ```
/// use tasker_telemetry::config::OtlpCompression;
///
/// assert_eq!("GZIP".parse::<OtlpCompression>()?, OtlpCompression::Gzip);
/// assert!("zstd".parse::<OtlpCompression>().is_err());
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
#[non_exhaustive]
pub enum OtlpCompression {
    /// Bodies are sent as they are (the default).
    #[default]
    None,
    /// `Content-Encoding: gzip` (gRPC: the `gzip` message encoding).
    Gzip,
}

impl OtlpCompression {
    /// The name used in files and environment variables (`none`, `gzip`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
        }
    }
}

impl From<OtlpCompression> for &'static str {
    fn from(c: OtlpCompression) -> Self {
        c.as_str()
    }
}

impl FromStr for OtlpCompression {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Self::None, Self::Gzip]
            .into_iter()
            .find(|c| text.trim().eq_ignore_ascii_case(c.as_str()))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "otlp.compression",
                    text,
                    "one of none, gzip (zstd is not built)",
                )
            })
    }
}

impl TryFrom<String> for OtlpCompression {
    type Error = ConfigError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for OtlpCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The PEM files an OTLP exporter's TLS uses.
///
/// ```
/// use tasker_telemetry::config::TlsFiles;
///
/// let mut files = TlsFiles::default();
/// files.certificate = Some("/etc/otel/ca.pem".into());
/// assert!(files.client_key.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The CA that signs the collector's certificate; when set, the only root trusted.
    /// Default `None`: the system's roots and webpki's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
    /// The client certificate (chain) presented to the collector (mutual TLS). Needs
    /// `client_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<PathBuf>,
    /// The client certificate's private key (PKCS#8, PKCS#1 or SEC1 PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

/// One signal's overrides of [`OtlpOptions`]; `None` takes the shared setting.
///
/// ```
/// use tasker_telemetry::TelemetryConfig;
///
/// let config = TelemetryConfig::from_toml_str(
///     r#"
///     [otlp]
///     timeout_ms = 2000
///     [otlp.traces]
///     timeout_ms = 500
///     "#,
/// )?;
/// assert_eq!(config.otlp.traces.timeout_ms, Some(500));
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct OtlpSignalOptions {
    /// The protocol for this signal; overrides `otlp_protocol`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<OtlpProtocol>,
    /// Headers for this signal, replacing the shared ones (the specification's precedence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Compression for this signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<OtlpCompression>,
    /// The export timeout for this signal, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The CA that signs the collector's certificate; for this signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
    /// The client certificate (chain) presented to the collector for this signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<PathBuf>,
    /// The client certificate's private key for this signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

/// Settings every OTLP exporter shares, and each signal's overrides.
///
/// ```
/// use tasker_telemetry::TelemetryConfig;
///
/// let vars = [
///     ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://api.example:4318"),
///     ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cr%3Dt"),
///     ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
/// ];
/// let config = TelemetryConfig::default()
///     .with_env_from(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))?;
/// assert_eq!(config.otlp.headers["x-api-key"], "s3cr=t"); // percent-decoded
/// assert!(!format!("{config:?}").contains("s3cr")); // never printed
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct OtlpOptions {
    /// Headers sent with every export (API keys): secrets, never shown in `Debug`, errors or
    /// diagnostics. Default none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body compression. Default [`OtlpCompression::None`].
    pub compression: OtlpCompression,
    /// Each export's timeout, in milliseconds: connect, send and the answer. Default `10000`.
    pub timeout_ms: u64,
    /// The CA that signs the collector's certificate; when set, the only root trusted.
    /// Default `None`: the system's roots and webpki's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
    /// The client certificate (chain) presented to the collector (mutual TLS). Needs
    /// `client_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<PathBuf>,
    /// The client certificate's private key (PKCS#8, PKCS#1 or SEC1 PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// Overrides for spans.
    #[serde(skip_serializing_if = "is_default")]
    pub traces: OtlpSignalOptions,
    /// Overrides for metrics.
    #[serde(skip_serializing_if = "is_default")]
    pub metrics: OtlpSignalOptions,
    /// Overrides for logs (cargo feature `otlp-logs`).
    #[serde(skip_serializing_if = "is_default")]
    pub logs: OtlpSignalOptions,
}

fn is_default(options: &OtlpSignalOptions) -> bool {
    *options == OtlpSignalOptions::default()
}

impl Default for OtlpOptions {
    fn default() -> Self {
        Self {
            headers: BTreeMap::new(),
            compression: OtlpCompression::None,
            timeout_ms: 10_000,
            certificate: None,
            client_certificate: None,
            client_key: None,
            traces: OtlpSignalOptions::default(),
            metrics: OtlpSignalOptions::default(),
            logs: OtlpSignalOptions::default(),
        }
    }
}

/// Header values masked, for `Debug` and errors.
pub(super) fn masked_headers(headers: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    headers.keys().map(|k| (k.as_str(), REDACTED)).collect()
}

impl fmt::Debug for OtlpSignalOptionsShown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        f.debug_struct("OtlpSignalOptions")
            .field("protocol", &o.protocol)
            .field("headers", &o.headers.as_ref().map(masked_headers))
            .field("compression", &o.compression)
            .field("timeout_ms", &o.timeout_ms)
            .field("certificate", &o.certificate)
            .field("client_certificate", &o.client_certificate)
            .field("client_key", &o.client_key)
            .finish()
    }
}

struct OtlpSignalOptionsShown<'a>(&'a OtlpSignalOptions);

impl fmt::Debug for OtlpOptions {
    // Written out so that header values (API keys) never reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpOptions")
            .field("headers", &masked_headers(&self.headers))
            .field("compression", &self.compression)
            .field("timeout_ms", &self.timeout_ms)
            .field("certificate", &self.certificate)
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &self.client_key)
            .field("traces", &OtlpSignalOptionsShown(&self.traces))
            .field("metrics", &OtlpSignalOptionsShown(&self.metrics))
            .field("logs", &OtlpSignalOptionsShown(&self.logs))
            .finish()
    }
}

/// A telemetry signal exported over OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metrics.
    Metrics,
    /// Log records (cargo feature `otlp-logs`).
    Logs,
}

impl Signal {
    /// The path OTLP/HTTP appends to a shared endpoint for this signal.
    pub const fn http_path(self) -> &'static str {
        match self {
            Self::Traces => "/v1/traces",
            Self::Metrics => "/v1/metrics",
            Self::Logs => "/v1/logs",
        }
    }
}

/// What one signal's OTLP exporter is given: the shared settings with the signal's overrides
/// applied.
///
/// ```
/// use tasker_telemetry::TelemetryConfig;
/// use tasker_telemetry::config::Signal;
///
/// let config = TelemetryConfig::builder().otlp_endpoint("http://collector:4318").build()?;
/// let traces = config.exporter_settings(Signal::Traces).unwrap();
/// assert_eq!(traces.endpoint, "http://collector:4318/v1/traces");
/// assert_eq!(traces.timeout.as_millis(), 10_000);
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct ExporterSettings {
    /// The full URL requests go to.
    pub endpoint: String,
    /// The protocol.
    pub protocol: OtlpProtocol,
    /// Headers sent with each request.
    pub headers: Vec<(String, String)>,
    /// Body compression.
    pub compression: OtlpCompression,
    /// Each export's timeout.
    pub timeout: Duration,
    /// TLS files.
    pub tls: TlsFiles,
}

impl fmt::Debug for ExporterSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterSettings")
            .field("endpoint", &crate::redact::url(&self.endpoint))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| (k, REDACTED))
                    .collect::<Vec<_>>(),
            )
            .field("protocol", &self.protocol)
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

impl TelemetryConfig {
    /// `signal`'s exporter settings, or `None` when no endpoint is configured for it (spans then
    /// stay in process; metrics are only scraped).
    pub fn exporter_settings(&self, signal: Signal) -> Option<ExporterSettings> {
        let protocol = self
            .signal_options(signal)
            .protocol
            .unwrap_or(self.otlp_protocol);
        let own = match signal {
            Signal::Traces => &self.otlp_traces_endpoint,
            Signal::Metrics => &self.otlp_metrics_endpoint,
            Signal::Logs => &self.otlp_logs_endpoint,
        };
        let endpoint = match own {
            Some(url) => url.clone(),
            None => {
                let base = self.otlp_endpoint.as_ref()?;
                match protocol {
                    OtlpProtocol::HttpProtobuf => {
                        format!("{}{}", base.trim_end_matches('/'), signal.http_path())
                    }
                    OtlpProtocol::Grpc => base.clone(),
                }
            }
        };
        Some(self.exporter_settings_at(signal, endpoint))
    }

    fn signal_options(&self, signal: Signal) -> &OtlpSignalOptions {
        match signal {
            Signal::Traces => &self.otlp.traces,
            Signal::Metrics => &self.otlp.metrics,
            Signal::Logs => &self.otlp.logs,
        }
    }

    /// `signal`'s exporter settings for requests to `endpoint` (a full URL), whatever endpoint
    /// is configured.
    pub fn exporter_settings_at(
        &self,
        signal: Signal,
        endpoint: impl Into<String>,
    ) -> ExporterSettings {
        let o = &self.otlp;
        let s = self.signal_options(signal);
        let pick = |own: &Option<PathBuf>, shared: &Option<PathBuf>| own.clone().or(shared.clone());
        ExporterSettings {
            endpoint: endpoint.into(),
            protocol: s.protocol.unwrap_or(self.otlp_protocol),
            headers: s
                .headers
                .as_ref()
                .unwrap_or(&o.headers)
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            compression: s.compression.unwrap_or(o.compression),
            // The processor's (or reader's) export timeout caps the exporter's.
            timeout: Duration::from_millis(s.timeout_ms.unwrap_or(o.timeout_ms).min(
                match signal {
                    Signal::Traces => self.span_batch.export_timeout_ms,
                    Signal::Metrics => self.metrics_export_timeout_ms,
                    Signal::Logs => u64::MAX,
                },
            )),
            tls: TlsFiles {
                certificate: pick(&s.certificate, &o.certificate),
                client_certificate: pick(&s.client_certificate, &o.client_certificate),
                client_key: pick(&s.client_key, &o.client_key),
            },
        }
    }

    pub(super) fn check_otlp_options(&self) -> Result<(), ConfigError> {
        let o = &self.otlp;
        check_headers("otlp.headers", &o.headers)?;
        super::positive("otlp.timeout_ms", o.timeout_ms)?;
        check_tls(
            "otlp",
            [&o.certificate, &o.client_certificate, &o.client_key],
        )?;
        for (name, s) in [
            ("traces", &o.traces),
            ("metrics", &o.metrics),
            ("logs", &o.logs),
        ] {
            if let Some(headers) = &s.headers {
                check_headers(&format!("otlp.{name}.headers"), headers)?;
            }
            if let Some(ms) = s.timeout_ms {
                super::positive(&format!("otlp.{name}.timeout_ms"), ms)?;
            }
            check_tls(
                &format!("otlp.{name}"),
                [&s.certificate, &s.client_certificate, &s.client_key],
            )?;
        }
        if let Some(protocol) = o
            .metrics
            .protocol
            .filter(|p| *p != OtlpProtocol::HttpProtobuf)
        {
            return Err(ConfigError::invalid(
                "otlp.metrics.protocol",
                protocol.as_str(),
                "http/protobuf (metrics are exported over OTLP/HTTP only)",
            ));
        }
        if !cfg!(feature = "otlp-logs") {
            let field = if self.otlp_logs_endpoint.is_some() {
                Some("otlp_logs_endpoint")
            } else if !is_default(&o.logs) {
                Some("otlp.logs")
            } else {
                None
            };
            if let Some(field) = field {
                return Err(ConfigError::invalid(
                    field,
                    "(set)",
                    "unset: logs are exported over OTLP only when tasker-telemetry is built with its `otlp-logs` cargo feature",
                ));
            }
        }
        Ok(())
    }
}

const HEADERS_EXPECTED: &str = "comma-separated key=value pairs, values percent-encoded (W3C baggage format), e.g. \"k1=v1,k2=v%202\"";

/// Parses `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs separated by commas, keys and values
/// percent-decoded, whitespace around them ignored. The error never quotes a value.
pub(crate) fn parse_headers(text: &str) -> Result<BTreeMap<String, String>, String> {
    parse_key_values(text)
}

/// A `key=value,...` list as the OpenTelemetry variables write them (W3C baggage format).
pub(crate) fn parse_key_values(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut headers = BTreeMap::new();
    for (index, entry) in text.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!(
                "{HEADERS_EXPECTED}; entry #{} has no '='",
                index + 1
            ));
        };
        let key = percent_decode(key.trim()).ok_or_else(|| {
            format!(
                "{HEADERS_EXPECTED}; entry #{} has a malformed %-escape in its key",
                index + 1
            )
        })?;
        let value = percent_decode(value.trim()).ok_or_else(|| {
            format!("{HEADERS_EXPECTED}; the value of {key:?} has a malformed %-escape")
        })?;
        if key.is_empty() {
            return Err(format!(
                "{HEADERS_EXPECTED}; entry #{} has an empty key",
                index + 1
            ));
        }
        headers.insert(key, value);
    }
    Ok(headers)
}

/// `%XX` escapes decoded; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn check_headers(field: &str, headers: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, value) in headers {
        if name.is_empty() || !name.bytes().all(super::checks::is_header_token_byte) {
            return Err(ConfigError::invalid(
                field,
                name.as_str(),
                "header names made of A-Z a-z 0-9 ! # $ % & ' * + - . ^ _ ` | ~",
            ));
        }
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(ConfigError::invalid(
                field,
                format!("{name}={REDACTED}"),
                "header values without control characters",
            ));
        }
    }
    Ok(())
}

/// `[certificate, client_certificate, client_key]`.
fn check_tls(
    prefix: &str,
    [certificate, client_certificate, client_key]: [&Option<PathBuf>; 3],
) -> Result<(), ConfigError> {
    for (name, path) in [
        ("certificate", certificate),
        ("client_certificate", client_certificate),
        ("client_key", client_key),
    ] {
        if let Some(path) = path
            && !path.is_file()
        {
            return Err(ConfigError::invalid(
                &format!("{prefix}.{name}"),
                path.display().to_string(),
                "the path of a readable PEM file",
            ));
        }
    }
    match (client_certificate, client_key) {
        (Some(_), None) => Err(ConfigError::invalid(
            &format!("{prefix}.client_key"),
            "",
            "a client key, because a client certificate is set",
        )),
        (None, Some(key)) => Err(ConfigError::invalid(
            &format!("{prefix}.client_certificate"),
            key.display().to_string(),
            "a client certificate, because a client key is set",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_parsed_as_the_specification_writes_them() {
        let h = parse_headers(" api-key = a%2Cb%3Dc , x-team=core,").unwrap();
        assert_eq!(h["api-key"], "a,b=c");
        assert_eq!(h["x-team"], "core");
        for bad in ["novalue", "=v", "k=%zz", "k=%4"] {
            let error = parse_headers(bad).unwrap_err();
            assert!(error.contains("key=value"), "{bad}: {error}");
            assert!(!error.contains("zz"), "values are never quoted: {error}");
        }
    }
}
