//! The span export pipeline: an OpenTelemetry tracer provider with a ratio sampler, a batch
//! processor (its own thread, bounded queue) and an exporter (OTLP/HTTP, or the in-process
//! [`SpanStore`]), wrapped so that every span ended, exported, failed or dropped is counted, and
//! so that no attribute carries a secret out: the parameter filter masks span, span-event and
//! link attributes on the export thread, before any exporter sees them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, Span, SpanData,
    SpanExporter, SpanProcessor,
};

use super::attribute_filter::AttributeFilter;
use super::layer::SpanLayer;
use super::store::SpanStore;
use crate::config::{
    ExporterSettings, OtlpProtocol, Signal, SpanBatchOptions, TelemetryConfig, TraceSampler,
};
use crate::error::Error;
use crate::filter::ParameterFilter;
use crate::metrics::MetricsRegistry;
use crate::metrics::cell::{self, Slots};

/// How long shutdown waits without an OTLP exporter (which brings its own timeout).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much longer than an export's timeout shutdown waits for it.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
struct Counters {
    ended: EndedCount,
    exported: AtomicU64,
    failed: AtomicU64,
    failed_exports: AtomicU64,
    /// Export calls failed in a row (reset by a success): readiness watches this.
    consecutive_failures: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Filled by the HTTP client with the transport error behind an export failure.
    transport_error: Arc<Mutex<Option<String>>>,
    /// Each of the pipeline's layers' open task spans.
    open_spans: Mutex<Vec<Arc<super::layer::OpenSpans>>>,
}

/// Spans ended, counted on every step thread's own lane (see `metrics::cell`): the count is
/// taken once per span, and a shared atomic would be a locked add on a line the export thread
/// writes too.
#[derive(Debug)]
struct EndedCount(Slots);

impl Default for EndedCount {
    fn default() -> Self {
        Self(Slots::new(1, 0))
    }
}

impl EndedCount {
    fn add_one(&self) {
        self.0.add_u64(cell::lane(), 0, 1);
    }

    fn get(&self) -> u64 {
        self.0.sum_u64(0)
    }
}

/// What became of the spans the pipeline was given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpanExportReport {
    /// Sampled spans that ended and entered the pipeline.
    pub ended: u64,
    /// Spans the exporter delivered.
    pub exported: u64,
    /// Spans in batches the exporter failed to deliver (collector down, refused, 4xx / 5xx).
    pub failed: u64,
    /// Spans dropped before export (queue full, or still queued at shutdown):
    /// `ended - exported - failed`.
    pub dropped: u64,
    /// Export calls that failed.
    pub failed_exports: u64,
    /// Export calls failed in a row, up to now (0 after a success).
    pub consecutive_failures: u64,
    /// The most recent export error, if any.
    pub last_error: Option<String>,
    /// Where spans go: the OTLP traces URL, or `None` for the in-process store.
    pub endpoint: Option<String>,
    /// Task spans and step attempts' spans still open when the pipeline shut down (a task
    /// neither completed, failed nor was cancelled while a scope of it was still alive; an
    /// attempt begun and not yet finished): ended then and exported with status error and the
    /// attribute `tasker.open_at_shutdown = true`. A step span ended so carries no step
    /// attributes (the attempt adds them as it ends); its parent is its task's span. 0 before
    /// shutdown.
    pub open_at_shutdown: u64,
}

impl SpanExportReport {
    /// Whether every span that ended was delivered.
    pub fn is_clean(&self) -> bool {
        self.failed == 0
            && self.dropped == 0
            && self.failed_exports == 0
            && self.open_at_shutdown == 0
    }
}

/// Counts spans entering the batch processor.
#[derive(Debug)]
struct CountingProcessor {
    inner: BatchSpanProcessor,
    counters: Arc<Counters>,
}

impl SpanProcessor for CountingProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.counters.ended.add_one();
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counts what the exporter delivered or failed to, and reports failures through `tracing`
/// (target `tasker_telemetry::export`): export failures are never silent. Filters every span
/// first, on the export thread, so the steps never pay for it.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    counters: Arc<Counters>,
    filter: AttributeFilter,
    /// Keeps a copy of each filtered batch, whatever becomes of the export.
    store: Option<SpanStore>,
}

/// What every exporter of the pipeline is wrapped in: the counters, the parameter filter and the
/// in-process store.
struct Wrap<'a> {
    counters: &'a Arc<Counters>,
    filter: &'a ParameterFilter,
    store: Option<&'a SpanStore>,
}

