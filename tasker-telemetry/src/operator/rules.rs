//! Prometheus rule files: the recording rules (what the dashboard's panels compute) and the
//! alerting rules, as values and as the YAML Prometheus loads.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::queries::{self, PANELS, Scope, WINDOW};
use super::{Objective, OperatorOptions, promql_duration};

/// A recording rule: Prometheus evaluates `expr` and stores it as the series `record`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordingRule {
    /// The recorded series' name (`level:metric:operations`).
    pub record: String,
    /// The PromQL it records.
    pub expr: String,
    /// The labels every recorded series carries (the expression's `by (...)`).
    pub labels: Vec<String>,
}

/// An alerting rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlertRule {
    /// The alert's name.
    pub alert: String,
    /// The PromQL condition: the alert is pending while it returns a series.
    pub expr: String,
    /// How long the condition must hold before the alert fires, in PromQL's notation (`"5m"`;
    /// `None`: at once).
    pub for_duration: Option<String>,
    /// Labels added to the alert (`severity`).
    pub labels: BTreeMap<String, String>,
    /// Its annotations (`summary`, `description`), templated on the alert's labels only
    /// (`{{ $labels.step_name }}`), so that an alert's text depends on which series fired, not
    /// on the value at that moment.
    pub annotations: BTreeMap<String, String>,
}

pub(super) fn recording_rules() -> Vec<RecordingRule> {
    PANELS
        .iter()
        .flat_map(|panel| panel.queries)
        .map(|q| RecordingRule {
            record: q.record.to_owned(),
            expr: queries::expand(q.expr, Scope::Rule),
            labels: q.labels.iter().map(|l| (*l).to_owned()).collect(),
        })
        .collect()
}

pub(super) fn alert_rules(options: &OperatorOptions) -> Vec<AlertRule> {
    let held = Some(promql_duration(options.alert_for));
    let mut rules = vec![
        alert(
            "TaskerTaskFailureRatioHigh",
            format!(
                "(sum by (task_name) (rate(tasker_tasks_total{{status=\"failed\"}}[{WINDOW}])) / sum by (task_name) (rate(tasker_tasks_total[{WINDOW}]))) > {}",
                options.failure_ratio
            ),
            held.clone(),
            "warning",
            format!(
                "Task {{{{ $labels.task_name }}}} fails more than {}% of the time",
                (options.failure_ratio * 10_000.0).round() / 100.0
            ),
            "The share of finished tasks that failed, over 5 minutes, is above the threshold.",
        ),
        alert(
            "TaskerStepMaxRetriesReached",
            format!(
                "sum by (task_name, step_name) (increase(tasker_step_max_retries_reached_total[{WINDOW}])) > 0"
            ),
            None,
            "warning",
            "Step {{ $labels.step_name }} of {{ $labels.task_name }} ran out of retries".to_owned(),
            "A step failed on its last allowed attempt in the last 5 minutes.",
        ),
        alert(
            "TaskerSpanExportFailing",
            format!(
                "sum by (job, instance) (increase(tasker_telemetry_dropped_total{{sink=\"spans\",reason=\"export_failed\"}}[{WINDOW}])) > 0"
            ),
            held.clone(),
            "critical",
            "Spans from {{ $labels.instance }} are not reaching the collector".to_owned(),
            "Span batches failed to export in the last 5 minutes; traces from this process are incomplete.",
        ),
        alert(
            "TaskerSubscriberFailuresRising",
            format!(
                "sum by (subscriber) (increase(tasker_subscriber_failures_total[{WINDOW}])) > 0"
            ),
            held.clone(),
            "warning",
            "Subscriber {{ $labels.subscriber }} is panicking".to_owned(),
            "Calls of this subscriber panicked in the last 5 minutes (caught: steps are unaffected, the subscriber's work is not done).",
        ),
    ];
    rules.extend(
        options
            .objectives
            .iter()
            .map(|objective| objective_alert(objective, held.clone())),
    );
    rules
}

fn objective_alert(objective: &Objective, held: Option<String>) -> AlertRule {
    let mut rule = alert(
        "TaskerStepLatencyAboveObjective",
        format!(
            "{} > {}",
            objective_p95(&objective.step_name),
            objective.p95.as_secs_f64()
        ),
        held,
        "warning",
        format!(
            "Step {{{{ $labels.step_name }}}} of {{{{ $labels.task_name }}}} is slower than its objective ({} at p95)",
            promql_duration(objective.p95)
        ),
        "The step's 95th percentile duration over 5 minutes is above the objective its handler declares.",
    );
    rule.labels
        .insert("objective".to_owned(), promql_duration(objective.p95));
    rule
}

/// The p95 of one step's duration, by task.
pub(super) fn objective_p95(step_name: &str) -> String {
    format!(
        "histogram_quantile(0.95, sum by (le, task_name, step_name) (rate(tasker_step_duration_seconds_bucket{{step_name={}}}[{WINDOW}])))",
        promql_string(step_name)
    )
}

fn alert(
    name: &str,
    expr: String,
    for_duration: Option<String>,
    severity: &str,
    summary: String,
    description: &str,
) -> AlertRule {
    AlertRule {
        alert: name.to_owned(),
        expr,
        for_duration,
        labels: BTreeMap::from([("severity".to_owned(), severity.to_owned())]),
        annotations: BTreeMap::from([
            ("summary".to_owned(), summary),
            ("description".to_owned(), description.to_owned()),
        ]),
    }
}

/// A PromQL string literal: Go's escapes, which JSON's are a subset of.
fn promql_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// A YAML double-quoted scalar: JSON's string syntax is valid YAML.
fn yaml_string(text: &str) -> String {
    promql_string(text)
}

/// The recording rules as a Prometheus rule file.
pub(super) fn recording_yaml(rules: &[RecordingRule]) -> String {
    let mut out = String::from("groups:\n  - name: tasker-telemetry-recording\n    rules:\n");
    for rule in rules {
        let _ = writeln!(out, "      - record: {}", yaml_string(&rule.record));
        let _ = writeln!(out, "        expr: {}", yaml_string(&rule.expr));
    }
    out
}

/// The alerting rules as a Prometheus rule file.
pub(super) fn alerting_yaml(rules: &[AlertRule]) -> String {
    let mut out = String::from("groups:\n  - name: tasker-telemetry-alerts\n    rules:\n");
    for rule in rules {
        let _ = writeln!(out, "      - alert: {}", yaml_string(&rule.alert));
        let _ = writeln!(out, "        expr: {}", yaml_string(&rule.expr));
        if let Some(held) = &rule.for_duration {
            let _ = writeln!(out, "        for: {}", yaml_string(held));
        }
        for (section, map) in [("labels", &rule.labels), ("annotations", &rule.annotations)] {
            let _ = writeln!(out, "        {section}:");
            for (key, value) in map {
                let _ = writeln!(out, "          {key}: {}", yaml_string(value));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_as_promql_strings() {
        assert_eq!(promql_string("a\"b\\c\nd"), r#""a\"b\\c\nd""#);
        assert!(objective_p95("x\"y").contains(r#"step_name="x\"y""#));
    }

    #[test]
    fn the_yaml_quotes_every_value() {
        let rules = recording_rules();
        let yaml = recording_yaml(&rules);
        assert_eq!(yaml.matches("- record: \"").count(), rules.len());
        assert!(yaml.lines().skip(3).all(|l| l.ends_with('"')), "{yaml}");
    }
}
