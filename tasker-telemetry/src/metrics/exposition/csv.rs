//! CSV export: one row per sample.

use super::{format_number, histogram_buckets, series_labels};
use crate::metrics::snapshot::{MetricKind, MetricsSnapshot, SeriesValue};

/// How [`csv_export`] lays out labels.
///
/// ```
/// use tasker_telemetry::metrics::CsvOptions;
///
/// assert!(!CsvOptions::default().flatten_labels);
/// let flat = CsvOptions { flatten_labels: true };
/// # let _ = flat;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CsvOptions {
    /// `false` (the default): one `labels` column holding `l1=v1;l2=v2`. `true`: one
    /// `label_<name>` column per label name instead, empty where a row lacks that label.
    pub flatten_labels: bool,
}

/// One CSV row, before it is written.
struct Row<'a> {
    name: String,
    kind: MetricKind,
    value: String,
    labels: Vec<(&'a str, String)>,
}

/// Renders `snapshot` as CSV (RFC 4180, `\n` line ends), one row per sample.
///
/// The header is `timestamp,name,type,value,labels`. Counters and gauges give one row per
/// series; a histogram series gives one `<name>_bucket` row per bucket (its bound in an `le`
/// label, `+Inf` last, cumulative counts), then a `<name>_sum` and a `<name>_count` row. Every
/// row carries the snapshot's RFC 3339 timestamp and its family's type; values are formatted as
/// in the Prometheus text format (`3`, `0.25`, `NaN`, `+Inf`, `-Inf`).
///
/// With [`CsvOptions::flatten_labels`] false, the `labels` column is `l1=v1;l2=v2` (label values
/// are not escaped in it, so values containing `;` or `=` make it ambiguous: flatten the labels
/// when they may). With it true, the `labels` column is replaced by one `label_<name>` column per
/// label name across all families (`le` included when there is a histogram), in first-seen
/// order, left empty when a row lacks that label. Any field containing a comma, a double quote,
/// a carriage return or a line feed is quoted, with its double quotes doubled.
///
/// ```
/// use tasker_telemetry::Timestamp;
/// use tasker_telemetry::metrics::{
///     CsvOptions, FamilySnapshot, MetricKind, MetricsSnapshot, SeriesSnapshot, SeriesValue,
///     csv_export,
/// };
///
/// let snapshot = MetricsSnapshot {
///     timestamp: Timestamp::now(),
///     families: vec![FamilySnapshot {
///         name: "tasker_steps_completed_total".into(),
///         help: "Steps completed.".into(),
///         unit: None,
///         kind: MetricKind::Counter,
///         label_names: vec!["handler".into(), "namespace".into()],
///         series: vec![SeriesSnapshot::new(
///             vec!["fetch_cart".into(), "a,b".into()],
///             SeriesValue::Counter(3.0),
///         )],
///     }],
/// };
/// let ts = snapshot.timestamp.to_string();
///
/// assert_eq!(
///     csv_export(&snapshot, &CsvOptions::default()),
///     format!(
///         "timestamp,name,type,value,labels\n\
///          {ts},tasker_steps_completed_total,counter,3,\"handler=fetch_cart;namespace=a,b\"\n"
///     )
/// );
/// assert_eq!(
///     csv_export(&snapshot, &CsvOptions { flatten_labels: true }),
///     format!(
///         "timestamp,name,type,value,label_handler,label_namespace\n\
///          {ts},tasker_steps_completed_total,counter,3,fetch_cart,\"a,b\"\n"
///     )
/// );
/// ```
pub fn csv_export(snapshot: &MetricsSnapshot, options: &CsvOptions) -> String {
    let rows = rows(snapshot);
    let timestamp = snapshot.timestamp.to_string();
    let mut out = String::new();

    let mut columns: Vec<&str> = Vec::new();
    if options.flatten_labels {
        for family in &snapshot.families {
            let histogram_le = (family.kind == MetricKind::Histogram).then_some("le");
            for name in family
                .label_names
                .iter()
                .map(String::as_str)
                .chain(histogram_le)
            {
                if !columns.contains(&name) {
                    columns.push(name);
                }
            }
        }
        // A series whose value is a histogram under a family of another kind still has `le`.
        if rows
            .iter()
            .any(|row| row.labels.iter().any(|&(n, _)| n == "le"))
            && !columns.contains(&"le")
        {
            columns.push("le");
        }
    }

    let mut fields: Vec<String> = ["timestamp", "name", "type", "value"]
        .map(str::to_owned)
        .to_vec();
    if options.flatten_labels {
        fields.extend(columns.iter().map(|name| format!("label_{name}")));
    } else {
        fields.push("labels".to_owned());
    }
    push_record(&mut out, fields.iter().map(String::as_str));

    for row in &rows {
        let mut fields: Vec<&str> = vec![&timestamp, &row.name, row.kind.as_str(), &row.value];
        let joined;
        if options.flatten_labels {
            for column in &columns {
                let value = row
                    .labels
                    .iter()
                    .find(|(name, _)| name == column)
                    .map_or("", |(_, value)| value.as_str());
                fields.push(value);
            }
        } else {
            joined = row
                .labels
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join(";");
            fields.push(&joined);
        }
        push_record(&mut out, fields);
    }
    out
}

