//! The one table of what operators look at: each panel's PromQL, written once. The dashboard
//! shows these expressions narrowed by its `$task_name` / `$step_name` variables; the recording
//! rules record the same expressions over every task and step.
//!
//! In an expression, `@task` and `@step` stand inside a selector's braces for the matchers of
//! the dashboard's variables (`task_name=~"$task_name"`, `step_name=~"$step_name"`); a recording
//! rule drops them.

/// The range every `rate` / `increase` of the artefacts looks back over.
pub(crate) const WINDOW: &str = "5m";

/// One series a panel draws, which a recording rule also records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query {
    /// The recording rule's name, `level:metric:operations` as Prometheus names them.
    pub(crate) record: &'static str,
    /// The expression, with `@task` / `@step` where the dashboard narrows it.
    pub(crate) expr: &'static str,
    /// The labels each resulting series carries: the expression's `by (...)`.
    pub(crate) labels: &'static [&'static str],
    /// The panel's legend for the series (Grafana's `{{label}}` syntax).
    pub(crate) legend: &'static str,
}

/// One panel of the dashboard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Panel {
    pub(crate) title: &'static str,
    pub(crate) description: &'static str,
    /// Grafana's unit id (`reqps`, `percentunit`, `s`, `short`).
    pub(crate) unit: &'static str,
    pub(crate) queries: &'static [Query],
}

/// One quantile of the step duration histogram, by task and step.
macro_rules! step_quantile {
    ($record:literal, $q:literal, $legend:literal) => {
        Query {
            record: $record,
            expr: concat!(
                "histogram_quantile(",
                $q,
                ", sum by (le, task_name, step_name) (rate(tasker_step_duration_seconds_bucket{@task,@step}[5m])))"
            ),
            labels: &["task_name", "step_name"],
            legend: $legend,
        }
    };
}

/// The panels, in the dashboard's order.
pub(crate) static PANELS: &[Panel] = &[
    Panel {
        title: "Task throughput",
        description: "Tasks finished per second, by task and terminal status.",
        unit: "reqps",
        queries: &[Query {
            record: "task_name_status:tasker_tasks:rate5m",
            expr: "sum by (task_name, status) (rate(tasker_tasks_total{@task}[5m]))",
            labels: &["task_name", "status"],
            legend: "{{task_name}} {{status}}",
        }],
    },
    Panel {
        title: "Task failure ratio",
        description: "The share of finished tasks that failed, by task.",
        unit: "percentunit",
        queries: &[Query {
            record: "task_name:tasker_tasks_failed:ratio_rate5m",
            expr: "sum by (task_name) (rate(tasker_tasks_total{@task,status=\"failed\"}[5m])) / sum by (task_name) (rate(tasker_tasks_total{@task}[5m]))",
            labels: &["task_name"],
            legend: "{{task_name}}",
        }],
    },
    Panel {
        title: "Step duration p50 / p95 / p99",
        description: "Quantiles of step attempt duration (process() time), by task and step.",
        unit: "s",
        queries: &[
            step_quantile!(
                "task_name_step_name:tasker_step_duration_seconds:p50_rate5m",
                "0.5",
                "p50 {{task_name}} / {{step_name}}"
            ),
            step_quantile!(
                "task_name_step_name:tasker_step_duration_seconds:p95_rate5m",
                "0.95",
                "p95 {{task_name}} / {{step_name}}"
            ),
            step_quantile!(
                "task_name_step_name:tasker_step_duration_seconds:p99_rate5m",
                "0.99",
                "p99 {{task_name}} / {{step_name}}"
            ),
        ],
    },
    Panel {
        title: "Step retries",
        description: "Step attempts after the first, per second, by task and step.",
        unit: "reqps",
        queries: &[Query {
            record: "task_name_step_name:tasker_step_retries:rate5m",
            expr: "sum by (task_name, step_name) (rate(tasker_step_retries_total{@task,@step}[5m]))",
            labels: &["task_name", "step_name"],
            legend: "{{task_name}} / {{step_name}}",
        }],
    },
    Panel {
        title: "Max retries reached",
        description: "Steps that failed on their last allowed attempt, in the last 5 minutes.",
        unit: "short",
        queries: &[Query {
            record: "task_name_step_name:tasker_step_max_retries_reached:increase5m",
            expr: "sum by (task_name, step_name) (increase(tasker_step_max_retries_reached_total{@task,@step}[5m]))",
            labels: &["task_name", "step_name"],
            legend: "{{task_name}} / {{step_name}}",
        }],
    },
    Panel {
        title: "Active tasks and steps",
        description: "Tasks started and not finished; step attempts running, by step.",
        unit: "short",
        queries: &[
            Query {
                record: "job:tasker_tasks_active:sum",
                expr: "sum by (job) (tasker_tasks_active)",
                labels: &["job"],
                legend: "tasks ({{job}})",
            },
            Query {
                record: "step_name:tasker_steps_active:sum",
                expr: "sum by (step_name) (tasker_steps_active{@step})",
                labels: &["step_name"],
                legend: "steps {{step_name}}",
            },
        ],
    },
    Panel {
        title: "Subscriber failures",
        description: "Subscriber calls that panicked (caught: the step is unaffected), per second.",
        unit: "reqps",
        queries: &[Query {
            record: "subscriber:tasker_subscriber_failures:rate5m",
            expr: "sum by (subscriber) (rate(tasker_subscriber_failures_total[5m]))",
            labels: &["subscriber"],
            legend: "{{subscriber}}",
        }],
    },
    Panel {
        title: "Telemetry dropped and span export",
        description: "Telemetry dropped instead of blocking work, by sink and reason; spans that failed to export count under sink \"spans\".",
        unit: "reqps",
        queries: &[Query {
            record: "sink_reason:tasker_telemetry_dropped:rate5m",
            expr: "sum by (sink, reason) (rate(tasker_telemetry_dropped_total[5m]))",
            labels: &["sink", "reason"],
            legend: "{{sink}} {{reason}}",
        }],
    },
    Panel {
        title: "Slow operations (p95)",
        description: "The 95th percentile of every measured operation (each step attempt, and what the performance monitor wraps).",
        unit: "s",
        queries: &[Query {
            record: "operation:tasker_operation_duration_seconds:p95_rate5m",
            expr: "histogram_quantile(0.95, sum by (le, operation) (rate(tasker_operation_duration_seconds_bucket[5m])))",
            labels: &["operation"],
            legend: "{{operation}}",
        }],
    },
];

