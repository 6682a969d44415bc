//! Exemplars: the step and task duration histograms link their buckets to the sampled spans the
//! observations were made in. Checked against what an OTLP receiver decoded off the wire, in the
//! OpenMetrics exposition only, and through a real Prometheus (the Debian package `prometheus`,
//! started here on 127.0.0.1 with exemplar storage) answering `/api/v1/query_exemplars`.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::otlp_receiver::{ReceivedSpan, Receiver};
use support::prometheus::{Prometheus, api_until, url_encode};
use tasker_telemetry::http::MetricsServer;
use tasker_telemetry::metrics::{Exemplar, openmetrics_text, prometheus_text};
use tasker_telemetry::scope::StepCounts;
use tasker_telemetry::spans::SpanPipeline;
use tasker_telemetry::{TaskScope, Telemetry, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt;

const WAIT: Duration = Duration::from_secs(20);

fn config(receiver: &Receiver, sampling: f64, exemplars: bool) -> TelemetryConfig {
    TelemetryConfig::builder()
        .service_name("exemplars-e2e")
        .otlp_traces_endpoint(receiver.endpoint())
        .trace_sampling_ratio(sampling)
        .metrics_exemplars_enabled(exemplars)
        .build()
        .unwrap()
}

/// Runs `tasks` one-step tasks under `pipeline`'s layer; returns the telemetry.
fn run(config: &TelemetryConfig, pipeline: Option<&SpanPipeline>, tasks: usize) -> Telemetry {
    let telemetry = Telemetry::new(config.clone()).unwrap();
    let work = || {
        for i in 0..tasks {
            let task = TaskScope::new(&telemetry, format!("t-{i}"), "exemplified");
            task.start();
            let step = task.step(format!("t-{i}/charge"), "charge");
            let result: Result<u32, std::io::Error> = step.run_attempt(1, || Ok(7));
            assert_eq!(result.unwrap(), 7);
            task.complete(StepCounts::default());
        }
    };
    match pipeline {
        Some(pipeline) => {
            let subscriber = tracing_subscriber::registry().with(pipeline.layer());
            tracing::subscriber::with_default(subscriber, work);
        }
        None => work(),
    }
    telemetry
}

/// The exemplars of family `name` in the telemetry's snapshot.
fn exemplars(telemetry: &Telemetry, name: &str) -> Vec<Exemplar> {
    telemetry
        .metrics()
        .snapshot()
        .families
        .into_iter()
        .filter(|f| f.name == name)
        .flat_map(|f| f.series)
        .flat_map(|s| s.exemplars)
        .collect()
}

fn span<'a>(spans: &'a [ReceivedSpan], trace_id: &str, span_id: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.trace_id == trace_id && s.span_id == span_id)
}

#[test]
fn duration_buckets_carry_the_sampled_span_they_were_observed_in() {
    let receiver = Receiver::start();
    let config = config(&receiver, 1.0, true);
    let pipeline = SpanPipeline::new(&config).unwrap();
    let telemetry = run(&config, Some(&pipeline), 1);
    pipeline.flush();
    let spans = receiver.wait_for_spans(2, WAIT);

    let step = exemplars(&telemetry, "tasker_step_duration_seconds");
    assert_eq!(step.len(), 1, "{step:?}");
    let span_of_step = span(&spans, &step[0].trace_id, &step[0].span_id).expect("the step span");
    assert_eq!(span_of_step.name, "tasker.step.execution");
    assert!(step[0].value >= 0.0 && step[0].value <= step[0].bucket);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - step[0].timestamp).abs() < 60.0,
        "{}",
        step[0].timestamp
    );

    let task = exemplars(&telemetry, "tasker_task_duration_seconds");
    assert_eq!(task.len(), 1, "{task:?}");
    let span_of_task = span(&spans, &task[0].trace_id, &task[0].span_id).expect("the task span");
    assert_eq!(span_of_task.name, "tasker.task.execution");
    assert_eq!(span_of_task.trace_id, span_of_step.trace_id);

    // OpenMetrics shows them on their bucket lines; the Prometheus text format has no exemplars.
    let snapshot = telemetry.metrics().snapshot();
    let open = openmetrics_text(&snapshot);
    let line = format!(
        "# {{trace_id=\"{}\",span_id=\"{}\"}}",
        step[0].trace_id, step[0].span_id
    );
    assert!(
        open.lines()
            .any(|l| l.starts_with("tasker_step_duration_seconds_bucket{") && l.contains(&line)),
        "{open}"
    );
    assert!(!prometheus_text(&snapshot).contains("trace_id"));
}

#[test]
fn no_exemplar_without_a_sampled_span_or_when_switched_off() {
    let receiver = Receiver::start();
    // Sampled out.
    let unsampled = config(&receiver, 0.0, true);
    let pipeline = SpanPipeline::new(&unsampled).unwrap();
    let telemetry = run(&unsampled, Some(&pipeline), 3);
    assert!(exemplars(&telemetry, "tasker_step_duration_seconds").is_empty());
    assert!(exemplars(&telemetry, "tasker_task_duration_seconds").is_empty());
    // Spans off (no layer).
    let telemetry = run(&config(&receiver, 1.0, true), None, 3);
    assert!(exemplars(&telemetry, "tasker_step_duration_seconds").is_empty());
    // Switched off.
    let off = config(&receiver, 1.0, false);
    let pipeline = SpanPipeline::new(&off).unwrap();
    let telemetry = run(&off, Some(&pipeline), 3);
    assert!(exemplars(&telemetry, "tasker_step_duration_seconds").is_empty());
    assert!(exemplars(&telemetry, "tasker_task_duration_seconds").is_empty());
}

#[test]
fn a_real_prometheus_with_exemplar_storage_returns_a_trace_id_the_receiver_got() {
    let receiver = Receiver::start();
    let config = config(&receiver, 1.0, true);
    let pipeline = SpanPipeline::new(&config).unwrap();
    let telemetry = run(&config, Some(&pipeline), 3);
    pipeline.flush();
    let spans = receiver.wait_for_spans(6, WAIT);

    let server = MetricsServer::start(&telemetry, None, ([127, 0, 0, 1], 0).into()).unwrap();
    let prometheus = Prometheus::start_with(
        &[server.addr()],
        &[],
        &["--enable-feature=exemplar-storage"],
    );
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 600;
    let path = format!(
        "/api/v1/query_exemplars?query={}&start={start}&end={}",
        url_encode("tasker_step_duration_seconds_bucket"),
        start + 1200
    );
    let data = api_until(&prometheus, &path, |d| {
        d.as_array().is_some_and(|series| !series.is_empty())
    });
    let found: Vec<(String, String)> = data
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["exemplars"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["labels"]["trace_id"].as_str().unwrap().to_owned(),
                e["labels"]["span_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(!found.is_empty(), "{data}");
    for (trace_id, span_id) in &found {
        let received = span(&spans, trace_id, span_id)
            .unwrap_or_else(|| panic!("exemplar {trace_id}/{span_id} names no received span"));
        assert_eq!(received.name, "tasker.step.execution");
    }
}
