//! Logs as an OTLP signal: `tracing` events become OpenTelemetry log records through
//! opentelemetry-appender-tracing's bridge, go through the parameter filter as each attribute is
//! added, carry the trace and span ids of the span they were written in (the OpenTelemetry
//! context current as the span layer activates it), and leave through a batch processor whose
//! every record delivered, failed or dropped is counted.
//!
//! The exporters' own crates (tonic, hyper, reqwest, rustls, the OpenTelemetry SDK) never become
//! log records, whatever the level filter lets through: one export's diagnostics would be the
//! next export's records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opentelemetry::logs::{AnyValue, LogRecord as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::{InstrumentationScope, Key, KeyValue};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, LogBatch, LogExporter, SdkLogRecord, SdkLogger,
    SdkLoggerProvider,
};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{ExporterSettings, OtlpProtocol, Signal, TelemetryConfig};
use crate::error::Error;
use crate::filter::ParameterFilter;
use crate::metrics::MetricsRegistry;

/// How much longer than an export's timeout shutdown waits for it.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
struct Counters {
    emitted: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    failed_exports: AtomicU64,
    last_error: Mutex<Option<String>>,
    transport_error: Arc<Mutex<Option<String>>>,
}

/// What became of the log records the pipeline was given.
///
/// ```
/// let report = tasker_telemetry::logging::LogExportReport::default();
/// assert!(report.is_clean());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LogExportReport {
    /// Records handed to the batch processor.
    pub emitted: u64,
    /// Records the exporter delivered.
    pub exported: u64,
    /// Records in batches the exporter failed to deliver.
    pub failed: u64,
    /// Records dropped before export (queue full, or still queued at shutdown):
    /// `emitted - exported - failed`.
    pub dropped: u64,
    /// Export calls that failed.
    pub failed_exports: u64,
    /// The most recent export error (credentials masked).
    pub last_error: Option<String>,
    /// The OTLP logs URL (credentials masked).
    pub endpoint: String,
}

impl LogExportReport {
    /// Whether every record emitted was delivered.
    pub fn is_clean(&self) -> bool {
        self.failed == 0 && self.dropped == 0 && self.failed_exports == 0
    }
}

/// The OTLP log signal: a logger provider exporting to the configured logs endpoint, and the
/// `tracing` layer feeding it. [`init`](crate::init) builds one when tasker-telemetry is built
/// with its `otlp-logs` feature and an OTLP endpoint applies to logs; with your own subscriber,
/// add [`layer`](Self::layer) to it (with the level filter you want):
///
/// ```
/// use tasker_telemetry::TelemetryConfig;
/// use tasker_telemetry::logging::LogPipeline;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let config = TelemetryConfig::builder().otlp_endpoint("http://127.0.0.1:9").build()?;
/// let logs = LogPipeline::new(&config)?.expect("an endpoint applies to logs");
/// assert_eq!(logs.report().endpoint, "http://127.0.0.1:9/v1/logs");
/// let subscriber = tracing_subscriber::registry().with(logs.layer());
/// tracing::subscriber::with_default(subscriber, || tracing::info!(order_id = 7, "accepted"));
/// assert_eq!(logs.report().emitted, 1);
/// # Ok::<(), tasker_telemetry::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LogPipeline {
    provider: SdkLoggerProvider,
    counters: Arc<Counters>,
    filter: ParameterFilter,
    endpoint: String,
    export_timeout: Duration,
}

impl LogPipeline {
    /// The pipeline `config` describes, or `None` when no OTLP endpoint applies to logs
    /// (`otlp_logs_endpoint`, or `otlp_endpoint` + `/v1/logs`). Never touches the network to
    /// start.
    pub fn new(config: &TelemetryConfig) -> Result<Option<Self>, Error> {
        let Some(settings) = config.exporter_settings(Signal::Logs) else {
            return Ok(None);
        };
        let filter = config.parameter_filter()?;
        let counters = Arc::new(Counters::default());
        let shown = crate::redact::url(&settings.endpoint);
        let fail = |message: String| Error::LogExport {
            message: format!("{shown}: {message}"),
        };
        let processor = match settings.protocol {
            OtlpProtocol::Grpc => grpc_processor(&settings, &counters).map_err(fail)?,
            _ => http_processor(&settings, &counters).map_err(fail)?,
        };
        let resource = Resource::builder_empty()
            .with_attributes(
                config
                    .resource()
                    .into_iter()
                    .map(|(k, v)| KeyValue::new(k, v)),
            )
            .build();
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_log_processor(processor)
            .build();
        Ok(Some(Self {
            provider,
            counters,
            filter,
            endpoint: shown,
            export_timeout: settings.timeout,
        }))
    }

    /// The `tracing` layer turning events into log records for this pipeline.
    pub fn layer(&self) -> OtlpLogLayer {
        let provider = FilteringProvider {
            inner: self.provider.clone(),
            filter: self.filter.clone(),
            counters: self.counters.clone(),
        };
        OtlpLogLayer {
            bridge: OpenTelemetryTracingBridge::new(&provider),
        }
    }

