//! OTLP over gRPC with TLS, as a deployment sets it up: `init()` with the `OTEL_EXPORTER_OTLP_*`
//! variables only (RUST_LOG unset), against a real tonic collector started by the test on
//! 127.0.0.1 with a CA the test generates. Spans and log records arrive over the one TLS channel
//! per signal, the header as metadata, the records carrying their spans' ids; a collector whose
//! certificate another CA signed is refused, counted and explained.

mod support;

use std::time::Duration;

use support::grpc_collector::GrpcCollector;
use support::https_receiver::Pki;
use tasker_telemetry::scope::StepCounts;
use tasker_telemetry::{Task, TelemetryConfig};

const WAIT: Duration = Duration::from_secs(20);
/// Set in the child process: the collector's endpoint.
const ENDPOINT: &str = "TASKER_TEST_GRPC_ENDPOINT";
/// Set in the child process: the CA to trust.
const CA: &str = "TASKER_TEST_GRPC_CA";

/// What a user's `main` does: `init()`, one task, shut down.
fn child() {
    let endpoint = std::env::var(ENDPOINT).unwrap();
    let ca = std::env::var(CA).unwrap();
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=grpc-k3y".to_owned(),
        ),
        ("OTEL_SERVICE_NAME", "checkout-grpc".to_owned()),
    ];
    let config = TelemetryConfig::default()
        .with_env_from(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(name).ok())
        })
        .unwrap();
    let guard = tasker_telemetry::init_with(config).unwrap();
    let task = Task::new(
        guard.telemetry(),
        "grpc-1",
        "checkout",
        serde_json::Value::Null,
    );
    task.scope().start();
    let step = task.step("grpc-1-1", "charge");
    let attempt = step.scope().attempt(1);
    attempt.in_scope(|| tracing::info!(api_token = "t0k3n", "charging over grpc"));
    attempt.complete(&1);
    task.scope().complete(StepCounts {
        total: 1,
        completed: 1,
        ..Default::default()
    });
    let logs = guard.logs().expect("logs go over OTLP").clone();
    let spans = guard.shutdown();
    let logs = logs.report();
    println!("REPORT spans={spans:?} logs={logs:?}");
}

fn run_child(endpoint: &str, ca: &std::path::Path) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "grpc_over_tls_carries_spans_and_logs",
            "--nocapture",
        ])
        .env(ENDPOINT, endpoint)
        .env(CA, ca)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn grpc_over_tls_carries_spans_and_logs() {
    if std::env::var(ENDPOINT).is_ok() {
        child();
        return;
    }
    let pki = Pki::new("grpc-tls");
    let (cert, key) = pki.issue("grpc-server", &["localhost"]);
    let collector = GrpcCollector::start_tls(&cert, &key);
    let stdout = run_child(collector.endpoint(), &pki.ca_file());

    let spans = collector.wait_for_spans(2, WAIT);
    let logs = collector.wait_for_logs(4, WAIT);
    let step = spans
        .iter()
        .find(|(name, ..)| name == "tasker.step.execution")
        .unwrap_or_else(|| panic!("no step span: {spans:?}\n{stdout}"));
    let charging = logs
        .iter()
        .find(|l| l.body == "charging over grpc")
        .unwrap_or_else(|| panic!("no record: {logs:#?}\n{stdout}"));
    assert_eq!(
        charging.trace_id, step.1,
        "the record is in the step's trace"
    );
    assert!(!charging.span_id.is_empty());
    assert_eq!(
        charging
            .attributes
            .get("api_token")
            .and_then(|v| v.as_str()),
        Some("[FILTERED]")
    );
    assert!(logs.iter().any(|l| l.body == "step completed"), "{logs:#?}");
    assert_eq!(collector.metadata("x-api-key").as_deref(), Some("grpc-k3y"));
    assert!(
        stdout.contains("failed: 0") && stdout.contains("dropped: 0"),
        "{stdout}"
    );
}

#[test]
fn a_collector_signed_by_another_ca_is_refused_and_counted() {
    let trusted = Pki::new("grpc-trusted");
    let other = Pki::new("grpc-other");
    let (cert, key) = other.issue("grpc-server", &["localhost"]);
    let collector = GrpcCollector::start_tls(&cert, &key);
    let config = TelemetryConfig::builder()
        .otlp_endpoint(collector.endpoint())
        .otlp_protocol(tasker_telemetry::config::OtlpProtocol::Grpc)
        .build()
        .unwrap();
    let config = config
        .with_env_from(|name| {
            (name == "OTEL_EXPORTER_OTLP_CERTIFICATE")
                .then(|| trusted.ca_file().display().to_string())
        })
        .unwrap();
    let logs = tasker_telemetry::logging::LogPipeline::new(&config)
        .unwrap()
        .unwrap();
    let subscriber = tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        logs.layer(),
    );
    tracing::subscriber::with_default(subscriber, || tracing::info!("not for them"));
    let report = logs.shutdown();
    assert_eq!((report.emitted, report.failed), (1, 1), "{report:?}");
    let error = report.last_error.clone().unwrap_or_default();
    assert!(error.contains("UnknownIssuer"), "{report:?}");
    assert!(collector.wait_for_logs(1, Duration::ZERO).is_empty());
}
