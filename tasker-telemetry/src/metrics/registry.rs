//! The metrics registry: counter, gauge and histogram families with labels. Updating a series
//! through its handle is a plain store on a cache line only the calling thread writes (see
//! [`cell`](super::cell)), with no lock; resolving a handle from label values takes only its
//! family's lock, and hot paths resolve their handles once and keep them.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use super::cell::{self, Slots};
use super::snapshot::{
    Exemplar, FamilySnapshot, MetricKind, MetricsSnapshot, SeriesSnapshot, SeriesValue,
};
use crate::timestamp::Timestamp;

/// Tasker's default histogram buckets, in seconds.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Series a family may hold before new label sets fold into its overflow series.
pub const DEFAULT_CARDINALITY_CAP: usize = 10_000;
/// The label value of every label of a family's overflow series. A label value equal to it is
/// taken as overflow too, so no series can stand beside the overflow series with its labels.
pub const OVERFLOW_LABEL_VALUE: &str = "__overflow__";
/// The longest label value a series may have, in bytes. A longer one is refused: the
/// observation goes to the family's overflow series and is counted in
/// `tasker_metrics_overflow_total`, as when the family is full.
///
/// ```
/// use tasker_telemetry::metrics::{MAX_LABEL_VALUE_BYTES, MetricsRegistry, OVERFLOW_LABEL_VALUE};
///
/// let registry = MetricsRegistry::new();
/// let hits = registry.counter("hits_total", "Hits.", &["path"])?;
/// hits.with(&["x".repeat(MAX_LABEL_VALUE_BYTES + 1).as_str()]).inc();
/// hits.with(&[OVERFLOW_LABEL_VALUE]).inc();
/// let family = registry.snapshot().families.into_iter().find(|f| f.name == "hits_total").unwrap();
/// assert_eq!(family.series.len(), 1);
/// assert_eq!(family.series[0].label_values, [OVERFLOW_LABEL_VALUE]);
/// # Ok::<(), tasker_telemetry::metrics::MetricsError>(())
/// ```
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;

/// Why a metric family could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The metric name is not a valid Prometheus name.
    #[error("invalid metric name {name:?}: expected [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A counter's name must end in `_total` (Prometheus naming).
    #[error("counter name {name:?} must end in \"_total\"")]
    CounterSuffix {
        /// The name.
        name: String,
    },
    /// A label name is invalid or reserved.
    #[error(
        "invalid label name {label:?} for {name}: expected [a-zA-Z_][a-zA-Z0-9_]*, not starting with \"__\", not \"le\""
    )]
    InvalidLabel {
        /// The family.
        name: String,
        /// The label.
        label: String,
    },
    /// Histogram buckets must be finite, strictly increasing and non-empty.
    #[error(
        "invalid buckets for {name}: expected finite, strictly increasing upper bounds (at least one)"
    )]
    InvalidBuckets {
        /// The family.
        name: String,
    },
    /// The name is taken by a family of another kind or with other labels.
    #[error("metric {name:?} is already registered as a {existing} with labels {labels:?}")]
    Conflict {
        /// The name.
        name: String,
        /// The existing family's kind.
        existing: &'static str,
        /// The existing family's labels.
        labels: Vec<String>,
    },
}

#[derive(Debug)]
enum Cell {
    /// Word 0: the count.
    Counter(Slots),
    /// The value is `base` plus the lanes' word 0 (f64 bits): adds go to the caller's lane,
    /// `set` rewrites `base`.
    Gauge { base: AtomicU64, deltas: Slots },
    /// Words `0..=bounds.len()`: observations per bucket (the last above every bound, so their
    /// total is the count and `+Inf` always equals `_count`); the word after: the sum (f64 bits).
    /// Beside them, each bucket's latest exemplar.
    Histogram {
        slots: Slots,
        exemplars: Box<[Mutex<Option<Recorded>>]>,
    },
}

/// The trace and span an observation was made in, for its exemplar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExemplarIds {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
}

/// A bucket's latest exemplar: overwritten in place by each sampled observation (a short,
/// uncontended lock and no allocation), read by snapshots.
#[derive(Debug, Clone, Copy)]
struct Recorded {
    ids: ExemplarIds,
    value: f64,
    at: std::time::SystemTime,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug)]
