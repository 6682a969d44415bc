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
//! Each variable is declared with its option, in the one table of options this module's source
//! holds; the table below is generated from it (`UPDATE_DOCS=1 cargo test -p tasker-telemetry
//! --lib config` rewrites it here and in the README), and a test fails when either copy differs.
//!
//! | Variable | Field | Notes |
//! |----------|-------|-------|
//! | `TASKER_ENABLED` | `enabled` | boolean |
//! | `OTEL_SDK_DISABLED` | `enabled` | `true` disables telemetry; `false` leaves `enabled` as it was |
//! | `TASKER_SERVICE_NAME` | `service_name` | |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `service_name` | its `service.name`, when it has one; wins over `TASKER_SERVICE_NAME` |
//! | `OTEL_SERVICE_NAME` | `service_name` | wins over `TASKER_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` |
//! | `TASKER_SERVICE_VERSION` | `service_version` | |
//! | `TASKER_FILTER_PARAMETERS` | `filter_parameters` | comma-separated rules |
//! | `TASKER_FILTER_MASK` | `filter_mask` | verbatim |
//! | `TASKER_FILTER_VALUE_DETECTORS` | `filter_value_detectors` | comma-separated names: `all`, `none`, `email`, `url_credentials`, `bearer_token`, `jwt`, `aws_access_key_id`, `stripe_key`, `github_token`, `slack_token`, `card_number`, `key_value` |
//! | `TASKER_FILTER_VALUE_PATTERNS` | `filter_value_patterns` | whitespace-separated regular expressions (write a space inside one as `\s` or `\x20`) |
//! | `TASKER_STRUCTURED_LOGGING_ENABLED` | `structured_logging_enabled` | boolean |
//! | `TASKER_CORRELATION_ID_HEADER` | `correlation_id_header` | |
//! | `TASKER_LOG_LEVEL` | `log_level` | `trace`, `debug`, `info`, `warn`, `error` or `off` |
//! | `TASKER_LOG_FORMAT` | `log_format` | `json`, `pretty`, `logfmt` or `compact` |
//! | `TASKER_LOG_FILTER` | `log_filter` | a `RUST_LOG`-style directive, verbatim |
//! | `RUST_LOG` | `log_filter` | verbatim; wins over `TASKER_LOG_FILTER` |
//! | `TASKER_METRICS_ENABLED` | `metrics_enabled` | boolean |
//! | `TASKER_METRICS_EXEMPLARS_ENABLED` | `metrics_exemplars_enabled` | boolean |
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
//! | `TASKER_SPAN_STORE_TASKS` | `span_store_tasks` | integer, 0 (none) to 100000 |
//! | `TASKER_OTLP_ENDPOINT` | `otlp_endpoint` | `http://` or `https://` URL |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | `otlp_endpoint` | wins over `TASKER_OTLP_ENDPOINT`; spans go to `<endpoint>/v1/traces` |
//! | `TASKER_OTLP_TRACES_ENDPOINT` | `otlp_traces_endpoint` | the full traces URL, used verbatim |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | `otlp_traces_endpoint` | wins over `TASKER_OTLP_TRACES_ENDPOINT` and over `otlp_endpoint` |
//! | `TASKER_TRACE_SAMPLING_RATIO` | `trace_sampling_ratio` | number in 0.0..=1.0 |
//! | `OTEL_TRACES_SAMPLER_ARG` | `trace_sampling_ratio` | wins over `TASKER_TRACE_SAMPLING_RATIO` |
//! | `TASKER_OTLP_PROTOCOL` | `otlp_protocol` | `http/protobuf` or `grpc` |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `otlp_protocol` | wins over `TASKER_OTLP_PROTOCOL` |
//! | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` | `otlp_metrics_endpoint` | the full metrics URL, used verbatim; wins over `otlp_endpoint` |
//! | `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` | `otlp_logs_endpoint` | the full logs URL, used verbatim; wins over `otlp_endpoint` (cargo feature `otlp-logs`) |
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
//! | `OTEL_EXPORTER_OTLP_LOGS_PROTOCOL` | `otlp.logs.protocol` | for logs; wins over `OTEL_EXPORTER_OTLP_PROTOCOL` |
//! | `OTEL_EXPORTER_OTLP_LOGS_HEADERS` | `otlp.logs.headers` | for logs; wins over `OTEL_EXPORTER_OTLP_HEADERS` |
//! | `OTEL_EXPORTER_OTLP_LOGS_COMPRESSION` | `otlp.logs.compression` | for logs; wins over `OTEL_EXPORTER_OTLP_COMPRESSION` |
//! | `OTEL_EXPORTER_OTLP_LOGS_TIMEOUT` | `otlp.logs.timeout_ms` | for logs; wins over `OTEL_EXPORTER_OTLP_TIMEOUT` |
//! | `OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE` | `otlp.logs.certificate` | for logs; wins over `OTEL_EXPORTER_OTLP_CERTIFICATE` |
//! | `OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE` | `otlp.logs.client_certificate` | for logs; wins over `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` |
//! | `OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY` | `otlp.logs.client_key` | for logs; wins over `OTEL_EXPORTER_OTLP_CLIENT_KEY` |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `resource_attributes` | `key=value,...`, percent-decoded |
//! | `OTEL_TRACES_SAMPLER` | `trace_sampler` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off` or `parentbased_traceidratio` |
//! | `OTEL_BSP_SCHEDULE_DELAY` | `span_batch.schedule_delay_ms` | milliseconds, greater than 0 (default 500) |
//! | `OTEL_BSP_EXPORT_TIMEOUT` | `span_batch.export_timeout_ms` | milliseconds; caps the traces exporter's timeout (default 30000) |
//! | `OTEL_BSP_MAX_QUEUE_SIZE` | `span_batch.max_queue_size` | integer (default 4096) |
//! | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | `span_batch.max_export_batch_size` | integer, at most the queue size (default 512) |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | `metrics_export_interval_ms` | milliseconds between OTLP metric pushes (default 60000) |
//! | `OTEL_METRIC_EXPORT_TIMEOUT` | `metrics_export_timeout_ms` | milliseconds; caps the metrics exporter's timeout (default 30000) |

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::filter::{
    DEFAULT_FILTER_MASK, DEFAULT_FILTER_PARAMETERS, FilterError, ParameterFilter, ValueDetection,
};
pub(crate) use checks::positive;
use checks::{
    at_least_one, check_correlation_id_header, check_filter_mask, check_filter_parameters,
    check_filter_value_detectors, check_filter_value_patterns, check_filtered_events,
    check_metrics_auth_token, check_metrics_endpoint, check_option, check_otlp, check_ratio,
    check_seconds, check_service_name, check_service_version, check_span_store_tasks, check_url,
    unchecked,
};
use env::{EnvValue, Rejected};
use options::options;

