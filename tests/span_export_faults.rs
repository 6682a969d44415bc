//! A dead or failing collector never touches the steps: results are unchanged, spans that could
//! not be delivered are counted, failures surface through the library's diagnostics (the export
//! report and a `tracing` warning), and shutdown is bounded.

mod support;

use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use support::otlp_receiver::Receiver;
use tasker_telemetry::spans::{SpanExportReport, SpanPipeline};
use tasker_telemetry::{
    Sequence, Step, StepError, StepHandler, Task, Telemetry, TelemetryConfig, step_handler,
};
use tracing_subscriber::layer::SubscriberExt;

/// Warnings the library logged, from any thread (the exporter runs on its own).
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct CaptureWarnings;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CaptureWarnings {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN
            && event.metadata().target() == "tasker_telemetry::export"
        {
            struct Fields(String);
            impl tracing::field::Visit for Fields {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    self.0.push_str(&format!("{}={value:?} ", field.name()));
                }
            }
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            WARNINGS.lock().unwrap().push(fields.0);
        }
    }
}

fn capture_warnings() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(CaptureWarnings),
        );
    });
}

struct Double;

#[step_handler]
impl Double {
    fn process(&self, step: &Step) -> Result<u64, StepError> {
        Ok(step.inputs()["n"].as_u64().unwrap_or(0) * 2)
    }
}

/// Runs `n` steps with spans going to `endpoint`; checks every result; returns the report.
fn run_steps(endpoint: &str, n: u64) -> (SpanExportReport, Duration) {
    capture_warnings();
    // A 5 s export timeout (the default is the specification's 10 s): each export, with the
    // exporter's retries, and so the shutdown, ends within it.
    let mut otlp = tasker_telemetry::config::OtlpOptions::default();
    otlp.timeout_ms = 5_000;
    let config = TelemetryConfig::builder()
        .otlp_traces_endpoint(endpoint)
        .otlp(otlp)
        .build()
        .unwrap();
    let pipeline = SpanPipeline::new(&config).unwrap();
    let telemetry = Telemetry::new(config).unwrap();
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    tracing::subscriber::with_default(subscriber, || {
        let task = Task::new(&telemetry, "t-faults", "faults", serde_json::Value::Null);
        let sequence = Sequence::new();
        for i in 0..n {
            let step = task
                .step(format!("s-{i}"), "double")
                .with_inputs(serde_json::json!({"n": i}));
            let out = Double.handle(&task, &sequence, &step).now().unwrap();
            assert_eq!(
                out,
                Ok(serde_json::json!(i * 2)),
                "step {i}'s result changed"
            );
        }
    });
    let started = Instant::now();
    let report = pipeline.shutdown();
    (report, started.elapsed())
}

fn closed_port_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/v1/traces")
}

fn assert_all_accounted(report: &SpanExportReport, steps: u64) {
    // Every step span plus the task span ended; none was delivered; every one is counted as
    // failed or dropped.
    assert_eq!(report.ended, steps + 1, "{report:?}");
    assert_eq!(report.exported, 0, "{report:?}");
    assert_eq!(report.failed + report.dropped, report.ended, "{report:?}");
    assert!(report.failed_exports > 0, "{report:?}");
}

#[test]
fn collector_down_10_000_steps_unchanged_and_drops_counted() {
    let (report, shutdown) = run_steps(&closed_port_endpoint(), 10_000);
    assert_all_accounted(&report, 10_000);
    let error = report.last_error.clone().unwrap_or_default();
    assert!(
        error.to_lowercase().contains("refused"),
        "diagnostic names the refusal: {error}"
    );
    assert!(
        shutdown < Duration::from_secs(7),
        "shutdown took {shutdown:?}: {report:?}"
    );
    assert!(
        WARNINGS
            .lock()
            .unwrap()
            .iter()
            .any(|w| w.to_lowercase().contains("refused")),
        "a warning was logged: {:?}",
        WARNINGS.lock().unwrap()
    );
}

#[test]
fn collector_answering_500_10_000_steps_unchanged_and_drops_counted() {
    let receiver = Receiver::start_with_status(500);
    let (report, shutdown) = run_steps(&receiver.endpoint(), 10_000);
    assert_all_accounted(&report, 10_000);
    assert!(receiver.request_count() > 0, "the collector was called");
    let error = report.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("500"),
        "diagnostic names the status: {error}"
    );
    assert!(
        shutdown < Duration::from_secs(7),
        "shutdown took {shutdown:?}"
    );
}

#[test]
fn a_404_surfaces_in_the_report_and_the_log() {
    let receiver = Receiver::start();
    let wrong_path = format!("{}/not/traces", receiver.base_url());
    let (report, _) = run_steps(&wrong_path, 3);
    assert_all_accounted(&report, 3);
    let error = report.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("404"),
        "diagnostic names the status: {error}"
    );
    assert!(
        WARNINGS.lock().unwrap().iter().any(|w| w.contains("404")),
        "{:?}",
        WARNINGS.lock().unwrap()
    );
}

#[test]
fn span_losses_appear_in_the_dropped_metric() {
    let config = TelemetryConfig::builder()
        .otlp_traces_endpoint(closed_port_endpoint())
        .build()
        .unwrap();
    let pipeline = SpanPipeline::new(&config).unwrap();
    let telemetry = Telemetry::new(config).unwrap();
    pipeline.register_metrics(telemetry.metrics());
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    tracing::subscriber::with_default(subscriber, || {
        let task = Task::new(&telemetry, "t-metric", "faults", serde_json::Value::Null);
        let step = task.step("s", "double");
        Double
            .handle(&task, &Sequence::new(), &step)
            .now()
            .unwrap()
            .unwrap();
    });
    let report = pipeline.shutdown();
    let text = tasker_telemetry::metrics::prometheus_text(&telemetry.metrics().snapshot());
    let line = format!(
        "tasker_telemetry_dropped_total{{sink=\"spans\",reason=\"export_failed\"}} {}",
        report.failed
    );
    assert!(report.failed + report.dropped == 2, "{report:?}");
    assert!(text.contains(&line), "{line} not in\n{text}");
    assert!(
        text.contains(
            "tasker_telemetry_dropped_total{sink=\"subscriber\",reason=\"queue_full\"} 0"
        )
    );
}
