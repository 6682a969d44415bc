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
pub use otlp::{MetricsExportReport, OtlpMetricsExporter, otlp_request, otlp_request_for};
pub use registry::{
    Counter, CounterVec, DEFAULT_BUCKETS, DEFAULT_CARDINALITY_CAP, Gauge, GaugeVec, Histogram,
    HistogramVec, MetricsError, MetricsRegistry, OVERFLOW_LABEL_VALUE,
};
pub use snapshot::{FamilySnapshot, MetricKind, MetricsSnapshot, SeriesSnapshot, SeriesValue};
pub(crate) use standard::{StandardMetrics, StepMetrics, TaskMetrics};
