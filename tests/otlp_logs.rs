//! Logs as the third OTLP signal, decoded off the wire by a real HTTPS receiver started on
//! 127.0.0.1 with a CA the test generates: every record carries the trace and span ids of the
//! span it was written in (the same ids the exported spans have, and the JSON line on stdout
//! has), secrets are masked by the parameter filter before they leave, the exporters' own
//! crates never become records, and every record is counted.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::https_receiver::{Answer, HttpsReceiver, Pki};
use support::otlp_receiver::{AttrValue, ReceivedLog};
use tasker_telemetry::config::LogFormat;
use tasker_telemetry::logging::{LogLayer, LogPipeline};
use tasker_telemetry::scope::StepCounts;
use tasker_telemetry::spans::SpanPipeline;
use tasker_telemetry::{ParameterFilter, Task, Telemetry, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt;

const WAIT: Duration = Duration::from_secs(20);

fn config(vars: &[(&str, String)]) -> TelemetryConfig {
    let vars: HashMap<&str, String> = vars.iter().cloned().collect();
    TelemetryConfig::default()
        .with_env_from(|name| vars.get(name).cloned())
        .unwrap()
}

fn attr<'a>(log: &'a ReceivedLog, key: &str) -> Option<&'a str> {
    log.attributes.get(key).and_then(AttrValue::as_str)
}

#[test]
fn log_records_carry_their_spans_ids_and_no_secret() {
    let pki = Pki::new("logs");
    let (cert, key) = pki.issue("server", &["localhost"]);
    let receiver = HttpsReceiver::start(&cert, &key, None, Answer::Status(200, ""));
    let config = config(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            receiver.base_url("localhost"),
        ),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            pki.ca_file().display().to_string(),
        ),
        (
            "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
            "x-api-key=logs-k3y".into(),
        ),
        ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip".into()),
        ("OTEL_SERVICE_NAME", "checkout-logs".into()),
    ]);
    let spans = SpanPipeline::new(&config).unwrap();
    let logs = LogPipeline::new(&config).unwrap().expect("logs endpoint");
    let telemetry = Telemetry::new(config.clone()).unwrap();
    let lines = Arc::new(Mutex::new(Vec::<u8>::new()));
    let subscriber = tracing_subscriber::registry()
        .with(spans.layer())
        .with(
            LogLayer::new(LogFormat::Json, ParameterFilter::tasker_default())
                .with_writer(lines.clone()),
        )
        .with(logs.layer());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("outside any span");
        let task = Task::new(&telemetry, "logs-1", "checkout", serde_json::Value::Null);
        task.scope().start();
        let step = task.step("logs-1-1", "charge");
        let attempt = step.scope().attempt(1);
        attempt.in_scope(|| {
            tracing::info!(
                api_token = "t0k3n",
                customer_ssn = 123_456_789,
                inputs = r#"{"user":{"password":"hunter2"},"amount":7}"#,
                order_id = "o-7",
                "charging"
            );
            // What an HTTP client logs while exporting: never a record.
            tracing::info!(target: "hyper::client", "connection pooled");
        });
        attempt.complete(&1);
        task.scope().complete(StepCounts {
            total: 1,
            completed: 1,
            ..Default::default()
        });
    });
    let span_report = spans.shutdown();
    let log_report = logs.shutdown();
    assert!(span_report.is_clean(), "{span_report:?}");
    assert!(log_report.is_clean(), "{log_report:?}");

    let requests = receiver.wait_for_requests(2, WAIT);
    let log_request = requests
        .iter()
        .find(|r| r.path == "/v1/logs")
        .expect("a logs export");
    assert_eq!(log_request.header("x-api-key"), Some("logs-k3y"));
    assert_eq!(log_request.header("content-encoding"), Some("gzip"));

    let received = receiver.logs();
    assert_eq!(received.len() as u64, log_report.exported, "{received:#?}");
    assert_eq!(log_report.emitted, log_report.exported);
    let by_body = |body: &str| {
        received
            .iter()
            .find(|l| l.body == body)
            .unwrap_or_else(|| panic!("no record {body:?}: {received:#?}"))
    };
    let exported_spans = receiver.spans();
    let span = |name: &str| {
        exported_spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}"))
    };
    let (task_span, step_span) = (span("tasker.task.execution"), span("tasker.step.execution"));

    let outside = by_body("outside any span");
    assert_eq!(
        (outside.trace_id.as_str(), outside.span_id.as_str()),
        ("", "")
    );
    let charging = by_body("charging");
    assert_eq!(charging.trace_id, step_span.trace_id);
    assert_eq!(charging.span_id, step_span.span_id);
    assert_eq!(charging.severity_text, "INFO");
    assert_eq!(attr(charging, "api_token"), Some("[FILTERED]"));
    assert_eq!(attr(charging, "customer_ssn"), Some("[FILTERED]"));
    assert_eq!(attr(charging, "order_id"), Some("o-7"));
    let inputs = attr(charging, "inputs").unwrap();
    assert!(
        inputs.contains("[FILTERED]") && !inputs.contains("hunter2"),
        "{inputs}"
    );
    assert_eq!(
        charging
            .resource
            .get("service.name")
            .and_then(AttrValue::as_str),
        Some("checkout-logs")
    );
    let completed = by_body("step completed");
    assert_eq!(completed.span_id, step_span.span_id);
    assert_eq!(attr(completed, "step_name"), Some("charge"));
    assert_eq!(by_body("task completed").span_id, task_span.span_id);
    assert!(
        received.iter().all(|l| l.body != "connection pooled"),
        "{received:#?}"
    );
    let raw = String::from_utf8(
        requests
            .iter()
            .flat_map(|r| r.body.clone())
            .collect::<Vec<u8>>(),
    )
    .unwrap_or_default();
    assert!(!raw.contains("t0k3n") && !raw.contains("hunter2"));

    // The JSON line on stdout names the same span as the record.
    let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
    let line: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["message"] == "charging")
        .unwrap();
    assert_eq!(line["trace_id"], charging.trace_id.as_str());
    assert_eq!(line["span_id"], charging.span_id.as_str());
}