impl Wrap<'_> {
    fn counting<E>(&self, inner: E) -> CountingExporter<E> {
        CountingExporter {
            inner,
            counters: self.counters.clone(),
            filter: AttributeFilter::new(self.filter.clone()),
            store: self.store.cloned(),
        }
    }
}

/// Where spans go with no OTLP endpoint: the store, as the exporter (so the batch is moved into
/// it, not copied), or nowhere when it is off.
#[derive(Debug)]
struct StoreOnly(Option<SpanStore>);

impl SpanExporter for StoreOnly {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if let Some(store) = &self.0 {
            store.record(batch);
        }
        Ok(())
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        for span in &mut batch {
            self.filter.apply(span);
        }
        if let Some(store) = &self.store {
            store.record(batch.clone());
        }
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                self.counters.exported.fetch_add(n, Ordering::Relaxed);
                self.counters
                    .consecutive_failures
                    .store(0, Ordering::Relaxed);
            }
            Err(e) => {
                let message = crate::otlp::failure_message(&self.counters.transport_error, e);
                tracing::warn!(
                    target: "tasker_telemetry::export",
                    spans = n,
                    error = %message,
                    "span export failed; the spans are dropped and counted"
                );
                if let Ok(mut last) = self.counters.last_error.lock() {
                    *last = Some(message);
                }
                // Counted after the error is stored (release, paired with the report's acquire):
                // a report that shows a failure also shows why.
                self.counters.failed.fetch_add(n, Ordering::Relaxed);
                self.counters
                    .consecutive_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.counters.failed_exports.fetch_add(1, Ordering::Release);
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The span half of telemetry: tracer provider, exporter and statistics.
///
/// [`init`](crate::init) builds one and installs its [`layer`](Self::layer) in a
/// `tracing-subscriber` registry. If your program already runs a `tracing` subscriber, build the
/// pipeline yourself and add the layer to your stack:
///
/// ```
/// use tasker_telemetry::spans::SpanPipeline;
/// use tasker_telemetry::TelemetryConfig;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let pipeline = SpanPipeline::new(&TelemetryConfig::default())?;
/// let subscriber = tracing_subscriber::registry().with(pipeline.layer());
/// tracing::subscriber::with_default(subscriber, || {
///     // instrumented work
/// });
/// let report = pipeline.shutdown();
/// assert!(report.is_clean());
/// # Ok::<(), tasker_telemetry::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SpanPipeline {
    provider: SdkTracerProvider,
    counters: Arc<Counters>,
    store: Option<SpanStore>,
    endpoint: Option<String>,
    /// How long shutdown waits for the last export: the exporter's own timeout.
    export_timeout: Duration,
}

impl SpanPipeline {
    /// Builds the pipeline `config` describes: OTLP/HTTP export to
    /// [`TelemetryConfig::traces_endpoint`] when one is set (cargo feature `otlp`, on by
    /// default), and in either case the in-process [`SpanStore`] of the last
    /// `span_store_tasks` tasks. Never touches the network to start.
    pub fn new(config: &TelemetryConfig) -> Result<Self, Error> {
        let counters = Arc::new(Counters::default());
        let filter = config.parameter_filter()?;
        let settings = config.exporter_settings(Signal::Traces);
        let store = store_for(config);
        let wrap = Wrap {
            counters: &counters,
            filter: &filter,
            store: store.as_ref(),
        };
        let processor = match &settings {
            Some(s) if s.protocol == OtlpProtocol::Grpc => {
                Self::grpc_processor(s, &wrap, &config.span_batch)?
            }
            Some(s) => Self::otlp_processor(s, &wrap, &config.span_batch)?,
            None => batch(
                Wrap {
                    store: None,
                    ..wrap
                }
                .counting(StoreOnly(store.clone())),
                &config.span_batch,
            ),
        };
        // Shown in reports and `/health/status`: never with the URL's credentials.
        let endpoint = settings.as_ref().map(|s| crate::redact::url(&s.endpoint));
        let timeout = settings.map(|s| s.timeout);
        let mut pipeline = Self::assemble(config, processor, counters, store, endpoint);
        if let Some(timeout) = timeout {
            pipeline.export_timeout = timeout;
        }
        Ok(pipeline)
    }

