//! The operator's artefacts, proven with Prometheus itself (the Debian package `prometheus`,
//! started here on 127.0.0.1): `promtool check rules` accepts both rule files; `promtool test
//! rules` shows each alert firing on series that should fire it and staying quiet on series that
//! should not; and after a real workload scraped by a real Prometheus that loads the rules, every
//! panel query of the dashboard and every recording rule returns series with the labels they
//! promise.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::prometheus::{Prometheus, TempDir, query, query_until, require};
use tasker_telemetry::http::MetricsServer;
use tasker_telemetry::operator::{self, AlertRule, Artefacts, OperatorOptions};
use tasker_telemetry::workflow::{Backoff, StepDef, Workflow};
use tasker_telemetry::{Step, StepError, Telemetry, step_handler, subscriber};

/// A step that declares its objective: the default options carry it.
struct Reconcile;

#[step_handler(objective = "1.5s")]
impl Reconcile {
    fn process(&self) -> Result<(), StepError> {
        Ok(())
    }
}

/// The options the tests generate with: one objective, for the workload's step (the declared
/// `reconcile` one never runs here).
fn options() -> OperatorOptions {
    OperatorOptions::default()
        .without_objectives()
        .objective("charge_card", Duration::from_millis(250))
        .unwrap()
}

fn promtool(args: &[&str]) {
    let out = Command::new(require("promtool"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn objectives_declared_by_handlers_are_in_the_default_options() {
    let _linked = Reconcile;
    let declared = OperatorOptions::default();
    let reconcile = declared
        .objectives()
        .iter()
        .find(|o| o.step_name == "reconcile")
        .expect("the handler's objective");
    assert_eq!(reconcile.p95, Duration::from_millis(1500));
    let rules = operator::artefacts(&declared).alerting_rules;
    assert!(
        rules
            .iter()
            .any(|r| r.alert == "TaskerStepLatencyAboveObjective"
                && r.expr.contains("step_name=\"reconcile\"")
                && r.expr.ends_with("> 1.5"))
    );
}

#[test]
fn promtool_accepts_the_rule_files_and_the_dashboard_is_grafana_json() {
    let dir = TempDir::new("tasker-operator-check");
    let artefacts = operator::artefacts(&options());
    let written = artefacts.write_to(&dir.0).unwrap();
    assert_eq!(written.len(), 3);
    let path = |name: &str| dir.0.join(name).display().to_string();
    promtool(&[
        "check",
        "rules",
        &path(operator::RECORDING_RULES_FILE),
        &path(operator::ALERTING_RULES_FILE),
    ]);
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path(operator::DASHBOARD_FILE)).unwrap())
            .unwrap();
    assert_eq!(dashboard["schemaVersion"], 41);
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "task_name", "step_name"]);
    // One panel per entry of the table, plus the objectives'.
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for expected in [
        "Task throughput",
        "Task failure ratio",
        "Step duration p50 / p95 / p99",
        "Step retries",
        "Max retries reached",
        "Active tasks and steps",
        "Subscriber failures",
        "Telemetry dropped and span export",
        "Slow operations (p95)",
        "Step p95 against objectives",
    ] {
        assert!(titles.contains(&expected), "{expected} missing: {titles:?}");
    }
}

