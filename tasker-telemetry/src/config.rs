//! Telemetry configuration: Tasker's options and defaults, loaded from code, files or the environment.
//!
//! [`TelemetryConfig::default()`] is Tasker's configuration and needs no network: metrics stay in
//! process and spans stay local until `otlp_endpoint` is set. Every way of building a configuration
//! validates it, and every invalid value is a [`ConfigError`] naming the field (or the environment
//! variable) and what is accepted.
//!
//! ```
//! use tasker_telemetry::config::{LogFormat, TelemetryConfig};
//!
//! let config = TelemetryConfig::from_toml_str(
//!     r#"
//!     service_name = "checkout"
//!     log_format = "pretty"
//!     filter_parameters = ["passw", "token", "customer.card.number"]
//!     "#,
//! )?
//! // Deployment settings win over the file.
//! .with_env_from(|name| (name == "OTEL_SERVICE_NAME").then(|| "checkout-eu".to_owned()))?;
//!
//! assert_eq!(config.service_name, "checkout-eu");
//! assert_eq!(config.log_format, LogFormat::Pretty);
//! assert_eq!(config.max_concurrent_steps, 3); // Tasker's default
//! # Ok::<(), tasker_telemetry::ConfigError>(())
//! ```
//!
//! # Environment variables
//!
//! [`TelemetryConfig::with_env`] applies these on top of whatever was loaded before (environment
//! overrides files). An empty or whitespace-only value counts as unset, as OpenTelemetry specifies;
//! this also keeps `TASKER_FILTER_PARAMETERS=$UNDEFINED` from silently switching filtering off.
//! When two variables set the same field, the one lower in the table (the OpenTelemetry standard
//! one) wins. Booleans accept `true`/`false`/`1`/`0`/`yes`/`no` in any case. Lists are
//! comma-separated with whitespace around items ignored, so a regular expression containing a
//! comma must go in a file.
//!
//! | Variable | Field | Notes |
//! |----------|-------|-------|
//! | `TASKER_ENABLED` | `enabled` | boolean |
//! | `OTEL_SDK_DISABLED` | `enabled` | `true` disables telemetry; `false` leaves `enabled` as it was |
//! | `TASKER_SERVICE_NAME` | `service_name` | |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `resource_attributes` | `key=value,...`, percent-decoded; its `service.name` sets `service_name` |
//! | `OTEL_SERVICE_NAME` | `service_name` | wins over `TASKER_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` |
//! | `TASKER_SERVICE_VERSION` | `service_version` | |
//! | `TASKER_FILTER_PARAMETERS` | `filter_parameters` | comma-separated rules |
//! | `TASKER_FILTER_MASK` | `filter_mask` | |
//! | `TASKER_STRUCTURED_LOGGING_ENABLED` | `structured_logging_enabled` | boolean |
//! | `TASKER_CORRELATION_ID_HEADER` | `correlation_id_header` | |
//! | `TASKER_LOG_LEVEL` | `log_level` | `trace`, `debug`, `info`, `warn`, `error` or `off` |
//! | `TASKER_LOG_FORMAT` | `log_format` | `json`, `pretty`, `logfmt` or `compact` |
//! | `TASKER_LOG_FILTER` | `log_filter` | a `RUST_LOG`-style directive, verbatim |
//! | `RUST_LOG` | `log_filter` | verbatim; wins over `TASKER_LOG_FILTER` |
//! | `TASKER_METRICS_ENABLED` | `metrics_enabled` | boolean |
//! | `TASKER_METRICS_ENDPOINT` | `metrics_endpoint` | |
//! | `TASKER_METRICS_FORMAT` | `metrics_format` | `prometheus`, `json` or `csv` |
//! | `TASKER_METRICS_AUTH_REQUIRED` | `metrics_auth_required` | boolean |
//! | `TASKER_METRICS_AUTH_TOKEN` | `metrics_auth_token` | secret: never shown in `Debug` or errors |
//! | `TASKER_PERFORMANCE_MONITORING_ENABLED` | `performance_monitoring_enabled` | boolean |
//! | `TASKER_SLOW_QUERY_THRESHOLD_SECONDS` | `slow_query_threshold_seconds` | number |
//! | `TASKER_MEMORY_THRESHOLD_MB` | `memory_threshold_mb` | integer |
//! | `TASKER_EVENT_SAMPLING_RATE` | `event_sampling_rate` | number in 0.0..=1.0 |
//! | `TASKER_FILTERED_EVENTS` | `filtered_events` | comma-separated event names or `namespace.*` |
//! | `TASKER_MAX_STORED_SAMPLES` | `max_stored_samples` | integer |
//! | `TASKER_METRICS_RETENTION_HOURS` | `metrics_retention_hours` | integer |
//! | `TASKER_MAX_CONCURRENT_STEPS` | `max_concurrent_steps` | integer |
//! | `TASKER_METRICS_CARDINALITY_CAP` | `metrics_cardinality_cap` | integer |
//! | `TASKER_OTLP_ENDPOINT` | `otlp_endpoint` | `http://` or `https://` URL |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | `otlp_endpoint` | wins over `TASKER_OTLP_ENDPOINT`; spans go to `<endpoint>/v1/traces` |
//! | `TASKER_OTLP_TRACES_ENDPOINT` | `otlp_traces_endpoint` | the full traces URL, used verbatim |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | `otlp_traces_endpoint` | wins over `TASKER_OTLP_TRACES_ENDPOINT` and over `otlp_endpoint` |
//! | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` | `otlp_metrics_endpoint` | the full metrics URL, used verbatim; wins over `otlp_endpoint` |
//! | `TASKER_OTLP_PROTOCOL` | `otlp_protocol` | `http/protobuf` or `grpc` |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `otlp_protocol` | wins over `TASKER_OTLP_PROTOCOL` |
//! | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` | `otlp.traces.protocol` | wins over `OTEL_EXPORTER_OTLP_PROTOCOL` for spans |
//! | `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` | `otlp.metrics.protocol` | `http/protobuf` only: metrics are exported over OTLP/HTTP |
//! | `OTEL_EXPORTER_OTLP_HEADERS` | `otlp.headers` | `key=value,...`, percent-decoded; secret: never shown |
//! | `OTEL_EXPORTER_OTLP_TRACES_HEADERS` | `otlp.traces.headers` | for spans; wins over `OTEL_EXPORTER_OTLP_HEADERS` |
//! | `OTEL_EXPORTER_OTLP_METRICS_HEADERS` | `otlp.metrics.headers` | for metrics; wins over `OTEL_EXPORTER_OTLP_HEADERS` |
//! | `OTEL_EXPORTER_OTLP_COMPRESSION` | `otlp.compression` | `gzip` or `none` |
//! | `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION` | `otlp.traces.compression` | for spans; wins over `OTEL_EXPORTER_OTLP_COMPRESSION` |
//! | `OTEL_EXPORTER_OTLP_METRICS_COMPRESSION` | `otlp.metrics.compression` | for metrics; wins over `OTEL_EXPORTER_OTLP_COMPRESSION` |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT` | `otlp.timeout_ms` | milliseconds, greater than 0 (default 10000) |
//! | `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` | `otlp.traces.timeout_ms` | for spans; wins over `OTEL_EXPORTER_OTLP_TIMEOUT` |
//! | `OTEL_EXPORTER_OTLP_METRICS_TIMEOUT` | `otlp.metrics.timeout_ms` | for metrics; wins over `OTEL_EXPORTER_OTLP_TIMEOUT` |
//! | `OTEL_EXPORTER_OTLP_CERTIFICATE` | `otlp.certificate` | PEM file of the CA to trust, then the only one |
//! | `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` | `otlp.traces.certificate` | for spans; wins over `OTEL_EXPORTER_OTLP_CERTIFICATE` |
//! | `OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE` | `otlp.metrics.certificate` | for metrics; wins over `OTEL_EXPORTER_OTLP_CERTIFICATE` |
//! | `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` | `otlp.client_certificate` | PEM file (mutual TLS); needs the key |
//! | `OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE` | `otlp.traces.client_certificate` | for spans; wins over `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` |
//! | `OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE` | `otlp.metrics.client_certificate` | for metrics; wins over `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` |
//! | `OTEL_EXPORTER_OTLP_CLIENT_KEY` | `otlp.client_key` | PEM file; needs the client certificate |
//! | `OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY` | `otlp.traces.client_key` | for spans; wins over `OTEL_EXPORTER_OTLP_CLIENT_KEY` |
//! | `OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY` | `otlp.metrics.client_key` | for metrics; wins over `OTEL_EXPORTER_OTLP_CLIENT_KEY` |
//! | `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` | `otlp_logs_endpoint` | the full logs URL, used verbatim; wins over `otlp_endpoint` (cargo feature `otlp-logs`) |
//! | `OTEL_EXPORTER_OTLP_LOGS_PROTOCOL` | `otlp.logs.protocol` | for logs; wins over `OTEL_EXPORTER_OTLP_PROTOCOL` |
//! | `OTEL_EXPORTER_OTLP_LOGS_HEADERS` | `otlp.logs.headers` | for logs; wins over `OTEL_EXPORTER_OTLP_HEADERS` |
//! | `OTEL_EXPORTER_OTLP_LOGS_COMPRESSION` | `otlp.logs.compression` | for logs; wins over `OTEL_EXPORTER_OTLP_COMPRESSION` |
//! | `OTEL_EXPORTER_OTLP_LOGS_TIMEOUT` | `otlp.logs.timeout_ms` | for logs; wins over `OTEL_EXPORTER_OTLP_TIMEOUT` |
//! | `OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE` | `otlp.logs.certificate` | for logs; wins over `OTEL_EXPORTER_OTLP_CERTIFICATE` |
//! | `OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE` | `otlp.logs.client_certificate` | for logs; wins over `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` |
//! | `OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY` | `otlp.logs.client_key` | for logs; wins over `OTEL_EXPORTER_OTLP_CLIENT_KEY` |
//! | `TASKER_TRACE_SAMPLING_RATIO` | `trace_sampling_ratio` | number in 0.0..=1.0 |
//! | `OTEL_TRACES_SAMPLER_ARG` | `trace_sampling_ratio` | wins over `TASKER_TRACE_SAMPLING_RATIO` |
//! | `OTEL_BSP_SCHEDULE_DELAY` | `span_batch.schedule_delay_ms` | milliseconds, greater than 0 (default 500) |
//! | `OTEL_BSP_EXPORT_TIMEOUT` | `span_batch.export_timeout_ms` | milliseconds; caps the traces exporter's timeout (default 30000) |
//! | `OTEL_BSP_MAX_QUEUE_SIZE` | `span_batch.max_queue_size` | integer (default 4096) |
//! | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | `span_batch.max_export_batch_size` | integer, at most the queue size (default 512) |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | `metrics_export_interval_ms` | milliseconds between OTLP metric pushes (default 60000) |
//! | `OTEL_METRIC_EXPORT_TIMEOUT` | `metrics_export_timeout_ms` | milliseconds; caps the metrics exporter's timeout (default 30000) |
//! | `OTEL_TRACES_SAMPLER` | `trace_sampler` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off` or `parentbased_traceidratio` |

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::filter::{DEFAULT_FILTER_MASK, DEFAULT_FILTER_PARAMETERS, FilterError, ParameterFilter};

mod batch;
mod otlp;

pub use batch::SpanBatchOptions;
pub use otlp::{
    ExporterSettings, OtlpCompression, OtlpOptions, OtlpSignalOptions, Signal, TlsFiles,
};

/// Shown instead of a secret wherever configuration is printed.
const REDACTED: &str = DEFAULT_FILTER_MASK;

