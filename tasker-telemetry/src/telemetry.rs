//! The telemetry handle (configuration, filter and publisher together) and the global on/off
//! switch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::catalog;
use crate::catalog::MAX_EVENTS;
use crate::config::TelemetryConfig;
use crate::error::Error;
use crate::event::{EventName, EventPayload};
use crate::filter::ParameterFilter;
use crate::metrics::{
    Counter, CounterVec, FamilySnapshot, MetricKind, MetricsRegistry, SeriesSnapshot, SeriesValue,
    StandardMetrics,
};
use crate::payload::Fields;
use crate::publisher::Publisher;
use crate::router::{EventRouter, Sinks};

static ENABLED: AtomicBool = AtomicBool::new(true);
static GLOBAL: OnceLock<Telemetry> = OnceLock::new();

/// Whether instrumentation is on. One relaxed atomic load: this is the whole cost of a
/// `#[step_handler]` call when telemetry is off.
#[inline(always)]
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Switches all instrumentation in the process on or off at run time.
///
/// ```
/// tasker_telemetry::set_enabled(false);
/// assert!(!tasker_telemetry::is_enabled());
/// tasker_telemetry::set_enabled(true);
/// ```
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

struct Inner {
    config: TelemetryConfig,
    filter: ParameterFilter,
    publisher: Publisher,
    metrics: Arc<MetricsRegistry>,
    standard: Option<StandardMetrics>,
    ready: AtomicBool,
    router: EventRouter,
    routed: Option<CounterVec>,
    routed_handles: Box<[OnceLock<Counter>]>,
    /// Calls to finish a task that had already finished (ignored), read by the collector.
    repeated_finishes: Arc<AtomicU64>,
    /// Contexts given to a shared task that already had one (ignored), read by the collector.
    dropped_contexts: Arc<AtomicU64>,
}

