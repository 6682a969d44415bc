//! Span export over OTLP/gRPC (cargo feature `otlp-grpc`) to a real tonic collector.

mod support;

use std::time::Duration;

use support::grpc_collector::GrpcCollector;
use tasker_telemetry::config::OtlpProtocol;
use tasker_telemetry::spans::SpanPipeline;
use tasker_telemetry::{TaskScope, Telemetry, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn spans_reach_a_grpc_collector() {
    let collector = GrpcCollector::start();
    let config = TelemetryConfig::builder()
        .otlp_endpoint(collector.endpoint())
        .otlp_protocol(OtlpProtocol::Grpc)
        .build()
        .unwrap();
    assert_eq!(
        config.traces_endpoint().as_deref(),
        Some(collector.endpoint()),
        "gRPC uses the endpoint as is"
    );
    let pipeline = SpanPipeline::new(&config).unwrap();
    let telemetry = Telemetry::new(config).unwrap();
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    tracing::subscriber::with_default(subscriber, || {
        let task = TaskScope::new(&telemetry, "t-grpc", "checkout");
        let step = task.step("t-grpc/1", "charge");
        step.attempt(1).complete(&"ok");
    });
    let report = pipeline.shutdown();
    assert!(report.is_clean() && report.exported == 2, "{report:?}");
    let spans = collector.wait_for_spans(2, Duration::from_secs(20));
    assert_eq!(spans.len(), 2, "{spans:?}");
    let task = spans
        .iter()
        .find(|s| s.0 == "tasker.task.execution")
        .unwrap();
    let step = spans
        .iter()
        .find(|s| s.0 == "tasker.step.execution")
        .unwrap();
    assert_eq!(step.1, task.1, "same trace");
    assert!(task.2.is_empty() && !step.2.is_empty());
}