    /// Adds the pipeline's losses to `registry`, as
    /// `tasker_telemetry_dropped_total{sink="logs",reason="export_failed"|"not_exported"}`.
    pub fn register_metrics(&self, registry: &MetricsRegistry) {
        let pipeline = self.clone();
        registry.register_collector(move || {
            let report = pipeline.report();
            vec![crate::metrics::dropped_total([
                ("logs", "export_failed", report.failed),
                ("logs", "not_exported", report.dropped),
            ])]
        });
    }

    /// What became of the records so far.
    pub fn report(&self) -> LogExportReport {
        let c = &self.counters;
        // First, with acquire: every count and the error stored before it are visible below.
        let failed_exports = c.failed_exports.load(Ordering::Acquire);
        let emitted = c.emitted.load(Ordering::Relaxed);
        let exported = c.exported.load(Ordering::Relaxed);
        let failed = c.failed.load(Ordering::Relaxed);
        LogExportReport {
            emitted,
            exported,
            failed,
            dropped: emitted.saturating_sub(exported + failed),
            failed_exports,
            last_error: c.last_error.lock().ok().and_then(|l| l.clone()),
            endpoint: self.endpoint.clone(),
        }
    }

    /// Exports what is queued now.
    pub fn flush(&self) -> LogExportReport {
        let _ = self.provider.force_flush();
        self.report()
    }

    /// Flushes and stops export, waiting at most the export timeout, and reports what became of
    /// every record. Later records are dropped (and not counted: they never enter the
    /// pipeline).
    pub fn shutdown(&self) -> LogExportReport {
        if let Err(e) = self
            .provider
            .shutdown_with_timeout(self.export_timeout + SHUTDOWN_GRACE)
            && let Ok(mut last) = self.counters.last_error.lock()
        {
            last.get_or_insert_with(|| format!("shutdown: {e}"));
        }
        self.report()
    }
}

fn batch<E: LogExporter + 'static>(exporter: E, counters: &Arc<Counters>) -> BatchLogProcessor {
    BatchLogProcessor::builder(CountingExporter {
        inner: exporter,
        counters: counters.clone(),
    })
    .with_batch_config(BatchConfigBuilder::default().build())
    .build()
}

fn http_processor(
    settings: &ExporterSettings,
    counters: &Arc<Counters>,
) -> Result<BatchLogProcessor, String> {
    let transport =
        crate::otlp::transport::HttpTransport::new(settings, counters.transport_error.clone())?;
    let exporter = crate::otlp::configure_http(
        opentelemetry_otlp::LogExporter::builder().with_http(),
        settings,
        transport,
    )
    .build()
    .map_err(|e| crate::redact::text(&e.to_string()))?;
    Ok(batch(exporter, counters))
}

#[cfg(feature = "otlp-grpc")]
fn grpc_processor(
    settings: &ExporterSettings,
    counters: &Arc<Counters>,
) -> Result<BatchLogProcessor, String> {
    let exporter = crate::otlp::grpc::Tonic::new(settings)?
        .build(
            settings,
            opentelemetry_otlp::LogExporter::builder().with_tonic(),
            |builder| builder.build(),
        )
        .map_err(|e| crate::redact::text(&e.to_string()))?;
    Ok(batch(exporter, counters))
}

#[cfg(not(feature = "otlp-grpc"))]
fn grpc_processor(
    _settings: &ExporterSettings,
    _counters: &Arc<Counters>,
) -> Result<BatchLogProcessor, String> {
    Err("otlp_protocol = grpc needs tasker-telemetry's `otlp-grpc` cargo feature".to_owned())
}

/// Counts what the exporter delivered or failed to, and reports failures through `tracing`
/// (target `tasker_telemetry::export`; on the export thread, where the SDK keeps them from
/// becoming records themselves).
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    counters: Arc<Counters>,
}

impl<E: LogExporter> LogExporter for CountingExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                self.counters.exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                let message = crate::otlp::failure_message(&self.counters.transport_error, e);
                tracing::warn!(
                    target: "tasker_telemetry::export",
                    records = n,
                    error = %message,
                    "log export failed; the records are dropped and counted"
                );
                if let Ok(mut last) = self.counters.last_error.lock() {
                    *last = Some(message);
                }
                self.counters.failed.fetch_add(n, Ordering::Relaxed);
                // Release, paired with the report's acquire: a report that shows a failure also
                // shows why.
                self.counters.failed_exports.fetch_add(1, Ordering::Release);
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The `tracing` layer of a [`LogPipeline`]: opentelemetry-appender-tracing's bridge, over a
/// logger that filters attributes and counts records.
pub struct OtlpLogLayer {
    bridge: OpenTelemetryTracingBridge<FilteringProvider, FilteringLogger>,
}

impl std::fmt::Debug for OtlpLogLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpLogLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for OtlpLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if crate::otlp::is_export_stack(event.metadata()) {
            return;
        }
        self.bridge.on_event(event, ctx);
    }
}

