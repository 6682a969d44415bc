//! A point-in-time copy of every metric: what the exposition formats render.

use serde::Serialize;

use crate::timestamp::Timestamp;

/// What kind of metric a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Only goes up (resets only when the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into buckets, with their sum and count.
    Histogram,
}

impl MetricKind {
    /// `counter`, `gauge` or `histogram`, as Prometheus' `# TYPE` line spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One series' value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SeriesValue {
    /// A counter's total.
    Counter(f64),
    /// A gauge's current value.
    Gauge(f64),
    /// A histogram.
    Histogram {
        /// `(upper bound, cumulative count)` per bucket, ascending, ending with `f64::INFINITY`
        /// whose count equals `count`.
        buckets: Vec<(f64, u64)>,
        /// Sum of every observation.
        sum: f64,
        /// Number of observations.
        count: u64,
    },
}

/// One labelled series of a family.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesSnapshot {
    /// Label values, in the order of the family's `label_names`.
    pub label_values: Vec<String>,
    /// The value.
    pub value: SeriesValue,
    /// A histogram's exemplars: the latest sampled observation of each bucket that has one,
    /// ascending by bucket. Only the OpenMetrics exposition shows them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exemplars: Vec<Exemplar>,
}

impl SeriesSnapshot {
    /// A series without exemplars.
    ///
    /// ```
    /// use tasker_telemetry::metrics::{SeriesSnapshot, SeriesValue};
    ///
    /// let s = SeriesSnapshot::new(vec!["checkout".into()], SeriesValue::Counter(3.0));
    /// assert!(s.exemplars.is_empty());
    /// ```
    pub fn new(label_values: Vec<String>, value: SeriesValue) -> Self {
        Self {
            label_values,
            value,
            exemplars: Vec::new(),
        }
    }
}

/// An observation that links a histogram bucket to a trace: the value, when it was observed,
/// and the sampled span it was observed in (OpenMetrics' exemplar).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exemplar {
    /// The upper bound (`le`) of the bucket it fell in (`f64::INFINITY` for the last).
    pub bucket: f64,
    /// The observed value.
    pub value: f64,
    /// When it was observed, in seconds since the Unix epoch.
    pub timestamp: f64,
    /// The trace's id, 32 lowercase hex digits.
    pub trace_id: String,
    /// The span's id, 16 lowercase hex digits.
    pub span_id: String,
}

/// A metric family: name, help, unit, type and every series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilySnapshot {
    /// The family's name, as exposed (counters end in `_total`).
    pub name: String,
    /// What it measures.
    pub help: String,
    /// The base unit (`seconds`), if any.
    pub unit: Option<String>,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Label names, in order.
    pub label_names: Vec<String>,
    /// Every series, sorted by label values.
    pub series: Vec<SeriesSnapshot>,
}

/// Every family at one moment, sorted by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// When it was taken.
    pub timestamp: Timestamp,
    /// The families, sorted by name.
    pub families: Vec<FamilySnapshot>,
}
