//! The Prometheus text exposition format, version 0.0.4.

use super::{BucketStyle, format_number, push_histogram, push_sample, series_labels};
use crate::metrics::snapshot::{FamilySnapshot, MetricsSnapshot, SeriesValue};

/// The `Content-Type` of [`prometheus_text`]'s output.
///
/// ```
/// use tasker_telemetry::metrics::PROMETHEUS_CONTENT_TYPE;
///
/// assert_eq!(PROMETHEUS_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
/// ```
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `snapshot` in the Prometheus text exposition format 0.0.4.
///
/// Each family gets one `# HELP` line (help text with `\` and newlines escaped) and one `# TYPE`
/// line, even when it has no series, then one line per sample: `name{l1="v1",l2="v2"} value`,
/// label values escaped (`\` → `\\`, `"` → `\"`, newline → `\n`). A histogram series becomes its
/// cumulative `name_bucket{...,le="..."}` lines, `+Inf` last, then `name_sum` and `name_count`.
/// Families and series keep the snapshot's order; every line, the last included, ends with a
/// newline (an empty snapshot renders as an empty string).
///
/// Values are integers when integral and below 2^53 (`3`), Rust's shortest round-trip form
/// otherwise (`0.005`, `1e-7`), or `+Inf`, `-Inf`, `NaN`; `le` bounds are written the same way
/// (`0.005`, `1`, `2.5`, `+Inf`).
///
/// ```
/// use tasker_telemetry::Timestamp;
/// use tasker_telemetry::metrics::{
///     FamilySnapshot, MetricKind, MetricsSnapshot, SeriesSnapshot, SeriesValue, prometheus_text,
/// };
///
/// let snapshot = MetricsSnapshot {
///     timestamp: Timestamp::now(),
///     families: vec![FamilySnapshot {
///         name: "tasker_step_duration_seconds".into(),
///         help: "Step duration.".into(),
///         unit: Some("seconds".into()),
///         kind: MetricKind::Histogram,
///         label_names: vec!["handler".into()],
///         series: vec![SeriesSnapshot::new(
///             vec!["fetch_cart".into()],
///             SeriesValue::Histogram {
///                 buckets: vec![(0.5, 1), (1.0, 2), (f64::INFINITY, 3)],
///                 sum: 2.75,
///                 count: 3,
///             },
///         )],
///     }],
/// };
///
/// assert_eq!(
///     prometheus_text(&snapshot),
///     concat!(
///         "# HELP tasker_step_duration_seconds Step duration.\n",
///         "# TYPE tasker_step_duration_seconds histogram\n",
///         "tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"0.5\"} 1\n",
///         "tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"1\"} 2\n",
///         "tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"+Inf\"} 3\n",
///         "tasker_step_duration_seconds_sum{handler=\"fetch_cart\"} 2.75\n",
///         "tasker_step_duration_seconds_count{handler=\"fetch_cart\"} 3\n",
///     )
/// );
/// ```
pub fn prometheus_text(snapshot: &MetricsSnapshot) -> String {
    let mut out = String::new();
    for family in &snapshot.families {
        push_family(&mut out, family);
    }
    out
}

