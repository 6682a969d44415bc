//! The OpenMetrics 1.0 text format, and choosing it from an `Accept` header.

use super::{
    BucketStyle, format_canonical_float, format_number, push_escaped_label_value, push_histogram,
    push_sample, series_labels,
};
use crate::metrics::snapshot::{FamilySnapshot, MetricKind, MetricsSnapshot, SeriesValue};

/// The `Content-Type` of [`openmetrics_text`]'s output.
///
/// ```
/// use tasker_telemetry::metrics::OPENMETRICS_CONTENT_TYPE;
///
/// assert_eq!(
///     OPENMETRICS_CONTENT_TYPE,
///     "application/openmetrics-text; version=1.0.0; charset=utf-8"
/// );
/// ```
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders `snapshot` in the OpenMetrics 1.0 text format.
///
/// Each family gets a `# TYPE` line, a `# UNIT` line when it has a unit that its name ends with
/// (as OpenMetrics requires; a unit the name does not carry is left out rather than producing an
/// invalid exposition), and a `# HELP` line (help escaped: `\`, `"` and newlines). A counter
/// family is named without its `_total` suffix in those lines, and its samples with it
/// (`tasker_steps_completed` / `tasker_steps_completed_total`). Histograms are written as
/// `_bucket` lines with canonical float bounds (`le="1.0"`, `le="0.005"`, `le="+Inf"`), then
/// `_sum` and `_count`; a bucket with an [`Exemplar`](crate::metrics::Exemplar) carries it
/// (`# {trace_id="...",span_id="..."} value timestamp`). Label values are escaped as in [`prometheus_text`]; sample values are
/// formatted the same way too. The output ends with `# EOF` and a newline.
///
/// [`prometheus_text`]: super::prometheus_text
///
/// ```
/// use tasker_telemetry::Timestamp;
/// use tasker_telemetry::metrics::{
///     Exemplar, FamilySnapshot, MetricKind, MetricsSnapshot, SeriesSnapshot, SeriesValue,
///     openmetrics_text,
/// };
///
/// let snapshot = MetricsSnapshot {
///     timestamp: Timestamp::now(),
///     families: vec![FamilySnapshot {
///         name: "tasker_step_duration_seconds".into(),
///         help: "Step duration.".into(),
///         unit: Some("seconds".into()),
///         kind: MetricKind::Histogram,
///         label_names: vec![],
///         series: vec![SeriesSnapshot {
///             exemplars: vec![Exemplar {
///                 bucket: 1.0,
///                 value: 0.75,
///                 timestamp: 1_700_000_000.5,
///                 trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
///                 span_id: "00f067aa0ba902b7".into(),
///             }],
///             ..SeriesSnapshot::new(
///                 vec![],
///                 SeriesValue::Histogram {
///                     buckets: vec![(0.5, 1), (1.0, 2), (f64::INFINITY, 3)],
///                     sum: 2.75,
///                     count: 3,
///                 },
///             )
///         }],
///     }],
/// };
///
/// assert_eq!(
///     openmetrics_text(&snapshot),
///     concat!(
///         "# TYPE tasker_step_duration_seconds histogram\n",
///         "# UNIT tasker_step_duration_seconds seconds\n",
///         "# HELP tasker_step_duration_seconds Step duration.\n",
///         "tasker_step_duration_seconds_bucket{le=\"0.5\"} 1\n",
///         "tasker_step_duration_seconds_bucket{le=\"1.0\"} 2 # {trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\",span_id=\"00f067aa0ba902b7\"} 0.75 1700000000.5\n",
///         "tasker_step_duration_seconds_bucket{le=\"+Inf\"} 3\n",
///         "tasker_step_duration_seconds_sum 2.75\n",
///         "tasker_step_duration_seconds_count 3\n",
///         "# EOF\n",
///     )
/// );
/// ```
pub fn openmetrics_text(snapshot: &MetricsSnapshot) -> String {
    let mut out = String::new();
    for family in &snapshot.families {
        push_family(&mut out, family);
    }
    out.push_str("# EOF\n");
    out
}

