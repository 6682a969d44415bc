//! No telemetry loop: with every callsite enabled under a global subscriber (as `RUST_LOG=trace`
//! does), what the exporters' own stacks emit (tonic, h2, hyper, reqwest, rustls) never becomes
//! an exported span or a log record. An idle process exports exactly its task's spans and log
//! records, over OTLP/HTTP and OTLP/gRPC, and nothing more in the 10 s that follow.

mod support;

use std::time::Duration;

use support::grpc_collector::GrpcCollector;
use support::otlp_receiver::Receiver;
use tasker_telemetry::config::OtlpProtocol;
use tasker_telemetry::logging::LogPipeline;
use tasker_telemetry::spans::SpanPipeline;
use tasker_telemetry::{TaskScope, Telemetry, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt;

/// Which exporter a child process runs the idle case with (see the test below).
const CASE: &str = "TASKER_TEST_LOOP_CASE";

/// One process per protocol: a process has one global subscriber, and one registry takes one
/// OpenTelemetry layer.
#[test]
fn an_idle_process_exports_its_tasks_spans_and_nothing_more() {
    if let Ok(case) = std::env::var(CASE) {
        idle_process(&case);
        return;
    }
    let me = std::env::current_exe().unwrap();
    let children: Vec<_> = ["http", "grpc"]
        .into_iter()
        .map(|case| {
            let child = std::process::Command::new(&me)
                .args([
                    "--exact",
                    "an_idle_process_exports_its_tasks_spans_and_nothing_more",
                    "--nocapture",
                ])
                .env(CASE, case)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (case, child)
        })
        .collect();
    for (case, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{case}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn idle_process(case: &str) {
    let grpc = case == "grpc";
    let receiver = (!grpc).then(Receiver::start);
    let collector = grpc.then(GrpcCollector::start);
    let config = match (&receiver, &collector) {
        (Some(receiver), _) => TelemetryConfig::builder()
            .otlp_endpoint(receiver.base_url())
            .build(),
        (_, Some(collector)) => TelemetryConfig::builder()
            .otlp_endpoint(collector.endpoint())
            .otlp_protocol(OtlpProtocol::Grpc)
            .build(),
        _ => unreachable!(),
    }
    .unwrap();
    let pipeline = SpanPipeline::new(&config).unwrap();
    let logs = LogPipeline::new(&config).unwrap().unwrap();
    // No filter: every callsite of every crate is enabled, on every thread, the export
    // thread's included.
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(pipeline.layer())
            .with(logs.layer()),
    )
    .unwrap();
    let telemetry = Telemetry::new(config).unwrap();
    {
        let task = TaskScope::new(&telemetry, "t-idle", "checkout");
        let step = task.step("t-idle/1", "charge");
        step.attempt(1).complete(&"ok");
    }
    // Each flush exports whatever is queued, so a span made by the previous export would go
    // out with the next one.
    for _ in 0..3 {
        pipeline.flush();
        logs.flush();
    }
    let records = logs.report().emitted;
    assert!(
        records >= 1,
        "{case}: the step's lifecycle line is a record"
    );
    let arrived = |n: usize, within: Duration| match (&receiver, &collector) {
        (Some(receiver), _) => receiver
            .wait_for_spans(n, within)
            .into_iter()
            .map(|s| s.name)
            .collect::<Vec<_>>(),
        (_, Some(collector)) => collector
            .wait_for_spans(n, within)
            .into_iter()
            .map(|s| s.0)
            .collect(),
        _ => unreachable!(),
    };
    assert_eq!(arrived(2, Duration::from_secs(20)).len(), 2);
    // Idle: nothing more arrives in 10 s (the batch processor exports every 500 ms).
    let spans = arrived(3, Duration::from_secs(10));
    assert_eq!(spans.len(), 2, "{case}: {spans:?}");
    let report = pipeline.shutdown();
    assert_eq!(report.exported, 2, "{case}: {report:?}");
    // Nor did the exports (spans' or logs') make a log record.
    let log_report = logs.shutdown();
    assert_eq!(log_report.emitted, records, "{case}: {log_report:?}");
    if let Some(collector) = &collector {
        let received = collector.wait_for_logs(0, Duration::ZERO);
        assert_eq!(received.len() as u64, records, "{case}: {received:#?}");
    }
}
