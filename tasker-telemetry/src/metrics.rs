//! Metrics: a registry of counters, gauges and histograms with labels (lock-free updates through
//! handles resolved once, a cardinality cap per family), the standard metrics the scopes record,
//! and their exposition as Prometheus text, OpenMetrics, JSON and CSV.

pub(crate) mod cell;
mod exposition;
#[cfg(feature = "otlp-metrics")]
mod otlp;
mod registry;
mod snapshot;
mod standard;

pub use exposition::{
    CsvOptions, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, csv_export, json_export,
    openmetrics_text, prometheus_text, wants_openmetrics,
};
#[cfg(feature = "otlp-metrics")]
pub use otlp::{otlp_request, otlp_request_for};
pub(crate) use registry::ExemplarIds;
pub use registry::{
    Counter, CounterVec, DEFAULT_BUCKETS, DEFAULT_CARDINALITY_CAP, Gauge, GaugeVec, Histogram,
    HistogramVec, MAX_LABEL_VALUE_BYTES, MetricsError, MetricsRegistry, OVERFLOW_LABEL_VALUE,
};
pub use snapshot::{
    Exemplar, FamilySnapshot, MetricKind, MetricsSnapshot, SeriesSnapshot, SeriesValue,
};
pub(crate) use standard::{StandardMetrics, StepMetrics, TaskMetrics};

/// `tasker_telemetry_dropped_total` with `(sink, reason, count)` series: the one family every part
/// that drops telemetry reports into (the registry merges what each collector gives).
pub(crate) fn dropped_total<'a>(
    series: impl IntoIterator<Item = (&'a str, &'a str, u64)>,
) -> FamilySnapshot {
    FamilySnapshot {
        name: "tasker_telemetry_dropped_total".to_owned(),
        help: "Telemetry dropped instead of blocking work, by sink and reason.".to_owned(),
        unit: None,
        kind: MetricKind::Counter,
        label_names: vec!["sink".to_owned(), "reason".to_owned()],
        series: series
            .into_iter()
            .map(|(sink, reason, n)| {
                SeriesSnapshot::new(
                    vec![sink.to_owned(), reason.to_owned()],
                    SeriesValue::Counter(n as f64),
                )
            })
            .collect(),
    }
}
