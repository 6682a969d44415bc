//! Renders a [`MetricsSnapshot`](crate::metrics::MetricsSnapshot) for the outside world.
//!
//! Four formats, one function each, all pure (a snapshot in, a `String` or a JSON value out):
//!
//! | function | format | content type |
//! | --- | --- | --- |
//! | [`prometheus_text`] | Prometheus text exposition format 0.0.4 | [`PROMETHEUS_CONTENT_TYPE`] |
//! | [`openmetrics_text`] | OpenMetrics 1.0 text | [`OPENMETRICS_CONTENT_TYPE`] |
//! | [`json_export`] | Tasker's JSON metrics export | `application/json` |
//! | [`csv_export`] | one row per sample, RFC 4180 | `text/csv` |
//!
//! A scrape endpoint picks between the first two with [`wants_openmetrics`], given the request's
//! `Accept` header.
//!
//! Every format keeps the snapshot's order (families, then series within a family), so the same
//! snapshot always renders to the same bytes. Numbers are written the way Prometheus writes them:
//! integral values below 2^53 without a decimal point (`3`), anything else in Rust's shortest
//! round-trip form (`0.25`, `1e-7`), and `+Inf`, `-Inf` and `NaN` for the non-finite values
//! (as strings in JSON, which has no literal for them). No input makes any of them panic.
//!
//! A histogram's buckets are cumulative and end with `+Inf`, whose count is the histogram's
//! count; should a snapshot's buckets lack the `+Inf` bucket, every format adds it.
//!
//! ```
//! use tasker_telemetry::Timestamp;
//! use tasker_telemetry::metrics::{
//!     FamilySnapshot, MetricKind, MetricsSnapshot, SeriesSnapshot, SeriesValue, openmetrics_text,
//!     prometheus_text,
//! };
//!
//! let snapshot = MetricsSnapshot {
//!     timestamp: Timestamp::now(),
//!     families: vec![FamilySnapshot {
//!         name: "tasker_steps_completed_total".into(),
//!         help: "Steps completed.".into(),
//!         unit: None,
//!         kind: MetricKind::Counter,
//!         label_names: vec!["handler".into()],
//!         series: vec![SeriesSnapshot::new(
//!             vec!["fetch_cart".into()],
//!             SeriesValue::Counter(3.0),
//!         )],
//!     }],
//! };
//!
//! assert_eq!(
//!     prometheus_text(&snapshot),
//!     concat!(
//!         "# HELP tasker_steps_completed_total Steps completed.\n",
//!         "# TYPE tasker_steps_completed_total counter\n",
//!         "tasker_steps_completed_total{handler=\"fetch_cart\"} 3\n",
//!     )
//! );
//! assert_eq!(
//!     openmetrics_text(&snapshot),
//!     concat!(
//!         "# TYPE tasker_steps_completed counter\n",
//!         "# HELP tasker_steps_completed Steps completed.\n",
//!         "tasker_steps_completed_total{handler=\"fetch_cart\"} 3\n",
//!         "# EOF\n",
//!     )
//! );
//! ```

mod csv;
mod json;
mod openmetrics;
mod prometheus;

pub use self::csv::{CsvOptions, csv_export};
pub use self::json::json_export;
pub use self::openmetrics::{OPENMETRICS_CONTENT_TYPE, openmetrics_text, wants_openmetrics};
pub use self::prometheus::{PROMETHEUS_CONTENT_TYPE, prometheus_text};

use crate::metrics::snapshot::{Exemplar, FamilySnapshot, SeriesSnapshot};

/// 2^53: below it every integer is exactly representable as an `f64`.
const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Whether `value` is an integer small enough to be printed as one without losing anything.
fn is_exact_integer(value: f64) -> bool {
    value.fract() == 0.0 && value.abs() < EXACT_INTEGER_LIMIT
}

/// A sample value or bucket bound as Prometheus writes it: `3`, `0.005`, `1e-7`, `+Inf`, `-Inf`,
/// `NaN`.
fn format_number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if is_exact_integer(value) {
        // Exact: |value| < 2^53 fits an i64, and `-0.0` becomes `0`.
        (value as i64).to_string()
    } else {
        // `Debug` is the shortest representation that round-trips, in scientific notation for
        // very large or very small magnitudes (`1e300` rather than 301 digits).
        format!("{value:?}")
    }
}

/// A float in OpenMetrics' canonical form, which always shows it is a float: `1.0`, `0.005`,
/// `1e-7`, `+Inf`, `-Inf`, `NaN`. Used for `le` label values.
fn format_canonical_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value == 0.0 {
        // `-0.0` and `0.0` are the same bound.
        "0.0".to_owned()
    } else {
        // `Debug` keeps a `.0` on integral values and uses an exponent for extreme magnitudes.
        format!("{value:?}")
    }
}