mod batch;
mod checks;
mod env;
mod options;
mod otlp;
mod provenance;

pub use batch::SpanBatchOptions;
pub use env::{EnvVariable, environment_table};
pub use otlp::{
    ExporterSettings, OtlpCompression, OtlpOptions, OtlpSignalOptions, Signal, TlsFiles,
};
pub use provenance::{EffectiveConfig, Setting, SettingSource};

/// Shown instead of a secret wherever configuration is printed.
const REDACTED: &str = DEFAULT_FILTER_MASK;

/// `(field, variable)`: which environment variable set each field.
type EnvSources = Vec<(&'static str, &'static str)>;

/// A value that is not valid Unicode is an error, never "unset": read as unset, a variable meant
/// to switch something on would leave it at its default.
fn check_env_is_unicode() -> Result<(), ConfigError> {
    for variable in ENVIRONMENT_VARIABLES {
        if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(variable.name) {
            return Err(ConfigError::Env {
                variable: variable.name.to_owned(),
                field: variable.field.to_owned(),
                value: "(not valid UTF-8)".to_owned(),
                expected: "a value in UTF-8".to_owned(),
            });
        }
    }
    Ok(())
}

/// The most tasks [`TelemetryConfig::span_store_tasks`] accepts.
pub const SPAN_STORE_MAX_TASKS: usize = 100_000;

const EXPECTED_BOOL: &str = "one of true, false, 1, 0, yes, no (case-insensitive)";
const EXPECTED_INTEGER: &str = "an integer greater than 0";
const EXPECTED_RATIO: &str = "a finite number between 0.0 and 1.0";
const EXPECTED_SECONDS: &str = "a finite number of seconds greater than 0";

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
        check_env_is_unicode()?;
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
    pub fn with_env_from<F>(self, lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        self.with_env_sources(lookup).map(|(config, _)| config)
    }

    /// [`with_env_from`](Self::with_env_from), also returning which variable set each field
    /// (`(field, variable)`, the winner only).
    fn with_env_sources<F>(mut self, lookup: F) -> Result<(Self, EnvSources), ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        // Which variable last set each field, to blame it if validation fails.
        let mut sources: EnvSources = Vec::new();
        for variable in ENVIRONMENT_VARIABLES {
            let Some(raw) = lookup(variable.name) else {
                continue;
            };
            let value = EnvValue {
                variable: variable.name,
                field: variable.field,
                raw: &raw,
            };
            match (variable.apply)(&mut self, &value) {
                Ok(()) => {
                    sources.retain(|&(f, _)| f != variable.field);
                    sources.push((variable.field, variable.name));
                }
                Err(Rejected::Unchanged) => {}
                Err(Rejected::Invalid(error)) => return Err(error),
            }
        }
        match self.validate() {
            Ok(()) => Ok((self, sources)),
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
        let filter = ParameterFilter::new(&self.filter_parameters, self.filter_mask.as_str())
            .map_err(|error| self.filter_error(error))?;
        Ok(filter.with_value_detection(self.value_detection()?))
    }

    /// The value detection `filter_value_detectors` and `filter_value_patterns` describe.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for either field.
    ///
    /// ```
    /// use tasker_telemetry::TelemetryConfig;
    /// use tasker_telemetry::filter::SecretKind;
    ///
    /// let config = TelemetryConfig::builder().filter_value_detectors(["email"]).build()?;
    /// let detection = config.value_detection()?;
    /// assert!(detection.detects(SecretKind::Email));
    /// assert!(!detection.detects(SecretKind::Jwt));
    /// # Ok::<(), tasker_telemetry::ConfigError>(())
    /// ```
    pub fn value_detection(&self) -> Result<ValueDetection, ConfigError> {
        let mut detection = ValueDetection::parse(&self.filter_value_detectors)
            .map_err(|error| self.filter_error(error))?;
        for pattern in &self.filter_value_patterns {
            detection = detection
                .with_pattern(pattern)
                .map_err(|error| self.filter_error(error))?;
        }
        Ok(detection)
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
            FilterError::UnknownDetector { name } => ConfigError::invalid(
                "filter_value_detectors",
                name,
                crate::filter::accepted_detector_names(),
            ),
            FilterError::InvalidValuePattern { pattern, message } => ConfigError::invalid(
                "filter_value_patterns",
                pattern,
                format!("a regular expression that matches the secret itself ({message})"),
            ),
        }
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