/// Every environment variable [`TelemetryConfig::with_env`] reads, as `(variable, field)`, in the
/// order they are applied: a later row overrides an earlier one for the same field.
pub const ENVIRONMENT_VARIABLES: &[(&str, &str)] = &[
    ("TASKER_ENABLED", "enabled"),
    ("OTEL_SDK_DISABLED", "enabled"),
    ("TASKER_SERVICE_NAME", "service_name"),
    ("OTEL_RESOURCE_ATTRIBUTES", "resource_attributes"),
    ("OTEL_SERVICE_NAME", "service_name"),
    ("TASKER_SERVICE_VERSION", "service_version"),
    ("TASKER_FILTER_PARAMETERS", "filter_parameters"),
    ("TASKER_FILTER_MASK", "filter_mask"),
    (
        "TASKER_STRUCTURED_LOGGING_ENABLED",
        "structured_logging_enabled",
    ),
    ("TASKER_CORRELATION_ID_HEADER", "correlation_id_header"),
    ("TASKER_LOG_LEVEL", "log_level"),
    ("TASKER_LOG_FORMAT", "log_format"),
    ("TASKER_LOG_FILTER", "log_filter"),
    ("RUST_LOG", "log_filter"),
    ("TASKER_METRICS_ENABLED", "metrics_enabled"),
    ("TASKER_METRICS_ENDPOINT", "metrics_endpoint"),
    ("TASKER_METRICS_FORMAT", "metrics_format"),
    ("TASKER_METRICS_AUTH_REQUIRED", "metrics_auth_required"),
    ("TASKER_METRICS_AUTH_TOKEN", "metrics_auth_token"),
    (
        "TASKER_PERFORMANCE_MONITORING_ENABLED",
        "performance_monitoring_enabled",
    ),
    (
        "TASKER_SLOW_QUERY_THRESHOLD_SECONDS",
        "slow_query_threshold_seconds",
    ),
    ("TASKER_MEMORY_THRESHOLD_MB", "memory_threshold_mb"),
    ("TASKER_EVENT_SAMPLING_RATE", "event_sampling_rate"),
    ("TASKER_FILTERED_EVENTS", "filtered_events"),
    ("TASKER_MAX_STORED_SAMPLES", "max_stored_samples"),
    ("TASKER_METRICS_RETENTION_HOURS", "metrics_retention_hours"),
    ("TASKER_MAX_CONCURRENT_STEPS", "max_concurrent_steps"),
    ("TASKER_METRICS_CARDINALITY_CAP", "metrics_cardinality_cap"),
    ("TASKER_OTLP_ENDPOINT", "otlp_endpoint"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint"),
    ("TASKER_OTLP_TRACES_ENDPOINT", "otlp_traces_endpoint"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otlp_traces_endpoint"),
    (
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "otlp_metrics_endpoint",
    ),
    ("TASKER_OTLP_PROTOCOL", "otlp_protocol"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "otlp_protocol"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "otlp.traces.protocol"),
    (
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "otlp.metrics.protocol",
    ),
    ("OTEL_EXPORTER_OTLP_HEADERS", "otlp.headers"),
    ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "otlp.traces.headers"),
    ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "otlp.metrics.headers"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "otlp.compression"),
    (
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "otlp.traces.compression",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
        "otlp.metrics.compression",
    ),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "otlp.timeout_ms"),
    (
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "otlp.traces.timeout_ms",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        "otlp.metrics.timeout_ms",
    ),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "otlp.certificate"),
    (
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        "otlp.traces.certificate",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
        "otlp.metrics.certificate",
    ),
    (
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        "otlp.client_certificate",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
        "otlp.traces.client_certificate",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
        "otlp.metrics.client_certificate",
    ),
    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "otlp.client_key"),
    (
        "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
        "otlp.traces.client_key",
    ),
    (
        "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
        "otlp.metrics.client_key",
    ),
    ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "otlp_logs_endpoint"),
    ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "otlp.logs.protocol"),
    ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "otlp.logs.headers"),
    (
        "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
        "otlp.logs.compression",
    ),
    ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "otlp.logs.timeout_ms"),
    (
        "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
        "otlp.logs.certificate",
    ),
    (
        "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE",
        "otlp.logs.client_certificate",
    ),
    ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "otlp.logs.client_key"),
    ("TASKER_TRACE_SAMPLING_RATIO", "trace_sampling_ratio"),
    ("OTEL_TRACES_SAMPLER_ARG", "trace_sampling_ratio"),
    ("OTEL_TRACES_SAMPLER", "trace_sampler"),
    ("OTEL_BSP_SCHEDULE_DELAY", "span_batch.schedule_delay_ms"),
    ("OTEL_BSP_EXPORT_TIMEOUT", "span_batch.export_timeout_ms"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "span_batch.max_queue_size"),
    (
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "span_batch.max_export_batch_size",
    ),
    ("OTEL_METRIC_EXPORT_INTERVAL", "metrics_export_interval_ms"),
    ("OTEL_METRIC_EXPORT_TIMEOUT", "metrics_export_timeout_ms"),
];

const EXPECTED_BOOL: &str = "one of true, false, 1, 0, yes, no (case-insensitive)";
const EXPECTED_INTEGER: &str = "an integer greater than 0";
const EXPECTED_RATIO: &str = "a finite number between 0.0 and 1.0";

/// Why a configuration was rejected.
///
/// ```
/// use tasker_telemetry::config::{ConfigError, TelemetryConfig};
///
/// let error = TelemetryConfig::builder().event_sampling_rate(1.5).build().unwrap_err();
/// assert_eq!(error.field(), Some("event_sampling_rate"));
/// assert!(matches!(error, ConfigError::Invalid { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field holds a value that is not accepted.
    #[error("invalid value {value:?} for `{field}`: expected {expected}")]
    Invalid {
        /// The field's name, as in files and the builder.
        field: String,
        /// The offending value (`"[FILTERED]"` for secrets).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// An environment variable holds a value that is not accepted.
    #[error(
        "invalid value {value:?} in environment variable `{variable}` (sets `{field}`): expected {expected}"
    )]
    Env {
        /// The variable's name.
        variable: String,
        /// The field it sets.
        field: String,
        /// The offending value (`"[FILTERED]"` for secrets).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A TOML or JSON document could not be read as a configuration (syntax, wrong type, unknown field).
    #[error("invalid {format} configuration: {message}")]
    Parse {
        /// `"TOML"` or `"JSON"`.
        format: &'static str,
        /// The parser's explanation, with its position.
        message: String,
    },
    /// A configuration file could not be read.
    #[error("cannot read configuration file {path:?}: {message}")]
    Io {
        /// The file as given.
        path: String,
        /// The operating system's explanation.
        message: String,
    },
    /// A configuration file's extension says neither TOML nor JSON.
    #[error(
        "cannot tell the format of configuration file {path:?}: expected a .toml or .json extension"
    )]
    UnsupportedFormat {
        /// The file as given.
        path: String,
    },
}

impl ConfigError {
    /// The configuration field the error is about, if it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } | Self::Env { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The environment variable the error is about, if it is about one.
    pub fn variable(&self) -> Option<&str> {
        match self {
            Self::Env { variable, .. } => Some(variable),
            _ => None,
        }
    }

    fn invalid(field: &str, value: impl Into<String>, expected: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            value: value.into(),
            expected: expected.into(),
        }
    }
}

/// How log lines are rendered.
///
/// ```
/// use tasker_telemetry::config::LogFormat;
///
/// assert_eq!("Pretty".parse::<LogFormat>()?, LogFormat::Pretty);
/// assert_eq!(LogFormat::Json.to_string(), "json");
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
#[non_exhaustive]
pub enum LogFormat {
    /// One JSON object per line (Tasker's default, for log pipelines).
    #[default]
    Json,
    /// Multi-line, human-oriented output for development.
    Pretty,
    /// `key=value` pairs on one line.
    Logfmt,
    /// Single-line, human-oriented output.
    Compact,
}

impl LogFormat {
    /// The name used in files and environment variables.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Pretty => "pretty",
            Self::Logfmt => "logfmt",
            Self::Compact => "compact",
        }
    }
}

/// The least severe log level written (a `RUST_LOG` directive in `log_filter` refines it).
///
/// ```
/// use tasker_telemetry::config::LogLevel;
///
/// assert_eq!("WARN".parse::<LogLevel>()?, LogLevel::Warn);
/// assert!("loud".parse::<LogLevel>().unwrap_err().to_string().contains("trace, debug"));
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
#[non_exhaustive]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail and above.
    Debug,
    /// Tasker's default.
    #[default]
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
    /// Nothing.
    Off,
}

impl LogLevel {
    /// The name used in files, environment variables and `RUST_LOG` directives.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Off => "off",
        }
    }
}

/// How the metrics endpoint renders the registry.
///
/// ```
/// use tasker_telemetry::config::MetricsFormat;
///
/// assert_eq!("csv".parse::<MetricsFormat>()?, MetricsFormat::Csv);
/// assert!("xml".parse::<MetricsFormat>().unwrap_err().to_string().contains("prometheus, json, csv"));
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
#[non_exhaustive]
pub enum MetricsFormat {
    /// Prometheus text exposition format (Tasker's default).
    #[default]
    Prometheus,
    /// A JSON document.
    Json,
    /// Comma-separated values.
    Csv,
}

impl MetricsFormat {
    /// The name used in files and environment variables.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Prometheus => "prometheus",
            Self::Json => "json",
            Self::Csv => "csv",
        }
    }
}

/// The OTLP transport for spans.
///
/// ```
/// use tasker_telemetry::config::OtlpProtocol;
///
/// assert_eq!("grpc".parse::<OtlpProtocol>()?, OtlpProtocol::Grpc);
/// assert_eq!(OtlpProtocol::default().as_str(), "http/protobuf");
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// Protobuf over HTTP/1.1 (the default; cargo feature `otlp`).
    #[default]
    HttpProtobuf,
    /// gRPC (cargo feature `otlp-grpc`).
    Grpc,
}

impl OtlpProtocol {
    /// The name used in files and environment variables (`http/protobuf`, `grpc`), as in the
    /// OpenTelemetry specification.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "http/protobuf",
            Self::Grpc => "grpc",
        }
    }
}

impl From<OtlpProtocol> for &'static str {
    fn from(p: OtlpProtocol) -> Self {
        p.as_str()
    }
}

