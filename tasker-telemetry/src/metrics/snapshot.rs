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