impl TelemetryConfigBuilder {
    /// Validates and returns the configuration.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] as from [`TelemetryConfig::validate`].
    pub fn build(self) -> Result<TelemetryConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

// Every option, once: the struct's field, its default, the builder's setter, how `Debug` shows
// it, its check, and the environment variables that set it (applied in this order, so a later
// row wins). `options!` (config/options.rs) generates the rest from this table.
options! {
    /// Master switch; when `false` instrumentation costs one atomic load per step. Default `true`.
    enabled: bool = true;
        set(value: bool) = value;
        show plain;
        check unchecked;
        env [
            "TASKER_ENABLED" => |c, v| c.enabled = v.boolean()?, "boolean";
            // `false` only means "not disabled", which must not override a file's `enabled = false`.
            "OTEL_SDK_DISABLED" => |c, v| if v.boolean()? {
                c.enabled = false
            } else {
                return Err(Rejected::Unchanged)
            }, "`true` disables telemetry; `false` leaves `enabled` as it was";
        ]

    /// `service.name` on spans and metrics. Default `"tasker"`.
    service_name: String = "tasker".to_owned();
        set(value: impl Into<String>) = value.into();
        show plain;
        check check_service_name;
        env [
            "TASKER_SERVICE_NAME" => |c, v| c.service_name = v.text()?, "";
            // A malformed list is reported against `resource_attributes`, by its own row.
            "OTEL_RESOURCE_ATTRIBUTES" => |c, v| c.service_name = v
                .key_values()
                .ok()
                .and_then(|mut attributes| attributes.remove("service.name"))
                .ok_or(Rejected::Unchanged)?,
                "its `service.name`, when it has one; wins over `TASKER_SERVICE_NAME`";
            "OTEL_SERVICE_NAME" => |c, v| c.service_name = v.text()?,
                "wins over `TASKER_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`";
        ]

    /// `service.version` on spans and metrics. Default: this crate's version.
    service_version: String = env!("CARGO_PKG_VERSION").to_owned();
        set(value: impl Into<String>) = value.into();
        show plain;
        check check_service_version;
        env [
            "TASKER_SERVICE_VERSION" => |c, v| c.service_version = v.text()?, "";
        ]

    /// Sensitive-data rules, see [`ParameterFilter::new`]. Default [`DEFAULT_FILTER_PARAMETERS`].
    filter_parameters: Vec<String> = DEFAULT_FILTER_PARAMETERS.iter().map(|rule| (*rule).to_owned()).collect();
        set(rules: impl IntoIterator<Item = impl Into<String>>) = rules.into_iter().map(Into::into).collect();
        show plain;
        check check_filter_parameters;
        env [
            "TASKER_FILTER_PARAMETERS" => |c, v| c.filter_parameters = v.list()?, "comma-separated rules";
        ]

    /// Replacement for sensitive values. Default `"[FILTERED]"`.
    filter_mask: String = DEFAULT_FILTER_MASK.to_owned();
        set(value: impl Into<String>) = value.into();
        show plain;
        check check_filter_mask;
        env [
            // Used verbatim: surrounding spaces may be intended.
            "TASKER_FILTER_MASK" => |c, v| c.filter_mask = v.verbatim()?, "verbatim";
        ]

    /// Which secrets are found by their value in free text (error messages, log lines, span and
    /// event attributes, metric label values): `"all"`, `"none"`, or names of
    /// [`SecretKind`](crate::filter::SecretKind)s. Default `["all"]`. See
    /// [`ValueDetection`].
    filter_value_detectors: Vec<String> = vec!["all".to_owned()];
        set(names: impl IntoIterator<Item = impl Into<String>>) = names.into_iter().map(Into::into).collect();
        show plain;
        check check_filter_value_detectors;
        env [
            "TASKER_FILTER_VALUE_DETECTORS" => |c, v| c.filter_value_detectors = v.list()?, "comma-separated names: `all`, `none`, `email`, `url_credentials`, `bearer_token`, `jwt`, `aws_access_key_id`, `stripe_key`, `github_token`, `slack_token`, `card_number`, `key_value`";
        ]

    /// Regular expressions of your own whose every match in free text is masked, on top of
    /// `filter_value_detectors`. Default none.
    filter_value_patterns: Vec<String> = Vec::new();
        set(patterns: impl IntoIterator<Item = impl Into<String>>) = patterns.into_iter().map(Into::into).collect();
        show plain;
        check check_filter_value_patterns;
        env [
            // Whitespace-separated, not comma-separated: `{2,4}` is common in a pattern.
            "TASKER_FILTER_VALUE_PATTERNS" => |c, v| c.filter_value_patterns = v
                .text()?
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
                "whitespace-separated regular expressions (write a space inside one as `\\s` or `\\x20`)";
        ]

    /// Emit JSON-structured logs with correlation ids. Default `true`. When `false`,
    /// [`init`](crate::init) installs no log layer and the scopes build no lifecycle lines
    /// (target [`LIFECYCLE_TARGET`](crate::logging::LIFECYCLE_TARGET)) for any layer: the
    /// router's log sink is off.
    structured_logging_enabled: bool = true;
        set(value: bool) = value;
        show plain;
        check unchecked;
        env [
            "TASKER_STRUCTURED_LOGGING_ENABLED" => |c, v| c.structured_logging_enabled = v.boolean()?, "boolean";
        ]

    /// HTTP header carrying the correlation id. Default `"X-Correlation-ID"`.
    correlation_id_header: String = "X-Correlation-ID".to_owned();
        set(value: impl Into<String>) = value.into();
        show plain;
        check check_correlation_id_header;
        env [
            "TASKER_CORRELATION_ID_HEADER" => |c, v| c.correlation_id_header = v.text()?, "";
        ]

    /// Minimum log level. Default [`LogLevel::Info`].
    log_level: LogLevel = LogLevel::Info;
        set(value: LogLevel) = value;
        show plain;
        check unchecked;
        env [
            "TASKER_LOG_LEVEL" => |c, v| c.log_level = v.parsed()?,
                "`trace`, `debug`, `info`, `warn`, `error` or `off`";
        ]

    /// Log line rendering. Default [`LogFormat::Json`].
    log_format: LogFormat = LogFormat::Json;
        set(value: LogFormat) = value;
        show plain;
        check unchecked;
        env [
            "TASKER_LOG_FORMAT" => |c, v| c.log_format = v.parsed()?, "`json`, `pretty`, `logfmt` or `compact`";
        ]

    /// A raw `RUST_LOG`-style directive that refines `log_level` per target, taken verbatim.
    /// Default `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    log_filter: Option<String> = None;
        set(directive: impl Into<String>) = Some(directive.into());
        show plain;
        check unchecked;
        env [
            // Directives are handed to the log filter untouched.
            "TASKER_LOG_FILTER" => |c, v| c.log_filter = Some(v.verbatim()?), "a `RUST_LOG`-style directive, verbatim";
            "RUST_LOG" => |c, v| c.log_filter = Some(v.verbatim()?), "verbatim; wins over `TASKER_LOG_FILTER`";
        ]

    /// Collect metrics. Default `true`.
    metrics_enabled: bool = true;
        set(value: bool) = value;
        show plain;
        check unchecked;
        env [
            "TASKER_METRICS_ENABLED" => |c, v| c.metrics_enabled = v.boolean()?, "boolean";
        ]

    /// Give the step and task duration histograms exemplars: each bucket keeps the latest
    /// observation made in a sampled span, with its trace and span ids, shown in the OpenMetrics
    /// exposition. Default `true`.
    metrics_exemplars_enabled: bool = true;
        set(value: bool) = value;
        show plain;
        check unchecked;
        env [
            "TASKER_METRICS_EXEMPLARS_ENABLED" => |c, v| c.metrics_exemplars_enabled = v.boolean()?, "boolean";
        ]

    /// Path the metrics endpoint is mounted at. Default `"/tasker/metrics"`.
    metrics_endpoint: String = "/tasker/metrics".to_owned();
        set(value: impl Into<String>) = value.into();
        show plain;
        check check_metrics_endpoint;
        env [
            "TASKER_METRICS_ENDPOINT" => |c, v| c.metrics_endpoint = v.text()?, "";
        ]

    /// Metrics exposition format. Default [`MetricsFormat::Prometheus`].
    metrics_format: MetricsFormat = MetricsFormat::Prometheus;
        set(value: MetricsFormat) = value;
        show plain;
        check unchecked;
        env [
            "TASKER_METRICS_FORMAT" => |c, v| c.metrics_format = v.parsed()?, "`prometheus`, `json` or `csv`";
        ]

    /// Require a bearer token on the metrics endpoint. Default `false`.
    metrics_auth_required: bool = false;
        set(value: bool) = value;
        show plain;
        check unchecked;
        env [
            "TASKER_METRICS_AUTH_REQUIRED" => |c, v| c.metrics_auth_required = v.boolean()?, "boolean";
        ]

    /// The bearer token; required when `metrics_auth_required` is `true`. Never printed. Default `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_auth_token: Option<String> = None;
        set(token: impl Into<String>) = Some(token.into());
        show secret;
        check check_metrics_auth_token;
        env [
            "TASKER_METRICS_AUTH_TOKEN" => |c, v| c.metrics_auth_token = Some(v.text()?),
                "secret: never shown in `Debug` or errors";
        ]

    /// Record performance events (slow operations, memory spikes). Default `true`.
    performance_monitoring_enabled: bool = true;
        set(value: bool) = value;
        show plain;
        check unchecked;
        env [
            "TASKER_PERFORMANCE_MONITORING_ENABLED" => |c, v| c.performance_monitoring_enabled = v.boolean()?, "boolean";
        ]

    /// An operation slower than this is reported as slow, in seconds. Default `1.0`.
    slow_query_threshold_seconds: f64 = 1.0;
        set(seconds: f64) = seconds;
        show plain;
        check check_seconds;
        env [
            "TASKER_SLOW_QUERY_THRESHOLD_SECONDS" => |c, v| c.slow_query_threshold_seconds = v.number(EXPECTED_SECONDS)?, "number";
        ]

    /// A memory increase above this is reported as a spike, in megabytes. Default `100`.
    memory_threshold_mb: u64 = 100;
        set(megabytes: u64) = megabytes;
        show plain;
        check at_least_one;
        env [
            "TASKER_MEMORY_THRESHOLD_MB" => |c, v| c.memory_threshold_mb = v.integer()?, "integer";
        ]

    /// Fraction of events routed to sampled sinks, `0.0..=1.0`. Default `1.0`.
    event_sampling_rate: f64 = 1.0;
        set(rate: f64) = rate;
        show plain;
        check check_ratio;
        env [
            "TASKER_EVENT_SAMPLING_RATE" => |c, v| c.event_sampling_rate = v.number(EXPECTED_RATIO)?, "number in 0.0..=1.0";
        ]

    /// Events (`"step.completed"`) or namespaces (`"observability.*"`) never routed. Default empty.
    filtered_events: Vec<String> = Vec::new();
        set(events: impl IntoIterator<Item = impl Into<String>>) = events.into_iter().map(Into::into).collect();
        show plain;
        check check_filtered_events;
        env [
            "TASKER_FILTERED_EVENTS" => |c, v| c.filtered_events = v.list()?, "comma-separated event names or `namespace.*`";
        ]

    /// Cap on stored performance samples. Default `1000`.
    max_stored_samples: usize = 1000;
        set(samples: usize) = samples;
        show plain;
        check at_least_one;
        env [
            "TASKER_MAX_STORED_SAMPLES" => |c, v| c.max_stored_samples = v.count()?, "integer";
        ]

    /// How long metrics are kept, in hours. Default `24`.
    metrics_retention_hours: u64 = 24;
        set(hours: u64) = hours;
        show plain;
        check at_least_one;
        env [
            "TASKER_METRICS_RETENTION_HOURS" => |c, v| c.metrics_retention_hours = v.integer()?, "integer";
        ]

    /// Steps of one task the workflow runner executes at once. Default `3`.
    max_concurrent_steps: usize = 3;
        set(steps: usize) = steps;
        show plain;
        check at_least_one;
        env [
            "TASKER_MAX_CONCURRENT_STEPS" => |c, v| c.max_concurrent_steps = v.count()?, "integer";
        ]

    /// Series one metric family may hold before new label sets fold into its `__overflow__`
    /// series. Default `10000`.
    metrics_cardinality_cap: usize = 10_000;
        set(series: usize) = series;
        show plain;
        check at_least_one;
        env [
            "TASKER_METRICS_CARDINALITY_CAP" => |c, v| c.metrics_cardinality_cap = v.count()?, "integer";
        ]

    /// Tasks whose spans the in-process span store keeps (the newest; what the `/tasks` timeline
    /// page shows), with or without an OTLP endpoint; `0` keeps none. At most
    /// [`SPAN_STORE_MAX_TASKS`]. Default `100`.
    span_store_tasks: usize = 100;
        set(tasks: usize) = tasks;
        show plain;
        check check_span_store_tasks;
        env [
            "TASKER_SPAN_STORE_TASKS" => |c, v| c.span_store_tasks = v.count()?, "integer, 0 (none) to 100000";
        ]

    /// OTLP collector endpoint; `None` keeps spans in process. Default `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    otlp_endpoint: Option<String> = None;
        set(url: impl Into<String>) = Some(url.into());
        show url;
        check check_url;
        env [
            "TASKER_OTLP_ENDPOINT" => |c, v| c.otlp_endpoint = Some(v.text()?), "`http://` or `https://` URL";
            "OTEL_EXPORTER_OTLP_ENDPOINT" => |c, v| c.otlp_endpoint = Some(v.text()?),
                "wins over `TASKER_OTLP_ENDPOINT`; spans go to `<endpoint>/v1/traces`";
        ]

    /// The full OTLP traces URL, used verbatim; overrides `otlp_endpoint` + `/v1/traces`.
    /// Default `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    otlp_traces_endpoint: Option<String> = None;
        set(url: impl Into<String>) = Some(url.into());
        show url;
        check check_url;
        env [
            "TASKER_OTLP_TRACES_ENDPOINT" => |c, v| c.otlp_traces_endpoint = Some(v.text()?), "the full traces URL, used verbatim";
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => |c, v| c.otlp_traces_endpoint = Some(v.text()?),
                "wins over `TASKER_OTLP_TRACES_ENDPOINT` and over `otlp_endpoint`";
        ]

    /// Fraction of traces sampled, `0.0..=1.0`. Default `1.0`.
    trace_sampling_ratio: f64 = 1.0;
        set(ratio: f64) = ratio;
        show plain;
        check check_ratio;
        env [
            "TASKER_TRACE_SAMPLING_RATIO" => |c, v| c.trace_sampling_ratio = v.number(EXPECTED_RATIO)?, "number in 0.0..=1.0";
            "OTEL_TRACES_SAMPLER_ARG" => |c, v| c.trace_sampling_ratio = v.number(EXPECTED_RATIO)?,
                "wins over `TASKER_TRACE_SAMPLING_RATIO`";
        ]

    /// The OTLP transport for spans. Default `http/protobuf`.
    otlp_protocol: OtlpProtocol = OtlpProtocol::HttpProtobuf;
        set(protocol: OtlpProtocol) = protocol;
        show plain;
        check unchecked;
        env [
            "TASKER_OTLP_PROTOCOL" => |c, v| c.otlp_protocol = v.parsed()?, "`http/protobuf` or `grpc`";
            "OTEL_EXPORTER_OTLP_PROTOCOL" => |c, v| c.otlp_protocol = v.parsed()?, "wins over `TASKER_OTLP_PROTOCOL`";
        ]

    /// The full OTLP metrics URL, used verbatim; overrides `otlp_endpoint` + `/v1/metrics`.
    /// Default `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    otlp_metrics_endpoint: Option<String> = None;
        set(url: impl Into<String>) = Some(url.into());
        show url;
        check check_url;
        env [
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" => |c, v| c.otlp_metrics_endpoint = Some(v.text()?),
                "the full metrics URL, used verbatim; wins over `otlp_endpoint`";
        ]

    /// The full OTLP logs URL, used verbatim; overrides `otlp_endpoint` + `/v1/logs`. Logs go
    /// over OTLP (besides stdout) when tasker-telemetry is built with its `otlp-logs` feature
    /// and an endpoint applies. Default `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    otlp_logs_endpoint: Option<String> = None;
        set(url: impl Into<String>) = Some(url.into());
        show url;
        check check_url;
        env [
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT" => |c, v| {
                v.needs_otlp_logs()?;
                c.otlp_logs_endpoint = Some(v.text()?)
            }, "the full logs URL, used verbatim; wins over `otlp_endpoint` (cargo feature `otlp-logs`)";
        ]