/// Implements the textual forms shared by both format enums. Parsing is case-insensitive so that
/// files and environment variables accept the same spellings.
macro_rules! text_enum {
    ($ty:ident, $field:literal, [$($variant:ident),+], $expected:literal) => {
        impl FromStr for $ty {
            type Err = ConfigError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $(
                    if text.trim().eq_ignore_ascii_case(Self::$variant.as_str()) {
                        return Ok(Self::$variant);
                    }
                )+
                Err(ConfigError::invalid($field, text, $expected))
            }
        }

        impl TryFrom<String> for $ty {
            type Error = ConfigError;

            fn try_from(text: String) -> Result<Self, ConfigError> {
                text.parse()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    LogLevel,
    "log_level",
    [Trace, Debug, Info, Warn, Error, Off],
    "one of trace, debug, info, warn, error, off (case-insensitive)"
);
text_enum!(
    LogFormat,
    "log_format",
    [Json, Pretty, Logfmt, Compact],
    "one of json, pretty, logfmt, compact (case-insensitive)"
);
text_enum!(
    OtlpProtocol,
    "otlp_protocol",
    [HttpProtobuf, Grpc],
    "one of http/protobuf, grpc (http/json is not supported)"
);
text_enum!(
    TraceSampler,
    "trace_sampler",
    [
        AlwaysOn,
        AlwaysOff,
        TraceIdRatio,
        ParentBasedAlwaysOn,
        ParentBasedAlwaysOff,
        ParentBasedTraceIdRatio
    ],
    "one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio (jaeger_remote and xray are not built)"
);
text_enum!(
    MetricsFormat,
    "metrics_format",
    [Prometheus, Json, Csv],
    "one of prometheus, json, csv (case-insensitive)"
);

/// Every telemetry option, with Tasker's defaults.
///
/// Build one with [`TelemetryConfig::default`], [`TelemetryConfig::builder`], or from a file
/// ([`from_path`](Self::from_path)), then layer the environment on top with
/// [`with_env`](Self::with_env). Fields are public for reading and for struct-update syntax inside
/// the crate; the struct is `#[non_exhaustive]` so new options are not breaking changes.
///
/// Serialization includes `metrics_auth_token` so a configuration round-trips; `Debug` never shows it.
///
/// ```
/// use tasker_telemetry::TelemetryConfig;
/// use tasker_telemetry::config::MetricsFormat;
///
/// let config = TelemetryConfig::builder()
///     .service_name("billing")
///     .metrics_format(MetricsFormat::Json)
///     .metrics_auth_required(true)
///     .metrics_auth_token("s3cret")
///     .build()?;
/// assert_eq!(config.service_name, "billing");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// Master switch; when `false` instrumentation costs one atomic load per step. Default `true`.
    pub enabled: bool,
    /// `service.name` on spans and metrics. Default `"tasker"`.
    pub service_name: String,
    /// `service.version` on spans and metrics. Default: this crate's version.
    pub service_version: String,
    /// Sensitive-data rules, see [`ParameterFilter::new`]. Default [`DEFAULT_FILTER_PARAMETERS`].
    pub filter_parameters: Vec<String>,
    /// Replacement for sensitive values. Default `"[FILTERED]"`.
    pub filter_mask: String,
    /// Emit JSON-structured logs with correlation ids. Default `true`. When `false`,
    /// [`init`](crate::init) installs no log layer and the scopes build no lifecycle lines
    /// (target [`LIFECYCLE_TARGET`](crate::logging::LIFECYCLE_TARGET)) for any layer: the
    /// router's log sink is off.
    pub structured_logging_enabled: bool,
    /// HTTP header carrying the correlation id. Default `"X-Correlation-ID"`.
    pub correlation_id_header: String,
    /// Minimum log level. Default [`LogLevel::Info`].
    pub log_level: LogLevel,
    /// Log line rendering. Default [`LogFormat::Json`].
    pub log_format: LogFormat,
    /// A raw `RUST_LOG`-style directive that refines `log_level` per target, taken verbatim.
    /// Default `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_filter: Option<String>,
    /// Collect metrics. Default `true`.
    pub metrics_enabled: bool,
    /// Path the metrics endpoint is mounted at. Default `"/tasker/metrics"`.
    pub metrics_endpoint: String,
    /// Metrics exposition format. Default [`MetricsFormat::Prometheus`].
    pub metrics_format: MetricsFormat,
    /// Require a bearer token on the metrics endpoint. Default `false`.
    pub metrics_auth_required: bool,
    /// The bearer token; required when `metrics_auth_required` is `true`. Never printed. Default `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_auth_token: Option<String>,
    /// Record performance events (slow operations, memory spikes). Default `true`.
    pub performance_monitoring_enabled: bool,
    /// An operation slower than this is reported as slow, in seconds. Default `1.0`.
    pub slow_query_threshold_seconds: f64,
    /// A memory increase above this is reported as a spike, in megabytes. Default `100`.
    pub memory_threshold_mb: u64,
    /// Fraction of events routed to sampled sinks, `0.0..=1.0`. Default `1.0`.
    pub event_sampling_rate: f64,
    /// Events (`"step.completed"`) or namespaces (`"observability.*"`) never routed. Default empty.
    pub filtered_events: Vec<String>,
    /// Cap on stored performance samples. Default `1000`.
    pub max_stored_samples: usize,
    /// How long metrics are kept, in hours. Default `24`.
    pub metrics_retention_hours: u64,
    /// Steps of one task the workflow runner executes at once. Default `3`.
    pub max_concurrent_steps: usize,
    /// Series one metric family may hold before new label sets fold into its `__overflow__`
    /// series. Default `10000`.
    pub metrics_cardinality_cap: usize,
    /// OTLP collector endpoint; `None` keeps spans in process. Default `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// The full OTLP traces URL, used verbatim; overrides `otlp_endpoint` + `/v1/traces`.
    /// Default `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_traces_endpoint: Option<String>,
    /// Fraction of traces sampled, `0.0..=1.0`. Default `1.0`.
    pub trace_sampling_ratio: f64,
    /// The OTLP transport for spans. Default `http/protobuf`.
    pub otlp_protocol: OtlpProtocol,
    /// The full OTLP metrics URL, used verbatim; overrides `otlp_endpoint` + `/v1/metrics`.
    /// Default `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_metrics_endpoint: Option<String>,
    /// The full OTLP logs URL, used verbatim; overrides `otlp_endpoint` + `/v1/logs`. Logs go
    /// over OTLP (besides stdout) when tasker-telemetry is built with its `otlp-logs` feature
    /// and an endpoint applies. Default `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_logs_endpoint: Option<String>,
    /// The OTLP exporters' headers, compression, timeout and TLS files, with per-signal
    /// overrides (TOML table `[otlp]`, `[otlp.traces]`, `[otlp.metrics]`, `[otlp.logs]`).
    pub otlp: OtlpOptions,
    /// More attributes of the exported resource (spans and OTLP metrics). `service.name`,
    /// `service.version` and `service.framework` always come from this configuration. Default
    /// none.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub resource_attributes: std::collections::BTreeMap<String, String>,
    /// How traces are sampled. Default [`TraceSampler::ParentBasedTraceIdRatio`] (with
    /// `trace_sampling_ratio`).
    pub trace_sampler: TraceSampler,
    /// How spans are batched for export (TOML table `[span_batch]`).
    pub span_batch: SpanBatchOptions,
    /// Milliseconds between OTLP metric pushes
    /// ([`OtlpMetricsExporter::from_config`](crate::export::OtlpMetricsExporter)). Default
    /// `60000`.
    pub metrics_export_interval_ms: u64,
    /// The longest one OTLP metrics push may take, in milliseconds; the exporter's own timeout
    /// is cut to it. Default `30000`.
    pub metrics_export_timeout_ms: u64,
}

/// How traces are sampled, as `OTEL_TRACES_SAMPLER` names the samplers. The ratio ones use
/// [`TelemetryConfig::trace_sampling_ratio`].
///
/// ```
/// use tasker_telemetry::config::TraceSampler;
///
/// assert_eq!("always_off".parse::<TraceSampler>()?, TraceSampler::AlwaysOff);
/// assert!("jaeger_remote".parse::<TraceSampler>().is_err());
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
#[non_exhaustive]
pub enum TraceSampler {
    /// Every trace.
    AlwaysOn,
    /// No trace.
    AlwaysOff,
    /// A fraction of traces, by trace id.
    TraceIdRatio,
    /// As the parent decided; a root always.
    ParentBasedAlwaysOn,
    /// As the parent decided; a root never.
    ParentBasedAlwaysOff,
    /// As the parent decided; a root by trace id ratio (the default).
    #[default]
    ParentBasedTraceIdRatio,
}

impl TraceSampler {
    /// The name `OTEL_TRACES_SAMPLER` uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AlwaysOn => "always_on",
            Self::AlwaysOff => "always_off",
            Self::TraceIdRatio => "traceidratio",
            Self::ParentBasedAlwaysOn => "parentbased_always_on",
            Self::ParentBasedAlwaysOff => "parentbased_always_off",
            Self::ParentBasedTraceIdRatio => "parentbased_traceidratio",
        }
    }
}

impl From<TraceSampler> for &'static str {
    fn from(s: TraceSampler) -> Self {
        s.as_str()
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            service_name: "tasker".to_owned(),
            service_version: env!("CARGO_PKG_VERSION").to_owned(),
            filter_parameters: DEFAULT_FILTER_PARAMETERS
                .iter()
                .map(|rule| (*rule).to_owned())
                .collect(),
            filter_mask: DEFAULT_FILTER_MASK.to_owned(),
            structured_logging_enabled: true,
            correlation_id_header: "X-Correlation-ID".to_owned(),
            log_level: LogLevel::Info,
            log_format: LogFormat::Json,
            log_filter: None,
            metrics_enabled: true,
            metrics_endpoint: "/tasker/metrics".to_owned(),
            metrics_format: MetricsFormat::Prometheus,
            metrics_auth_required: false,
            metrics_auth_token: None,
            performance_monitoring_enabled: true,
            slow_query_threshold_seconds: 1.0,
            memory_threshold_mb: 100,
            event_sampling_rate: 1.0,
            filtered_events: Vec::new(),
            max_stored_samples: 1000,
            metrics_retention_hours: 24,
            max_concurrent_steps: 3,
            metrics_cardinality_cap: 10_000,
            otlp_endpoint: None,
            otlp_traces_endpoint: None,
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            trace_sampling_ratio: 1.0,
            otlp_metrics_endpoint: None,
            otlp_logs_endpoint: None,
            otlp: OtlpOptions::default(),
            resource_attributes: std::collections::BTreeMap::new(),
            trace_sampler: TraceSampler::ParentBasedTraceIdRatio,
            span_batch: SpanBatchOptions::default(),
            metrics_export_interval_ms: 60_000,
            metrics_export_timeout_ms: 30_000,
        }
    }
}

impl fmt::Debug for TelemetryConfig {
    // Written out so the token can never reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryConfig")
            .field("enabled", &self.enabled)
            .field("service_name", &self.service_name)
            .field("service_version", &self.service_version)
            .field("filter_parameters", &self.filter_parameters)
            .field("filter_mask", &self.filter_mask)
            .field(
                "structured_logging_enabled",
                &self.structured_logging_enabled,
            )
            .field("correlation_id_header", &self.correlation_id_header)
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .field("metrics_enabled", &self.metrics_enabled)
            .field("metrics_endpoint", &self.metrics_endpoint)
            .field("metrics_format", &self.metrics_format)
            .field("metrics_auth_required", &self.metrics_auth_required)
            .field(
                "metrics_auth_token",
                &self.metrics_auth_token.as_ref().map(|_| REDACTED),
            )
            .field(
                "performance_monitoring_enabled",
                &self.performance_monitoring_enabled,
            )
            .field(
                "slow_query_threshold_seconds",
                &self.slow_query_threshold_seconds,
            )
            .field("memory_threshold_mb", &self.memory_threshold_mb)
            .field("event_sampling_rate", &self.event_sampling_rate)
            .field("filtered_events", &self.filtered_events)
            .field("max_stored_samples", &self.max_stored_samples)
            .field("metrics_retention_hours", &self.metrics_retention_hours)
            .field("max_concurrent_steps", &self.max_concurrent_steps)
            .field("metrics_cardinality_cap", &self.metrics_cardinality_cap)
            .field(
                "otlp_endpoint",
                &self.otlp_endpoint.as_deref().map(crate::redact::url),
            )
            .field(
                "otlp_traces_endpoint",
                &self.otlp_traces_endpoint.as_deref().map(crate::redact::url),
            )
            .field("trace_sampling_ratio", &self.trace_sampling_ratio)
            .field("otlp_protocol", &self.otlp_protocol)
            .field(
                "otlp_metrics_endpoint",
                &self
                    .otlp_metrics_endpoint
                    .as_deref()
                    .map(crate::redact::url),
            )
            .field(
                "otlp_logs_endpoint",
                &self.otlp_logs_endpoint.as_deref().map(crate::redact::url),
            )
            .field("otlp", &self.otlp)
            .field("resource_attributes", &self.resource_attributes)
            .field("trace_sampler", &self.trace_sampler)
            .field("span_batch", &self.span_batch)
            .field(
                "metrics_export_interval_ms",
                &self.metrics_export_interval_ms,
            )
            .field("metrics_export_timeout_ms", &self.metrics_export_timeout_ms)
            .finish()
    }
}

impl TelemetryConfig {
    /// A builder starting from Tasker's defaults.
    pub fn builder() -> TelemetryConfigBuilder {
        TelemetryConfigBuilder::default()
    }