/// Configuration, parameter filter and publisher: everything a scope needs to report.
///
/// Cheap to clone. Most programs use the process-wide instance set up by [`init`](crate::init)
/// ([`Telemetry::global`]); tests and embedded hosts can build their own.
///
/// ```
/// use tasker_telemetry::{Telemetry, TelemetryConfig};
///
/// let config = TelemetryConfig::builder().service_name("checkout").build()?;
/// let telemetry = Telemetry::new(config)?;
/// assert_eq!(telemetry.config().service_name, "checkout");
/// # Ok::<(), tasker_telemetry::Error>(())
/// ```
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("service_name", &self.inner.config.service_name)
            .field("publisher", &self.inner.publisher)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Validates `config` and builds the filter and publisher it describes.
    ///
    /// Names in `filtered_events` must be catalog events or patterns matching at least one.
    pub fn new(config: TelemetryConfig) -> Result<Self, Error> {
        config.validate()?;
        crate::clock::calibrate();
        let filter = config.parameter_filter()?;
        let publisher = Publisher::new();
        for pattern in &config.filtered_events {
            let matched: Vec<EventName> = if pattern.contains('*') {
                catalog::matching(pattern)
            } else {
                EventName::lookup(pattern).into_iter().collect()
            };
            if matched.is_empty() {
                return Err(Error::UnknownFilteredEvent {
                    name: pattern.clone(),
                    suggestion: catalog::suggest(pattern),
                });
            }
            for event in matched {
                publisher.set_muted(event, true);
            }
        }
        let metrics = Arc::new(
            MetricsRegistry::with_cardinality_cap(config.metrics_cardinality_cap)
                .with_filter(filter.clone()),
        );
        let standard = if config.metrics_enabled {
            Some(
                StandardMetrics::register(&metrics).map_err(|e| Error::Metrics {
                    message: e.to_string(),
                })?,
            )
        } else {
            None
        };
        let repeated_finishes = Arc::new(AtomicU64::new(0));
        let dropped_contexts = Arc::new(AtomicU64::new(0));
        register_collectors(
            &metrics,
            &publisher,
            &config,
            &filter,
            [&repeated_finishes, &dropped_contexts],
        );
        let router =
            EventRouter::tasker_defaults().with_global_sampling(config.event_sampling_rate);
        let routed = Some(routed_counter(&metrics)?);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                filter,
                publisher,
                metrics,
                standard,
                ready: AtomicBool::new(false),
                router,
                routed,
                routed_handles: (0..MAX_EVENTS).map(|_| OnceLock::new()).collect(),
                repeated_finishes,
                dropped_contexts,
            }),
        })
    }

    /// The process-wide instance: the one [`init`](crate::init) installed, or Tasker's defaults
    /// if `init` was never called.
    pub fn global() -> &'static Telemetry {
        GLOBAL.get_or_init(Telemetry::fallback)
    }

    fn fallback() -> Telemetry {
        // Tasker's defaults always validate; should that ever break, a quiet instance (no
        // standard metrics) still beats a panic in the caller.
        Telemetry::new(TelemetryConfig::default()).unwrap_or_else(|_| {
            let config = TelemetryConfig::default();
            Self {
                inner: Arc::new(Inner {
                    config,
                    filter: ParameterFilter::tasker_default(),
                    publisher: Publisher::new(),
                    metrics: Arc::new(MetricsRegistry::new()),
                    standard: None,
                    ready: AtomicBool::new(false),
                    router: EventRouter::tasker_defaults(),
                    routed: None,
                    routed_handles: (0..MAX_EVENTS).map(|_| OnceLock::new()).collect(),
                    repeated_finishes: Arc::default(),
                    dropped_contexts: Arc::default(),
                }),
            }
        })
    }

    /// Counts a call that tried to finish a task a second time (and was ignored).
    pub(crate) fn count_repeated_finish(&self) {
        self.inner.repeated_finishes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a context given to a shared task that already had one (and was ignored).
    pub(crate) fn count_dropped_context(&self) {
        self.inner.dropped_contexts.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a process-wide instance is in place (installed by `init`, or the fallback).
    pub(crate) fn is_installed() -> bool {
        GLOBAL.get().is_some()
    }

    /// Installs `self` as the process-wide instance; fails if one is already in place.
    pub(crate) fn install_global(self) -> Result<&'static Telemetry, Error> {
        let mut installed = false;
        let global = GLOBAL.get_or_init(|| {
            installed = true;
            self
        });
        if installed {
            Ok(global)
        } else {
            Err(Error::AlreadyInitialized)
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &TelemetryConfig {
        &self.inner.config
    }

    /// The sensitive-data filter every sink applies.
    pub fn filter(&self) -> &ParameterFilter {
        &self.inner.filter
    }

    /// The event publisher.
    pub fn publisher(&self) -> &Publisher {
        &self.inner.publisher
    }

    /// The metrics registry: the standard metrics, and any you register yourself.
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.inner.metrics
    }

    /// The event router (Tasker's default routes, scaled by `event_sampling_rate`).
    pub fn router(&self) -> &EventRouter {
        &self.inner.router
    }

    /// Replaces the routes with `router`'s, for this telemetry and its scopes.
    pub fn set_router(&self, router: &EventRouter) {
        self.inner.router.replace_with(router);
    }

    /// Decides which sinks this occurrence of `event` reaches, once, and counts it in
    /// `tasker_routed_events_total` when metrics is among them. With
    /// `structured_logging_enabled` off, no event reaches the log sink: nobody asked for the
    /// lines, so they are not built.
    #[inline]
    pub(crate) fn route(&self, event: EventName) -> Sinks {
        let mut sinks = self.inner.router.decide(event);
        if !self.inner.config.structured_logging_enabled {
            sinks = sinks.difference(Sinks::LOGS);
        }
        if sinks.contains(Sinks::METRICS)
            && let Some(routed) = &self.inner.routed
        {
            self.inner.routed_handles[event.index()]
                .get_or_init(|| routed.with(&[event.as_str()]))
                .inc();
        }
        sinks
    }

    /// Whether setup completed: [`init`](crate::init) marks the process-wide instance ready;
    /// call [`mark_ready`](Self::mark_ready) when you assemble telemetry yourself.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Relaxed)
    }

    /// Marks setup complete (for `/health/ready`).
    pub fn mark_ready(&self) {
        self.inner.ready.store(true, Ordering::Relaxed);
    }

    /// The standard metrics, unless `metrics_enabled` is false.
    pub(crate) fn standard_metrics(&self) -> Option<&StandardMetrics> {
        self.inner.standard.as_ref()
    }

    /// Publishes a custom event from its typed payload (see [`EventPayload`]). The payload is
    /// serialised, and its fields filtered, only when someone listens and telemetry is on.
    /// Returns whether anyone received it.
    pub fn publish_event<E: EventPayload>(&self, payload: &E) -> bool {
        let Some(name) = E::event_name() else {
            return false;
        };
        if !is_enabled() {
            return false;
        }
        self.inner.publisher.publish_with(name, || {
            let mut value = crate::filter::to_value_bounded(payload, crate::filter::Past::Masked)
                .unwrap_or_else(|e| serde_json::json!({ "serialization_error": e.to_string() }));
            self.inner.filter.filter_in_place(&mut value);
            match value {
                serde_json::Value::Object(map) => Fields::from(map),
                // A payload that is not a struct of fields still reaches subscribers, whole.
                other => {
                    let mut fields = Fields::new();
                    fields.insert("value", other);
                    fields
                }
            }
        })
    }
}