/// A histogram's `(upper bound, cumulative count)` buckets, with a final `+Inf` bucket holding
/// `count` added when the snapshot lacks one.
fn histogram_buckets(buckets: &[(f64, u64)], count: u64) -> impl Iterator<Item = (f64, u64)> + '_ {
    let has_inf = buckets
        .last()
        .is_some_and(|&(bound, _)| bound == f64::INFINITY);
    buckets
        .iter()
        .copied()
        .chain((!has_inf).then_some((f64::INFINITY, count)))
}

/// A series' `(label name, label value)` pairs, in the family's label order.
fn series_labels<'a>(
    family: &'a FamilySnapshot,
    series: &'a SeriesSnapshot,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    family
        .label_names
        .iter()
        .zip(&series.label_values)
        .map(|(name, value)| (name.as_str(), value.as_str()))
}

/// Appends `value` escaped for a label value in both text formats: `\` → `\\`, `"` → `\"`,
/// newline → `\n`.
fn push_escaped_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends one sample line of the text formats:
/// `name{l1="v1",l2="v2",extra="x"} value\n` (no braces when there are no labels).
fn push_sample<'a>(
    out: &mut String,
    name: &str,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    extra: Option<(&str, &str)>,
    value: &str,
) {
    out.push_str(name);
    let mut first = true;
    let mut push_label = |out: &mut String, label: &str, label_value: &str| {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(label);
        out.push_str("=\"");
        push_escaped_label_value(out, label_value);
        out.push('"');
    };
    for (label, label_value) in labels {
        push_label(out, label, label_value);
    }
    if let Some((label, label_value)) = extra {
        push_label(out, label, label_value);
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

#[cfg(test)]
mod test_support {
    use std::time::{Duration, UNIX_EPOCH};

    use crate::metrics::snapshot::{
        FamilySnapshot, MetricKind, MetricsSnapshot, SeriesSnapshot, SeriesValue,
    };
    use crate::timestamp::Timestamp;

    /// A label value that needs every kind of escaping, and is not ASCII.
    pub(super) const TRICKY: &str = "a\"b\\c\nd é";

    pub(super) fn family(
        name: &str,
        kind: MetricKind,
        unit: Option<&str>,
        label_names: &[&str],
        series: Vec<(Vec<&str>, SeriesValue)>,
    ) -> FamilySnapshot {
        FamilySnapshot {
            name: name.to_owned(),
            help: format!("Help for {name}."),
            unit: unit.map(str::to_owned),
            kind,
            label_names: label_names.iter().map(|&l| l.to_owned()).collect(),
            series: series
                .into_iter()
                .map(|(values, value)| {
                    SeriesSnapshot::new(values.into_iter().map(str::to_owned).collect(), value)
                })
                .collect(),
        }
    }

    pub(super) fn snapshot(families: Vec<FamilySnapshot>) -> MetricsSnapshot {
        MetricsSnapshot {
            timestamp: Timestamp::from(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            families,
        }
    }

    /// A counter with two series (one with a tricky label value), a gauge without labels, a
    /// histogram with a unit, and a family without series whose help needs escaping.
    pub(super) fn sample() -> MetricsSnapshot {
        let mut empty = family(
            "tasker_idle_workers",
            MetricKind::Gauge,
            None,
            &["pool"],
            vec![],
        );
        empty.help = "Idle workers.\nPer pool, see C:\\docs.".to_owned();
        snapshot(vec![
            family(
                "tasker_steps_completed_total",
                MetricKind::Counter,
                None,
                &["handler", "namespace"],
                vec![
                    (vec!["fetch_cart", "default"], SeriesValue::Counter(3.0)),
                    (vec![TRICKY, "x,y"], SeriesValue::Counter(1.5)),
                ],
            ),
            family(
                "tasker_queue_depth",
                MetricKind::Gauge,
                None,
                &[],
                vec![(vec![], SeriesValue::Gauge(-7.0))],
            ),
            family(
                "tasker_step_duration_seconds",
                MetricKind::Histogram,
                Some("seconds"),
                &["handler"],
                vec![(
                    vec!["fetch_cart"],
                    SeriesValue::Histogram {
                        buckets: vec![
                            (0.005, 1),
                            (0.01, 2),
                            (1.0, 4),
                            (2.5, 5),
                            (f64::INFINITY, 6),
                        ],
                        sum: 4.25,
                        count: 6,
                    },
                )],
            ),
            empty,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_like_prometheus() {
        let cases = [
            (3.0, "3"),
            (-7.0, "-7"),
            (0.0, "0"),
            (-0.0, "0"),
            (0.005, "0.005"),
            (2.5, "2.5"),
            (1e-7, "1e-7"),
            (9_007_199_254_740_991.0, "9007199254740991"),
            (9_007_199_254_740_992.0, "9007199254740992.0"),
            (1e300, "1e300"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (value, want) in cases {
            assert_eq!(format_number(value), want, "{value:?}");
            let back: f64 = match want {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other.parse().unwrap(),
            };
            assert!(
                back == value || value.is_nan(),
                "{want} does not round-trip"
            );
        }
    }

    #[test]
    fn canonical_floats_always_show_a_decimal_point_or_exponent() {
        let cases = [
            (1.0, "1.0"),
            (0.005, "0.005"),
            (-0.0, "0.0"),
            (10.0, "10.0"),
            (1e-7, "1e-7"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (value, want) in cases {
            assert_eq!(format_canonical_float(value), want, "{value:?}");
        }
    }

    #[test]
    fn missing_inf_bucket_is_added() {
        let with: Vec<_> = histogram_buckets(&[(1.0, 2), (f64::INFINITY, 3)], 3).collect();
        assert_eq!(with, [(1.0, 2), (f64::INFINITY, 3)]);
        let without: Vec<_> = histogram_buckets(&[(1.0, 2)], 3).collect();
        assert_eq!(without, [(1.0, 2), (f64::INFINITY, 3)]);
        let empty: Vec<_> = histogram_buckets(&[], 0).collect();
        assert_eq!(empty, [(f64::INFINITY, 0)]);
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        push_escaped_label_value(&mut out, test_support::TRICKY);
        assert_eq!(out, "a\\\"b\\\\c\\nd é");
    }

    #[test]
    fn mismatched_label_counts_do_not_panic() {
        let mut snapshot = test_support::sample();
        snapshot.families[0].series[0].label_values.clear();
        snapshot.families[0].label_names.push("extra".to_owned());
        assert!(!prometheus_text(&snapshot).is_empty());
        assert!(!openmetrics_text(&snapshot).is_empty());
        assert!(!csv_export(&snapshot, &CsvOptions::default()).is_empty());
        assert!(
            !csv_export(
                &snapshot,
                &CsvOptions {
                    flatten_labels: true
                }
            )
            .is_empty()
        );
        assert!(json_export(&snapshot, &serde_json::Value::Null).is_object());
    }
}

/// A histogram's buckets as a text format writes them: how it spells bounds, and the exemplars
/// it shows (OpenMetrics only).
struct BucketStyle<'a> {
    le_text: fn(f64) -> String,
    exemplars: &'a [Exemplar],
}

/// Appends a histogram's `_bucket` lines (each with its exemplar, if the style shows one),
/// `_sum` and `_count`.
fn push_histogram<'a>(
    out: &mut String,
    name: &str,
    labels: impl Fn() -> std::iter::Zip<std::slice::Iter<'a, String>, std::slice::Iter<'a, String>> + 'a,
    buckets: &[(f64, u64)],
    sum: f64,
    count: u64,
    style: BucketStyle<'_>,
) {
    let pairs = || labels().map(|(n, v)| (n.as_str(), v.as_str()));
    let bucket_name = format!("{name}_bucket");
    for (bound, cumulative) in histogram_buckets(buckets, count) {
        let le = (style.le_text)(bound);
        push_sample(
            out,
            &bucket_name,
            pairs(),
            Some(("le", &le)),
            &cumulative.to_string(),
        );
        if let Some(exemplar) = style.exemplars.iter().find(|e| e.bucket == bound) {
            push_exemplar(out, exemplar);
        }
    }
    push_sample(
        out,
        &format!("{name}_sum"),
        pairs(),
        None,
        &format_number(sum),
    );
    push_sample(
        out,
        &format!("{name}_count"),
        pairs(),
        None,
        &count.to_string(),
    );
}

/// Turns the sample line just written into one carrying `exemplar`, in OpenMetrics' syntax:
/// `... 5 # {trace_id="...",span_id="..."} 0.067 1700000000.123`.
fn push_exemplar(out: &mut String, exemplar: &Exemplar) {
    if out.ends_with('\n') {
        out.pop();
    }
    out.push_str(" # {trace_id=\"");
    out.push_str(&exemplar.trace_id);
    out.push_str("\",span_id=\"");
    out.push_str(&exemplar.span_id);
    out.push_str("\"} ");
    out.push_str(&format_number(exemplar.value));
    out.push(' ');
    out.push_str(&format_number(exemplar.timestamp));
    out.push('\n');
}