/// Every sample of `snapshot` as a row, in order.
fn rows(snapshot: &MetricsSnapshot) -> Vec<Row<'_>> {
    let mut rows = Vec::new();
    for family in &snapshot.families {
        for series in &family.series {
            let labels = || {
                series_labels(family, series)
                    .map(|(name, value)| (name, value.to_owned()))
                    .collect::<Vec<_>>()
            };
            match &series.value {
                SeriesValue::Counter(value) | SeriesValue::Gauge(value) => rows.push(Row {
                    name: family.name.clone(),
                    kind: family.kind,
                    value: format_number(*value),
                    labels: labels(),
                }),
                SeriesValue::Histogram {
                    buckets,
                    sum,
                    count,
                } => {
                    for (bound, cumulative) in histogram_buckets(buckets, *count) {
                        let mut bucket_labels = labels();
                        bucket_labels.push(("le", format_number(bound)));
                        rows.push(Row {
                            name: format!("{}_bucket", family.name),
                            kind: family.kind,
                            value: cumulative.to_string(),
                            labels: bucket_labels,
                        });
                    }
                    rows.push(Row {
                        name: format!("{}_sum", family.name),
                        kind: family.kind,
                        value: format_number(*sum),
                        labels: labels(),
                    });
                    rows.push(Row {
                        name: format!("{}_count", family.name),
                        kind: family.kind,
                        value: count.to_string(),
                        labels: labels(),
                    });
                }
            }
        }
    }
    rows
}

/// Appends one record: fields separated by commas, quoted when needed, then `\n`.
fn push_record<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, field);
    }
    out.push('\n');
}