struct Series {
    labels: Box<[Box<str>]>,
    cell: Cell,
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    unit: Option<String>,
    kind: MetricKind,
    label_names: Vec<String>,
    bounds: Arc<[f64]>,
    cap: usize,
    hasher: RandomState,
    series: RwLock<HashMap<u64, Vec<Arc<Series>>>>,
    /// How many series `series` holds (kept beside it so a full family answers without
    /// counting).
    len: AtomicUsize,
    overflow: Arc<Series>,
    /// Counts label sets folded into `overflow` (read into `tasker_metrics_overflow_total`).
    overflowed: AtomicU64,
    /// The mask for each label the parameter filter calls sensitive (`None` for the others).
    masks: Box<[Option<Box<str>>]>,
    /// The parameter filter, when its value detection finds anything: label values are scrubbed.
    scrub: Option<crate::filter::ParameterFilter>,
}

/// The series in `map` whose hash is `key` and whose label values are `owned`.
fn find(map: &HashMap<u64, Vec<Arc<Series>>>, key: u64, owned: &[&str]) -> Option<Arc<Series>> {
    map.get(&key).and_then(|bucket| {
        bucket
            .iter()
            .find(|s| s.labels.iter().map(|l| &**l).eq(owned.iter().copied()))
            .cloned()
    })
}

impl Family {
    fn new_cell(&self) -> Cell {
        match self.kind {
            MetricKind::Counter => Cell::Counter(Slots::new(1, 0)),
            MetricKind::Gauge => Cell::Gauge {
                base: AtomicU64::new(0f64.to_bits()),
                deltas: Slots::new(1, 0f64.to_bits()),
            },
            // 0u64 is also 0.0f64's bit pattern, so one fill serves counts and sum.
            MetricKind::Histogram => Cell::Histogram {
                slots: Slots::new(self.bounds.len() + 2, 0),
                exemplars: (0..=self.bounds.len()).map(|_| Mutex::new(None)).collect(),
            },
        }
    }

    fn key(&self, values: &[&str]) -> u64 {
        let mut h = self.hasher.build_hasher();
        for v in values {
            v.hash(&mut h);
        }
        h.finish()
    }

