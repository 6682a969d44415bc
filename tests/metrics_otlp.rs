//! OTLP/HTTP metrics export: what a receiver got off the wire decodes to the registry's values;
//! a dead collector costs only counted failures.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use support::otlp_receiver::{METRICS_PATH, Receiver};
use tasker_telemetry::export::OtlpMetricsExporter;
use tasker_telemetry::scope::StepCounts;
use tasker_telemetry::{TaskScope, Telemetry, TelemetryConfig};

fn workload(telemetry: &Telemetry) {
    for i in 0..3 {
        let task = TaskScope::new(telemetry, i.to_string(), "checkout");
        task.start();
        task.step(format!("{i}-1"), "charge")
            .attempt(1)
            .complete(&i);
        task.complete(StepCounts {
            total: 1,
            completed: 1,
            ..Default::default()
        });
    }
}

#[test]
fn metrics_arrive_as_cumulative_otlp_instruments() {
    let receiver = Receiver::start();
    let telemetry = Telemetry::new(
        TelemetryConfig::builder()
            .service_name("metrics-e2e")
            .build()
            .unwrap(),
    )
    .unwrap();
    let exporter = OtlpMetricsExporter::start(
        &telemetry,
        &format!("{}{METRICS_PATH}", receiver.base_url()),
        Duration::from_secs(3600),
    )
    .unwrap();
    workload(&telemetry);
    // Stopping pushes the final state.
    let report = exporter.stop();
    assert_eq!((report.exported, report.failed), (1, 0), "{report:?}");

    let request = receiver
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == METRICS_PATH)
        .expect("a metrics push");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-protobuf")
    );
    let decoded = ExportMetricsServiceRequest::decode(request.body.as_slice()).unwrap();
    let resource = decoded.resource_metrics[0].resource.as_ref().unwrap();
    assert!(resource.attributes.iter().any(|kv| kv.key == "service.name"
        && format!("{:?}", kv.value).contains("metrics-e2e")));
    let metrics = &decoded.resource_metrics[0].scope_metrics[0].metrics;
    let find = |name: &str| {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };

    let Some(metric::Data::Sum(tasks)) = &find("tasker_tasks_total").data else {
        panic!("a sum")
    };
    assert!(tasks.is_monotonic);
    assert_eq!(tasks.aggregation_temporality, 2, "cumulative");
    let completed = tasks
        .data_points
        .iter()
        .find(|p| {
            p.attributes
                .iter()
                .any(|kv| format!("{:?}", kv.value).contains("completed"))
        })
        .unwrap();
    assert_eq!(
        completed.value,
        Some(number_data_point::Value::AsDouble(3.0))
    );

    let step_duration = find("tasker_step_duration_seconds");
    assert_eq!(step_duration.unit, "s");
    let Some(metric::Data::Histogram(h)) = &step_duration.data else {
        panic!("a histogram")
    };
    let point = &h.data_points[0];
    assert_eq!(point.count, 3);
    assert_eq!(point.bucket_counts.len(), point.explicit_bounds.len() + 1);
    assert_eq!(point.bucket_counts.iter().sum::<u64>(), 3);
    assert!(matches!(
        find("tasker_tasks_active").data,
        Some(metric::Data::Gauge(_))
    ));
}

#[test]
fn a_dead_collector_costs_only_counted_failures() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let exporter = OtlpMetricsExporter::start(
        &telemetry,
        &format!("http://127.0.0.1:{port}/v1/metrics"),
        Duration::from_secs(3600),
    )
    .unwrap();
    workload(&telemetry);
    let report = exporter.stop();
    assert_eq!((report.exported, report.failed), (0, 1), "{report:?}");
    assert!(
        report
            .last_error
            .unwrap_or_default()
            .to_lowercase()
            .contains("refused")
    );
    // https is a transport like http (tests/otlp_tls.rs sends over it); a URL that is none is
    // refused at start.
    assert!(OtlpMetricsExporter::start(&telemetry, "not a url", Duration::from_secs(1)).is_err());
}
