//! The HTTP surface: auth, health endpoints, formats that agree with each other, 404 / 405.

mod support;

use std::collections::BTreeMap;

use support::http_get::{get, request};
use tasker_telemetry::http::MetricsServer;
use tasker_telemetry::scope::StepCounts;
use tasker_telemetry::{TaskScope, Telemetry, TelemetryConfig};

fn workload(telemetry: &Telemetry) {
    for (i, name) in ["checkout", "refund, \"partial\""].iter().enumerate() {
        let task = TaskScope::new(telemetry, i.to_string(), *name);
        task.start();
        task.step(format!("{i}-1"), "charge")
            .attempt(1)
            .complete(&1);
        task.complete(StepCounts {
            total: 1,
            completed: 1,
            ..Default::default()
        });
    }
}

#[test]
fn auth_protects_metrics_and_status_but_not_liveness() {
    let config = TelemetryConfig::builder()
        .metrics_auth_required(true)
        .metrics_auth_token("s3cret-token")
        .build()
        .unwrap();
    let telemetry = Telemetry::new(config).unwrap();
    let server = MetricsServer::start(&telemetry, None, ([127, 0, 0, 1], 0).into()).unwrap();
    let addr = server.addr();
    let none = get(addr, "/metrics", &[]);
    assert_eq!(none.status, 401);
    assert!(
        none.header("www-authenticate")
            .unwrap_or_default()
            .starts_with("Bearer")
    );
    assert_eq!(
        get(addr, "/metrics", &[("Authorization", "Bearer wrong-token")]).status,
        401
    );
    assert_eq!(
        get(
            addr,
            "/metrics",
            &[("Authorization", "Basic czNjcmV0LXRva2Vu")]
        )
        .status,
        401
    );
    assert_eq!(
        get(
            addr,
            "/metrics",
            &[("Authorization", "Bearer s3cret-token")]
        )
        .status,
        200
    );
    assert_eq!(
        get(
            addr,
            "/tasker/metrics",
            &[("Authorization", "Bearer s3cret-token")]
        )
        .status,
        200
    );
    assert_eq!(get(addr, "/health/status", &[]).status, 401);
    assert_eq!(
        get(
            addr,
            "/health/status",
            &[("Authorization", "bearer s3cret-token")]
        )
        .status,
        200
    );
    let live = get(addr, "/health/live", &[]);
    assert_eq!(
        (live.status, live.body.as_str()),
        (200, "{\"status\":\"ok\"}")
    );
}

#[test]
fn readiness_follows_setup_and_unknown_routes_are_404_and_405() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let server = MetricsServer::local(&telemetry, None, 0).unwrap();
    let addr = server.addr();
    assert!(addr.ip().is_loopback());
    let before = get(addr, "/health/ready", &[]);
    assert_eq!(before.status, 503, "{}", before.body);
    telemetry.mark_ready();
    let after = get(addr, "/health/ready", &[]);
    assert_eq!(after.status, 200, "{}", after.body);
    let checks: serde_json::Value = serde_json::from_str(&after.body).unwrap();
    assert_eq!(checks["checks"]["initialized"]["ok"], true);
    assert_eq!(get(addr, "/nope", &[]).status, 404);
    assert_eq!(request(addr, "POST", "/metrics", &[]).status, 405);
    assert_eq!(get(addr, "/metrics?format=xml", &[]).status, 400);
}

#[test]
fn prometheus_json_csv_and_status_agree() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    workload(&telemetry);
    let server = MetricsServer::start(&telemetry, None, ([127, 0, 0, 1], 0).into()).unwrap();
    let addr = server.addr();

    let prom = get(addr, "/metrics", &[]);
    assert_eq!(prom.status, 200);
    assert!(
        prom.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let value_in_prom = |line_start: &str| -> f64 {
        prom.body
            .lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line_start} not in\n{}", prom.body))
    };
    let completed_refund = value_in_prom(
        "tasker_tasks_total{task_name=\"refund, \\\"partial\\\"\",status=\"completed\"}",
    );
    assert_eq!(completed_refund, 1.0);

    let open = get(
        addr,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    );
    assert!(
        open.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(open.body.ends_with("# EOF\n"));

    let json: serde_json::Value =
        serde_json::from_str(&get(addr, "/metrics?format=json", &[]).body).unwrap();
    let values = json["metrics"]["tasker_tasks_total"]["values"]
        .as_array()
        .unwrap();
    let refund = values
        .iter()
        .find(|v| {
            v["labels"]["task_name"] == "refund, \"partial\""
                && v["labels"]["status"] == "completed"
        })
        .unwrap();
    assert_eq!(refund["value"].as_f64(), Some(completed_refund));
    assert!(json["total_metrics"].as_u64().unwrap() > 0);

    let csv_body = get(addr, "/metrics?format=csv", &[]).body;
    let mut reader = csv::Reader::from_reader(csv_body.as_bytes());
    let mut found = BTreeMap::new();
    for row in reader.records() {
        let row = row.unwrap();
        if &row[1] == "tasker_tasks_total" {
            found.insert(row[4].to_owned(), row[3].parse::<f64>().unwrap());
        }
    }
    assert!(
        found
            .iter()
            .any(|(labels, v)| labels.contains("refund, \"partial\"")
                && labels.contains("completed")
                && *v == completed_refund),
        "{found:?}"
    );

    let status: serde_json::Value =
        serde_json::from_str(&get(addr, "/health/status", &[]).body).unwrap();
    assert_eq!(status["tasks"]["completed"].as_f64(), Some(2.0));
    assert_eq!(status["task_error_rate"].as_f64(), Some(0.0));
}