    /// Parses and validates a TOML document; missing fields keep their defaults.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for syntax errors, wrong types and unknown fields (a typo is never
    /// silently ignored); [`ConfigError::Invalid`] when a value fails [`validate`](Self::validate).
    ///
    /// ```
    /// use tasker_telemetry::TelemetryConfig;
    ///
    /// let config = TelemetryConfig::from_toml_str("metrics_endpoint = \"/metrics\"")?;
    /// assert_eq!(config.metrics_endpoint, "/metrics");
    /// assert!(TelemetryConfig::from_toml_str("servce_name = \"x\"").is_err());
    /// # Ok::<(), tasker_telemetry::ConfigError>(())
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|error| toml_error(text, &error))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates a JSON object; missing fields keep their defaults.
    ///
    /// # Errors
    /// As [`from_toml_str`](Self::from_toml_str), with `format` `"JSON"`.
    ///
    /// ```
    /// use tasker_telemetry::TelemetryConfig;
    ///
    /// let config = TelemetryConfig::from_json_str(r#"{"max_concurrent_steps": 8}"#)?;
    /// assert_eq!(config.max_concurrent_steps, 8);
    /// # Ok::<(), tasker_telemetry::ConfigError>(())
    /// ```
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_str(text).map_err(|error| json_error(text, &error))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a `.toml` or `.json` file (extension compared case-insensitively).
    ///
    /// # Errors
    /// [`ConfigError::UnsupportedFormat`] for any other extension (checked before reading),
    /// [`ConfigError::Io`] when the file cannot be read, then as
    /// [`from_toml_str`](Self::from_toml_str), with the path in parse messages.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let extension = path
            .extension()
            .and_then(OsStr::to_str)
            .map(str::to_ascii_lowercase);
        let parse: fn(&str) -> Result<Self, ConfigError> = match extension.as_deref() {
            Some("toml") => Self::from_toml_str,
            Some("json") => Self::from_json_str,
            _ => return Err(ConfigError::UnsupportedFormat { path: shown }),
        };
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
            path: shown.clone(),
            message: error.to_string(),
        })?;
        parse(&text).map_err(|error| match error {
            ConfigError::Parse { format, message } => ConfigError::Parse {
                format,
                message: format!("{shown}: {message}"),
            },
            other => other,
        })
    }

    /// Applies the process environment (see the [module documentation](self) for the variables)
    /// on top of `self`, then validates.
    ///
    /// # Errors
    /// [`ConfigError::Env`] naming the variable when a value cannot be parsed or fails validation;
    /// [`ConfigError::Invalid`] when `self` was already invalid.
    pub fn with_env(self) -> Result<Self, ConfigError> {
        // A value that is not valid Unicode is an error, never "unset": read as unset, a
        // variable meant to switch something on would leave it at its default.
        for &(variable, field) in ENVIRONMENT_VARIABLES {
            if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(variable) {
                return Err(ConfigError::Env {
                    variable: variable.to_owned(),
                    field: field.to_owned(),
                    value: "(not valid UTF-8)".to_owned(),
                    expected: "a value in UTF-8".to_owned(),
                });
            }
        }
        self.with_env_from(|name| std::env::var(name).ok())
    }

    /// Like [`with_env`](Self::with_env), reading variables through `lookup`, so tests and hosts with
    /// their own settings source need not touch the process environment.
    ///
    /// # Errors
    /// As [`with_env`](Self::with_env).
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use tasker_telemetry::TelemetryConfig;
    ///
    /// let vars = HashMap::from([
    ///     ("TASKER_SERVICE_NAME", "from-tasker"),
    ///     ("OTEL_SERVICE_NAME", "from-otel"),
    ///     ("TASKER_METRICS_ENABLED", "no"),
    /// ]);
    /// let config = TelemetryConfig::default()
    ///     .with_env_from(|name| vars.get(name).map(|v| v.to_string()))?;
    /// assert_eq!(config.service_name, "from-otel");
    /// assert!(!config.metrics_enabled);
    ///
    /// let error = TelemetryConfig::default()
    ///     .with_env_from(|name| (name == "TASKER_ENABLED").then(|| "maybe".to_owned()))
    ///     .unwrap_err();
    /// assert_eq!(error.variable(), Some("TASKER_ENABLED"));
    /// # Ok::<(), tasker_telemetry::ConfigError>(())
    /// ```
    pub fn with_env_from<F>(mut self, lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        // Which variable last set each field, to blame it if validation fails.
        let mut sources: Vec<(&'static str, &'static str)> = Vec::new();
        for &(variable, field) in ENVIRONMENT_VARIABLES {
            let Some(raw) = lookup(variable) else {
                continue;
            };
            if self.apply_env(variable, field, &raw)? {
                sources.retain(|&(f, _)| f != field);
                sources.push((field, variable));
            }
        }
        match self.validate() {
            Ok(()) => Ok(self),
            Err(ConfigError::Invalid {
                field,
                value,
                expected,
            }) => {
                let blamed = sources.iter().find(|(f, _)| *f == field).map(|&(_, v)| v);
                Err(match blamed {
                    Some(variable) => ConfigError::Env {
                        variable: variable.to_owned(),
                        field,
                        value,
                        expected,
                    },
                    None => ConfigError::Invalid {
                        field,
                        value,
                        expected,
                    },
                })
            }
            Err(other) => Err(other),
        }
    }

    /// Sets `field` from one variable's value; `Ok(false)` when the variable is defined not to
    /// change anything (`OTEL_SDK_DISABLED=false`).
    fn apply_env(
        &mut self,
        variable: &'static str,
        field: &'static str,
        raw: &str,
    ) -> Result<bool, ConfigError> {
        let text = raw.trim();
        let env_error = |expected: &str| ConfigError::Env {
            variable: variable.to_owned(),
            field: field.to_owned(),
            value: if field == "metrics_auth_token" || field.ends_with("headers") {
                REDACTED.to_owned()
            } else if field.contains("endpoint") {
                crate::redact::url(raw)
            } else {
                raw.to_owned()
            },
            expected: expected.to_owned(),
        };
        // A typed variable that is set but blank is an error, never its default: a blank
        // `TASKER_METRICS_AUTH_REQUIRED` must not switch authentication off.
        let blank =
            |expected: &str| env_error(&format!("{expected} (the variable is set but blank)"));
        let typed = |expected: &str| {
            if text.is_empty() {
                blank(expected)
            } else {
                env_error(expected)
            }
        };
        let boolean = || parse_bool(text).ok_or_else(|| typed(EXPECTED_BOOL));
        let integer = || text.parse::<u64>().map_err(|_| typed(EXPECTED_INTEGER));
        let count = || text.parse::<usize>().map_err(|_| typed(EXPECTED_INTEGER));
        let number = |expected: &str| text.parse::<f64>().map_err(|_| typed(expected));
        // Text that is blank counts as unset, as OpenTelemetry specifies for its variables.
        let is_typed = matches!(
            field,
            "enabled"
                | "structured_logging_enabled"
                | "metrics_enabled"
                | "metrics_auth_required"
                | "performance_monitoring_enabled"
                | "slow_query_threshold_seconds"
                | "memory_threshold_mb"
                | "event_sampling_rate"
                | "max_stored_samples"
                | "metrics_retention_hours"
                | "max_concurrent_steps"
                | "metrics_cardinality_cap"
                | "trace_sampling_ratio"
        ) || field.ends_with("_ms")
            || field.starts_with("span_batch.");
        if text.is_empty() && !is_typed {
            return Ok(false);
        }
        if !cfg!(feature = "otlp-logs")
            && (field == "otlp_logs_endpoint" || field.starts_with("otlp.logs."))
        {
            return Err(env_error(
                "unset: logs are exported over OTLP only when tasker-telemetry is built with its `otlp-logs` cargo feature",
            ));
        }
        if field.starts_with("span_batch.") || field.starts_with("metrics_export_") {
            let value = text
                .parse::<u64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| typed("an integer greater than 0"))?;
            match field {
                "metrics_export_interval_ms" => self.metrics_export_interval_ms = value,
                "metrics_export_timeout_ms" => self.metrics_export_timeout_ms = value,
                _ => self.span_batch.apply(field, value),
            }
            return Ok(true);
        }
        if field.starts_with("otlp.") {
            if text.is_empty() {
                return Err(blank("a number of milliseconds greater than 0"));
            }
            self.apply_otlp_env(field, text, &env_error)?;
            return Ok(true);
        }
        let list = || {
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let reword = |error: ConfigError| match error {
            ConfigError::Invalid { expected, .. } => env_error(&expected),
            other => other,
        };
        match field {
            // `false` only means "not disabled", which must not override a file's `enabled = false`.
            "enabled" if variable == "OTEL_SDK_DISABLED" => match boolean()? {
                true => self.enabled = false,
                false => return Ok(false),
            },
            "enabled" => self.enabled = boolean()?,
            "service_name" => self.service_name = text.to_owned(),
            "service_version" => self.service_version = text.to_owned(),
            "filter_parameters" => self.filter_parameters = list(),
            // The mask is used verbatim: surrounding spaces may be intended.
            "filter_mask" => self.filter_mask = raw.to_owned(),
            "structured_logging_enabled" => self.structured_logging_enabled = boolean()?,
            "correlation_id_header" => self.correlation_id_header = text.to_owned(),
            "log_level" => self.log_level = text.parse().map_err(reword)?,
            "log_format" => self.log_format = text.parse().map_err(reword)?,
            // Directives are handed to the log filter untouched.
            "log_filter" => self.log_filter = Some(raw.to_owned()),
            "metrics_enabled" => self.metrics_enabled = boolean()?,
            "metrics_endpoint" => self.metrics_endpoint = text.to_owned(),
            "metrics_format" => self.metrics_format = text.parse().map_err(reword)?,
            "otlp_protocol" => self.otlp_protocol = text.parse().map_err(reword)?,
            "metrics_auth_required" => self.metrics_auth_required = boolean()?,
            "metrics_auth_token" => self.metrics_auth_token = Some(text.to_owned()),
            "performance_monitoring_enabled" => self.performance_monitoring_enabled = boolean()?,
            "slow_query_threshold_seconds" => {
                self.slow_query_threshold_seconds =
                    number("a finite number of seconds greater than 0")?;
            }
            "memory_threshold_mb" => self.memory_threshold_mb = integer()?,
            "event_sampling_rate" => self.event_sampling_rate = number(EXPECTED_RATIO)?,
            "filtered_events" => self.filtered_events = list(),
            "max_stored_samples" => self.max_stored_samples = count()?,
            "metrics_retention_hours" => self.metrics_retention_hours = integer()?,
            "max_concurrent_steps" => self.max_concurrent_steps = count()?,
            "metrics_cardinality_cap" => self.metrics_cardinality_cap = count()?,
            "otlp_endpoint" => self.otlp_endpoint = Some(text.to_owned()),
            "otlp_traces_endpoint" => self.otlp_traces_endpoint = Some(text.to_owned()),
            "otlp_metrics_endpoint" => self.otlp_metrics_endpoint = Some(text.to_owned()),
            "otlp_logs_endpoint" => self.otlp_logs_endpoint = Some(text.to_owned()),
            "trace_sampler" => self.trace_sampler = text.parse().map_err(reword)?,
            "resource_attributes" => {
                let attributes = otlp::parse_key_values(text).map_err(|e| env_error(&e))?;
                if let Some(name) = attributes.get("service.name") {
                    self.service_name = name.clone();
                }
                self.resource_attributes.extend(attributes);
            }
            "trace_sampling_ratio" => self.trace_sampling_ratio = number(EXPECTED_RATIO)?,
            // Every row of ENVIRONMENT_VARIABLES is matched above (a unit test applies each one).
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks every field, returning the first problem in field order.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the field, the value and what is accepted.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_service_name()?;
        self.check_service_version()?;
        self.check_filter_parameters()?;
        self.check_filter_mask()?;
        self.check_correlation_id_header()?;
        self.check_metrics_endpoint()?;
        self.check_metrics_auth_token()?;
        self.check_slow_query_threshold_seconds()?;
        self.check_memory_threshold_mb()?;
        self.check_event_sampling_rate()?;
        self.check_filtered_events()?;
        self.check_max_stored_samples()?;
        self.check_metrics_retention_hours()?;
        self.check_max_concurrent_steps()?;
        positive(
            "metrics_cardinality_cap",
            self.metrics_cardinality_cap as u64,
        )?;
        self.check_otlp_endpoint()?;
        self.check_otlp_traces_endpoint()?;
        check_url(
            "otlp_metrics_endpoint",
            self.otlp_metrics_endpoint.as_deref(),
        )?;
        check_url("otlp_logs_endpoint", self.otlp_logs_endpoint.as_deref())?;
        self.check_otlp_options()?;
        self.span_batch.check()?;
        positive(
            "metrics_export_interval_ms",
            self.metrics_export_interval_ms,
        )?;
        positive("metrics_export_timeout_ms", self.metrics_export_timeout_ms)?;
        self.check_trace_sampling_ratio()
    }

    /// The sensitive-data filter these settings describe.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for `filter_parameters` or `filter_mask`.
    ///
    /// ```
    /// use tasker_telemetry::TelemetryConfig;
    ///
    /// let filter = TelemetryConfig::default().parameter_filter()?;
    /// assert!(filter.is_sensitive_key("api_key"));
    /// # Ok::<(), tasker_telemetry::ConfigError>(())
    /// ```
    pub fn parameter_filter(&self) -> Result<ParameterFilter, ConfigError> {
        ParameterFilter::new(&self.filter_parameters, self.filter_mask.as_str())
            .map_err(|error| self.filter_error(error))
    }

    fn filter_error(&self, error: FilterError) -> ConfigError {
        const FIELD: &str = "filter_parameters";
        match error {
            FilterError::EmptyRule { index } => ConfigError::invalid(
                FIELD,
                self.filter_parameters.get(index).map_or("", String::as_str),
                format!("rule #{index} to be a non-empty key substring, dotted path or /regex/"),
            ),
            FilterError::InvalidRegex { rule, message } => ConfigError::invalid(
                FIELD,
                rule,
                format!("a valid regular expression written /pattern/ or /pattern/i ({message})"),
            ),
            FilterError::EmptyPathSegment { rule } => ConfigError::invalid(
                FIELD,
                rule,
                "a dotted path without empty segments, e.g. \"customer.card.number\"",
            ),
            FilterError::EmptyMask => ConfigError::invalid(
                "filter_mask",
                "",
                "a non-empty replacement text such as \"[FILTERED]\"",
            ),
        }
    }

    fn check_service_name(&self) -> Result<(), ConfigError> {
        let name = &self.service_name;
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                "service_name",
                name.as_str(),
                "a non-empty name without control characters",
            ));
        }
        Ok(())
    }

    fn check_service_version(&self) -> Result<(), ConfigError> {
        if self.service_version.trim().is_empty() {
            return Err(ConfigError::invalid(
                "service_version",
                self.service_version.as_str(),
                "a non-empty version, e.g. \"1.2.0\"",
            ));
        }
        Ok(())
    }

    fn check_filter_parameters(&self) -> Result<(), ConfigError> {
        // Checked with the default mask so a bad mask is reported against its own field.
        ParameterFilter::new(&self.filter_parameters, DEFAULT_FILTER_MASK)
            .map(drop)
            .map_err(|error| self.filter_error(error))
    }

    fn check_filter_mask(&self) -> Result<(), ConfigError> {
        if self.filter_mask.is_empty() {
            return Err(ConfigError::invalid(
                "filter_mask",
                "",
                "a non-empty replacement text such as \"[FILTERED]\"",
            ));
        }
        Ok(())
    }

    fn check_correlation_id_header(&self) -> Result<(), ConfigError> {
        let header = &self.correlation_id_header;
        if header.is_empty() || !header.bytes().all(is_header_token_byte) {
            return Err(ConfigError::invalid(
                "correlation_id_header",
                header.as_str(),
                "an HTTP header name: one or more of A-Z a-z 0-9 ! # $ % & ' * + - . ^ _ ` | ~",
            ));
        }
        Ok(())
    }

    fn check_metrics_endpoint(&self) -> Result<(), ConfigError> {
        let endpoint = &self.metrics_endpoint;
        let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#';
        if !endpoint.starts_with('/') || endpoint.contains(bad_char) {
            return Err(ConfigError::invalid(
                "metrics_endpoint",
                endpoint.as_str(),
                "a path starting with '/' without whitespace, '?' or '#', e.g. \"/tasker/metrics\"",
            ));
        }
        Ok(())
    }

    fn check_metrics_auth_token(&self) -> Result<(), ConfigError> {
        let present = self
            .metrics_auth_token
            .as_deref()
            .is_some_and(|token| !token.trim().is_empty());
        if self.metrics_auth_required && !present {
            let shown = match self.metrics_auth_token.as_deref() {
                None => "",
                // Blank, so nothing to hide, but keep the rule: a token is never echoed.
                Some(_) => REDACTED,
            };
            return Err(ConfigError::invalid(
                "metrics_auth_token",
                shown,
                "a non-empty token because metrics_auth_required is true",
            ));
        }
        Ok(())
    }

    fn check_slow_query_threshold_seconds(&self) -> Result<(), ConfigError> {
        let seconds = self.slow_query_threshold_seconds;
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(ConfigError::invalid(
                "slow_query_threshold_seconds",
                seconds.to_string(),
                "a finite number of seconds greater than 0",
            ));
        }
        Ok(())
    }

    fn check_memory_threshold_mb(&self) -> Result<(), ConfigError> {
        positive("memory_threshold_mb", self.memory_threshold_mb)
    }

    fn check_event_sampling_rate(&self) -> Result<(), ConfigError> {
        ratio("event_sampling_rate", self.event_sampling_rate)
    }

    fn check_filtered_events(&self) -> Result<(), ConfigError> {
        match self
            .filtered_events
            .iter()
            .find(|name| !is_event_pattern(name))
        {
            Some(bad) => Err(ConfigError::invalid(
                "filtered_events",
                bad.as_str(),
                crate::event::rules::PATTERN_GRAMMAR,
            )),
            None => Ok(()),
        }
    }

    fn check_max_stored_samples(&self) -> Result<(), ConfigError> {
        positive("max_stored_samples", self.max_stored_samples as u64)
    }

    fn check_metrics_retention_hours(&self) -> Result<(), ConfigError> {
        positive("metrics_retention_hours", self.metrics_retention_hours)
    }

    fn check_max_concurrent_steps(&self) -> Result<(), ConfigError> {
        positive("max_concurrent_steps", self.max_concurrent_steps as u64)
    }

    fn check_otlp_endpoint(&self) -> Result<(), ConfigError> {
        check_url("otlp_endpoint", self.otlp_endpoint.as_deref())
    }

    fn check_otlp_traces_endpoint(&self) -> Result<(), ConfigError> {
        check_url("otlp_traces_endpoint", self.otlp_traces_endpoint.as_deref())
    }

    /// Where spans are exported: `otlp_traces_endpoint` verbatim, else `otlp_endpoint` with
    /// `/v1/traces` appended for `http/protobuf` (as the OTLP specification says; gRPC uses the
    /// endpoint as it is), else `None` (spans stay in process).
    ///
    /// ```
    /// use tasker_telemetry::TelemetryConfig;
    ///
    /// let c = TelemetryConfig::builder().otlp_endpoint("http://collector:4318/").build()?;
    /// assert_eq!(c.traces_endpoint().as_deref(), Some("http://collector:4318/v1/traces"));
    /// # Ok::<(), tasker_telemetry::ConfigError>(())
    /// ```
    pub fn traces_endpoint(&self) -> Option<String> {
        self.exporter_settings(Signal::Traces).map(|s| s.endpoint)
    }

    /// The exported resource's attributes: `resource_attributes`, then `service.name`,
    /// `service.version` and `service.framework = tasker` from this configuration.
    ///
    /// ```
    /// use tasker_telemetry::TelemetryConfig;
    ///
    /// let vars = [("OTEL_RESOURCE_ATTRIBUTES", "service.name=shop,deployment.environment=prod%20eu")];
    /// let config = TelemetryConfig::default()
    ///     .with_env_from(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()))?;
    /// let resource = config.resource();
    /// assert!(resource.contains(&("deployment.environment".into(), "prod eu".into())));
    /// assert!(resource.contains(&("service.name".into(), "shop".into())));
    /// # Ok::<(), tasker_telemetry::ConfigError>(())
    /// ```
    pub fn resource(&self) -> Vec<(String, String)> {
        let own = [
            ("service.name", self.service_name.as_str()),
            ("service.version", self.service_version.as_str()),
            ("service.framework", "tasker"),
        ];
        let mut attributes: Vec<(String, String)> = self
            .resource_attributes
            .iter()
            .filter(|(k, _)| !own.iter().any(|(o, _)| o == k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        attributes.extend(own.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        attributes
    }
}

fn check_url(field: &'static str, endpoint: Option<&str>) -> Result<(), ConfigError> {
    {
        let Some(endpoint) = endpoint else {
            return Ok(());
        };
        let rest = strip_prefix_ignore_ascii_case(endpoint, "https://")
            .or_else(|| strip_prefix_ignore_ascii_case(endpoint, "http://"));
        let valid = rest.is_some_and(|rest| {
            !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace)
        });
        if !valid {
            return Err(ConfigError::invalid(
                field,
                endpoint,
                "an http:// or https:// URL with a host, e.g. \"http://localhost:4318\"",
            ));
        }
        Ok(())
    }
}

impl TelemetryConfig {
    fn check_trace_sampling_ratio(&self) -> Result<(), ConfigError> {
        ratio("trace_sampling_ratio", self.trace_sampling_ratio)
    }
}

fn positive(field: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(field, "0", EXPECTED_INTEGER));
    }
    Ok(())
}

