//! The event router: each sink combination for an event reaches exactly those sinks; sampling
//! keeps the right share; unknown routes are typed errors; configuration drops and samples.

use std::sync::{Arc, Mutex};

use tasker_telemetry::config::LogFormat;
use tasker_telemetry::event::names;
use tasker_telemetry::logging::LogLayer;
use tasker_telemetry::router::{EventRouter, Priority, RouterError, Sinks};
use tasker_telemetry::spans::SpanPipeline;
use tasker_telemetry::{ParameterFilter, TaskScope, Telemetry, TelemetryConfig, subscriber};
use tracing_subscriber::layer::SubscriberExt;

/// Runs one step attempt with `sinks` routed for step.completed; reports (span event, log line,
/// routed metric) as seen.
fn one_attempt(sinks: Sinks) -> (bool, bool, bool) {
    let config = TelemetryConfig::default();
    let pipeline = SpanPipeline::new(&config).unwrap();
    let telemetry = Telemetry::new(config).unwrap();
    telemetry.set_router(
        &EventRouter::tasker_defaults()
            .route("step.completed", sinks, 1.0, Priority::Normal)
            .unwrap(),
    );
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let logs = LogLayer::new(LogFormat::Json, ParameterFilter::tasker_default())
        .with_writer(buffer.clone());
    let subscriber = tracing_subscriber::registry()
        .with(pipeline.layer())
        .with(logs);
    tracing::subscriber::with_default(subscriber, || {
        let task = TaskScope::new(&telemetry, "t-route", "routing");
        task.step("t-route/1", "routed").attempt(1).complete(&1);
    });
    pipeline.shutdown();
    let span_event = pipeline.store().unwrap().spans().iter().any(|s| {
        s.name == "tasker.step.execution" && s.events.iter().any(|e| e == "step.completed")
    });
    let log_line = String::from_utf8(buffer.lock().unwrap().clone())
        .unwrap()
        .contains("\"step completed\"");
    let text = tasker_telemetry::metrics::prometheus_text(&telemetry.metrics().snapshot());
    let metric = text.contains("tasker_routed_events_total{event=\"step.completed\"} 1");
    (span_event, log_line, metric)
}

#[test]
fn each_sink_combination_reaches_exactly_its_sinks() {
    for bits in 0u8..8 {
        let mut sinks = Sinks::NONE;
        if bits & 1 != 0 {
            sinks = sinks | Sinks::TRACE;
        }
        if bits & 2 != 0 {
            sinks = sinks | Sinks::METRICS;
        }
        if bits & 4 != 0 {
            sinks = sinks | Sinks::LOGS;
        }
        let seen = one_attempt(sinks);
        assert_eq!(
            seen,
            (
                sinks.contains(Sinks::TRACE),
                sinks.contains(Sinks::LOGS),
                sinks.contains(Sinks::METRICS)
            ),
            "routes {sinks:?}"
        );
    }
}

#[test]
fn sampling_keeps_the_configured_share() {
    let router = EventRouter::tasker_defaults()
        .route("step.completed", Sinks::ALL, 0.1, Priority::Normal)
        .unwrap();
    let kept = (0..100_000)
        .filter(|_| router.decide(names::STEP_COMPLETED) != Sinks::NONE)
        .count() as f64;
    let sd = (100_000.0f64 * 0.1 * 0.9).sqrt();
    assert!((kept - 10_000.0).abs() <= 3.0 * sd, "kept {kept}");
    // The decision is one per occurrence: a kept event reaches every routed sink.
    for _ in 0..1000 {
        let d = router.decide(names::STEP_COMPLETED);
        assert!(d == Sinks::NONE || d == Sinks::ALL);
    }
}

#[test]
fn unknown_routes_and_bad_rates_are_typed_errors() {
    let err = EventRouter::tasker_defaults()
        .route("step.complted", Sinks::ALL, 1.0, Priority::Normal)
        .unwrap_err();
    assert_eq!(
        err,
        RouterError::UnknownEvent {
            pattern: "step.complted".into(),
            suggestion: Some("step.completed")
        }
    );
    assert!(matches!(
        EventRouter::tasker_defaults().route("step.*", Sinks::ALL, 1.5, Priority::Normal),
        Err(RouterError::SamplingRate { .. })
    ));
    assert!(
        EventRouter::tasker_defaults()
            .route("nosuch.*", Sinks::ALL, 1.0, Priority::Normal)
            .is_err()
    );
}

#[test]
fn configuration_drops_filtered_events_and_scales_sampling() {
    let config = TelemetryConfig::builder()
        .filtered_events(["step.completed"])
        .event_sampling_rate(0.0)
        .build()
        .unwrap();
    let telemetry = Telemetry::new(config).unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    telemetry
        .publisher()
        .subscribe(
            &["step.*"],
            subscriber::from_fn("all", move |e| {
                sink.lock().unwrap().push(e.name().to_string())
            }),
        )
        .unwrap();
    let task = TaskScope::new(&telemetry, "t-drop", "routing");
    task.step("t-drop/1", "s").attempt(1).complete(&1);
    assert_eq!(
        *received.lock().unwrap(),
        ["step.before_handle"],
        "step.completed dropped entirely"
    );
    assert_eq!(
        telemetry.router().decide(names::STEP_FAILED),
        Sinks::NONE,
        "sampling 0 keeps nothing"
    );
    assert_eq!(
        telemetry.router().priority(names::MEMORY_SPIKE_DETECTED),
        Priority::Critical
    );
}
