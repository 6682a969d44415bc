//! One-call setup: the process-wide [`Telemetry`], and a `tracing` subscriber whose
//! OpenTelemetry layer exports spans (to OTLP, or to the in-process store).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::logging::LogLayer;

use crate::config::TelemetryConfig;
use crate::error::Error;
use crate::spans::{SpanExportReport, SpanPipeline};
use crate::telemetry::{Telemetry, set_enabled};

/// Keeps process-wide telemetry running; dropping it flushes queued spans, waiting at most the
/// export timeout (5 s). Call [`shutdown`](Self::shutdown) to get the export report as a value.
#[derive(Debug)]
#[must_use = "dropping the guard flushes and stops telemetry export"]
pub struct TelemetryGuard {
    telemetry: &'static Telemetry,
    spans: SpanPipeline,
    #[cfg(feature = "otlp-logs")]
    logs: Option<crate::logging::LogPipeline>,
    shut_down: bool,
}

impl TelemetryGuard {
    /// The installed telemetry.
    pub fn telemetry(&self) -> &'static Telemetry {
        self.telemetry
    }

    /// The span pipeline (its [`store`](SpanPipeline::store) holds the spans when no OTLP
    /// endpoint is configured).
    pub fn spans(&self) -> &SpanPipeline {
        &self.spans
    }

    /// The OTLP log pipeline, when an OTLP endpoint applies to logs (cargo feature
    /// `otlp-logs`).
    #[cfg(feature = "otlp-logs")]
    pub fn logs(&self) -> Option<&crate::logging::LogPipeline> {
        self.logs.as_ref()
    }

    /// Flushes and stops span export (then log export) within the export timeout, and reports
    /// what became of every span (exported, failed, dropped, the last error). Log records not
    /// delivered are reported in a warning; read [`logs`](Self::logs)'s report before for them
    /// as a value.
    pub fn shutdown(mut self) -> SpanExportReport {
        self.shut_down = true;
        let report = self.spans.shutdown();
        self.shut_down_logs();
        report
    }

    #[cfg(feature = "otlp-logs")]
    fn shut_down_logs(&self) {
        let Some(logs) = &self.logs else { return };
        let report = logs.shutdown();
        if !report.is_clean() {
            warn_not_exported(
                "log records",
                report.failed,
                report.dropped,
                &report.last_error,
            );
        }
    }

    #[cfg(not(feature = "otlp-logs"))]
    fn shut_down_logs(&self) {}
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if !self.shut_down {
            let report = self.spans.shutdown();
            if !report.is_clean() {
                warn_not_exported("spans", report.failed, report.dropped, &report.last_error);
            }
            self.shut_down_logs();
        }
    }
}

/// The warning of a shutdown that left `what` undelivered.
fn warn_not_exported(what: &str, failed: u64, dropped: u64, last_error: &Option<String>) {
    tracing::warn!(
        target: "tasker_telemetry::export",
        failed,
        dropped,
        last_error = last_error.as_deref().unwrap_or(""),
        "telemetry shut down with {what} not exported"
    );
}

/// Sets up process-wide telemetry from Tasker's defaults and the environment
/// (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `TASKER_*`, ...). Needs no network: with
/// no OTLP endpoint, spans stay in process.
///
/// ```
/// let guard = tasker_telemetry::init()?;
/// assert_eq!(guard.telemetry().config().filter_mask, "[FILTERED]");
/// # Ok::<(), tasker_telemetry::Error>(())
/// ```
pub fn init() -> Result<TelemetryGuard, Error> {
    init_with(TelemetryConfig::default().with_env()?)
}

/// Sets up process-wide telemetry from `config` (apply [`TelemetryConfig::with_env`] first if
/// the environment should override it): installs a `tracing-subscriber` registry with the span
/// pipeline's OpenTelemetry layer as the global subscriber, and subscribes every
/// `#[subscribe_to]` subscriber the program links.
///
/// If your program installs its own `tracing` subscriber, do not call this: add
/// [`SpanPipeline::layer`] to your subscriber and build a [`Telemetry`] yourself.
pub fn init_with(config: TelemetryConfig) -> Result<TelemetryGuard, Error> {
    if Telemetry::is_installed() {
        return Err(Error::AlreadyInitialized);
    }
    let enabled = config.enabled;
    let spans = SpanPipeline::new(&config)?;
    #[cfg(feature = "otlp-logs")]
    let logs = crate::logging::LogPipeline::new(&config)?;
    let telemetry = Telemetry::new(config)?;
    spans.register_metrics(telemetry.metrics());
    telemetry.publisher().subscribe_registered()?;
    let log_lines = log_layer(telemetry.config(), telemetry.filter())?;
    #[cfg(feature = "otlp-logs")]
    let log_records = match &logs {
        Some(pipeline) => {
            pipeline.register_metrics(telemetry.metrics());
            Some(
                pipeline
                    .layer()
                    .with_filter(level_filter(telemetry.config())?),
            )
        }
        None => None,
    };
    #[cfg(not(feature = "otlp-logs"))]
    let log_records: Option<tracing_subscriber::layer::Identity> = None;
    let subscriber = tracing_subscriber::registry()
        .with(spans.layer())
        .with(log_lines)
        .with(log_records);
    tracing::subscriber::set_global_default(subscriber).map_err(|_| Error::SubscriberAlreadySet)?;
    let telemetry = telemetry.install_global()?;
    set_enabled(enabled);
    telemetry.mark_ready();
    Ok(TelemetryGuard {
        telemetry,
        spans,
        #[cfg(feature = "otlp-logs")]
        logs,
        shut_down: false,
    })
}

/// The log layer `config` describes (none when `structured_logging_enabled` is false), filtered by
/// `log_filter` (a `RUST_LOG` directive) or else `log_level`.
fn log_layer<S>(
    config: &TelemetryConfig,
    filter: &crate::filter::ParameterFilter,
) -> Result<Option<Filtered<LogLayer, EnvFilter, S>>, Error>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if !config.structured_logging_enabled {
        return Ok(None);
    }
    Ok(Some(
        LogLayer::new(config.log_format, filter.clone()).with_filter(level_filter(config)?),
    ))
}

/// The level filter of both log sinks: `log_filter` (a `RUST_LOG` directive) or else
/// `log_level`.
fn level_filter(config: &TelemetryConfig) -> Result<EnvFilter, Error> {
    let directive = config
        .log_filter
        .clone()
        .unwrap_or_else(|| config.log_level.as_str().to_owned());
    EnvFilter::builder().parse(&directive).map_err(|e| {
        Error::Config(crate::config::ConfigError::Invalid {
            field: "log_filter".to_owned(),
            value: directive.clone(),
            expected: format!("a RUST_LOG directive such as \"info\" or \"tasker=debug\" ({e})"),
        })
    })
}