/// Hands out [`FilteringLogger`]s over the SDK's.
#[derive(Debug)]
struct FilteringProvider {
    inner: SdkLoggerProvider,
    filter: ParameterFilter,
    counters: Arc<Counters>,
}

impl opentelemetry::logs::LoggerProvider for FilteringProvider {
    type Logger = FilteringLogger;

    fn logger_with_scope(&self, scope: InstrumentationScope) -> FilteringLogger {
        FilteringLogger {
            inner: self.inner.logger_with_scope(scope),
            filter: self.filter.clone(),
            counters: self.counters.clone(),
        }
    }
}

/// The SDK's logger, with every attribute through the parameter filter (the SDK's record cannot
/// change an attribute once added, so attributes wait in the record until it is emitted).
#[derive(Debug)]
struct FilteringLogger {
    inner: SdkLogger,
    filter: ParameterFilter,
    counters: Arc<Counters>,
}

impl opentelemetry::logs::Logger for FilteringLogger {
    type LogRecord = PendingRecord;

    fn create_log_record(&self) -> PendingRecord {
        PendingRecord {
            inner: self.inner.create_log_record(),
            attributes: Vec::new(),
            body: None,
        }
    }

    fn emit(&self, record: PendingRecord) {
        // The SDK drops records written while telemetry is suppressed (its own threads'); they
        // never entered the pipeline, so they are not counted as emitted.
        if opentelemetry::Context::is_current_telemetry_suppressed() {
            return;
        }
        let PendingRecord {
            mut inner,
            attributes,
            body,
        } = record;
        if let Some(body) = body {
            inner.set_body(self.scrubbed(body));
        }
        for (key, value) in attributes {
            let value = self.filtered(&key, value);
            inner.add_attribute(key, value);
        }
        self.counters.emitted.fetch_add(1, Ordering::Relaxed);
        self.inner.emit(inner);
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }
}

impl FilteringLogger {
    /// The record's body (the log message) with the secrets value detection finds masked.
    fn scrubbed(&self, body: AnyValue) -> AnyValue {
        match body {
            AnyValue::String(text) => match self.filter.scrub(text.as_str()) {
                std::borrow::Cow::Owned(masked) => AnyValue::String(masked.into()),
                std::borrow::Cow::Borrowed(_) => AnyValue::String(text),
            },
            other => other,
        }
    }

    fn filtered(&self, key: &Key, value: AnyValue) -> AnyValue {
        let mask = || AnyValue::String(self.filter.mask().to_owned().into());
        match value {
            AnyValue::String(text) => match self.filter.filter_field(key.as_str(), text.as_str()) {
                std::borrow::Cow::Owned(masked) => AnyValue::String(masked.into()),
                std::borrow::Cow::Borrowed(_) => AnyValue::String(text),
            },
            // A number or a flag under a sensitive key: masked as text would be.
            _ if matches!(
                self.filter.filter_field(key.as_str(), ""),
                std::borrow::Cow::Owned(_)
            ) =>
            {
                mask()
            }
            other => other,
        }
    }
}

/// A record being built: the SDK's, with its body and attributes held back for the filter.
#[derive(Debug)]
struct PendingRecord {
    inner: SdkLogRecord,
    attributes: Vec<(Key, AnyValue)>,
    body: Option<AnyValue>,
}

impl opentelemetry::logs::LogRecord for PendingRecord {
    fn set_event_name(&mut self, name: &'static str) {
        self.inner.set_event_name(name);
    }

    fn set_target<T>(&mut self, target: T)
    where
        T: Into<std::borrow::Cow<'static, str>>,
    {
        self.inner.set_target(target);
    }

    fn set_timestamp(&mut self, timestamp: SystemTime) {
        self.inner.set_timestamp(timestamp);
    }

    fn set_observed_timestamp(&mut self, timestamp: SystemTime) {
        self.inner.set_observed_timestamp(timestamp);
    }

    fn set_severity_text(&mut self, text: &'static str) {
        self.inner.set_severity_text(text);
    }

    fn set_severity_number(&mut self, number: Severity) {
        self.inner.set_severity_number(number);
    }

    fn set_body(&mut self, body: AnyValue) {
        self.body = Some(body);
    }

    fn add_attributes<I, K, V>(&mut self, attributes: I)
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<Key>,
        V: Into<AnyValue>,
    {
        for (key, value) in attributes {
            self.add_attribute(key, value);
        }
    }

    fn add_attribute<K, V>(&mut self, key: K, value: V)
    where
        K: Into<Key>,
        V: Into<AnyValue>,
    {
        self.attributes.push((key.into(), value.into()));
    }

    fn set_trace_context(
        &mut self,
        trace_id: TraceId,
        span_id: SpanId,
        trace_flags: Option<TraceFlags>,
    ) {
        self.inner.set_trace_context(trace_id, span_id, trace_flags);
    }
}