/// Appends `field`, quoted (double quotes doubled) when it contains a comma, a double quote, a
/// carriage return or a line feed.
fn push_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::test_support::{TRICKY, family, sample, snapshot};
    use super::*;

    const FLAT: CsvOptions = CsvOptions {
        flatten_labels: true,
    };

    /// Parses CSV text with the `csv` crate into its header and records.
    fn parse(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(text.as_bytes());
        let header = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let records = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        (header, records)
    }

    fn parse_value(s: &str) -> f64 {
        match s {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            _ => s.parse().unwrap(),
        }
    }

    /// `(sample name, labels, value)`.
    type ExpectedRow = (String, Vec<(String, String)>, f64);

    /// The rows every mode should agree on, straight from the snapshot.
    fn expected(snap: &MetricsSnapshot) -> Vec<ExpectedRow> {
        let mut out = Vec::new();
        for fam in &snap.families {
            for series in &fam.series {
                let labels: Vec<(String, String)> = fam
                    .label_names
                    .iter()
                    .cloned()
                    .zip(series.label_values.iter().cloned())
                    .collect();
                match &series.value {
                    SeriesValue::Counter(v) | SeriesValue::Gauge(v) => {
                        out.push((fam.name.clone(), labels, *v));
                    }
                    SeriesValue::Histogram {
                        buckets,
                        sum,
                        count,
                    } => {
                        for &(bound, cumulative) in buckets {
                            let mut with_le = labels.clone();
                            with_le.push(("le".to_owned(), format_number(bound)));
                            out.push((format!("{}_bucket", fam.name), with_le, cumulative as f64));
                        }
                        out.push((format!("{}_sum", fam.name), labels.clone(), *sum));
                        out.push((format!("{}_count", fam.name), labels, *count as f64));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn renders_the_sample_snapshot_exactly() {
        let text = csv_export(&sample(), &CsvOptions::default());
        let ts = "2023-11-14T22:13:20.000000Z";
        let want = format!(
            "timestamp,name,type,value,labels
{ts},tasker_steps_completed_total,counter,3,handler=fetch_cart;namespace=default
{ts},tasker_steps_completed_total,counter,1.5,\"handler=a\"\"b\\c
d é;namespace=x,y\"
{ts},tasker_queue_depth,gauge,-7,
{ts},tasker_step_duration_seconds_bucket,histogram,1,handler=fetch_cart;le=0.005
{ts},tasker_step_duration_seconds_bucket,histogram,2,handler=fetch_cart;le=0.01
{ts},tasker_step_duration_seconds_bucket,histogram,4,handler=fetch_cart;le=1
{ts},tasker_step_duration_seconds_bucket,histogram,5,handler=fetch_cart;le=2.5
{ts},tasker_step_duration_seconds_bucket,histogram,6,handler=fetch_cart;le=+Inf
{ts},tasker_step_duration_seconds_sum,histogram,4.25,handler=fetch_cart
{ts},tasker_step_duration_seconds_count,histogram,6,handler=fetch_cart
"
        );
        assert_eq!(text, want);
    }

    #[test]
    fn flattened_header_is_the_union_of_label_names_in_first_seen_order() {
        let text = csv_export(&sample(), &FLAT);
        assert!(text.starts_with(
            "timestamp,name,type,value,label_handler,label_namespace,label_le,label_pool\n"
        ));
        assert!(text.ends_with("tasker_step_duration_seconds_count,histogram,6,fetch_cart,,,\n"));
        assert!(!text.contains(",labels"));
    }

    #[test]
    fn parses_back_in_both_modes() {
        let snap = sample();
        let want = expected(&snap);
        let ts = snap.timestamp.to_string();

        let (header, records) = parse(&csv_export(&snap, &CsvOptions::default()));
        assert_eq!(header, ["timestamp", "name", "type", "value", "labels"]);
        assert_eq!(records.len(), want.len());
        for (record, (name, labels, value)) in records.iter().zip(&want) {
            assert_eq!(record[0], ts);
            assert_eq!(&record[1], name);
            assert_eq!(parse_value(&record[3]), *value);
            let joined = labels
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(";");
            assert_eq!(record[4], joined);
        }
        assert_eq!(records[1][4], format!("handler={TRICKY};namespace=x,y"));

        let (header, records) = parse(&csv_export(&snap, &FLAT));
        assert_eq!(records.len(), want.len());
        let columns: Vec<&str> = header[4..]
            .iter()
            .map(|h| h.strip_prefix("label_").unwrap())
            .collect();
        assert_eq!(columns, ["handler", "namespace", "le", "pool"]);
        for (record, (name, labels, value)) in records.iter().zip(&want) {
            assert_eq!(&record[1], name);
            assert_eq!(parse_value(&record[3]), *value);
            let by_name: HashMap<&str, &str> = labels
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            for (column, cell) in columns.iter().zip(&record[4..]) {
                assert_eq!(cell, by_name.get(column).copied().unwrap_or(""), "{column}");
            }
        }
        assert_eq!(records[1][4], TRICKY);
        assert_eq!(records[1][5], "x,y");
    }

    #[test]
    fn types_and_histogram_rows() {
        let (_, records) = parse(&csv_export(&sample(), &CsvOptions::default()));
        let types: Vec<_> = records.iter().map(|r| r[2].as_str()).collect();
        assert_eq!(types[..3], ["counter", "counter", "gauge"]);
        assert!(types[3..].iter().all(|&t| t == "histogram"));
        let buckets: Vec<f64> = records
            .iter()
            .filter(|r| r[1].ends_with("_bucket"))
            .map(|r| parse_value(&r[3]))
            .collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
        let count = records.iter().find(|r| r[1].ends_with("_count")).unwrap();
        assert_eq!(parse_value(&count[3]), *buckets.last().unwrap());
        assert!(records.iter().any(|r| r[4].ends_with("le=+Inf")));
    }

    #[test]
    fn quotes_fields_when_needed() {
        let mut out = String::new();
        for field in ["plain", "a,b", "say \"hi\"", "cr\r", "lf\n", "é;="] {
            push_field(&mut out, field);
            out.push('|');
        }
        assert_eq!(
            out,
            "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"cr\r\"|\"lf\n\"|é;=|"
        );
    }

    #[test]
    fn flattened_rows_leave_missing_labels_empty() {
        let snap = snapshot(vec![
            family(
                "a",
                MetricKind::Gauge,
                None,
                &["x"],
                vec![(vec!["1"], SeriesValue::Gauge(1.0))],
            ),
            family(
                "b",
                MetricKind::Gauge,
                None,
                &["y", "x"],
                vec![(vec!["2", "3"], SeriesValue::Gauge(2.0))],
            ),
        ]);
        let (header, records) = parse(&csv_export(&snap, &FLAT));
        assert_eq!(
            header,
            ["timestamp", "name", "type", "value", "label_x", "label_y"]
        );
        assert_eq!(records[0][4..], ["1", ""]);
        assert_eq!(records[1][4..], ["3", "2"]);
    }

    #[test]
    fn non_finite_values() {
        let snap = snapshot(vec![family(
            "g",
            MetricKind::Gauge,
            None,
            &[],
            vec![
                (vec![], SeriesValue::Gauge(f64::NAN)),
                (vec![], SeriesValue::Gauge(f64::INFINITY)),
                (vec![], SeriesValue::Gauge(f64::NEG_INFINITY)),
            ],
        )]);
        for options in [CsvOptions::default(), FLAT] {
            let (_, records) = parse(&csv_export(&snap, &options));
            let values: Vec<_> = records.iter().map(|r| r[3].as_str()).collect();
            assert_eq!(values, ["NaN", "+Inf", "-Inf"]);
        }
    }

    #[test]
    fn empty_snapshot_has_only_the_header() {
        assert_eq!(
            csv_export(&snapshot(vec![]), &CsvOptions::default()),
            "timestamp,name,type,value,labels\n"
        );
        assert_eq!(
            csv_export(&snapshot(vec![]), &FLAT),
            "timestamp,name,type,value\n"
        );
    }
}