/// One `promtool test rules` case: input series, and whether `alert` fires at 10 minutes with
/// the given labels.
struct Case {
    alert: &'static str,
    series: Vec<(String, &'static str)>,
    fires: Option<BTreeMap<&'static str, &'static str>>,
}

fn bucket(le: &str) -> String {
    format!(
        "tasker_step_duration_seconds_bucket{{task_name=\"checkout\",step_name=\"charge_card\",status=\"completed\",le=\"{le}\"}}"
    )
}

fn cases() -> Vec<Case> {
    let tasks = |status: &str| {
        format!(
            "tasker_tasks_total{{task_name=\"checkout\",status=\"{status}\",job=\"tasker\",instance=\"w1\"}}"
        )
    };
    let labels = |pairs: &[(&'static str, &'static str)]| Some(pairs.iter().copied().collect());
    let retries = "tasker_step_max_retries_reached_total{task_name=\"checkout\",step_name=\"charge_card\",job=\"tasker\",instance=\"w1\"}".to_owned();
    let spans = "tasker_telemetry_dropped_total{sink=\"spans\",reason=\"export_failed\",job=\"tasker\",instance=\"w1\"}".to_owned();
    let panics =
        "tasker_subscriber_failures_total{subscriber=\"pager\",job=\"tasker\",instance=\"w1\"}"
            .to_owned();
    vec![
        Case {
            alert: "TaskerTaskFailureRatioHigh",
            series: vec![(tasks("failed"), "0+1x15"), (tasks("completed"), "0+1x15")],
            fires: labels(&[("severity", "warning"), ("task_name", "checkout")]),
        },
        Case {
            alert: "TaskerTaskFailureRatioHigh",
            series: vec![(tasks("failed"), "0+0x15"), (tasks("completed"), "0+10x15")],
            fires: None,
        },
        Case {
            alert: "TaskerStepMaxRetriesReached",
            series: vec![(retries.clone(), "0+1x15")],
            fires: labels(&[
                ("severity", "warning"),
                ("task_name", "checkout"),
                ("step_name", "charge_card"),
            ]),
        },
        Case {
            alert: "TaskerStepMaxRetriesReached",
            series: vec![(retries, "3+0x15")],
            fires: None,
        },
        Case {
            alert: "TaskerSpanExportFailing",
            series: vec![(spans.clone(), "0+2x15")],
            fires: labels(&[
                ("severity", "critical"),
                ("job", "tasker"),
                ("instance", "w1"),
            ]),
        },
        Case {
            alert: "TaskerSpanExportFailing",
            series: vec![(spans, "0+0x15")],
            fires: None,
        },
        Case {
            alert: "TaskerSubscriberFailuresRising",
            series: vec![(panics.clone(), "0+1x15")],
            fires: labels(&[("severity", "warning"), ("subscriber", "pager")]),
        },
        Case {
            alert: "TaskerSubscriberFailuresRising",
            series: vec![(panics, "5+0x15")],
            fires: None,
        },
        // Every attempt between 0.25 s and 0.5 s: the p95 is above the 250 ms objective.
        Case {
            alert: "TaskerStepLatencyAboveObjective",
            series: vec![
                (bucket("0.1"), "0+0x15"),
                (bucket("0.5"), "0+10x15"),
                (bucket("+Inf"), "0+10x15"),
            ],
            fires: labels(&[
                ("severity", "warning"),
                ("objective", "250ms"),
                ("task_name", "checkout"),
                ("step_name", "charge_card"),
            ]),
        },
        // Every attempt under 0.1 s.
        Case {
            alert: "TaskerStepLatencyAboveObjective",
            series: vec![
                (bucket("0.1"), "0+10x15"),
                (bucket("0.5"), "0+10x15"),
                (bucket("+Inf"), "0+10x15"),
            ],
            fires: None,
        },
    ]
}

/// The annotation `template` as Prometheus renders it for an alert with `labels` (the
/// artefacts' annotations use `{{ $labels.x }}` only).
fn render(template: &str, labels: &BTreeMap<&str, &str>) -> String {
    let mut text = template.to_owned();
    for (key, value) in labels {
        text = text.replace(&format!("{{{{ $labels.{key} }}}}"), value);
    }
    text
}

fn yaml(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn unit_tests(rules_file: &Path, artefacts: &Artefacts, cases: &[Case]) -> String {
    let mut out = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n",
        yaml(&rules_file.display().to_string())
    );
    for case in cases {
        let rule: &AlertRule = artefacts
            .alerting_rules
            .iter()
            .find(|r| r.alert == case.alert)
            .unwrap_or_else(|| panic!("no rule {}", case.alert));
        out.push_str("  - interval: 1m\n    input_series:\n");
        for (series, values) in &case.series {
            let _ = writeln!(
                out,
                "      - series: {}\n        values: {}",
                yaml(series),
                yaml(values)
            );
        }
        let _ = writeln!(
            out,
            "    alert_rule_test:\n      - eval_time: 10m\n        alertname: {}",
            case.alert
        );
        match &case.fires {
            None => out.push_str("        exp_alerts: []\n"),
            Some(labels) => {
                out.push_str("        exp_alerts:\n          - exp_labels:\n");
                for (k, v) in labels {
                    let _ = writeln!(out, "              {k}: {}", yaml(v));
                }
                out.push_str("            exp_annotations:\n");
                for (k, v) in &rule.annotations {
                    let _ = writeln!(out, "              {k}: {}", yaml(&render(v, labels)));
                }
            }
        }
    }
    out
}

#[test]
fn each_alert_fires_on_its_fixture_and_stays_quiet_otherwise() {
    let dir = TempDir::new("tasker-operator-alerts");
    let artefacts = operator::artefacts(&options());
    artefacts.write_to(&dir.0).unwrap();
    let rules_file = dir.0.join(operator::ALERTING_RULES_FILE);
    let cases = cases();
    // Every alert has a case that fires it and one that does not.
    for rule in &artefacts.alerting_rules {
        let of = |fires: bool| {
            cases
                .iter()
                .any(|c| c.alert == rule.alert && c.fires.is_some() == fires)
        };
        assert!(of(true) && of(false), "{} lacks a case", rule.alert);
    }
    let tests = dir.0.join("alert-tests.yml");
    std::fs::write(&tests, unit_tests(&rules_file, &artefacts, &cases)).unwrap();
    promtool(&["test", "rules", &tests.display().to_string()]);

    // The fixtures can fail: a case expecting an alert that its series do not fire is refused.
    let wrong = [Case {
        alert: "TaskerStepMaxRetriesReached",
        series: vec![(
            "tasker_step_max_retries_reached_total{task_name=\"checkout\",step_name=\"charge_card\"}"
                .to_owned(),
            "3+0x15",
        )],
        fires: Some(
            [
                ("severity", "warning"),
                ("task_name", "checkout"),
                ("step_name", "charge_card"),
            ]
            .into_iter()
            .collect(),
        ),
    }];
    let wrong_file = dir.0.join("wrong-tests.yml");
    std::fs::write(&wrong_file, unit_tests(&rules_file, &artefacts, &wrong)).unwrap();
    let out = Command::new(require("promtool"))
        .args(["test", "rules", &wrong_file.display().to_string()])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "promtool accepted a wrong expectation"
    );
}