    /// Builds the pipeline around your own exporter (a vendor SDK's, or one that discards, as
    /// the benchmarks use), with the same sampler, batch processor, counting, parameter filter
    /// and in-process store as [`new`](Self::new). `config`'s endpoint settings are ignored;
    /// invalid filter rules fall back to Tasker's defaults (`new` reports them as an error).
    ///
    /// ```
    /// use opentelemetry_sdk::error::OTelSdkResult;
    /// use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    /// use tasker_telemetry::spans::SpanPipeline;
    /// use tasker_telemetry::TelemetryConfig;
    ///
    /// #[derive(Debug)]
    /// struct Discard;
    ///
    /// impl SpanExporter for Discard {
    ///     async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let pipeline = SpanPipeline::with_exporter(&TelemetryConfig::default(), Discard);
    /// assert_eq!(pipeline.store().map(|s| s.capacity()), Some(100));
    /// assert!(pipeline.shutdown().is_clean());
    /// ```
    pub fn with_exporter<E: SpanExporter + 'static>(config: &TelemetryConfig, exporter: E) -> Self {
        let counters = Arc::new(Counters::default());
        let filter = config
            .parameter_filter()
            .unwrap_or_else(|_| ParameterFilter::tasker_default());
        let store = store_for(config);
        let wrap = Wrap {
            counters: &counters,
            filter: &filter,
            store: store.as_ref(),
        };
        let processor = batch(wrap.counting(exporter), &config.span_batch);
        Self::assemble(config, processor, counters, store, None)
    }

    fn assemble(
        config: &TelemetryConfig,
        processor: BatchSpanProcessor,
        counters: Arc<Counters>,
        store: Option<SpanStore>,
        endpoint: Option<String>,
    ) -> Self {
        let resource = Resource::builder_empty()
            .with_attributes(
                config
                    .resource()
                    .into_iter()
                    .map(|(k, v)| KeyValue::new(k, v)),
            )
            .build();
        let ratio = || Sampler::TraceIdRatioBased(config.trace_sampling_ratio);
        let sampler = match config.trace_sampler {
            TraceSampler::AlwaysOn => Sampler::AlwaysOn,
            TraceSampler::AlwaysOff => Sampler::AlwaysOff,
            TraceSampler::TraceIdRatio => ratio(),
            TraceSampler::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            TraceSampler::ParentBasedAlwaysOff => {
                Sampler::ParentBased(Box::new(Sampler::AlwaysOff))
            }
            // Also any sampler added later: the default.
            _ => Sampler::ParentBased(Box::new(ratio())),
        };
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(sampler)
            .with_span_processor(CountingProcessor {
                inner: processor,
                counters: counters.clone(),
            })
            .build();
        Self {
            provider,
            counters,
            store,
            endpoint,
            export_timeout: EXPORT_TIMEOUT,
        }
    }

    #[cfg(feature = "otlp")]
    fn otlp_processor(
        settings: &ExporterSettings,
        wrap: &Wrap<'_>,
        options: &SpanBatchOptions,
    ) -> Result<BatchSpanProcessor, Error> {
        let shown = crate::redact::url(&settings.endpoint);
        let transport = crate::otlp::transport::HttpTransport::new(
            settings,
            wrap.counters.transport_error.clone(),
        )
        .map_err(|message| Error::SpanExport {
            message: format!("{shown}: {message}"),
        })?;
        let builder = crate::otlp::configure_http(
            opentelemetry_otlp::SpanExporter::builder().with_http(),
            settings,
            transport,
        );
        let exporter = builder.build().map_err(|e| Error::SpanExport {
            message: crate::redact::text(&e.to_string()),
        })?;
        Ok(batch(wrap.counting(exporter), options))
    }

    #[cfg(not(feature = "otlp"))]
    fn otlp_processor(
        settings: &ExporterSettings,
        _wrap: &Wrap<'_>,
        _options: &SpanBatchOptions,
    ) -> Result<BatchSpanProcessor, Error> {
        Err(Error::SpanExport {
            message: format!(
                "an OTLP endpoint ({}) is configured but tasker-telemetry was built without its `otlp` feature",
                crate::redact::url(&settings.endpoint)
            ),
        })
    }

    #[cfg(feature = "otlp-grpc")]
    fn grpc_processor(
        settings: &ExporterSettings,
        wrap: &Wrap<'_>,
        options: &SpanBatchOptions,
    ) -> Result<BatchSpanProcessor, Error> {
        let shown = crate::redact::url(&settings.endpoint);
        let fail = |message: String| Error::SpanExport {
            message: format!("{shown}: {message}"),
        };
        let exporter = crate::otlp::grpc::Tonic::new(settings)
            .map_err(fail)?
            .build(
                settings,
                opentelemetry_otlp::SpanExporter::builder().with_tonic(),
                |builder| builder.build(),
            )
            .map_err(|e| fail(crate::redact::text(&e.to_string())))?;
        Ok(batch(wrap.counting(exporter), options))
    }

    #[cfg(not(feature = "otlp-grpc"))]
    fn grpc_processor(
        settings: &ExporterSettings,
        _wrap: &Wrap<'_>,
        _options: &SpanBatchOptions,
    ) -> Result<BatchSpanProcessor, Error> {
        Err(Error::SpanExport {
            message: format!(
                "otlp_protocol = grpc ({}) needs tasker-telemetry's `otlp-grpc` cargo feature",
                crate::redact::url(&settings.endpoint)
            ),
        })
    }

    /// The open-span set of the layer made last, for the layer's tests.
    #[cfg(test)]
    pub(super) fn open_spans_for_tests(&self) -> Arc<super::layer::OpenSpans> {
        let sets = self.counters.open_spans.lock().unwrap();
        sets.last().expect("a layer was made").clone()
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans for this pipeline.
    ///
    /// The scopes' lifecycle log lines (target `tasker::lifecycle`) are left to the log layer:
    /// the span already carries those moments as span events.
    pub fn layer<S>(&self) -> SpanLayer<S>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        SpanLayer::new(
            tracing_opentelemetry::layer()
                .with_tracer(self.provider.tracer("tasker-telemetry"))
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                // The span's name and attributes say what it is; a `target` attribute repeated on
                // every span would be one more allocation per span.
                .with_target(false),
            {
                let open = Arc::new(super::layer::OpenSpans::default());
                self.counters
                    .open_spans
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(open.clone());
                open
            },
        )
    }

    /// Adds the pipeline's losses to `registry` as `tasker_telemetry_dropped_total{sink="spans"}`
    /// (reasons `export_failed` and `not_exported`). [`init`](crate::init) does this.
    pub fn register_metrics(&self, registry: &MetricsRegistry) {
        let pipeline = self.clone();
        registry.register_collector(move || {
            let report = pipeline.report();
            vec![crate::metrics::dropped_total([
                ("spans", "export_failed", report.failed),
                ("spans", "not_exported", report.dropped),
            ])]
        });
    }

    /// The in-process store of the last `span_store_tasks` tasks' spans, with or without an OTLP
    /// endpoint or your own exporter; `None` when `span_store_tasks` is 0.
    pub fn store(&self) -> Option<&SpanStore> {
        self.store.as_ref()
    }

    /// Exports what is queued now, waiting at most the export timeout.
    pub fn flush(&self) -> SpanExportReport {
        let _ = self.provider.force_flush();
        self.report()
    }

    /// What became of the spans so far.
    pub fn report(&self) -> SpanExportReport {
        let c = &self.counters;
        // First, with acquire: every count and the error stored before it are visible below.
        let failed_exports = c.failed_exports.load(Ordering::Acquire);
        let ended = c.ended.get();
        let exported = c.exported.load(Ordering::Relaxed);
        let failed = c.failed.load(Ordering::Relaxed);
        SpanExportReport {
            ended,
            exported,
            failed,
            dropped: ended.saturating_sub(exported + failed),
            failed_exports,
            consecutive_failures: c.consecutive_failures.load(Ordering::Relaxed),
            last_error: c.last_error.lock().ok().and_then(|l| l.clone()),
            endpoint: self.endpoint.clone(),
            open_at_shutdown: 0,
        }
    }

    /// Flushes and stops export, waiting at most the export timeout (5 s), and reports what
    /// became of every span. Later spans are dropped.
    pub fn shutdown(&self) -> SpanExportReport {
        // Task and step spans still open are ended first, marked, so that they are exported too.
        let layers = self
            .counters
            .open_spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let open_at_shutdown: u64 = layers.iter().map(|t| t.end_all_at_shutdown()).sum();
        // A little past the export's own timeout, so that an export still running ends by its
        // timeout, and is counted as failed with its reason, rather than by the shutdown's.
        let wait = self.export_timeout + SHUTDOWN_GRACE;
        if let Err(e) = self.provider.shutdown_with_timeout(wait)
            && let Ok(mut last) = self.counters.last_error.lock()
        {
            last.get_or_insert_with(|| format!("shutdown: {e}"));
        }
        SpanExportReport {
            open_at_shutdown,
            ..self.report()
        }
    }
}

/// The store `config` asks for: the last `span_store_tasks` tasks, or none for 0.
fn store_for(config: &TelemetryConfig) -> Option<SpanStore> {
    (config.span_store_tasks > 0).then(|| SpanStore::new(config.span_store_tasks))
}

fn batch<E: SpanExporter + 'static>(exporter: E, options: &SpanBatchOptions) -> BatchSpanProcessor {
    BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(options.max_queue_size)
                .with_max_export_batch_size(options.max_export_batch_size)
                .with_scheduled_delay(Duration::from_millis(options.schedule_delay_ms))
                .build(),
        )
        .build()
}