/// Families whose values live in the publisher and configuration, computed at snapshot time.
fn register_collectors(
    metrics: &MetricsRegistry,
    publisher: &Publisher,
    config: &TelemetryConfig,
    filter: &ParameterFilter,
    [repeated_finishes, dropped_contexts]: [&Arc<AtomicU64>; 2],
) {
    let counter =
        |name: &str, help: &str, labels: &[&str], series: Vec<(Vec<String>, u64)>| FamilySnapshot {
            name: name.to_owned(),
            help: help.to_owned(),
            unit: None,
            kind: MetricKind::Counter,
            label_names: labels.iter().map(|l| (*l).to_owned()).collect(),
            series: series
                .into_iter()
                .map(|(label_values, v)| {
                    SeriesSnapshot::new(label_values, SeriesValue::Counter(v as f64))
                })
                .collect(),
        };
    let publisher = publisher.clone();
    let filter = filter.clone();
    let (repeated_finishes, dropped_contexts) =
        (repeated_finishes.clone(), dropped_contexts.clone());
    let (version, service) = (config.service_version.clone(), config.service_name.clone());
    metrics.register_collector(move || {
        let published = publisher
            .published_by_namespace()
            .into_iter()
            .map(|(ns, n)| (vec![ns.to_owned()], n))
            .collect();
        let mut failures: Vec<(Vec<String>, u64)> = Vec::new();
        for (name, stats) in publisher.subscriber_stats() {
            match failures.iter_mut().find(|(labels, _)| labels[0] == *name) {
                Some((_, n)) => *n += stats.panics,
                None => failures.push((vec![name.to_string()], stats.panics)),
            }
        }
        let stats = publisher.stats();
        vec![
            counter(
                "tasker_events_published_total",
                "Events delivered to at least one subscriber, by namespace.",
                &["namespace"],
                published,
            ),
            counter(
                "tasker_subscriber_failures_total",
                "Subscriber calls that panicked (caught; other subscribers and the step unaffected), by subscriber.",
                &["subscriber"],
                failures,
            ),
            crate::metrics::dropped_total([
                ("subscriber", "queue_full", stats.dropped),
                ("subscriber", "reentrant_depth", stats.reentrant_dropped),
                (
                    "task",
                    "already_finished",
                    repeated_finishes.load(Ordering::Relaxed),
                ),
                (
                    "task",
                    "context_already_set",
                    dropped_contexts.load(Ordering::Relaxed),
                ),
                // Parts of contexts and results nested deeper than the filter passes on.
                ("payload", "too_deep", filter.depth_truncations()),
            ]),
            FamilySnapshot {
                name: "tasker_build_info".to_owned(),
                help: "Always 1; labels carry the tasker-telemetry version and the service name.".to_owned(),
                unit: None,
                kind: MetricKind::Gauge,
                label_names: vec!["version".to_owned(), "service_name".to_owned()],
                series: vec![SeriesSnapshot::new(vec![version.clone(), service.clone()], SeriesValue::Gauge(1.0))],
            },
        ]
    });
}

fn routed_counter(metrics: &MetricsRegistry) -> Result<CounterVec, Error> {
    metrics
        .counter(
            "tasker_routed_events_total",
            "Events the router sent to the metrics sink (after sampling), by event.",
            &["event"],
        )
        .map_err(|e| Error::Metrics {
            message: e.to_string(),
        })
}