fn push_family(out: &mut String, family: &FamilySnapshot) {
    let name = family.name.as_str();

    // Like the Go client, always `# HELP name ` with its space, even for an empty help.
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    push_escaped_help(out, &family.help);
    out.push('\n');

    out.push_str("# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(family.kind.as_str());
    out.push('\n');

    for series in &family.series {
        let labels = || series_labels(family, series);
        match &series.value {
            SeriesValue::Counter(value) | SeriesValue::Gauge(value) => {
                push_sample(out, name, labels(), None, &format_number(*value));
            }
            SeriesValue::Histogram {
                buckets,
                sum,
                count,
            } => {
                let labels = || family.label_names.iter().zip(series.label_values.iter());
                let style = BucketStyle {
                    le_text: format_number,
                    exemplars: &[],
                };
                push_histogram(out, name, labels, buckets, *sum, *count, style);
            }
        }
    }
}

/// Appends `help` escaped as format 0.0.4 wants it in `# HELP` lines: `\` → `\\`, newline → `\n`
/// (double quotes stay as they are).
fn push_escaped_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{TRICKY, family, sample, snapshot};
    use super::*;
    use crate::metrics::snapshot::MetricKind;

    /// One parsed sample line.
    #[derive(Debug, PartialEq)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    /// A parsed exposition: `(name, help)`, `(name, type)` and the samples, in order.
    #[derive(Debug, Default)]
    struct Parsed {
        help: Vec<(String, String)>,
        types: Vec<(String, String)>,
        samples: Vec<Sample>,
    }

    fn unescape(s: &str, quotes: bool) -> Result<String, String> {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') if quotes => out.push('"'),
                other => return Err(format!("bad escape \\{other:?} in {s:?}")),
            }
        }
        Ok(out)
    }

    fn parse_value(s: &str) -> Result<f64, String> {
        match s {
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            _ => s.parse().map_err(|e| format!("bad value {s:?}: {e}")),
        }
    }

    fn is_name_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_' || c == ':'
    }

    type Labels = Vec<(String, String)>;

    /// Parses `{l1="v1",l2="v2"}` (starting just after `{`); returns the labels and the rest
    /// after `}`.
    fn parse_labels(mut rest: &str) -> Result<(Labels, &str), String> {
        let mut labels = Vec::new();
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                return Ok((labels, after));
            }
            let name_end = rest
                .find(|c: char| !is_name_char(c))
                .ok_or("unterminated label name")?;
            let name = &rest[..name_end];
            if name.is_empty() {
                return Err(format!("empty label name at {rest:?}"));
            }
            rest = rest[name_end..]
                .strip_prefix("=\"")
                .ok_or(format!("expected =\" after {name}"))?;
            // The value ends at the first `"` not preceded by an escaping backslash.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in rest.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    '\n' => return Err("raw newline in label value".to_owned()),
                    _ => {}
                }
            }
            let end = end.ok_or("unterminated label value")?;
            labels.push((name.to_owned(), unescape(&rest[..end], true)?));
            rest = &rest[end + 1..];
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err(format!("expected , or }} at {rest:?}"));
            }
        }
    }

    /// A small, strict parser for the subset of format 0.0.4 that `prometheus_text` writes.
    fn parse(text: &str) -> Result<Parsed, String> {
        let mut parsed = Parsed::default();
        if text.is_empty() {
            return Ok(parsed);
        }
        let body = text
            .strip_suffix('\n')
            .ok_or("no trailing newline".to_owned())?;
        for line in body.split('\n') {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').ok_or("HELP without text")?;
                parsed.help.push((name.to_owned(), unescape(help, false)?));
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or("TYPE without type")?;
                parsed.types.push((name.to_owned(), kind.to_owned()));
            } else if line.starts_with('#') {
                return Err(format!("unexpected comment {line:?}"));
            } else {
                let name_end = line
                    .find(|c: char| !is_name_char(c))
                    .ok_or(format!("no value in {line:?}"))?;
                let name = &line[..name_end];
                let rest = &line[name_end..];
                let (labels, rest) = match rest.strip_prefix('{') {
                    Some(rest) => parse_labels(rest)?,
                    None => (Vec::new(), rest),
                };
                let value = rest
                    .strip_prefix(' ')
                    .ok_or(format!("no space before value in {line:?}"))?;
                parsed.samples.push(Sample {
                    name: name.to_owned(),
                    labels,
                    value: parse_value(value)?,
                });
            }
        }
        Ok(parsed)
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|&(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn renders_the_sample_snapshot_exactly() {
        let text = prometheus_text(&sample());
        let want = "\
# HELP tasker_steps_completed_total Help for tasker_steps_completed_total.
# TYPE tasker_steps_completed_total counter
tasker_steps_completed_total{handler=\"fetch_cart\",namespace=\"default\"} 3
tasker_steps_completed_total{handler=\"a\\\"b\\\\c\\nd é\",namespace=\"x,y\"} 1.5
# HELP tasker_queue_depth Help for tasker_queue_depth.
# TYPE tasker_queue_depth gauge
tasker_queue_depth -7
# HELP tasker_step_duration_seconds Help for tasker_step_duration_seconds.
# TYPE tasker_step_duration_seconds histogram
tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"0.005\"} 1
tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"0.01\"} 2
tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"1\"} 4
tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"2.5\"} 5
tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"+Inf\"} 6
tasker_step_duration_seconds_sum{handler=\"fetch_cart\"} 4.25
tasker_step_duration_seconds_count{handler=\"fetch_cart\"} 6
# HELP tasker_idle_workers Idle workers.\\nPer pool, see C:\\\\docs.
# TYPE tasker_idle_workers gauge
";
        assert_eq!(text, want);
    }

    #[test]
    fn content_type_is_format_0_0_4() {
        assert_eq!(
            PROMETHEUS_CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }

    #[test]
    fn escapes_label_values() {
        let snap = snapshot(vec![family(
            "g",
            MetricKind::Gauge,
            None,
            &["a", "b", "c", "d", "e"],
            vec![(
                vec![
                    "back\\slash",
                    "quo\"te",
                    "new\nline",
                    "naïve ☃ 日本",
                    "cr\rtab\t",
                ],
                SeriesValue::Gauge(1.0),
            )],
        )]);
        let text = prometheus_text(&snap);
        assert!(text.contains(
            "g{a=\"back\\\\slash\",b=\"quo\\\"te\",c=\"new\\nline\",d=\"naïve ☃ 日本\",e=\"cr\rtab\t\"} 1\n"
        ));
        // One line per sample: the newline in the label value did not split it.
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn help_escapes_backslash_and_newline_only() {
        let mut fam = family("g", MetricKind::Gauge, None, &[], vec![]);
        fam.help = "say \"hi\"\\\nbye".to_owned();
        let text = prometheus_text(&snapshot(vec![fam]));
        assert_eq!(text, "# HELP g say \"hi\"\\\\\\nbye\n# TYPE g gauge\n");
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed.help[0].1, "say \"hi\"\\\nbye");
    }

    #[test]
    fn one_help_and_one_type_per_family() {
        let snap = sample();
        let parsed = parse(&prometheus_text(&snap)).unwrap();
        let names: Vec<_> = snap.families.iter().map(|f| f.name.clone()).collect();
        let help_names: Vec<_> = parsed.help.iter().map(|(n, _)| n.clone()).collect();
        let type_names: Vec<_> = parsed.types.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(help_names, names);
        assert_eq!(type_names, names);
        let kinds: Vec<_> = parsed.types.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(kinds, ["counter", "gauge", "histogram", "gauge"]);
        // The family without series still has its two lines, and nothing else.
        assert!(
            parsed
                .samples
                .iter()
                .all(|s| !s.name.starts_with("tasker_idle_workers"))
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_equals_count() {
        let parsed = parse(&prometheus_text(&sample())).unwrap();
        let buckets: Vec<_> = parsed
            .samples
            .iter()
            .filter(|s| s.name == "tasker_step_duration_seconds_bucket")
            .collect();
        let les: Vec<_> = buckets
            .iter()
            .map(|s| s.labels.last().unwrap().clone())
            .collect();
        assert_eq!(
            les,
            labels(&[
                ("le", "0.005"),
                ("le", "0.01"),
                ("le", "1"),
                ("le", "2.5"),
                ("le", "+Inf")
            ])
        );
        let counts: Vec<_> = buckets.iter().map(|s| s.value).collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        let count = parsed
            .samples
            .iter()
            .find(|s| s.name == "tasker_step_duration_seconds_count")
            .unwrap();
        assert_eq!(count.labels, labels(&[("handler", "fetch_cart")]));
        assert_eq!(counts.last().copied(), Some(count.value));
        let sum = parsed
            .samples
            .iter()
            .find(|s| s.name == "tasker_step_duration_seconds_sum")
            .unwrap();
        assert_eq!(sum.value, 4.25);
    }

    #[test]
    fn histogram_without_inf_bucket_gets_one() {
        let snap = snapshot(vec![family(
            "h",
            MetricKind::Histogram,
            None,
            &[],
            vec![(
                vec![],
                SeriesValue::Histogram {
                    buckets: vec![(1.0, 1)],
                    sum: 3.0,
                    count: 2,
                },
            )],
        )]);
        let text = prometheus_text(&snap);
        assert!(
            text.contains("h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n")
        );
    }

    #[test]
    fn ends_with_a_newline() {
        let text = prometheus_text(&sample());
        assert!(text.ends_with('\n'));
        assert!(!text.ends_with("\n\n"));
        let only_empty = snapshot(vec![family("g", MetricKind::Gauge, None, &[], vec![])]);
        assert!(prometheus_text(&only_empty).ends_with("gauge\n"));
        assert_eq!(prometheus_text(&snapshot(vec![])), "");
    }

    #[test]
    fn non_finite_values() {
        let snap = snapshot(vec![family(
            "g",
            MetricKind::Gauge,
            None,
            &["k"],
            vec![
                (vec!["nan"], SeriesValue::Gauge(f64::NAN)),
                (vec!["inf"], SeriesValue::Gauge(f64::INFINITY)),
                (vec!["ninf"], SeriesValue::Gauge(f64::NEG_INFINITY)),
                (vec!["big"], SeriesValue::Gauge(1e300)),
                (vec!["small"], SeriesValue::Gauge(-2.5e-9)),
            ],
        )]);
        let text = prometheus_text(&snap);
        assert!(text.contains("g{k=\"nan\"} NaN\n"));
        assert!(text.contains("g{k=\"inf\"} +Inf\n"));
        assert!(text.contains("g{k=\"ninf\"} -Inf\n"));
        assert!(text.contains("g{k=\"big\"} 1e300\n"));
        assert!(text.contains("g{k=\"small\"} -2.5e-9\n"));
        let values: Vec<_> = parse(&text)
            .unwrap()
            .samples
            .iter()
            .map(|s| s.value)
            .collect();
        assert!(values[0].is_nan());
        assert_eq!(
            values[1..],
            [f64::INFINITY, f64::NEG_INFINITY, 1e300, -2.5e-9]
        );
    }

    #[test]
    fn round_trips_through_a_parser() {
        let tricky = [
            TRICKY,
            "",
            "\\",
            "\\n",
            "\"",
            "\\\"",
            "}",
            "a=\"b\",c=\"d\"",
            "trailing\\",
            "\n\n",
        ];
        let series = tricky
            .iter()
            .enumerate()
            .map(|(i, &v)| (vec![v, "plain"], SeriesValue::Counter(i as f64 + 0.5)))
            .collect();
        let snap = snapshot(vec![family(
            "c_total",
            MetricKind::Counter,
            None,
            &["tricky", "other"],
            series,
        )]);
        let parsed = parse(&prometheus_text(&snap)).unwrap();
        assert_eq!(parsed.samples.len(), tricky.len());
        for (i, (sample, &want)) in parsed.samples.iter().zip(&tricky).enumerate() {
            assert_eq!(sample.name, "c_total");
            assert_eq!(
                sample.labels,
                labels(&[("tricky", want), ("other", "plain")])
            );
            assert_eq!(sample.value, i as f64 + 0.5);
        }
    }

    #[test]
    fn round_trips_the_sample_snapshot() {
        let snap = sample();
        let parsed = parse(&prometheus_text(&snap)).unwrap();
        let first = &parsed.samples[1];
        assert_eq!(
            first.labels,
            labels(&[("handler", TRICKY), ("namespace", "x,y")])
        );
        assert_eq!(first.value, 1.5);
        assert_eq!(parsed.help[3].1, snap.families[3].help);
    }
}