fn ratio(field: &str, value: f64) -> Result<(), ConfigError> {
    if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
        return Err(ConfigError::invalid(
            field,
            value.to_string(),
            EXPECTED_RATIO,
        ));
    }
    Ok(())
}

fn parse_bool(text: &str) -> Option<bool> {
    const TRUE: &[&str] = &["true", "1", "yes"];
    const FALSE: &[&str] = &["false", "0", "no"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(text)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(text)) {
        Some(false)
    } else {
        None
    }
}

/// RFC 9110 `tchar`.
fn is_header_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn strip_prefix_ignore_ascii_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Syntax only; whether the event exists is checked against the catalog at startup.
fn is_event_pattern(name: &str) -> bool {
    crate::event::rules::parse_pattern(name).is_some()
}

/// TOML errors are reported as message plus position, never with toml's source excerpt: the
/// excerpt could be the `metrics_auth_token` line.
fn toml_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let mut message = error.message().trim_end().to_owned();
    if let Some((line, column)) = error.span().and_then(|span| line_column(text, span.start)) {
        message.push_str(&format!(" at line {line} column {column}"));
    }
    let failing = toml::from_str::<toml::Table>(text).ok().and_then(|table| {
        table.into_iter().find_map(|(key, value)| {
            let single = toml::Table::from_iter([(key.clone(), value)]);
            TelemetryConfig::deserialize(single).is_err().then_some(key)
        })
    });
    ConfigError::Parse {
        format: "TOML",
        message: name_failing_field(message, failing),
    }
}

/// serde_json's messages carry no excerpt, but they do not name the field either.
fn json_error(text: &str, error: &serde_json::Error) -> ConfigError {
    let failing = if error.is_data() {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
            .ok()
            .and_then(|object| {
                object.into_iter().find_map(|(key, value)| {
                    let single = serde_json::Map::from_iter([(key.clone(), value)]);
                    serde_json::from_value::<TelemetryConfig>(single.into())
                        .is_err()
                        .then_some(key)
                })
            })
    } else {
        None
    };
    ConfigError::Parse {
        format: "JSON",
        message: name_failing_field(error.to_string(), failing),
    }
}