/// The name OpenMetrics gives the family: a counter's name without `_total`.
fn family_name(family: &FamilySnapshot) -> &str {
    match family.kind {
        MetricKind::Counter => family
            .name
            .strip_suffix("_total")
            .filter(|base| !base.is_empty())
            .unwrap_or(&family.name),
        MetricKind::Gauge | MetricKind::Histogram => &family.name,
    }
}

fn push_family(out: &mut String, family: &FamilySnapshot) {
    let name = family_name(family);

    out.push_str("# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(family.kind.as_str());
    out.push('\n');

    if let Some(unit) = family.unit.as_deref()
        && !unit.is_empty()
        && name
            .strip_suffix(unit)
            .is_some_and(|base| base.len() > 1 && base.ends_with('_'))
    {
        out.push_str("# UNIT ");
        out.push_str(name);
        out.push(' ');
        out.push_str(unit);
        out.push('\n');
    }

    // `# HELP name ` keeps its space even for an empty help: the grammar requires it.
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    push_escaped_label_value(out, &family.help);
    out.push('\n');

    for series in &family.series {
        let labels = || series_labels(family, series);
        match &series.value {
            SeriesValue::Counter(value) => {
                let sample_name = format!("{name}_total");
                push_sample(out, &sample_name, labels(), None, &format_number(*value));
            }
            SeriesValue::Gauge(value) => {
                push_sample(out, name, labels(), None, &format_number(*value));
            }
            SeriesValue::Histogram {
                buckets,
                sum,
                count,
            } => {
                let labels = || family.label_names.iter().zip(series.label_values.iter());
                let style = BucketStyle {
                    le_text: format_canonical_float,
                    exemplars: &series.exemplars,
                };
                push_histogram(out, name, labels, buckets, *sum, *count, style);
            }
        }
    }
}

/// Whether a scrape with this `Accept` header should get OpenMetrics rather than the Prometheus
/// text format.
///
/// True when the header lists `application/openmetrics-text` without a version or with a 1.x
/// version, with a q-value (1 when absent) greater than zero and at least that of `text/plain`.
/// `text/plain`'s q-value is taken from its most specific match (`text/plain`, else `text/*`,
/// else `*/*`; zero when none matches). Wildcards never select OpenMetrics, so `*/*` alone gets
/// the Prometheus text format. On a tie OpenMetrics wins, as Prometheus lists it first. A q-value
/// that does not parse counts as zero; media types and parameter names are matched
/// case-insensitively.
///
/// ```
/// use tasker_telemetry::metrics::wants_openmetrics;
///
/// // What Prometheus sends.
/// assert!(wants_openmetrics(Some(
///     "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;\
///      q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
/// )));
/// assert!(!wants_openmetrics(Some("text/plain")));
/// assert!(!wants_openmetrics(Some("*/*")));
/// assert!(!wants_openmetrics(None));
/// ```
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut openmetrics_q: Option<f64> = None;
    // (specificity, q) of the best match for text/plain: 2 for text/plain, 1 text/*, 0 */*.
    let mut text_q: Option<(u8, f64)> = None;

    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let Some((kind, subtype)) = media.split_once('/') else {
            continue;
        };
        let (kind, subtype) = (kind.trim(), subtype.trim());
        let mut q = 1.0;
        let mut version = None;
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim().trim_matches('"'));
            if key.eq_ignore_ascii_case("q") {
                q = value
                    .parse::<f64>()
                    .ok()
                    .filter(|q| q.is_finite())
                    .map_or(0.0, |q| q.clamp(0.0, 1.0));
            } else if key.eq_ignore_ascii_case("version") {
                version = Some(value);
            }
        }

        if kind.eq_ignore_ascii_case("application")
            && subtype.eq_ignore_ascii_case("openmetrics-text")
        {
            let supported = version.is_none_or(|v| v == "1" || v.starts_with("1."));
            if supported {
                openmetrics_q = Some(openmetrics_q.map_or(q, |best: f64| best.max(q)));
            }
            continue;
        }

        let specificity = match (kind, subtype) {
            ("*", "*") => 0,
            (k, "*") if k.eq_ignore_ascii_case("text") => 1,
            (k, s) if k.eq_ignore_ascii_case("text") && s.eq_ignore_ascii_case("plain") => 2,
            _ => continue,
        };
        text_q = match text_q {
            Some((best, _)) if best > specificity => text_q,
            Some((best, best_q)) if best == specificity => Some((best, best_q.max(q))),
            _ => Some((specificity, q)),
        };
    }

    let text_q = text_q.map_or(0.0, |(_, q)| q);
    openmetrics_q.is_some_and(|q| q > 0.0 && q >= text_q)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{TRICKY, family, sample, snapshot};
    use super::*;

    const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
        application/openmetrics-text;version=0.0.1;q=0.75,\
        text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn renders_the_sample_snapshot_exactly() {
        let text = openmetrics_text(&sample());
        let want = "\
# TYPE tasker_steps_completed counter
# HELP tasker_steps_completed Help for tasker_steps_completed_total.
tasker_steps_completed_total{handler=\"fetch_cart\",namespace=\"default\"} 3
tasker_steps_completed_total{handler=\"a\\\"b\\\\c\\nd é\",namespace=\"x,y\"} 1.5
# TYPE tasker_queue_depth gauge
# HELP tasker_queue_depth Help for tasker_queue_depth.
tasker_queue_depth -7
# TYPE tasker_step_duration_seconds histogram
# UNIT tasker_step_duration_seconds seconds
# HELP tasker_step_duration_seconds Help for tasker_step_duration_seconds.
tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"0.005\"} 1
tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"0.01\"} 2
tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"1.0\"} 4
tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"2.5\"} 5
tasker_step_duration_seconds_bucket{handler=\"fetch_cart\",le=\"+Inf\"} 6
tasker_step_duration_seconds_sum{handler=\"fetch_cart\"} 4.25
tasker_step_duration_seconds_count{handler=\"fetch_cart\"} 6
# TYPE tasker_idle_workers gauge
# HELP tasker_idle_workers Idle workers.\\nPer pool, see C:\\\\docs.
# EOF
";
        assert_eq!(text, want);
    }

    #[test]
    fn counters_drop_total_in_metadata_and_keep_it_in_samples() {
        let snap = snapshot(vec![
            family(
                "jobs_total",
                MetricKind::Counter,
                None,
                &[],
                vec![(vec![], SeriesValue::Counter(2.0))],
            ),
            // A counter whose name lacks the suffix still gets it on its samples.
            family(
                "retries",
                MetricKind::Counter,
                None,
                &[],
                vec![(vec![], SeriesValue::Counter(1.0))],
            ),
            // Only counters lose `_total`.
            family(
                "odd_total",
                MetricKind::Gauge,
                None,
                &[],
                vec![(vec![], SeriesValue::Gauge(4.0))],
            ),
        ]);
        let text = openmetrics_text(&snap);
        assert!(
            text.contains("# TYPE jobs counter\n# HELP jobs Help for jobs_total.\njobs_total 2\n")
        );
        assert!(text.contains(
            "# TYPE retries counter\n# HELP retries Help for retries.\nretries_total 1\n"
        ));
        assert!(text.contains("# TYPE odd_total gauge\n"));
        assert!(text.contains("\nodd_total 4\n"));
        assert!(!text.contains("_total_total"));
        assert_eq!(text.matches("# TYPE ").count(), 3);
        assert_eq!(text.matches("# HELP ").count(), 3);
    }

    #[test]
    fn unit_only_when_the_name_carries_it() {
        let snap = snapshot(vec![
            family("a_seconds", MetricKind::Gauge, Some("seconds"), &[], vec![]),
            family(
                "b_seconds_total",
                MetricKind::Counter,
                Some("seconds"),
                &[],
                vec![],
            ),
            family("c_bytes", MetricKind::Gauge, Some("seconds"), &[], vec![]),
            family("dseconds", MetricKind::Gauge, Some("seconds"), &[], vec![]),
            family("seconds", MetricKind::Gauge, Some("seconds"), &[], vec![]),
            family("e", MetricKind::Gauge, Some(""), &[], vec![]),
            family("f_seconds", MetricKind::Gauge, None, &[], vec![]),
        ]);
        let text = openmetrics_text(&snap);
        let units: Vec<_> = text.lines().filter(|l| l.starts_with("# UNIT")).collect();
        assert_eq!(
            units,
            ["# UNIT a_seconds seconds", "# UNIT b_seconds seconds"]
        );
        // TYPE, then UNIT, then HELP.
        assert!(text.starts_with(
            "# TYPE a_seconds gauge\n# UNIT a_seconds seconds\n# HELP a_seconds Help for a_seconds.\n"
        ));
    }

    #[test]
    fn help_escapes_quotes_too() {
        let mut fam = family("g", MetricKind::Gauge, None, &[], vec![]);
        fam.help = "say \"hi\"\\\nbye".to_owned();
        let text = openmetrics_text(&snapshot(vec![fam]));
        assert_eq!(
            text,
            "# TYPE g gauge\n# HELP g say \\\"hi\\\"\\\\\\nbye\n# EOF\n"
        );
    }

    #[test]
    fn escapes_label_values() {
        let snap = snapshot(vec![family(
            "g",
            MetricKind::Gauge,
            None,
            &["v"],
            vec![(vec![TRICKY], SeriesValue::Gauge(1.0))],
        )]);
        assert!(openmetrics_text(&snap).contains("g{v=\"a\\\"b\\\\c\\nd é\"} 1\n"));
    }

    #[test]
    fn histogram_bounds_are_canonical_floats_and_inf_equals_count() {
        let text = openmetrics_text(&sample());
        let buckets: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("tasker_step_duration_seconds_bucket"))
            .collect();
        let les: Vec<_> = buckets
            .iter()
            .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
            .collect();
        assert_eq!(les, ["0.005", "0.01", "1.0", "2.5", "+Inf"]);
        let counts: Vec<u64> = buckets
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]));
        assert!(text.contains(&format!(
            "tasker_step_duration_seconds_count{{handler=\"fetch_cart\"}} {}\n",
            counts.last().unwrap()
        )));
    }

    #[test]
    fn ends_with_eof() {
        let text = openmetrics_text(&sample());
        assert!(text.ends_with("\n# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
        assert_eq!(openmetrics_text(&snapshot(vec![])), "# EOF\n");
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
            ],
        )]);
        let text = openmetrics_text(&snap);
        assert!(text.contains("g{k=\"nan\"} NaN\ng{k=\"inf\"} +Inf\ng{k=\"ninf\"} -Inf\n"));
    }

    #[test]
    fn content_type_is_openmetrics_1_0_0() {
        assert_eq!(
            OPENMETRICS_CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
    }

    #[test]
    fn accept_negotiation() {
        let cases = [
            (Some(PROMETHEUS_ACCEPT), true),
            (Some("text/plain"), false),
            (None, false),
            (Some(""), false),
            (Some("*/*"), false),
            (Some("text/*"), false),
            (Some("application/json"), false),
            (Some("application/openmetrics-text"), true),
            (Some("Application/OpenMetrics-Text; Version=1.0.0"), true),
            (
                Some("application/openmetrics-text; version=\"1.0.0\""),
                true,
            ),
            (Some("application/openmetrics-text;version=1"), true),
            (Some("application/openmetrics-text;version=0.0.1"), false),
            (Some("application/openmetrics-text;version=2.0.0"), false),
            (Some("application/openmetrics-text;q=0"), false),
            (Some("application/openmetrics-text;q=oops"), false),
            (Some("application/openmetrics-text, text/plain"), true),
            (Some("text/plain, application/openmetrics-text"), true),
            (
                Some("text/plain;q=0.5, application/openmetrics-text;q=0.5"),
                true,
            ),
            (
                Some("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
                false,
            ),
            (
                Some("text/plain;q=0.4, application/openmetrics-text;q=0.5"),
                true,
            ),
            (Some("application/openmetrics-text;q=0.2, */*;q=0.3"), false),
            (Some("application/openmetrics-text;q=0.2, */*"), false),
            // The most specific match decides text/plain's q-value.
            (
                Some("application/openmetrics-text;q=0.5, text/plain;q=0.1, */*"),
                true,
            ),
            (
                Some("application/openmetrics-text;q=0.5, text/plain;q=0.9, */*;q=0.1"),
                false,
            ),
            // Only 1.x counts: a higher q on an unsupported version does not.
            (
                Some("application/openmetrics-text;version=0.0.1, text/plain;q=0.5"),
                false,
            ),
            (Some(",;;=,/,a/b;q=,;"), false),
        ];
        for (accept, want) in cases {
            assert_eq!(wants_openmetrics(accept), want, "{accept:?}");
        }
    }
}