    /// The series for these label values, created on first use; the overflow series once the
    /// family holds `cap` series. Missing values are empty, extra ones ignored.
    fn series(&self, values: &[&str]) -> Arc<Series> {
        let mut owned: Vec<&str> = values
            .iter()
            .copied()
            .take(self.label_names.len())
            .collect();
        owned.resize(self.label_names.len(), "");
        for (value, mask) in owned.iter_mut().zip(self.masks.iter()) {
            if let Some(mask) = mask {
                *value = mask;
            }
        }
        let full = || self.full();
        // A megabyte label value would be a megabyte per series on every scrape; a value equal
        // to the marker would make a second series with the overflow series' labels.
        if owned
            .iter()
            .any(|v| v.len() > MAX_LABEL_VALUE_BYTES || *v == OVERFLOW_LABEL_VALUE)
        {
            return full();
        }
        let key = self.key(&owned);
        if let Some(found) = find(
            &self.series.read().unwrap_or_else(|e| e.into_inner()),
            key,
            &owned,
        ) {
            return found;
        }
        // Stored label values are scrubbed of the secrets value detection finds, so a value
        // holding one never matches above: it is scrubbed here and looked up again, and a clean
        // value that is found pays nothing for the scan.
        let scrubbed: Vec<Cow<'_, str>> = match &self.scrub {
            Some(filter) => owned.iter().map(|v| filter.scrub(v)).collect(),
            None => Vec::new(),
        };
        if scrubbed.iter().any(|v| matches!(v, Cow::Owned(_))) {
            return self.series_scrubbed(&scrubbed.iter().map(|v| &**v).collect::<Vec<_>>());
        }
        self.insert(&owned, key)
    }

    /// [`series`](Self::series) for values already scrubbed.
    #[cold]
    fn series_scrubbed(&self, owned: &[&str]) -> Arc<Series> {
        if owned.contains(&OVERFLOW_LABEL_VALUE) {
            return self.full();
        }
        self.insert(owned, self.key(owned))
    }

    /// The overflow series, counting one more label set folded into it.
    fn full(&self) -> Arc<Series> {
        self.overflowed.fetch_add(1, Ordering::Relaxed);
        self.overflow.clone()
    }

    /// The series for `owned` (whose hash is `key`), created unless the family is full.
    fn insert(&self, owned: &[&str], key: u64) -> Arc<Series> {
        let full = || self.full();
        // Only this family's series map grows under the write lock; a full family never takes it.
        if self.len.load(Ordering::Acquire) >= self.cap {
            return full();
        }
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = find(&map, key, owned) {
            return found;
        }
        if self.len.load(Ordering::Acquire) >= self.cap {
            return full();
        }
        self.len.fetch_add(1, Ordering::Release);
        let series = Arc::new(Series {
            labels: owned.iter().map(|v| Box::from(*v)).collect(),
            cell: self.new_cell(),
        });
        map.entry(key).or_default().push(series.clone());
        series
    }

    fn snapshot(&self) -> FamilySnapshot {
        let map = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut series: Vec<SeriesSnapshot> = map
            .values()
            .flatten()
            .chain(
                std::iter::once(&self.overflow)
                    .filter(|_| self.overflowed.load(Ordering::Relaxed) > 0),
            )
            .map(|s| SeriesSnapshot {
                exemplars: self.exemplars(&s.cell),
                ..SeriesSnapshot::new(
                    s.labels.iter().map(|l| l.to_string()).collect(),
                    self.value(&s.cell),
                )
            })
            .collect();
        drop(map);
        series.sort_by(|a, b| a.label_values.cmp(&b.label_values));
        FamilySnapshot {
            name: self.name.clone(),
            help: self.help.clone(),
            unit: self.unit.clone(),
            kind: self.kind,
            label_names: self.label_names.clone(),
            series,
        }
    }

    /// A histogram's exemplars, ascending by bucket.
    fn exemplars(&self, cell: &Cell) -> Vec<Exemplar> {
        let Cell::Histogram { exemplars, .. } = cell else {
            return Vec::new();
        };
        exemplars
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| {
                let recorded = (*slot.lock().unwrap_or_else(|e| e.into_inner()))?;
                Some(Exemplar {
                    bucket: self.bounds.get(i).copied().unwrap_or(f64::INFINITY),
                    value: recorded.value,
                    timestamp: recorded
                        .at
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                    trace_id: hex(&recorded.ids.trace_id),
                    span_id: hex(&recorded.ids.span_id),
                })
            })
            .collect()
    }

    fn value(&self, cell: &Cell) -> SeriesValue {
        match cell {
            Cell::Counter(slots) => SeriesValue::Counter(slots.sum_u64(0) as f64),
            Cell::Gauge { .. } => SeriesValue::Gauge(gauge_value(cell)),
            Cell::Histogram { slots, .. } => {
                let mut cumulative = 0u64;
                let mut out: Vec<(f64, u64)> = self
                    .bounds
                    .iter()
                    .enumerate()
                    .map(|(i, bound)| {
                        cumulative = cumulative.wrapping_add(slots.sum_u64(i));
                        (*bound, cumulative)
                    })
                    .collect();
                let count = cumulative.wrapping_add(slots.sum_u64(self.bounds.len()));
                out.push((f64::INFINITY, count));
                SeriesValue::Histogram {
                    buckets: out,
                    sum: slots.sum_f64(self.bounds.len() + 1),
                    count,
                }
            }
        }
    }
}

/// Families with equal buckets share one allocation, so [`Histogram::observe_with`] can tell
/// equal buckets by pointer.
fn shared_bounds(bounds: &[f64]) -> Arc<[f64]> {
    static DEFAULT: std::sync::OnceLock<Arc<[f64]>> = std::sync::OnceLock::new();
    if bounds == DEFAULT_BUCKETS {
        DEFAULT.get_or_init(|| DEFAULT_BUCKETS.into()).clone()
    } else {
        bounds.into()
    }
}