/// Serde's type errors quote the value but not the field; re-deserializing field by field (only on
/// the error path) finds the field. A mistyped token gets a message without its value.
fn name_failing_field(message: String, field: Option<String>) -> String {
    match field {
        Some(field) if field == "metrics_auth_token" => {
            format!("invalid type for `metrics_auth_token` (value {REDACTED}): expected a string")
        }
        Some(field) if !message.contains(&format!("`{field}`")) => format!("`{field}`: {message}"),
        _ => message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> Option<(usize, usize)> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Some((
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    ))
}

/// Builds a [`TelemetryConfig`] from Tasker's defaults, validating on [`build`](Self::build).
///
/// ```
/// use tasker_telemetry::TelemetryConfig;
/// use tasker_telemetry::config::LogFormat;
///
/// let config = TelemetryConfig::builder()
///     .service_name("checkout")
///     .log_format(LogFormat::Pretty)
///     .filtered_events(["observability.*"])
///     .build()?;
/// assert_eq!(config.filtered_events, ["observability.*"]);
///
/// assert!(TelemetryConfig::builder().max_concurrent_steps(0).build().is_err());
/// # Ok::<(), tasker_telemetry::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct TelemetryConfigBuilder {
    config: TelemetryConfig,
}

impl From<TelemetryConfig> for TelemetryConfigBuilder {
    /// Continues from an existing configuration, e.g. one loaded from a file.
    fn from(config: TelemetryConfig) -> Self {
        Self { config }
    }
}

/// Generates one setter per field so the builder cannot fall behind the struct's documentation.
macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty => |$v:ident| $convert:expr;)+) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, $v: $ty) -> Self {
                self.config.$field = $convert;
                self
            }
        )+
    };
}

impl TelemetryConfigBuilder {
    setters! {
        /// Sets [`TelemetryConfig::enabled`].
        enabled: bool => |v| v;
        /// Sets [`TelemetryConfig::service_name`].
        service_name: impl Into<String> => |v| v.into();
        /// Sets [`TelemetryConfig::service_version`].
        service_version: impl Into<String> => |v| v.into();
        /// Replaces [`TelemetryConfig::filter_parameters`].
        filter_parameters: impl IntoIterator<Item = impl Into<String>> => |v| v.into_iter().map(Into::into).collect();
        /// Sets [`TelemetryConfig::filter_mask`].
        filter_mask: impl Into<String> => |v| v.into();
        /// Sets [`TelemetryConfig::structured_logging_enabled`].
        structured_logging_enabled: bool => |v| v;
        /// Sets [`TelemetryConfig::correlation_id_header`].
        correlation_id_header: impl Into<String> => |v| v.into();
        /// Sets [`TelemetryConfig::log_level`].
        log_level: LogLevel => |v| v;
        /// Sets [`TelemetryConfig::log_format`].
        log_format: LogFormat => |v| v;
        /// Sets [`TelemetryConfig::log_filter`].
        log_filter: impl Into<String> => |v| Some(v.into());
        /// Sets [`TelemetryConfig::metrics_enabled`].
        metrics_enabled: bool => |v| v;
        /// Sets [`TelemetryConfig::metrics_endpoint`].
        metrics_endpoint: impl Into<String> => |v| v.into();
        /// Sets [`TelemetryConfig::metrics_format`].
        metrics_format: MetricsFormat => |v| v;
        /// Sets [`TelemetryConfig::otlp_protocol`].
        otlp_protocol: OtlpProtocol => |v| v;
        /// Sets [`TelemetryConfig::metrics_auth_required`].
        metrics_auth_required: bool => |v| v;
        /// Sets [`TelemetryConfig::metrics_auth_token`].
        metrics_auth_token: impl Into<String> => |v| Some(v.into());
        /// Sets [`TelemetryConfig::performance_monitoring_enabled`].
        performance_monitoring_enabled: bool => |v| v;
        /// Sets [`TelemetryConfig::slow_query_threshold_seconds`].
        slow_query_threshold_seconds: f64 => |v| v;
        /// Sets [`TelemetryConfig::memory_threshold_mb`].
        memory_threshold_mb: u64 => |v| v;
        /// Sets [`TelemetryConfig::event_sampling_rate`].
        event_sampling_rate: f64 => |v| v;
        /// Replaces [`TelemetryConfig::filtered_events`].
        filtered_events: impl IntoIterator<Item = impl Into<String>> => |v| v.into_iter().map(Into::into).collect();
        /// Sets [`TelemetryConfig::max_stored_samples`].
        max_stored_samples: usize => |v| v;
        /// Sets [`TelemetryConfig::metrics_retention_hours`].
        metrics_retention_hours: u64 => |v| v;
        /// Sets [`TelemetryConfig::max_concurrent_steps`].
        max_concurrent_steps: usize => |v| v;
        /// Sets [`TelemetryConfig::metrics_cardinality_cap`].
        metrics_cardinality_cap: usize => |v| v;
        /// Sets [`TelemetryConfig::otlp_endpoint`].
        otlp_endpoint: impl Into<String> => |v| Some(v.into());
        /// Sets [`TelemetryConfig::otlp_traces_endpoint`].
        otlp_traces_endpoint: impl Into<String> => |v| Some(v.into());
        /// Sets [`TelemetryConfig::trace_sampling_ratio`].
        trace_sampling_ratio: f64 => |v| v;
        /// Sets [`TelemetryConfig::otlp_metrics_endpoint`].
        otlp_metrics_endpoint: impl Into<String> => |v| Some(v.into());
        /// Sets [`TelemetryConfig::otlp_logs_endpoint`].
        otlp_logs_endpoint: impl Into<String> => |v| Some(v.into());
        /// Replaces [`TelemetryConfig::otlp`] (headers, compression, timeout, TLS files).
        otlp: OtlpOptions => |v| v;
        /// Replaces [`TelemetryConfig::resource_attributes`].
        resource_attributes: impl IntoIterator<Item = (String, String)> => |v| v.into_iter().collect();
        /// Sets [`TelemetryConfig::trace_sampler`].
        trace_sampler: TraceSampler => |v| v;
        /// Replaces [`TelemetryConfig::span_batch`].
        span_batch: SpanBatchOptions => |v| v;
        /// Sets [`TelemetryConfig::metrics_export_interval_ms`].
        metrics_export_interval_ms: u64 => |v| v;
        /// Sets [`TelemetryConfig::metrics_export_timeout_ms`].
        metrics_export_timeout_ms: u64 => |v| v;
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] as from [`TelemetryConfig::validate`].
    pub fn build(self) -> Result<TelemetryConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    /// Asserts `config` fails validation on exactly `field`.
    fn assert_rejects(config: TelemetryConfig, field: &str) {
        let error = config.validate().expect_err(field);
        assert_eq!(error.field(), Some(field), "{error}");
        assert!(matches!(error, ConfigError::Invalid { .. }), "{error:?}");
        assert!(error.to_string().contains(field), "{error}");
        assert!(error.to_string().contains("expected"), "{error}");
    }

    #[test]
    fn defaults_are_taskers() {
        let c = TelemetryConfig::default();
        assert!(c.enabled);
        assert_eq!(c.service_name, "tasker");
        assert_eq!(c.service_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(
            c.filter_parameters,
            [
                "passw",
                "email",
                "secret",
                "token",
                "_key",
                "crypt",
                "salt",
                "certificate",
                "otp",
                "ssn"
            ]
        );
        assert_eq!(c.filter_mask, "[FILTERED]");
        assert!(c.structured_logging_enabled);
        assert_eq!(c.correlation_id_header, "X-Correlation-ID");
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.log_filter, None);
        assert!(c.metrics_enabled);
        assert_eq!(c.metrics_endpoint, "/tasker/metrics");
        assert_eq!(c.metrics_format, MetricsFormat::Prometheus);
        assert!(!c.metrics_auth_required);
        assert_eq!(c.metrics_auth_token, None);
        assert!(c.performance_monitoring_enabled);
        assert_eq!(c.slow_query_threshold_seconds, 1.0);
        assert_eq!(c.memory_threshold_mb, 100);
        assert_eq!(c.event_sampling_rate, 1.0);
        assert!(c.filtered_events.is_empty());
        assert_eq!(c.max_stored_samples, 1000);
        assert_eq!(c.metrics_retention_hours, 24);
        assert_eq!(c.max_concurrent_steps, 3);
        assert_eq!(c.otlp_endpoint, None);
        assert_eq!(c.trace_sampling_ratio, 1.0);
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(TelemetryConfig::from_toml_str("").unwrap(), c);
        assert_eq!(TelemetryConfig::from_json_str("{}").unwrap(), c);
    }

    // One test per validation rule.

    #[test]
    fn rule_service_name() {
        for bad in ["", "  ", "svc\nname"] {
            assert_rejects(
                TelemetryConfig {
                    service_name: bad.into(),
                    ..Default::default()
                },
                "service_name",
            );
        }
    }

    #[test]
    fn rule_service_version() {
        assert_rejects(
            TelemetryConfig {
                service_version: String::new(),
                ..Default::default()
            },
            "service_version",
        );
    }

    #[test]
    fn rule_filter_parameters() {
        for (rules, shown) in [
            (vec!["token", "/api[/"], "/api[/"),
            (vec![""], ""),
            (vec!["a..b"], "a..b"),
        ] {
            let config = TelemetryConfig {
                filter_parameters: rules.iter().map(|r| (*r).to_owned()).collect(),
                ..Default::default()
            };
            assert_rejects(config.clone(), "filter_parameters");
            let error = config.validate().unwrap_err();
            assert!(error.to_string().contains(&format!("{shown:?}")), "{error}");
            assert_eq!(
                config.parameter_filter().unwrap_err().field(),
                Some("filter_parameters")
            );
        }
    }

    #[test]
    fn rule_filter_mask() {
        let config = TelemetryConfig {
            filter_mask: String::new(),
            ..Default::default()
        };
        assert_rejects(config.clone(), "filter_mask");
        assert_eq!(
            config.parameter_filter().unwrap_err().field(),
            Some("filter_mask")
        );
    }

    #[test]
    fn rule_correlation_id_header() {
        for bad in ["", "X Correlation", "X-Corr:ID", "Ümlaut"] {
            assert_rejects(
                TelemetryConfig {
                    correlation_id_header: bad.into(),
                    ..Default::default()
                },
                "correlation_id_header",
            );
        }
    }

    #[test]
    fn rule_log_level() {
        let error = "verbose".parse::<LogLevel>().unwrap_err();
        assert_eq!(error.field(), Some("log_level"));
        for (text, level) in [
            ("TRACE", LogLevel::Trace),
            ("Debug", LogLevel::Debug),
            (" warn", LogLevel::Warn),
            ("error", LogLevel::Error),
            ("off", LogLevel::Off),
        ] {
            assert_eq!(text.parse::<LogLevel>(), Ok(level));
        }
        let error = TelemetryConfig::from_toml_str("log_level = \"loud\"").unwrap_err();
        assert!(error.to_string().contains("trace, debug"), "{error}");
    }

    #[test]
    fn rule_metrics_endpoint() {
        for bad in ["metrics", "/a b", "/m?x=1", "/m#frag", ""] {
            assert_rejects(
                TelemetryConfig {
                    metrics_endpoint: bad.into(),
                    ..Default::default()
                },
                "metrics_endpoint",
            );
        }
    }

    #[test]
    fn rule_metrics_auth_token() {
        assert_rejects(
            TelemetryConfig {
                metrics_auth_required: true,
                ..Default::default()
            },
            "metrics_auth_token",
        );
        let blank = TelemetryConfig {
            metrics_auth_required: true,
            metrics_auth_token: Some("   ".into()),
            ..Default::default()
        };
        assert_rejects(blank.clone(), "metrics_auth_token");
        assert!(
            blank
                .validate()
                .unwrap_err()
                .to_string()
                .contains("[FILTERED]")
        );
        let ok = TelemetryConfig {
            metrics_auth_required: true,
            metrics_auth_token: Some("s3cret".into()),
            ..Default::default()
        };
        assert_eq!(ok.validate(), Ok(()));
    }