#[test]
fn a_refusing_collector_is_counted_and_the_step_is_untouched() {
    let pki = Pki::new("logs-refused");
    let (cert, key) = pki.issue("server", &["localhost"]);
    let receiver = HttpsReceiver::start(&cert, &key, None, Answer::Status(401, "bad key"));
    let config = config(&[
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            format!("{}/v1/logs", receiver.base_url("localhost")),
        ),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            pki.ca_file().display().to_string(),
        ),
    ]);
    let logs = LogPipeline::new(&config).unwrap().unwrap();
    let telemetry = Telemetry::new(config.clone()).unwrap();
    logs.register_metrics(telemetry.metrics());
    let subscriber = tracing_subscriber::registry().with(logs.layer());
    let value = tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(attempt = 1, "retrying");
        tracing::info!("done");
        42
    });
    assert_eq!(value, 42);
    let report = logs.shutdown();
    assert_eq!(report.emitted, 2, "{report:?}");
    assert_eq!(report.failed, 2, "{report:?}");
    assert_eq!(report.exported, 0);
    let error = report.last_error.expect("the collector's answer");
    assert!(
        error.contains("401") && error.contains("bad key"),
        "{error}"
    );
    let text = tasker_telemetry::metrics::prometheus_text(&telemetry.metrics().snapshot());
    let line = "tasker_telemetry_dropped_total{sink=\"logs\",reason=\"export_failed\"} 2";
    assert!(text.contains(line), "{line} not in\n{text}");
    // One family, every sink's series in it.
    assert_eq!(
        text.matches("# TYPE tasker_telemetry_dropped_total")
            .count(),
        1
    );
}
