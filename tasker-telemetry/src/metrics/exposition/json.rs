//! Tasker's JSON metrics export.

use serde_json::{Map, Value, json};

use super::{format_number, histogram_buckets, is_exact_integer, series_labels};
use crate::metrics::snapshot::{FamilySnapshot, MetricsSnapshot, SeriesSnapshot, SeriesValue};

/// Renders `snapshot` as Tasker's JSON metrics export, with `metadata` passed through.
///
/// The shape:
///
/// ```json
/// {
///   "timestamp": "2026-11-23T20:35:48.123456Z",
///   "metrics": {
///     "tasker_steps_completed_total": {
///       "type": "counter",
///       "help": "Steps completed.",
///       "unit": null,
///       "values": [{"labels": {"handler": "fetch_cart"}, "value": 3}]
///     },
///     "tasker_step_duration_seconds": {
///       "type": "histogram",
///       "help": "Step duration.",
///       "unit": "seconds",
///       "values": [{
///         "labels": {"handler": "fetch_cart"},
///         "buckets": [{"le": "0.5", "count": 1}, {"le": "+Inf", "count": 2}],
///         "sum": 1.25,
///         "count": 2
///       }]
///     }
///   },
///   "total_metrics": 2,
///   "metadata": {}
/// }
/// ```
///
/// `total_metrics` is the number of series across all families. Integral values below 2^53
/// are JSON integers, other finite values JSON floats, and `NaN`, `+Inf` and `-Inf` the strings
/// `"NaN"`, `"+Inf"` and `"-Inf"` (JSON has no literal for them). Bucket bounds (`le`) are
/// strings formatted as in the Prometheus text format. Should two families share a name, their
/// values are listed under the first one's entry.
///
/// ```
/// use serde_json::json;
/// use tasker_telemetry::Timestamp;
/// use tasker_telemetry::metrics::{
///     FamilySnapshot, MetricKind, MetricsSnapshot, SeriesSnapshot, SeriesValue, json_export,
/// };
///
/// let snapshot = MetricsSnapshot {
///     timestamp: Timestamp::now(),
///     families: vec![FamilySnapshot {
///         name: "tasker_steps_completed_total".into(),
///         help: "Steps completed.".into(),
///         unit: None,
///         kind: MetricKind::Counter,
///         label_names: vec!["handler".into()],
///         series: vec![SeriesSnapshot::new(
///             vec!["fetch_cart".into()],
///             SeriesValue::Counter(3.0),
///         )],
///     }],
/// };
///
/// let export = json_export(&snapshot, &json!({"service": "worker"}));
/// assert_eq!(export["timestamp"], snapshot.timestamp.to_string());
/// assert_eq!(
///     export["metrics"]["tasker_steps_completed_total"],
///     json!({
///         "type": "counter",
///         "help": "Steps completed.",
///         "unit": null,
///         "values": [{"labels": {"handler": "fetch_cart"}, "value": 3}],
///     })
/// );
/// assert_eq!(export["total_metrics"], 1);
/// assert_eq!(export["metadata"], json!({"service": "worker"}));
/// ```
pub fn json_export(snapshot: &MetricsSnapshot, metadata: &Value) -> Value {
    let mut metrics = Map::new();
    let mut total_metrics: u64 = 0;
    for family in &snapshot.families {
        let values: Vec<Value> = family
            .series
            .iter()
            .map(|series| series_json(family, series))
            .collect();
        total_metrics += values.len() as u64;
        if let Some(existing) = metrics
            .get_mut(&family.name)
            .and_then(|entry| entry.get_mut("values"))
            .and_then(Value::as_array_mut)
        {
            existing.extend(values);
        } else {
            metrics.insert(
                family.name.clone(),
                json!({
                    "type": family.kind.as_str(),
                    "help": family.help,
                    "unit": family.unit,
                    "values": values,
                }),
            );
        }
    }
    json!({
        "timestamp": snapshot.timestamp.to_string(),
        "metrics": metrics,
        "total_metrics": total_metrics,
        "metadata": metadata,
    })
}

fn series_json(family: &FamilySnapshot, series: &SeriesSnapshot) -> Value {
    let labels: Map<String, Value> = series_labels(family, series)
        .map(|(name, value)| (name.to_owned(), Value::from(value)))
        .collect();
    match &series.value {
        SeriesValue::Counter(value) | SeriesValue::Gauge(value) => {
            json!({"labels": labels, "value": number(*value)})
        }
        SeriesValue::Histogram {
            buckets,
            sum,
            count,
        } => {
            let buckets: Vec<Value> = histogram_buckets(buckets, *count)
                .map(|(bound, cumulative)| json!({"le": format_number(bound), "count": cumulative}))
                .collect();
            json!({
                "labels": labels,
                "buckets": buckets,
                "sum": number(*sum),
                "count": count,
            })
        }
    }
}