    #[test]
    fn rule_slow_query_threshold_seconds() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_rejects(
                TelemetryConfig {
                    slow_query_threshold_seconds: bad,
                    ..Default::default()
                },
                "slow_query_threshold_seconds",
            );
        }
    }

    #[test]
    fn rule_memory_threshold_mb() {
        assert_rejects(
            TelemetryConfig {
                memory_threshold_mb: 0,
                ..Default::default()
            },
            "memory_threshold_mb",
        );
    }

    #[test]
    fn rule_event_sampling_rate() {
        for bad in [-0.1, 1.01, f64::NAN] {
            assert_rejects(
                TelemetryConfig {
                    event_sampling_rate: bad,
                    ..Default::default()
                },
                "event_sampling_rate",
            );
        }
        assert_eq!(
            TelemetryConfig {
                event_sampling_rate: 0.0,
                ..Default::default()
            }
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn rule_filtered_events() {
        // The grammar is the event-name rules' (event/rules.rs), the same as the catalog's:
        // case and '-' are allowed, as in custom event names; whether a name exists is
        // checked by Telemetry::new.
        for bad in [
            "",
            "task",
            "task..x",
            ".x",
            "task.*.x",
            "*.task",
            "task.com pleted",
        ] {
            assert_rejects(
                TelemetryConfig {
                    filtered_events: vec![bad.into()],
                    ..Default::default()
                },
                "filtered_events",
            );
        }
        let ok = TelemetryConfig {
            filtered_events: vec![
                "task.completed".into(),
                "observability.*".into(),
                "observability.step.*".into(),
                "tasker.telemetry.export_2".into(),
                "orders.Fraud-Flagged".into(),
                "*".into(),
            ],
            ..Default::default()
        };
        assert_eq!(ok.validate(), Ok(()));
    }

    #[test]
    fn rule_max_stored_samples() {
        assert_rejects(
            TelemetryConfig {
                max_stored_samples: 0,
                ..Default::default()
            },
            "max_stored_samples",
        );
    }

    #[test]
    fn rule_metrics_retention_hours() {
        assert_rejects(
            TelemetryConfig {
                metrics_retention_hours: 0,
                ..Default::default()
            },
            "metrics_retention_hours",
        );
    }

    #[test]
    fn rule_max_concurrent_steps() {
        assert_rejects(
            TelemetryConfig {
                max_concurrent_steps: 0,
                ..Default::default()
            },
            "max_concurrent_steps",
        );
    }

    #[test]
    fn rule_otlp_endpoint() {
        for bad in [
            "localhost:4317",
            "grpc://x",
            "http://",
            "https:///path",
            "http://a b",
        ] {
            assert_rejects(
                TelemetryConfig {
                    otlp_endpoint: Some(bad.into()),
                    ..Default::default()
                },
                "otlp_endpoint",
            );
        }
        for ok in ["http://localhost:4318", "HTTPS://collector.example.com/v1"] {
            assert_eq!(
                TelemetryConfig {
                    otlp_endpoint: Some(ok.into()),
                    ..Default::default()
                }
                .validate(),
                Ok(())
            );
        }
    }

    #[test]
    fn rule_trace_sampling_ratio() {
        for bad in [-1.0, 2.0, f64::INFINITY] {
            assert_rejects(
                TelemetryConfig {
                    trace_sampling_ratio: bad,
                    ..Default::default()
                },
                "trace_sampling_ratio",
            );
        }
    }

    #[test]
    fn env_overrides_file_values() {
        let file = TelemetryConfig::from_toml_str(
            r#"
            service_name = "from-file"
            log_format = "pretty"
            max_concurrent_steps = 5
            metrics_enabled = true
            "#,
        )
        .unwrap();
        let config = file
            .with_env_from(env(&[
                ("OTEL_SERVICE_NAME", "from-env"),
                ("TASKER_LOG_FORMAT", "LOGFMT"),
                ("TASKER_MAX_CONCURRENT_STEPS", " 9 "),
                ("TASKER_METRICS_ENABLED", "No"),
                (
                    "TASKER_FILTERED_EVENTS",
                    "task.completed, observability.* ,",
                ),
                ("TASKER_FILTER_PARAMETERS", "passw,/^api[-_]?key$/i"),
                ("RUST_LOG", "tasker=debug,hyper=warn"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
                ("TASKER_SERVICE_VERSION", ""), // empty counts as unset
            ]))
            .unwrap();
        assert_eq!(config.service_name, "from-env");
        assert_eq!(config.log_format, LogFormat::Logfmt);
        assert_eq!(config.max_concurrent_steps, 9);
        assert!(!config.metrics_enabled);
        assert_eq!(
            config.filtered_events,
            ["task.completed", "observability.*"]
        );
        assert_eq!(config.filter_parameters, ["passw", "/^api[-_]?key$/i"]);
        assert_eq!(
            config.log_filter.as_deref(),
            Some("tasker=debug,hyper=warn")
        );
        assert_eq!(
            config.otlp_endpoint.as_deref(),
            Some("http://collector:4318")
        );
        assert_eq!(config.trace_sampling_ratio, 0.25);
        assert_eq!(config.service_version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn otel_service_name_beats_tasker_service_name() {
        let config = TelemetryConfig::default()
            .with_env_from(env(&[
                ("TASKER_SERVICE_NAME", "tasker-name"),
                ("OTEL_SERVICE_NAME", "otel-name"),
            ]))
            .unwrap();
        assert_eq!(config.service_name, "otel-name");
        let only_tasker = TelemetryConfig::default()
            .with_env_from(env(&[("TASKER_SERVICE_NAME", "tasker-name")]))
            .unwrap();
        assert_eq!(only_tasker.service_name, "tasker-name");
    }

    #[test]
    fn otel_sdk_disabled() {
        let off = TelemetryConfig::default()
            .with_env_from(env(&[
                ("TASKER_ENABLED", "true"),
                ("OTEL_SDK_DISABLED", "TRUE"),
            ]))
            .unwrap();
        assert!(!off.enabled);
        let untouched = TelemetryConfig {
            enabled: false,
            ..Default::default()
        }
        .with_env_from(env(&[("OTEL_SDK_DISABLED", "false")]))
        .unwrap();
        assert!(!untouched.enabled);
    }

    #[test]
    fn bad_env_bool_names_the_variable() {
        let error = TelemetryConfig::default()
            .with_env_from(env(&[("TASKER_METRICS_AUTH_REQUIRED", "sometimes")]))
            .unwrap_err();
        assert_eq!(
            error,
            ConfigError::Env {
                variable: "TASKER_METRICS_AUTH_REQUIRED".into(),
                field: "metrics_auth_required".into(),
                value: "sometimes".into(),
                expected: EXPECTED_BOOL.into(),
            }
        );
        let text = error.to_string();
        assert!(
            text.contains("TASKER_METRICS_AUTH_REQUIRED")
                && text.contains("sometimes")
                && text.contains("yes")
        );
    }

    #[test]
    fn env_values_failing_validation_blame_the_variable() {
        let cases = [
            ("TASKER_LOG_LEVEL", "verbose", "log_level"),
            ("TASKER_LOG_FORMAT", "xml", "log_format"),
            ("TASKER_MAX_STORED_SAMPLES", "-3", "max_stored_samples"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5", "trace_sampling_ratio"),
            ("TASKER_EVENT_SAMPLING_RATE", "half", "event_sampling_rate"),
            ("TASKER_FILTER_PARAMETERS", "token,/[/", "filter_parameters"),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "collector:4317",
                "otlp_endpoint",
            ),
        ];
        for (variable, value, field) in cases {
            let error = TelemetryConfig::default()
                .with_env_from(env(&[(variable, value)]))
                .unwrap_err();
            assert_eq!(error.variable(), Some(variable), "{error}");
            assert_eq!(error.field(), Some(field), "{error}");
        }
    }

    #[test]
    fn every_environment_variable_is_applied_and_documented() {
        let source = include_str!("config.rs");
        // The TLS variables name a file that must exist (its PEM is read when exporting).
        let pem_path =
            std::env::temp_dir().join(format!("tasker-config-{}.pem", std::process::id()));
        std::fs::write(&pem_path, "not read by validation").unwrap();
        let pem = pem_path.display().to_string();
        fn leak(s: String) -> &'static str {
            Box::leak(s.into_boxed_str())
        }
        for &(variable, field) in ENVIRONMENT_VARIABLES {
            let value = match field {
                "enabled" if variable == "OTEL_SDK_DISABLED" => "true",
                "enabled"
                | "structured_logging_enabled"
                | "metrics_enabled"
                | "performance_monitoring_enabled" => "false",
                "metrics_auth_required" => "true",
                "filter_parameters" => "passw,card.number",
                "log_format" => "compact",
                "metrics_format" => "csv",
                "otlp_protocol" => "grpc",
                "slow_query_threshold_seconds" => "2.5",
                "event_sampling_rate" | "trace_sampling_ratio" => "0.5",
                "filtered_events" => "task.completed",
                "memory_threshold_mb"
                | "max_stored_samples"
                | "metrics_retention_hours"
                | "max_concurrent_steps"
                | "metrics_cardinality_cap" => "7",
                "otlp_endpoint"
                | "otlp_traces_endpoint"
                | "otlp_metrics_endpoint"
                | "otlp_logs_endpoint" => "https://collector:4318",
                "otlp.traces.protocol" | "otlp.logs.protocol" => "grpc",
                "resource_attributes" => "deployment.environment=prod",
                "span_batch.max_queue_size" => "8192",
                f if f.starts_with("span_batch.") || f.starts_with("metrics_export_") => "64",
                "trace_sampler" => "always_off",
                "otlp.metrics.protocol" => "http/protobuf",
                f if f.ends_with("headers") => "x-api-key=k%3Dv",
                f if f.ends_with("compression") => "gzip",
                f if f.ends_with("timeout_ms") => "1500",
                f if f.ends_with("certificate") || f.ends_with("client_key") => pem.as_str(),
                "metrics_endpoint" => "/m",
                "log_level" => "debug",
                "correlation_id_header" => "X-Request-ID",
                _ => "changed",
            };
            let mut vars = vec![(variable, value)];
            if field == "metrics_auth_required" {
                vars.push(("TASKER_METRICS_AUTH_TOKEN", "t"));
            }
            // A client certificate and its key go together.
            let partner = [
                ("CLIENT_CERTIFICATE", "CLIENT_KEY"),
                ("CLIENT_KEY", "CLIENT_CERTIFICATE"),
            ]
            .into_iter()
            .find_map(|(own, other)| Some((variable.strip_suffix(own)?, other)));
            if let Some((prefix, other)) = partner {
                vars.push((leak(format!("{prefix}{other}")), pem.as_str()));
            }
            if !cfg!(feature = "otlp-logs")
                && (field == "otlp_logs_endpoint" || field.starts_with("otlp.logs."))
            {
                let error = TelemetryConfig::default()
                    .with_env_from(env(&vars))
                    .unwrap_err();
                assert!(error.to_string().contains("otlp-logs"), "{error}");
                // The variable itself, or the client certificate's key that goes with it.
                let named = error.variable().unwrap_or_default();
                assert!(named.starts_with("OTEL_EXPORTER_OTLP_LOGS_"), "{error}");
                assert!(source.contains(&format!("| `{variable}` | `{field}` |")));
                continue;
            }
            let config = TelemetryConfig::default()
                .with_env_from(env(&vars))
                .unwrap();
            assert_ne!(
                config,
                TelemetryConfig::default(),
                "{variable} changed nothing"
            );
            assert!(
                source.contains(&format!("| `{variable}` | `{field}` |")),
                "{variable} missing from the docs table"
            );
        }
    }

    #[test]
    fn a_blank_boolean_or_number_is_an_error_and_blank_text_is_unset() {
        for (variable, field) in [
            ("TASKER_METRICS_AUTH_REQUIRED", "metrics_auth_required"),
            ("TASKER_ENABLED", "enabled"),
            ("TASKER_MAX_CONCURRENT_STEPS", "max_concurrent_steps"),
            ("OTEL_TRACES_SAMPLER_ARG", "trace_sampling_ratio"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "otlp.timeout_ms"),
        ] {
            for blank in ["", "  "] {
                let error = TelemetryConfig::default()
                    .with_env_from(env(&[(variable, blank)]))
                    .unwrap_err();
                assert_eq!(error.variable(), Some(variable), "{error}");
                assert_eq!(error.field(), Some(field), "{error}");
                assert!(error.to_string().contains("blank"), "{error}");
            }
        }
        let config = TelemetryConfig::default()
            .with_env_from(env(&[
                ("TASKER_SERVICE_NAME", " "),
                ("OTEL_EXPORTER_OTLP_HEADERS", ""),
            ]))
            .unwrap();
        assert_eq!(config, TelemetryConfig::default());
    }

    #[test]
    fn a_malformed_header_list_names_the_variable_and_hides_the_values() {
        let error = TelemetryConfig::default()
            .with_env_from(env(&[(
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "x-api-key:s3cret",
            )]))
            .unwrap_err();
        assert_eq!(error.variable(), Some("OTEL_EXPORTER_OTLP_TRACES_HEADERS"));
        assert!(error.to_string().contains("key=value"), "{error}");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        let error = TelemetryConfig::default()
            .with_env_from(env(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")]))
            .unwrap_err();
        assert!(error.to_string().contains("none, gzip"), "{error}");
        let error = TelemetryConfig::default()
            .with_env_from(env(&[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")]))
            .unwrap_err();
        assert_eq!(
            error.variable(),
            Some("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"),
            "{error}"
        );
    }

    #[test]
    fn the_processor_and_reader_timeouts_cap_the_exporters() {
        let config = TelemetryConfig::default()
            .with_env_from(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_BSP_EXPORT_TIMEOUT", "2000"),
                ("OTEL_METRIC_EXPORT_TIMEOUT", "60000"),
            ]))
            .unwrap();
        let traces = config.exporter_settings(Signal::Traces).unwrap();
        let metrics = config.exporter_settings(Signal::Metrics).unwrap();
        assert_eq!(traces.timeout.as_millis(), 2000);
        assert_eq!(
            metrics.timeout.as_millis(),
            10_000,
            "the exporter's own is shorter"
        );
        assert_eq!(metrics.endpoint, "http://collector:4318/v1/metrics");
        let error = TelemetryConfig::default()
            .with_env_from(env(&[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5000")]))
            .unwrap_err();
        assert_eq!(
            error.field(),
            Some("span_batch.max_export_batch_size"),
            "{error}"
        );
        assert_eq!(
            error.variable(),
            Some("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
            "{error}"
        );
    }

    #[test]
    fn the_readme_lists_the_same_variables_as_the_module_docs() {
        let rows = |text: &str, prefix: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix(prefix))
                .filter(|l| l.starts_with("| `"))
                .map(str::to_owned)
                .collect()
        };
        let docs = rows(include_str!("config.rs"), "//! ");
        let readme = rows(include_str!("../../README.md"), "");
        // Rows whose first cell is a variable's name.
        let is_variable = |row: &String| {
            row[3..]
                .split('`')
                .next()
                .is_some_and(|name| name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        };
        let readme: Vec<String> = readme.into_iter().filter(is_variable).collect();
        assert_eq!(
            docs, readme,
            "copy the module's variable table into README.md"
        );
    }

    #[test]
    fn secrets_never_printed() {
        let config = TelemetryConfig::builder()
            .metrics_auth_required(true)
            .metrics_auth_token("s3cret-value")
            .build()
            .unwrap();
        let debug = format!(
            "{config:?} {:?}",
            TelemetryConfig::builder().metrics_auth_token("s3cret-value")
        );
        assert!(!debug.contains("s3cret-value"), "{debug}");
        assert!(debug.contains("[FILTERED]"));

        let toml_error =
            TelemetryConfig::from_toml_str("metrics_auth_token = 12345678").unwrap_err();
        assert!(!toml_error.to_string().contains("12345678"), "{toml_error}");
        let unterminated =
            TelemetryConfig::from_toml_str("metrics_auth_token = \"s3cret-value").unwrap_err();
        assert!(
            !unterminated.to_string().contains("s3cret-value"),
            "{unterminated}"
        );
        let json_error =
            TelemetryConfig::from_json_str(r#"{"metrics_auth_token": 12345678}"#).unwrap_err();
        assert!(!json_error.to_string().contains("12345678"), "{json_error}");
    }

    #[test]
    fn toml_and_json_round_trip() {
        let config = TelemetryConfig::builder()
            .enabled(false)
            .service_name("svc")
            .service_version("9.9.9")
            .filter_parameters(["passw", "customer.card", "/^k$/i"])
            .filter_mask("***")
            .structured_logging_enabled(false)
            .correlation_id_header("X-Request-ID")
            .log_level(LogLevel::Debug)
            .log_format(LogFormat::Compact)
            .log_filter("tasker=trace")
            .metrics_enabled(false)
            .metrics_endpoint("/metrics")
            .metrics_format(MetricsFormat::Csv)
            .metrics_auth_required(true)
            .metrics_auth_token("tok")
            .performance_monitoring_enabled(false)
            .slow_query_threshold_seconds(0.5)
            .memory_threshold_mb(256)
            .event_sampling_rate(0.1)
            .filtered_events(["step.handle", "observability.*"])
            .max_stored_samples(10)
            .metrics_retention_hours(48)
            .max_concurrent_steps(8)
            .otlp_endpoint("http://localhost:4318")
            .trace_sampling_ratio(0.5)
            .build()
            .unwrap();

        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(TelemetryConfig::from_json_str(&json).unwrap(), config);

        // Without toml's `display` feature there is no text writer; round-trip through its data model.
        let value = toml::Value::try_from(&config).unwrap();
        assert_eq!(value.try_into::<TelemetryConfig>().unwrap(), config);

        {
            let defaults = TelemetryConfig::default();
            let json = serde_json::to_string(&defaults).unwrap();
            assert!(!json.contains("null"), "{json}");
            assert_eq!(TelemetryConfig::from_json_str(&json).unwrap(), defaults);
            let value = toml::Value::try_from(&defaults).unwrap();
            assert_eq!(value.try_into::<TelemetryConfig>().unwrap(), defaults);
        }
    }

    #[test]
    fn toml_text_with_every_kind_of_value() {
        let config = TelemetryConfig::from_toml_str(
            r#"
            enabled = false
            log_format = "Logfmt"
            metrics_format = "json"
            slow_query_threshold_seconds = 2
            filtered_events = ["task.completed"]
            otlp_endpoint = "https://collector:4318"
            "#,
        )
        .unwrap();
        assert!(!config.enabled);
        assert_eq!(config.log_format, LogFormat::Logfmt);
        assert_eq!(config.metrics_format, MetricsFormat::Json);
        assert_eq!(config.slow_query_threshold_seconds, 2.0);
        assert_eq!(
            config.otlp_endpoint.as_deref(),
            Some("https://collector:4318")
        );
    }

    #[test]
    fn unknown_field_rejected() {
        let toml =
            TelemetryConfig::from_toml_str("enabled = true\nservce_name = \"x\"").unwrap_err();
        assert!(
            matches!(toml, ConfigError::Parse { format: "TOML", .. }),
            "{toml:?}"
        );
        assert!(toml.to_string().contains("servce_name"), "{toml}");
        assert!(toml.to_string().contains("line 2"), "{toml}");
        let json = TelemetryConfig::from_json_str(r#"{"servce_name": "x"}"#).unwrap_err();
        assert!(
            matches!(json, ConfigError::Parse { format: "JSON", .. }),
            "{json:?}"
        );
        assert!(json.to_string().contains("servce_name"), "{json}");
    }

    #[test]
    fn parsed_values_are_validated() {
        let error = TelemetryConfig::from_toml_str("max_concurrent_steps = 0").unwrap_err();
        assert_eq!(error.field(), Some("max_concurrent_steps"));
        let error = TelemetryConfig::from_json_str(r#"{"log_format": "xml"}"#).unwrap_err();
        assert!(
            error.to_string().contains("json, pretty, logfmt, compact"),
            "{error}"
        );
        let error = TelemetryConfig::from_toml_str("max_concurrent_steps = -1").unwrap_err();
        assert!(matches!(error, ConfigError::Parse { .. }), "{error:?}");
    }

    #[test]
    fn type_errors_name_the_field() {
        let toml = TelemetryConfig::from_toml_str("enabled = true\nmax_concurrent_steps = \"x\"")
            .unwrap_err();
        let text = toml.to_string();
        assert!(
            text.contains("`max_concurrent_steps`") && text.contains("line 2"),
            "{text}"
        );
        let json = TelemetryConfig::from_json_str("{\"enabled\": true,\n \"metrics_enabled\": 3}")
            .unwrap_err();
        let text = json.to_string();
        assert!(
            text.contains("`metrics_enabled`") && text.contains("line 2"),
            "{text}"
        );
    }

    #[test]
    fn from_path_by_extension() {
        let dir =
            std::env::temp_dir().join(format!("tasker-telemetry-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml_path = dir.join("telemetry.TOML");
        std::fs::write(&toml_path, "service_name = \"from-toml\"").unwrap();
        let json_path = dir.join("telemetry.json");
        std::fs::write(&json_path, r#"{"service_name": "from-json"}"#).unwrap();
        let bad_path = dir.join("telemetry.json5");
        std::fs::write(&bad_path, "{}").unwrap();
        let broken = dir.join("broken.json");
        std::fs::write(&broken, "{").unwrap();

        assert_eq!(
            TelemetryConfig::from_path(&toml_path).unwrap().service_name,
            "from-toml"
        );
        assert_eq!(
            TelemetryConfig::from_path(&json_path).unwrap().service_name,
            "from-json"
        );
        assert!(matches!(
            TelemetryConfig::from_path(&bad_path),
            Err(ConfigError::UnsupportedFormat { .. })
        ));
        assert!(matches!(
            TelemetryConfig::from_path(dir.join("missing.toml")),
            Err(ConfigError::Io { .. })
        ));
        let error = TelemetryConfig::from_path(&broken).unwrap_err();
        assert!(error.to_string().contains("broken.json"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn builder_happy_and_failing_paths() {
        let config = TelemetryConfig::builder()
            .service_name("checkout")
            .metrics_format(MetricsFormat::Json)
            .max_concurrent_steps(10)
            .build()
            .unwrap();
        assert_eq!(config.service_name, "checkout");
        assert_eq!(config.metrics_format, MetricsFormat::Json);
        assert_eq!(config.max_concurrent_steps, 10);
        assert_eq!(config.log_level, LogLevel::Info);
        let error = TelemetryConfig::builder()
            .metrics_auth_required(true)
            .build()
            .unwrap_err();
        assert_eq!(error.field(), Some("metrics_auth_token"));

        let again = TelemetryConfigBuilder::from(config.clone())
            .build()
            .unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn enums_parse_and_display() {
        for format in [
            LogFormat::Json,
            LogFormat::Pretty,
            LogFormat::Logfmt,
            LogFormat::Compact,
        ] {
            assert_eq!(format.to_string().parse::<LogFormat>().unwrap(), format);
            assert_eq!(
                serde_json::to_string(&format).unwrap(),
                format!("\"{format}\"")
            );
        }
        for format in [
            MetricsFormat::Prometheus,
            MetricsFormat::Json,
            MetricsFormat::Csv,
        ] {
            assert_eq!(
                format
                    .to_string()
                    .to_uppercase()
                    .parse::<MetricsFormat>()
                    .unwrap(),
                format
            );
            assert_eq!(
                serde_json::to_string(&format).unwrap(),
                format!("\"{format}\"")
            );
        }
        let error = "yaml".parse::<LogFormat>().unwrap_err();
        assert_eq!(error.field(), Some("log_format"));
        assert!(
            error
                .to_string()
                .contains("one of json, pretty, logfmt, compact"),
            "{error}"
        );
        assert!(
            "xml"
                .parse::<MetricsFormat>()
                .unwrap_err()
                .to_string()
                .contains("one of prometheus, json, csv")
        );
    }
}