// ------------------------------------------------------------------------------------------------
// A real workload, scraped by a real Prometheus that loads the rules.
// ------------------------------------------------------------------------------------------------

/// Fetches the order.
struct FetchOrder;

#[step_handler]
impl FetchOrder {
    fn process(&self, task: &tasker_telemetry::Task) -> Result<u64, StepError> {
        task.context()["order"]
            .as_u64()
            .ok_or_else(|| StepError::permanent("no order"))
    }
}

/// Times out on its first attempt, then charges.
struct ChargeCard;

#[step_handler(retry_limit = 3)]
impl ChargeCard {
    fn process(&self, step: &Step) -> Result<&'static str, StepError> {
        if step.attempt_number() == 1 {
            return Err(StepError::new("gateway timed out").with_class("Timeout"));
        }
        Ok("charged")
    }
}

fn workflow() -> Workflow {
    let quick = Backoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
        jitter: 0.0,
    };
    Workflow::builder("checkout")
        .handler(FetchOrder)
        .handler(ChargeCard)
        .step(StepDef::new("fetch_order"))
        .step(
            StepDef::new("charge_card")
                .depends_on(["fetch_order"])
                .backoff(quick),
        )
        .build()
        .unwrap()
}

/// Runs orders until `stop`: every fourth one has no order number, so its first step fails for
/// good (max retries reached, task failed); the others retry the charge once.
fn place_orders(telemetry: Telemetry, stop: Arc<AtomicBool>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let workflow = workflow();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let context = if n.is_multiple_of(4) {
            serde_json::json!({})
        } else {
            serde_json::json!({ "order": n })
        };
        runtime.block_on(workflow.run(&telemetry, format!("order-{n}"), context));
        // Pace the loop: a few orders per scrape, not a busy spin.
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
    }
}

/// `true` when every series of `result` carries exactly `labels` (besides `__name__`).
fn has_exactly(result: &[serde_json::Value], labels: &BTreeSet<&str>) -> bool {
    !result.is_empty()
        && result.iter().all(|series| {
            let keys: BTreeSet<&str> = series["metric"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "__name__")
                .collect();
            &keys == labels
        })
}

