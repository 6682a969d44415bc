//! The Grafana dashboard: Grafana's classic JSON dashboard model, one time-series panel per entry
//! of the query table, narrowed by `$task_name` and `$step_name`.

use serde_json::{Value, json};

use super::OperatorOptions;
use super::queries::{self, PANELS, Scope};
use super::rules::objective_p95;

/// The dashboard model version written (Grafana 12's classic model; later versions migrate it
/// on import).
pub(crate) const SCHEMA_VERSION: u64 = 41;

const DATASOURCE: &str = "${datasource}";
const PANEL_WIDTH: u64 = 12;
const PANEL_HEIGHT: u64 = 8;

pub(super) fn dashboard(options: &OperatorOptions) -> Value {
    let mut panels: Vec<Value> = PANELS
        .iter()
        .map(|panel| {
            let targets = panel
                .queries
                .iter()
                .map(|q| {
                    (
                        queries::expand(q.expr, Scope::Dashboard),
                        q.legend.to_owned(),
                    )
                })
                .collect();
            (panel.title, panel.description, panel.unit, targets)
        })
        .chain((!options.objectives.is_empty()).then(|| objective_panel(options)))
        .enumerate()
        .map(|(i, (title, description, unit, targets))| {
            time_series(i as u64, title, description, unit, targets)
        })
        .collect();
    // Grafana numbers panels itself when ids are missing; ours are stable for links.
    for (i, panel) in panels.iter_mut().enumerate() {
        panel["id"] = json!(i + 1);
    }
    json!({
        "uid": options.dashboard_uid,
        "title": options.dashboard_title,
        "description": "Tasks, steps, retries and the telemetry pipeline's health, from tasker-telemetry's standard metrics.",
        "tags": ["tasker-telemetry"],
        "timezone": "browser",
        "editable": true,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
            },
            variable("task_name", "Task", "label_values(tasker_tasks_total, task_name)"),
            variable(
                "step_name",
                "Step",
                "label_values(tasker_steps_total{task_name=~\"$task_name\"}, step_name)",
            ),
        ]},
        "panels": panels,
    })
}

type PanelParts = (
    &'static str,
    &'static str,
    &'static str,
    Vec<(String, String)>,
);

/// Each declared objective's step p95 beside the objective itself.
fn objective_panel(options: &OperatorOptions) -> PanelParts {
    let targets = options
        .objectives
        .iter()
        .flat_map(|o| {
            [
                (
                    objective_p95(&o.step_name),
                    format!("p95 {{{{task_name}}}} / {}", o.step_name),
                ),
                (
                    format!("vector({})", o.p95.as_secs_f64()),
                    format!("objective {}", o.step_name),
                ),
            ]
        })
        .collect();
    (
        "Step p95 against objectives",
        "The 95th percentile of each step that declares an objective, with the objective.",
        "s",
        targets,
    )
}

fn variable(name: &str, label: &str, query: &str) -> Value {
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": DATASOURCE},
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "definition": query,
        "refresh": 2,
        "includeAll": true,
        "multi": true,
        "allValue": ".*",
        "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
    })
}

fn time_series(
    index: u64,
    title: &str,
    description: &str,
    unit: &str,
    targets: Vec<(String, String)>,
) -> Value {
    let targets: Vec<Value> = targets
        .into_iter()
        .enumerate()
        .map(|(i, (expr, legend))| {
            json!({
                "datasource": {"type": "prometheus", "uid": DATASOURCE},
                "expr": expr,
                "legendFormat": legend,
                "range": true,
                "refId": ref_id(i),
            })
        })
        .collect();
    json!({
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": DATASOURCE},
        "gridPos": {
            "h": PANEL_HEIGHT,
            "w": PANEL_WIDTH,
            "x": (index % 2) * PANEL_WIDTH,
            "y": (index / 2) * PANEL_HEIGHT,
        },
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets,
    })
}

/// Grafana's query ids: A, B, ... Z, AA, AB, ...
fn ref_id(i: usize) -> String {
    let letter = |n: usize| char::from(b'A' + (n % 26) as u8);
    if i < 26 {
        letter(i).to_string()
    } else {
        format!("{}{}", letter(i / 26 - 1), letter(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_panel_queries_through_the_datasource_variable_and_is_placed() {
        let d = dashboard(&OperatorOptions::default());
        let panels = d["panels"].as_array().unwrap();
        assert_eq!(panels.len(), PANELS.len());
        for p in panels {
            assert_eq!(p["datasource"]["uid"], DATASOURCE);
            assert!(p["gridPos"]["w"].as_u64().unwrap() > 0);
            for t in p["targets"].as_array().unwrap() {
                assert!(t["expr"].as_str().unwrap().starts_with(char::is_alphabetic));
            }
        }
        let names: Vec<&str> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["datasource", "task_name", "step_name"]);
    }

    #[test]
    fn query_ids_are_unique() {
        let ids: std::collections::HashSet<String> = (0..60).map(ref_id).collect();
        assert_eq!(ids.len(), 60);
    }
}