fn gauge_value(cell: &Cell) -> f64 {
    match cell {
        Cell::Gauge { base, deltas } => {
            f64::from_bits(base.load(Ordering::Relaxed)) + deltas.sum_f64(0)
        }
        _ => 0.0,
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label(label: &str) -> bool {
    let mut chars = label.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !label.starts_with("__")
        && label != "le"
}

type Collector = Box<dyn Fn() -> Vec<FamilySnapshot> + Send + Sync>;

/// Counter, gauge and histogram families, exported together.
///
/// ```
/// use tasker_telemetry::metrics::MetricsRegistry;
///
/// let registry = MetricsRegistry::new();
/// let orders = registry.counter("shop_orders_total", "Orders placed.", &["channel"])?;
/// let web = orders.with(&["web"]); // resolve once, keep the handle
/// web.inc();
/// web.inc_by(2);
/// assert_eq!(web.get(), 3);
/// let text = tasker_telemetry::metrics::prometheus_text(&registry.snapshot());
/// assert!(text.contains("shop_orders_total{channel=\"web\"} 3"));
/// # Ok::<(), tasker_telemetry::metrics::MetricsError>(())
/// ```
pub struct MetricsRegistry {
    families: RwLock<BTreeMap<String, Arc<Family>>>,
    cap: usize,
    collectors: RwLock<Vec<Collector>>,
    filter: Option<crate::filter::ParameterFilter>,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.families.read().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("MetricsRegistry")
            .field("families", &n)
            .field("cap", &self.cap)
            .finish()
    }
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsRegistry {
    /// An empty registry with the default cardinality cap (10,000 series per family).
    pub fn new() -> Self {
        Self::with_cardinality_cap(DEFAULT_CARDINALITY_CAP)
    }

    /// An empty registry whose families hold at most `cap` series each (at least 1).
    pub fn with_cardinality_cap(cap: usize) -> Self {
        Self {
            families: RwLock::new(BTreeMap::new()),
            cap: cap.max(1),
            collectors: RwLock::new(Vec::new()),
            filter: None,
        }
    }

    /// Masks the values of labels whose names `filter` calls sensitive, in families registered
    /// from now on ([`Telemetry`](crate::Telemetry) installs its parameter filter here, so a
    /// secret passed as a label value never reaches an exposition).
    ///
    /// ```
    /// use tasker_telemetry::metrics::MetricsRegistry;
    /// use tasker_telemetry::ParameterFilter;
    ///
    /// let registry = MetricsRegistry::new().with_filter(ParameterFilter::tasker_default());
    /// let logins = registry.counter("logins_total", "Logins.", &["api_key"])?;
    /// logins.with(&["k-123"]).inc();
    /// let text = tasker_telemetry::metrics::prometheus_text(&registry.snapshot());
    /// assert!(text.contains(r#"logins_total{api_key="[FILTERED]"} 1"#));
    /// assert!(!text.contains("k-123"));
    /// # Ok::<(), tasker_telemetry::metrics::MetricsError>(())
    /// ```
    pub fn with_filter(mut self, filter: crate::filter::ParameterFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    fn register(
        &self,
        name: &str,
        help: &str,
        unit: Option<&str>,
        kind: MetricKind,
        labels: &[&str],
        bounds: &[f64],
    ) -> Result<Arc<Family>, MetricsError> {
        if !valid_name(name) {
            return Err(MetricsError::InvalidName {
                name: name.to_owned(),
            });
        }
        if kind == MetricKind::Counter && !name.ends_with("_total") {
            return Err(MetricsError::CounterSuffix {
                name: name.to_owned(),
            });
        }
        if let Some(bad) = labels.iter().find(|l| !valid_label(l)) {
            return Err(MetricsError::InvalidLabel {
                name: name.to_owned(),
                label: (*bad).to_owned(),
            });
        }
        if kind == MetricKind::Histogram
            && (bounds.is_empty()
                || bounds.iter().any(|b| !b.is_finite())
                || bounds.windows(2).any(|w| w[0] >= w[1]))
        {
            return Err(MetricsError::InvalidBuckets {
                name: name.to_owned(),
            });
        }
        let mut families = self.families.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = families.get(name) {
            if existing.kind == kind
                && existing
                    .label_names
                    .iter()
                    .map(String::as_str)
                    .eq(labels.iter().copied())
            {
                return Ok(existing.clone());
            }
            return Err(MetricsError::Conflict {
                name: name.to_owned(),
                existing: existing.kind.as_str(),
                labels: existing.label_names.clone(),
            });
        }
        let mut family = Family {
            name: name.to_owned(),
            help: help.to_owned(),
            unit: unit.map(str::to_owned),
            kind,
            label_names: labels.iter().map(|l| (*l).to_owned()).collect(),
            bounds: shared_bounds(bounds),
            cap: self.cap,
            hasher: RandomState::new(),
            series: RwLock::new(HashMap::new()),
            len: AtomicUsize::new(0),
            overflow: Arc::new(Series {
                labels: Box::new([]),
                cell: Cell::Counter(Slots::new(1, 0)),
            }),
            overflowed: AtomicU64::new(0),
            masks: labels
                .iter()
                .map(|l| {
                    self.filter
                        .as_ref()
                        .filter(|f| f.is_sensitive_field_key(l))
                        .map(|f| Box::from(f.mask()))
                })
                .collect(),
            scrub: self
                .filter
                .clone()
                .filter(|f| !f.value_detection().is_off()),
        };
        family.overflow = Arc::new(Series {
            labels: labels
                .iter()
                .map(|_| Box::from(OVERFLOW_LABEL_VALUE))
                .collect(),
            cell: family.new_cell(),
        });
        let family = Arc::new(family);
        families.insert(name.to_owned(), family.clone());
        Ok(family)
    }

    /// Registers (or returns the existing) counter family. The name must end in `_total`.
    pub fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<CounterVec, MetricsError> {
        self.register(name, help, None, MetricKind::Counter, labels, &[])
            .map(|f| CounterVec { family: f })
    }

    /// Registers (or returns the existing) gauge family.
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, MetricsError> {
        self.register(name, help, None, MetricKind::Gauge, labels, &[])
            .map(|f| GaugeVec { family: f })
    }

    /// Registers (or returns the existing) histogram family; `buckets` defaults to
    /// [`DEFAULT_BUCKETS`]. Name it with its base unit (`_seconds`) and pass the unit.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        unit: Option<&str>,
        labels: &[&str],
        buckets: Option<&[f64]>,
    ) -> Result<HistogramVec, MetricsError> {
        self.register(
            name,
            help,
            unit,
            MetricKind::Histogram,
            labels,
            buckets.unwrap_or(DEFAULT_BUCKETS),
        )
        .map(|f| HistogramVec { family: f })
    }

    /// Adds families computed at snapshot time (values that live elsewhere, such as publisher
    /// statistics).
    pub fn register_collector(
        &self,
        collector: impl Fn() -> Vec<FamilySnapshot> + Send + Sync + 'static,
    ) {
        self.collectors
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(collector));
    }

    /// Every family now, sorted by name, including `tasker_metrics_overflow_total` when any
    /// family overflowed.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let families: Vec<Arc<Family>> = self
            .families
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut out: Vec<FamilySnapshot> = families.iter().map(|f| f.snapshot()).collect();
        let overflow: Vec<SeriesSnapshot> = families
            .iter()
            .filter(|f| f.overflowed.load(Ordering::Relaxed) > 0)
            .map(|f| {
                SeriesSnapshot::new(
                    vec![f.name.clone()],
                    SeriesValue::Counter(f.overflowed.load(Ordering::Relaxed) as f64),
                )
            })
            .collect();
        out.push(FamilySnapshot {
            name: "tasker_metrics_overflow_total".to_owned(),
            help: "Label sets folded into a family's __overflow__ series because it reached its cardinality cap.".to_owned(),
            unit: None,
            kind: MetricKind::Counter,
            label_names: vec!["metric".to_owned()],
            series: overflow,
        });
        for collector in self
            .collectors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            out.extend(collector());
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        // Several collectors may contribute series to one family (for example drops counted by
        // the publisher and by the span pipeline): merge them.
        out.dedup_by(|later, first| {
            let same = later.name == first.name
                && later.kind == first.kind
                && later.label_names == first.label_names;
            if same {
                first.series.append(&mut later.series);
                first
                    .series
                    .sort_by(|a, b| a.label_values.cmp(&b.label_values));
            }
            same
        });
        MetricsSnapshot {
            timestamp: Timestamp::now(),
            families: out,
        }
    }
}