/// Every recording rule's series, and every panel query (the dashboard's variables at "All"),
/// comes back from `prometheus` with the labels it names.
fn every_panel_and_rule_returns_labelled_series(prometheus: &Prometheus, artefacts: &Artefacts) {
    // Each recorded series, with exactly its expression's labels (a recorded series keeps no
    // `job` / `instance` unless its `by` names them).
    for rule in &artefacts.recording_rules {
        let labels: BTreeSet<&str> = rule.labels.iter().map(String::as_str).collect();
        query_until(prometheus, &rule.record, |r| has_exactly(r, &labels));
    }
    // Each panel query, with the dashboard's variables at "All".
    for panel in artefacts.dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$task_name", ".*")
                .replace("$step_name", ".*");
            let result = query(prometheus, &expr);
            // The legend names labels the series carry.
            let legend = target["legendFormat"].as_str().unwrap();
            for series in &result {
                for label in legend
                    .split("{{")
                    .skip(1)
                    .filter_map(|rest| rest.split_once("}}").map(|(l, _)| l))
                {
                    assert!(
                        series["metric"].get(label).is_some(),
                        "{}: series {series} lacks {label} from its legend",
                        panel["title"]
                    );
                }
            }
        }
    }
}

#[test]
fn after_a_real_workload_every_panel_and_recording_rule_returns_labelled_series() {
    let dir = TempDir::new("tasker-operator-workload");
    let artefacts = operator::artefacts(&options());
    artefacts.write_to(&dir.0).unwrap();

    let telemetry = Telemetry::new(Default::default()).unwrap();
    let _pager = telemetry
        .publisher()
        .subscribe(
            &["step.failed"],
            subscriber::from_fn("pager", |_| panic!("the pager is down")),
        )
        .unwrap();
    let server = MetricsServer::start(&telemetry, None, ([127, 0, 0, 1], 0).into()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let orders = std::thread::spawn({
        let (telemetry, stop) = (telemetry.clone(), stop.clone());
        move || place_orders(telemetry, stop)
    });
    let prometheus = Prometheus::start(
        &[server.addr()],
        &[
            dir.0.join(operator::RECORDING_RULES_FILE),
            dir.0.join(operator::ALERTING_RULES_FILE),
        ],
    );

    every_panel_and_rule_returns_labelled_series(&prometheus, &artefacts);
    // The workload's own failures are visible: the failed task's share, the step out of retries,
    // and the panicking subscriber.
    for (promql, label, value) in [
        (
            "task_name:tasker_tasks_failed:ratio_rate5m > 0",
            "task_name",
            "checkout",
        ),
        (
            "task_name_step_name:tasker_step_max_retries_reached:increase5m > 0",
            "step_name",
            "fetch_order",
        ),
        (
            "task_name_step_name:tasker_step_retries:rate5m > 0",
            "step_name",
            "charge_card",
        ),
        (
            "subscriber:tasker_subscriber_failures:rate5m > 0",
            "subscriber",
            "pager",
        ),
    ] {
        query_until(&prometheus, promql, |r| {
            r.iter().any(|s| s["metric"][label] == value)
        });
    }
    stop.store(true, Ordering::Relaxed);
    orders.join().unwrap();
}

#[test]
fn the_main_examples_workflow_in_a_loop_fills_every_panel_and_recording_rule() {
    let dir = TempDir::new("tasker-operator-main-example");
    // The example's own payment step gets the objective (this binary's declared ones name
    // steps the example does not have).
    let options = OperatorOptions::default()
        .without_objectives()
        .objective("process_payment", Duration::from_millis(250))
        .unwrap();
    let artefacts = operator::artefacts(&options);
    artefacts.write_to(&dir.0).unwrap();
    let example = support::examples::MainExample::serve();
    let prometheus = Prometheus::start(
        &[example.addr],
        &[
            dir.0.join(operator::RECORDING_RULES_FILE),
            dir.0.join(operator::ALERTING_RULES_FILE),
        ],
    );
    every_panel_and_rule_returns_labelled_series(&prometheus, &artefacts);
    // Its failing orders and its retried payment show.
    for (promql, step) in [
        (
            "task_name_step_name:tasker_step_max_retries_reached:increase5m > 0",
            "fetch_cart",
        ),
        (
            "task_name_step_name:tasker_step_retries:rate5m > 0",
            "process_payment",
        ),
    ] {
        query_until(&prometheus, promql, |r| {
            r.iter().any(|s| s["metric"]["step_name"] == step)
        });
    }
    query_until(
        &prometheus,
        "task_name:tasker_tasks_failed:ratio_rate5m > 0",
        |r| {
            r.iter()
                .any(|s| s["metric"]["task_name"] == "order_processing")
        },
    );
}