    /// The OTLP exporters' headers, compression, timeout and TLS files, with per-signal
    /// overrides (TOML table `[otlp]`, `[otlp.traces]`, `[otlp.metrics]`, `[otlp.logs]`).
    otlp: OtlpOptions = OtlpOptions::default();
        set(options: OtlpOptions) = options;
        show plain;
        check check_otlp;
        env [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" as "otlp.traces.protocol" => |c, v| c.otlp.traces.protocol = Some(v.parsed()?),
                "wins over `OTEL_EXPORTER_OTLP_PROTOCOL` for spans";
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL" as "otlp.metrics.protocol" => |c, v| c.otlp.metrics.protocol = Some(v.parsed()?),
                "`http/protobuf` only: metrics are exported over OTLP/HTTP";
            "OTEL_EXPORTER_OTLP_HEADERS" as "otlp.headers" => |c, v| c.otlp.headers = v.headers()?,
                "`key=value,...`, percent-decoded; secret: never shown";
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS" as "otlp.traces.headers" => |c, v| c.otlp.traces.headers = Some(v.headers()?),
                "for spans; wins over `OTEL_EXPORTER_OTLP_HEADERS`";
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS" as "otlp.metrics.headers" => |c, v| c.otlp.metrics.headers = Some(v.headers()?),
                "for metrics; wins over `OTEL_EXPORTER_OTLP_HEADERS`";
            "OTEL_EXPORTER_OTLP_COMPRESSION" as "otlp.compression" => |c, v| c.otlp.compression = v.parsed()?,
                "`gzip` or `none`";
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION" as "otlp.traces.compression" => |c, v| c.otlp.traces.compression = Some(v.parsed()?),
                "for spans; wins over `OTEL_EXPORTER_OTLP_COMPRESSION`";
            "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION" as "otlp.metrics.compression" => |c, v| c.otlp.metrics.compression = Some(v.parsed()?),
                "for metrics; wins over `OTEL_EXPORTER_OTLP_COMPRESSION`";
            "OTEL_EXPORTER_OTLP_TIMEOUT" as "otlp.timeout_ms" => |c, v| c.otlp.timeout_ms = v.millis()?,
                "milliseconds, greater than 0 (default 10000)";
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" as "otlp.traces.timeout_ms" => |c, v| c.otlp.traces.timeout_ms = Some(v.millis()?),
                "for spans; wins over `OTEL_EXPORTER_OTLP_TIMEOUT`";
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT" as "otlp.metrics.timeout_ms" => |c, v| c.otlp.metrics.timeout_ms = Some(v.millis()?),
                "for metrics; wins over `OTEL_EXPORTER_OTLP_TIMEOUT`";
            "OTEL_EXPORTER_OTLP_CERTIFICATE" as "otlp.certificate" => |c, v| c.otlp.certificate = Some(v.path()?),
                "PEM file of the CA to trust, then the only one";
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE" as "otlp.traces.certificate" => |c, v| c.otlp.traces.certificate = Some(v.path()?),
                "for spans; wins over `OTEL_EXPORTER_OTLP_CERTIFICATE`";
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE" as "otlp.metrics.certificate" => |c, v| c.otlp.metrics.certificate = Some(v.path()?),
                "for metrics; wins over `OTEL_EXPORTER_OTLP_CERTIFICATE`";
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE" as "otlp.client_certificate" => |c, v| c.otlp.client_certificate = Some(v.path()?),
                "PEM file (mutual TLS); needs the key";
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE" as "otlp.traces.client_certificate" => |c, v| c.otlp.traces.client_certificate = Some(v.path()?),
                "for spans; wins over `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`";
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE" as "otlp.metrics.client_certificate" => |c, v| c.otlp.metrics.client_certificate = Some(v.path()?),
                "for metrics; wins over `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`";
            "OTEL_EXPORTER_OTLP_CLIENT_KEY" as "otlp.client_key" => |c, v| c.otlp.client_key = Some(v.path()?),
                "PEM file; needs the client certificate";
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY" as "otlp.traces.client_key" => |c, v| c.otlp.traces.client_key = Some(v.path()?),
                "for spans; wins over `OTEL_EXPORTER_OTLP_CLIENT_KEY`";
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY" as "otlp.metrics.client_key" => |c, v| c.otlp.metrics.client_key = Some(v.path()?),
                "for metrics; wins over `OTEL_EXPORTER_OTLP_CLIENT_KEY`";
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL" as "otlp.logs.protocol" => |c, v| {
                v.needs_otlp_logs()?;
                c.otlp.logs.protocol = Some(v.parsed()?)
            }, "for logs; wins over `OTEL_EXPORTER_OTLP_PROTOCOL`";
            "OTEL_EXPORTER_OTLP_LOGS_HEADERS" as "otlp.logs.headers" => |c, v| {
                v.needs_otlp_logs()?;
                c.otlp.logs.headers = Some(v.headers()?)
            }, "for logs; wins over `OTEL_EXPORTER_OTLP_HEADERS`";
            "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION" as "otlp.logs.compression" => |c, v| {
                v.needs_otlp_logs()?;
                c.otlp.logs.compression = Some(v.parsed()?)
            }, "for logs; wins over `OTEL_EXPORTER_OTLP_COMPRESSION`";
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT" as "otlp.logs.timeout_ms" => |c, v| {
                v.needs_otlp_logs()?;
                c.otlp.logs.timeout_ms = Some(v.millis()?)
            }, "for logs; wins over `OTEL_EXPORTER_OTLP_TIMEOUT`";
            "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE" as "otlp.logs.certificate" => |c, v| {
                v.needs_otlp_logs()?;
                c.otlp.logs.certificate = Some(v.path()?)
            }, "for logs; wins over `OTEL_EXPORTER_OTLP_CERTIFICATE`";
            "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE" as "otlp.logs.client_certificate" => |c, v| {
                v.needs_otlp_logs()?;
                c.otlp.logs.client_certificate = Some(v.path()?)
            }, "for logs; wins over `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`";
            "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY" as "otlp.logs.client_key" => |c, v| {
                v.needs_otlp_logs()?;
                c.otlp.logs.client_key = Some(v.path()?)
            }, "for logs; wins over `OTEL_EXPORTER_OTLP_CLIENT_KEY`";
        ]

    /// More attributes of the exported resource (spans and OTLP metrics). `service.name`,
    /// `service.version` and `service.framework` always come from this configuration. Default
    /// none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    resource_attributes: BTreeMap<String, String> = BTreeMap::new();
        set(attributes: impl IntoIterator<Item = (String, String)>) = attributes.into_iter().collect();
        show plain;
        check unchecked;
        env [
            "OTEL_RESOURCE_ATTRIBUTES" => |c, v| c.resource_attributes.extend(v.key_values()?),
                "`key=value,...`, percent-decoded";
        ]

    /// How traces are sampled. Default [`TraceSampler::ParentBasedTraceIdRatio`] (with
    /// `trace_sampling_ratio`).
    trace_sampler: TraceSampler = TraceSampler::ParentBasedTraceIdRatio;
        set(sampler: TraceSampler) = sampler;
        show plain;
        check unchecked;
        env [
            "OTEL_TRACES_SAMPLER" => |c, v| c.trace_sampler = v.parsed()?,
                "`always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off` or `parentbased_traceidratio`";
        ]

    /// How spans are batched for export (TOML table `[span_batch]`).
    span_batch: SpanBatchOptions = SpanBatchOptions::default();
        set(options: SpanBatchOptions) = options;
        show plain;
        check |_, batch, _| batch.check();
        env [
            "OTEL_BSP_SCHEDULE_DELAY" as "span_batch.schedule_delay_ms" => |c, v| c.span_batch.schedule_delay_ms = v.millis()?,
                "milliseconds, greater than 0 (default 500)";
            "OTEL_BSP_EXPORT_TIMEOUT" as "span_batch.export_timeout_ms" => |c, v| c.span_batch.export_timeout_ms = v.millis()?,
                "milliseconds; caps the traces exporter's timeout (default 30000)";
            "OTEL_BSP_MAX_QUEUE_SIZE" as "span_batch.max_queue_size" => |c, v| c.span_batch.max_queue_size = v.count()?,
                "integer (default 4096)";
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" as "span_batch.max_export_batch_size" => |c, v| c.span_batch.max_export_batch_size = v.count()?,
                "integer, at most the queue size (default 512)";
        ]

    /// Milliseconds between OTLP metric pushes
    /// ([`OtlpMetricsExporter::from_config`](crate::export::OtlpMetricsExporter)). Default
    /// `60000`.
    metrics_export_interval_ms: u64 = 60_000;
        set(milliseconds: u64) = milliseconds;
        show plain;
        check at_least_one;
        env [
            "OTEL_METRIC_EXPORT_INTERVAL" => |c, v| c.metrics_export_interval_ms = v.millis()?,
                "milliseconds between OTLP metric pushes (default 60000)";
        ]

    /// The longest one OTLP metrics push may take, in milliseconds; the exporter's own timeout
    /// is cut to it. Default `30000`.
    metrics_export_timeout_ms: u64 = 30_000;
        set(milliseconds: u64) = milliseconds;
        show plain;
        check at_least_one;
        env [
            "OTEL_METRIC_EXPORT_TIMEOUT" => |c, v| c.metrics_export_timeout_ms = v.millis()?,
                "milliseconds; caps the metrics exporter's timeout (default 30000)";
        ]
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
        for row in ENVIRONMENT_VARIABLES {
            let (variable, field) = (row.name, row.field);
            let value = match field {
                "enabled" if variable == "OTEL_SDK_DISABLED" => "true",
                "service_name" if variable == "OTEL_RESOURCE_ATTRIBUTES" => "service.name=shop",
                "enabled"
                | "structured_logging_enabled"
                | "metrics_enabled"
                | "metrics_exemplars_enabled"
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
                | "metrics_cardinality_cap"
                | "span_store_tasks" => "7",
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
                "filter_value_detectors" => "email,jwt",
                "filter_value_patterns" => r"INV-\d{6} ORD-\d+",
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

    /// The line range of the table that starts at the `| Variable |` line (after `prefix`).
    fn table_lines(text: &str, prefix: &str) -> (usize, usize) {
        let lines: Vec<&str> = text.lines().collect();
        let start = lines
            .iter()
            .position(|l| {
                l.strip_prefix(prefix)
                    .is_some_and(|l| l.starts_with("| Variable |"))
            })
            .expect("a `| Variable |` table");
        let end = start
            + lines[start..]
                .iter()
                .take_while(|l| l.strip_prefix(prefix).is_some_and(|l| l.starts_with('|')))
                .count();
        (start, end)
    }

    /// Replaces the table that starts at the `| Variable |` line of `path` (each line after
    /// `prefix`) with `table`.
    fn rewrite_table(path: &str, prefix: &str, table: &str) {
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let (start, end) = table_lines(&text, prefix);
        let mut out: Vec<String> = lines[..start].iter().map(|l| (*l).to_owned()).collect();
        out.extend(table.lines().map(|row| format!("{prefix}{row}")));
        out.extend(lines[end..].iter().map(|l| (*l).to_owned()));
        std::fs::write(path, out.join("\n") + "\n").unwrap();
    }

    #[test]
    fn the_module_docs_and_the_readme_show_the_generated_variable_table() {
        let generated = environment_table();
        let rows = |text: &str, prefix: &str| -> String {
            let (start, end) = table_lines(text, prefix);
            let lines: Vec<&str> = text.lines().collect();
            lines[start..end]
                .iter()
                .map(|l| format!("{}\n", &l[prefix.len()..]))
                .collect()
        };
        if std::env::var_os("UPDATE_DOCS").is_some() {
            rewrite_table(
                concat!(env!("CARGO_MANIFEST_DIR"), "/src/config.rs"),
                "//! ",
                &generated,
            );
            rewrite_table(
                concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"),
                "",
                &generated,
            );
            return;
        }
        assert_eq!(
            rows(include_str!("config.rs"), "//! "),
            generated,
            "the module docs' table differs from the options table; UPDATE_DOCS=1 rewrites it"
        );
        assert_eq!(
            rows(include_str!("../../README.md"), ""),
            generated,
            "README.md's table differs from the options table; UPDATE_DOCS=1 rewrites it"
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