/// A counter family; [`with`](Self::with) resolves a series' handle.
#[derive(Debug, Clone)]
pub struct CounterVec {
    family: Arc<Family>,
}

impl CounterVec {
    /// The series for these label values (in the family's label order).
    pub fn with(&self, values: &[&str]) -> Counter {
        Counter {
            series: self.family.series(values),
        }
    }
}

/// A counter series: increments are one atomic add.
#[derive(Debug, Clone)]
pub struct Counter {
    series: Arc<Series>,
}

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `n`.
    #[inline]
    pub fn inc_by(&self, n: u64) {
        if let Cell::Counter(slots) = &self.series.cell {
            slots.add_u64(cell::lane(), 0, n);
        }
    }

    /// The current total.
    pub fn get(&self) -> u64 {
        match &self.series.cell {
            Cell::Counter(slots) => slots.sum_u64(0),
            _ => 0,
        }
    }
}

/// A gauge family; [`with`](Self::with) resolves a series' handle.
#[derive(Debug, Clone)]
pub struct GaugeVec {
    family: Arc<Family>,
}

impl GaugeVec {
    /// The series for these label values.
    pub fn with(&self, values: &[&str]) -> Gauge {
        Gauge {
            series: self.family.series(values),
        }
    }
}

/// A gauge series.
#[derive(Debug, Clone)]
pub struct Gauge {
    series: Arc<Series>,
}