/// Where an expression is used: the dashboard narrows it by its variables, a rule does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Dashboard,
    Rule,
}

/// `expr` with its `@task` / `@step` markers filled in for `scope`.
pub(crate) fn expand(expr: &str, scope: Scope) -> String {
    let (task, step) = match scope {
        Scope::Dashboard => ("task_name=~\"$task_name\"", "step_name=~\"$step_name\""),
        Scope::Rule => ("", ""),
    };
    let filled = expr.replace("@task", task).replace("@step", step);
    // A dropped marker leaves a stray comma or empty braces behind.
    let mut out = filled
        .replace("{,", "{")
        .replace(",,", ",")
        .replace(",}", "}");
    while out.contains(",}") || out.contains("{,") {
        out = out.replace(",}", "}").replace("{,", "{");
    }
    out.replace("{}", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_become_the_variables_matchers_or_nothing() {
        let e = "sum(rate(x{@task,@step,status=\"failed\"}[5m])) / sum(rate(x{@task}[5m]))";
        assert_eq!(
            expand(e, Scope::Dashboard),
            "sum(rate(x{task_name=~\"$task_name\",step_name=~\"$step_name\",status=\"failed\"}[5m])) / sum(rate(x{task_name=~\"$task_name\"}[5m]))"
        );
        assert_eq!(
            expand(e, Scope::Rule),
            "sum(rate(x{status=\"failed\"}[5m])) / sum(rate(x[5m]))"
        );
    }

    #[test]
    fn every_query_has_a_unique_well_formed_record_and_its_labels() {
        let mut seen = std::collections::HashSet::new();
        for query in PANELS.iter().flat_map(|p| p.queries) {
            assert!(seen.insert(query.record), "{} twice", query.record);
            assert_eq!(query.record.split(':').count(), 3, "{}", query.record);
            let rule = expand(query.expr, Scope::Rule);
            assert!(!rule.contains('@') && !rule.contains('$'), "{rule}");
            assert!(rule.contains(WINDOW) || !rule.contains('['), "{rule}");
            for label in query.labels {
                assert!(query.expr.contains(label), "{}: {label}", query.record);
            }
        }
    }
}