/// A value as JSON: an integer when integral and exact, a float when finite, else the string
/// `"NaN"`, `"+Inf"` or `"-Inf"`.
fn number(value: f64) -> Value {
    if is_exact_integer(value) {
        Value::from(value as i64)
    } else {
        serde_json::Number::from_f64(value)
            .map_or_else(|| Value::from(format_number(value)), Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{TRICKY, family, sample, snapshot};
    use super::*;
    use crate::metrics::snapshot::MetricKind;

    /// A JSON value back as an f64, reading the strings used for non-finite values and bounds.
    fn as_f64(value: &Value) -> f64 {
        match value {
            Value::String(s) if s == "NaN" => f64::NAN,
            Value::String(s) if s == "+Inf" => f64::INFINITY,
            Value::String(s) if s == "-Inf" => f64::NEG_INFINITY,
            Value::String(s) => s.parse().unwrap(),
            other => other.as_f64().unwrap(),
        }
    }

    #[test]
    fn has_tasker_shape() {
        let snap = sample();
        let metadata = json!({"service": "worker", "pid": 42});
        let export = json_export(&snap, &metadata);
        assert_eq!(export["timestamp"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(export["total_metrics"], 4);
        assert_eq!(export["metadata"], metadata);
        let metrics = export["metrics"].as_object().unwrap();
        assert_eq!(metrics.len(), 4);
        assert_eq!(
            metrics["tasker_steps_completed_total"],
            json!({
                "type": "counter",
                "help": "Help for tasker_steps_completed_total.",
                "unit": null,
                "values": [
                    {"labels": {"handler": "fetch_cart", "namespace": "default"}, "value": 3},
                    {"labels": {"handler": TRICKY, "namespace": "x,y"}, "value": 1.5},
                ],
            })
        );
        assert_eq!(
            metrics["tasker_queue_depth"]["values"],
            json!([{"labels": {}, "value": -7}])
        );
        assert_eq!(
            metrics["tasker_step_duration_seconds"],
            json!({
                "type": "histogram",
                "help": "Help for tasker_step_duration_seconds.",
                "unit": "seconds",
                "values": [{
                    "labels": {"handler": "fetch_cart"},
                    "buckets": [
                        {"le": "0.005", "count": 1},
                        {"le": "0.01", "count": 2},
                        {"le": "1", "count": 4},
                        {"le": "2.5", "count": 5},
                        {"le": "+Inf", "count": 6},
                    ],
                    "sum": 4.25,
                    "count": 6,
                }],
            })
        );
        assert_eq!(metrics["tasker_idle_workers"]["values"], json!([]));
        assert_eq!(
            metrics["tasker_idle_workers"]["help"],
            "Idle workers.\nPer pool, see C:\\docs."
        );
    }

    #[test]
    fn parses_back_with_the_same_values() {
        let snap = sample();
        let text = serde_json::to_string(&json_export(&snap, &Value::Null)).unwrap();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        let mut series_seen = 0;
        for fam in &snap.families {
            let entry = &parsed["metrics"][&fam.name];
            assert_eq!(entry["type"], fam.kind.as_str());
            assert_eq!(entry["help"], fam.help.as_str());
            let values = entry["values"].as_array().unwrap();
            assert_eq!(values.len(), fam.series.len());
            for (series, value) in fam.series.iter().zip(values) {
                series_seen += 1;
                for (name, label) in fam.label_names.iter().zip(&series.label_values) {
                    assert_eq!(value["labels"][name], label.as_str());
                }
                match &series.value {
                    SeriesValue::Counter(v) | SeriesValue::Gauge(v) => {
                        assert_eq!(as_f64(&value["value"]), *v);
                    }
                    SeriesValue::Histogram {
                        buckets,
                        sum,
                        count,
                    } => {
                        assert_eq!(as_f64(&value["sum"]), *sum);
                        assert_eq!(value["count"], *count);
                        let got = value["buckets"].as_array().unwrap();
                        assert_eq!(got.len(), buckets.len());
                        for ((bound, cumulative), bucket) in buckets.iter().zip(got) {
                            let le = bucket["le"].as_str().unwrap();
                            assert_eq!(as_f64(&Value::from(le)), *bound, "{le}");
                            assert_eq!(bucket["count"], *cumulative);
                        }
                        assert_eq!(got.last().unwrap()["le"], "+Inf");
                        assert_eq!(got.last().unwrap()["count"], *count);
                    }
                }
            }
        }
        assert_eq!(parsed["total_metrics"], series_seen);
    }

    #[test]
    fn non_finite_values_stay_valid_json() {
        let snap = snapshot(vec![
            family(
                "g",
                MetricKind::Gauge,
                None,
                &["k"],
                vec![
                    (vec!["nan"], SeriesValue::Gauge(f64::NAN)),
                    (vec!["inf"], SeriesValue::Gauge(f64::INFINITY)),
                    (vec!["ninf"], SeriesValue::Gauge(f64::NEG_INFINITY)),
                    (vec!["big"], SeriesValue::Gauge(1e300)),
                    (vec!["frac"], SeriesValue::Gauge(0.1)),
                ],
            ),
            family(
                "h",
                MetricKind::Histogram,
                None,
                &[],
                vec![(
                    vec![],
                    SeriesValue::Histogram {
                        buckets: vec![(f64::INFINITY, 1)],
                        sum: f64::NAN,
                        count: 1,
                    },
                )],
            ),
        ]);
        let text = serde_json::to_string(&json_export(&snap, &Value::Null)).unwrap();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        let values: Vec<_> = parsed["metrics"]["g"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["value"].clone())
            .collect();
        assert_eq!(
            values,
            [
                json!("NaN"),
                json!("+Inf"),
                json!("-Inf"),
                json!(1e300),
                json!(0.1)
            ]
        );
        assert_eq!(parsed["metrics"]["h"]["values"][0]["sum"], "NaN");
    }

    #[test]
    fn integral_values_are_integers() {
        assert_eq!(number(3.0).to_string(), "3");
        assert_eq!(number(-0.0).to_string(), "0");
        assert_eq!(number(2.5).to_string(), "2.5");
        assert!(number(1e20).is_f64());
    }

    #[test]
    fn duplicate_family_names_are_merged() {
        let fam = family(
            "g",
            MetricKind::Gauge,
            None,
            &[],
            vec![(vec![], SeriesValue::Gauge(1.0))],
        );
        let export = json_export(&snapshot(vec![fam.clone(), fam]), &Value::Null);
        assert_eq!(
            export["metrics"]["g"]["values"].as_array().unwrap().len(),
            2
        );
        assert_eq!(export["total_metrics"], 2);
    }
}