impl Gauge {
    /// Sets the value.
    pub fn set(&self, value: f64) {
        if let Cell::Gauge { base, deltas } = &self.series.cell {
            // An add racing with this set lands either before it (and is overwritten) or after
            // it (and counts): both are orders the two calls could have run in.
            base.store((value - deltas.sum_f64(0)).to_bits(), Ordering::Relaxed);
        }
    }

    /// Adds `delta` (negative to subtract).
    #[inline]
    pub fn add(&self, delta: f64) {
        if let Cell::Gauge { deltas, .. } = &self.series.cell {
            deltas.add_f64(cell::lane(), 0, delta);
        }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        gauge_value(&self.series.cell)
    }
}

/// A histogram family; [`with`](Self::with) resolves a series' handle.
#[derive(Debug, Clone)]
pub struct HistogramVec {
    family: Arc<Family>,
}

impl HistogramVec {
    /// The series for these label values.
    pub fn with(&self, values: &[&str]) -> Histogram {
        Histogram {
            series: self.family.series(values),
            bounds: self.family.bounds.clone(),
        }
    }
}

/// A histogram series.
#[derive(Debug, Clone)]
pub struct Histogram {
    series: Arc<Series>,
    bounds: Arc<[f64]>,
}

impl Histogram {
    /// Records one observation (NaN is ignored: it has no bucket).
    #[inline]
    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        if let Cell::Histogram { slots, .. } = &self.series.cell {
            let bucket = self.bucket(value);
            let lane = cell::lane();
            slots.add_u64(lane, bucket, 1);
            slots.add_f64(lane, self.bounds.len() + 1, value);
        }
    }

    /// Records `value` here and in `other`: when both have the same buckets (as a step's
    /// duration and its operation duration do), the bucket is found once.
    #[inline]
    pub(crate) fn observe_with(&self, other: &Histogram, value: f64) {
        if value.is_nan() {
            return;
        }
        if let (Cell::Histogram { slots: a, .. }, Cell::Histogram { slots: b, .. }) =
            (&self.series.cell, &other.series.cell)
        {
            let bucket = self.bucket(value);
            let lane = cell::lane();
            let other_bucket = if Arc::ptr_eq(&self.bounds, &other.bounds) {
                bucket
            } else {
                other.bucket(value)
            };
            a.add_u64(lane, bucket, 1);
            a.add_f64(lane, self.bounds.len() + 1, value);
            b.add_u64(lane, other_bucket, 1);
            b.add_f64(lane, other.bounds.len() + 1, value);
        }
    }

    /// [`observe_with`](Self::observe_with), and, when the observation was made in a sampled
    /// span, that span as this series' exemplar for the bucket (the latest one wins).
    #[inline]
    pub(crate) fn observe_with_exemplar(
        &self,
        other: &Histogram,
        value: f64,
        exemplar: Option<(ExemplarIds, SystemTime)>,
    ) {
        self.observe_with(other, value);
        if let Some((ids, at)) = exemplar {
            self.record_exemplar(value, ids, at);
        }
    }

    /// [`observe`](Self::observe), with the exemplar as
    /// [`observe_with_exemplar`](Self::observe_with_exemplar) records it.
    #[inline]
    pub(crate) fn observe_exemplar(&self, value: f64, exemplar: Option<(ExemplarIds, SystemTime)>) {
        self.observe(value);
        if let Some((ids, at)) = exemplar {
            self.record_exemplar(value, ids, at);
        }
    }

    fn record_exemplar(&self, value: f64, ids: ExemplarIds, at: SystemTime) {
        if value.is_nan() {
            return;
        }
        if let Cell::Histogram { exemplars, .. } = &self.series.cell {
            *exemplars[self.bucket(value)]
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Recorded { ids, value, at });
        }
    }

    /// The bucket `value` falls in (`le` is inclusive). A scan from the smallest bound: step
    /// durations mostly land in the first few buckets, where it beats a binary search.
    #[inline]
    fn bucket(&self, value: f64) -> usize {
        self.bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len())
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        match &self.series.cell {
            Cell::Histogram { slots, .. } => {
                (0..=self.bounds.len()).map(|i| slots.sum_u64(i)).sum()
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_rules() {
        let r = MetricsRegistry::new();
        assert!(matches!(
            r.counter("bad name_total", "", &[]),
            Err(MetricsError::InvalidName { .. })
        ));
        assert!(matches!(
            r.counter("no_suffix", "", &[]),
            Err(MetricsError::CounterSuffix { .. })
        ));
        assert!(matches!(
            r.gauge("g", "", &["__x"]),
            Err(MetricsError::InvalidLabel { .. })
        ));
        assert!(matches!(
            r.gauge("g", "", &["le"]),
            Err(MetricsError::InvalidLabel { .. })
        ));
        assert!(matches!(
            r.histogram("h", "", None, &[], Some(&[1.0, 1.0])),
            Err(MetricsError::InvalidBuckets { .. })
        ));
        assert!(matches!(
            r.histogram("h", "", None, &[], Some(&[])),
            Err(MetricsError::InvalidBuckets { .. })
        ));
        let a = r.counter("a_total", "", &["x"]).unwrap();
        let b = r.counter("a_total", "", &["x"]).unwrap();
        a.with(&["1"]).inc();
        assert_eq!(b.with(&["1"]).get(), 1, "same family");
        assert!(matches!(
            r.gauge("a_total", "", &["x"]),
            Err(MetricsError::Conflict { .. })
        ));
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_equals_count() {
        let r = MetricsRegistry::new();
        let h = r
            .histogram("d_seconds", "", Some("seconds"), &[], None)
            .unwrap()
            .with(&[]);
        for v in [0.001, 0.005, 0.007, 0.3, 20.0, f64::NAN] {
            h.observe(v);
        }
        let snap = r.snapshot();
        let fam = snap
            .families
            .iter()
            .find(|f| f.name == "d_seconds")
            .unwrap();
        let SeriesValue::Histogram {
            buckets,
            sum,
            count,
        } = &fam.series[0].value
        else {
            panic!()
        };
        assert_eq!(*count, 5);
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 5)));
        assert_eq!(buckets[0], (0.005, 2), "le is inclusive");
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!((sum - 20.313).abs() < 1e-9);
    }

    #[test]
    fn cardinality_cap_folds_into_overflow() {
        let r = MetricsRegistry::with_cardinality_cap(3);
        let c = r.counter("c_total", "", &["name"]).unwrap();
        for i in 0..10 {
            c.with(&[&i.to_string()]).inc();
        }
        let snap = r.snapshot();
        let fam = snap.families.iter().find(|f| f.name == "c_total").unwrap();
        assert_eq!(fam.series.len(), 4, "cap + the overflow series");
        let overflow = fam
            .series
            .iter()
            .find(|s| s.label_values == [OVERFLOW_LABEL_VALUE])
            .unwrap();
        assert_eq!(overflow.value, SeriesValue::Counter(7.0));
        let counted = snap
            .families
            .iter()
            .find(|f| f.name == "tasker_metrics_overflow_total")
            .unwrap();
        assert_eq!(counted.series[0].label_values, ["c_total"]);
        assert_eq!(counted.series[0].value, SeriesValue::Counter(7.0));
    }

    #[test]
    fn gauges_add_and_set() {
        let r = MetricsRegistry::new();
        let g = r.gauge("active", "", &[]).unwrap().with(&[]);
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1.0);
        g.set(7.5);
        assert_eq!(g.get(), 7.5);
    }
}
