//! Spans without a collector: the in-process store and its task tree, sampling decided per task
//! (an unsampled task's steps get no span at all), and steps run on another thread joining the
//! task's trace.

use std::sync::{Arc, Mutex};

use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tasker_telemetry::scope::StepCounts;
use tasker_telemetry::spans::SpanPipeline;
use tasker_telemetry::{
    Sequence, Step, StepError, StepHandler, Task, TaskScope, Telemetry, TelemetryConfig,
    step_handler,
};
use tracing_subscriber::layer::SubscriberExt;

struct Flaky;

#[step_handler(retry_limit = 2)]
impl Flaky {
    fn process(&self, step: &Step) -> Result<u32, StepError> {
        if step.attempt_number() == 1 {
            Err(StepError::new("first attempt fails"))
        } else {
            Ok(step.attempt_number())
        }
    }
}

fn local(config: TelemetryConfig) -> (SpanPipeline, Telemetry) {
    (
        SpanPipeline::new(&config).unwrap(),
        Telemetry::new(config).unwrap(),
    )
}

/// Keeps what the SDK exports, for a subscriber built without `SpanPipeline`.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// Runs two attempts of `Flaky` under `subscriber`; returns the step spans' attributes as
/// sorted `key=value` lines, the per-run values (duration, correlation id) blanked.
fn step_attributes(
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
    exported: &Collect,
    flush: impl FnOnce(),
) -> Vec<Vec<String>> {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let task = Task::new(&telemetry, "t-attrs", "checkout", serde_json::Value::Null);
        let sequence = Sequence::new();
        for attempt in 1..=2 {
            let step = task.step("t-attrs/flaky", "flaky").with_attempt(attempt);
            let _ = Flaky.handle(&task, &sequence, &step).now();
        }
    });
    flush();
    let spans = exported.0.lock().unwrap();
    spans
        .iter()
        .filter(|s| s.name == "tasker.step.execution")
        .map(|s| {
            let mut lines: Vec<String> = s
                .attributes
                .iter()
                .map(|kv| match kv.key.as_str() {
                    "tasker.execution_duration" | "tasker.correlation_id" => {
                        format!("{}=(per run)", kv.key)
                    }
                    _ => format!("{}={}", kv.key, kv.value),
                })
                .collect();
            lines.sort();
            lines
        })
        .collect()
}

/// `SpanPipeline`'s layer leaves a step span's attributes to the scope (which shares the text
/// instead of copying it); a plain tracing-opentelemetry layer takes them from the `tracing`
/// fields. Both must export the same attributes, each exactly once.
#[test]
fn step_span_attributes_are_the_same_through_span_pipeline_and_a_plain_layer() {
    let plain = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(plain.clone())
        .build();
    // Without the attributes tracing-opentelemetry adds of its own (code location, thread,
    // busy / idle time, target), as `SpanPipeline` configures it.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("plain"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false);
    let from_plain = step_attributes(tracing_subscriber::registry().with(layer), &plain, || {
        provider.shutdown().unwrap();
    });

    let ours = Collect::default();
    let pipeline = SpanPipeline::with_exporter(&TelemetryConfig::default(), ours.clone());
    let from_pipeline = step_attributes(
        tracing_subscriber::registry().with(pipeline.layer()),
        &ours,
        || {
            pipeline.shutdown();
        },
    );

    assert_eq!(from_plain.len(), 2, "{from_plain:#?}");
    let expected = [
        "tasker.attempt_number=1",
        "tasker.correlation_id=(per run)",
        "tasker.execution_duration=(per run)",
        "tasker.retry_limit=2",
        "tasker.step_id=t-attrs/flaky",
        "tasker.step_name=flaky",
        "tasker.task_id=t-attrs",
        "tasker.task_name=checkout",
    ];
    assert!(from_plain.iter().any(|a| a == &expected), "{from_plain:#?}");
    assert_eq!(from_pipeline, from_plain);
}

/// The export thread decides the step span's own keys once, in advance, rather than per span:
/// a filter that names them must still mask them, whatever their value's type.
#[test]
fn a_filter_naming_step_attributes_masks_them_on_every_step_span() {
    let mut config = TelemetryConfig::default();
    config.filter_parameters = vec!["step_name".into(), "retry_limit".into()];
    let exported = Collect::default();
    let pipeline = SpanPipeline::with_exporter(&config, exported.clone());
    let telemetry = Telemetry::new(config).unwrap();
    tracing::subscriber::with_default(
        tracing_subscriber::registry().with(pipeline.layer()),
        || {
            let task = Task::new(&telemetry, "t-mask", "checkout", serde_json::Value::Null);
            let sequence = Sequence::new();
            for attempt in 1..=2 {
                let step = task.step("t-mask/flaky", "flaky").with_attempt(attempt);
                let _ = Flaky.handle(&task, &sequence, &step).now();
            }
        },
    );
    pipeline.shutdown();
    let spans = exported.0.lock().unwrap();
    let steps: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "tasker.step.execution")
        .collect();
    assert_eq!(steps.len(), 2);
    for span in steps {
        let value = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(value("tasker.step_name").as_deref(), Some("[FILTERED]"));
        // An integer under a sensitive key is masked as text too.
        assert_eq!(value("tasker.retry_limit").as_deref(), Some("[FILTERED]"));
        assert_eq!(value("tasker.step_id").as_deref(), Some("t-mask/flaky"));
        assert_eq!(value("tasker.task_name").as_deref(), Some("checkout"));
    }
}

/// The step span's `step.completed` event and the published `step.completed` event mark the
/// same moment: the span event is stamped from the attempt's end reading, not a later clock read.
#[test]
fn the_span_event_and_the_published_event_share_the_completion_time() {
    let exported = Collect::default();
    let config = TelemetryConfig::default();
    let pipeline = SpanPipeline::with_exporter(&config, exported.clone());
    let telemetry = Telemetry::new(config).unwrap();
    let published = Arc::new(Mutex::new(Vec::new()));
    let seen = published.clone();
    telemetry
        .publisher()
        .subscribe(
            &["step.completed"],
            tasker_telemetry::subscriber::from_fn("completion-times", move |event| {
                if let tasker_telemetry::payload::Payload::Step(p) = event.payload() {
                    seen.lock()
                        .unwrap()
                        .push(p.completed_at.unwrap().as_system_time());
                }
            }),
        )
        .unwrap();
    tracing::subscriber::with_default(
        tracing_subscriber::registry().with(pipeline.layer()),
        || {
            let task = TaskScope::new(&telemetry, "t-times", "checkout");
            let step = task.step("t-times/1", "charge");
            for attempt in 1..=3 {
                let done: Result<u32, std::io::Error> = step.run_attempt(attempt, || Ok(attempt));
                done.unwrap();
            }
        },
    );
    pipeline.shutdown();
    let spans = exported.0.lock().unwrap();
    let span_events: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "tasker.step.execution")
        .flat_map(|s| s.events.iter())
        .filter(|e| e.name == "step.completed")
        .map(|e| e.timestamp)
        .collect();
    let published = published.lock().unwrap();
    assert_eq!(published.len(), 3);
    // Timestamps keep microseconds in payloads: compare at that precision.
    let micros =
        |t: &std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
    let mut from_spans: Vec<u128> = span_events.iter().map(micros).collect();
    let mut from_events: Vec<u128> = published.iter().map(micros).collect();
    from_spans.sort();
    from_events.sort();
    assert_eq!(from_spans, from_events);
}

#[test]
fn without_an_endpoint_spans_stay_in_process_and_print_as_a_tree() {
    let (pipeline, telemetry) = local(TelemetryConfig::default());
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    tracing::subscriber::with_default(subscriber, || {
        let task = Task::new(&telemetry, "t-tree", "checkout", serde_json::Value::Null);
        let sequence = Sequence::new();
        for attempt in 1..=2 {
            let step = task.step("t-tree/flaky", "flaky").with_attempt(attempt);
            let _ = Flaky.handle(&task, &sequence, &step).now();
        }
        task.scope().complete(StepCounts {
            total: 1,
            completed: 1,
            ..Default::default()
        });
    });
    let report = pipeline.shutdown();
    assert_eq!(
        (report.exported, report.endpoint.clone()),
        (3, None),
        "{report:?}"
    );
    let store = pipeline.store().expect("no endpoint: in-process store");
    let tree = store.task_tree("t-tree");
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 3, "{tree}");
    assert!(
        lines[0].starts_with("tasker.task.execution checkout ") && lines[0].ends_with(" ok"),
        "{tree}"
    );
    assert!(
        lines[1].starts_with("  tasker.step.execution flaky attempt 1 "),
        "{tree}"
    );
    assert!(lines[1].ends_with("error: first attempt fails"), "{tree}");
    assert!(
        lines[2].starts_with("  tasker.step.execution flaky attempt 2 ")
            && lines[2].ends_with(" ok"),
        "{tree}"
    );
    assert!(store.task_tree("no-such-task").is_empty());
}

#[test]
fn an_unsampled_task_creates_no_step_spans() {
    let config = TelemetryConfig::builder()
        .trace_sampling_ratio(0.0)
        .build()
        .unwrap();
    let (pipeline, telemetry) = local(config);
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    tracing::subscriber::with_default(subscriber, || {
        let task = Task::new(
            &telemetry,
            "t-unsampled",
            "checkout",
            serde_json::Value::Null,
        );
        let step = task.step("t-unsampled/flaky", "flaky").with_attempt(2);
        let attempt = step.scope().attempt(2);
        assert!(
            attempt.span().is_disabled(),
            "no span work for an unsampled task's step"
        );
        attempt.complete(&1);
        assert_eq!(
            Flaky.handle(&task, &Sequence::new(), &step).now().unwrap(),
            Ok(serde_json::json!(2))
        );
    });
    let report = pipeline.shutdown();
    assert_eq!(report.ended, 0, "nothing sampled: {report:?}");
    assert!(pipeline.store().unwrap().spans().is_empty());
}

#[test]
fn steps_on_other_threads_join_the_task_trace() {
    let (pipeline, telemetry) = local(TelemetryConfig::default());
    let subscriber = Arc::new(tracing_subscriber::registry().with(pipeline.layer()));
    let dispatch = tracing::Dispatch::from(subscriber);
    tracing::dispatcher::with_default(&dispatch, || {
        let task = Arc::new(Task::new(
            &telemetry,
            "t-threads",
            "checkout",
            serde_json::Value::Null,
        ));
        let workers: Vec<_> = (0..3)
            .map(|i| {
                let (task, dispatch) = (task.clone(), dispatch.clone());
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        let step = task.step(format!("t-threads/{i}"), "flaky").with_attempt(2);
                        Flaky.handle(&task, &Sequence::new(), &step).now().unwrap()
                    })
                })
            })
            .collect();
        for w in workers {
            assert_eq!(w.join().unwrap(), Ok(serde_json::json!(2)));
        }
        task.scope().complete(StepCounts {
            total: 3,
            completed: 3,
            ..Default::default()
        });
    });
    pipeline.shutdown();
    let spans = pipeline.store().unwrap().task_spans("t-threads");
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let root = spans
        .iter()
        .find(|s| s.name == "tasker.task.execution")
        .unwrap();
    for step in spans.iter().filter(|s| s.name == "tasker.step.execution") {
        assert_eq!(step.trace_id, root.trace_id);
        assert_eq!(step.parent_span_id, root.span_id);
    }
}

#[test]
fn an_https_endpoint_is_taken_and_an_unusable_ca_file_is_a_clear_error() {
    let config = TelemetryConfig::builder()
        .otlp_endpoint("https://collector.example:4318")
        .build()
        .unwrap();
    // Built without touching the network; the system's roots and webpki's are loaded.
    let pipeline = SpanPipeline::new(&config).unwrap();
    assert_eq!(
        pipeline.report().endpoint.as_deref(),
        Some("https://collector.example:4318/v1/traces")
    );
    let not_pem = std::env::temp_dir().join(format!("tasker-not-a-ca-{}.pem", std::process::id()));
    std::fs::write(&not_pem, "this is no certificate").unwrap();
    let config = TelemetryConfig::default()
        .with_env_from(|name| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("https://collector.example:4318".to_owned()),
            "OTEL_EXPORTER_OTLP_CERTIFICATE" => Some(not_pem.display().to_string()),
            _ => None,
        })
        .unwrap();
    let err = SpanPipeline::new(&config).unwrap_err().to_string();
    assert!(
        err.contains("CA certificate") && err.contains(&not_pem.display().to_string()),
        "{err}"
    );
    let _ = std::fs::remove_file(&not_pem);
    // A CA file that does not exist is refused by the configuration, naming the variable.
    let error = TelemetryConfig::default()
        .with_env_from(|name| {
            (name == "OTEL_EXPORTER_OTLP_CERTIFICATE").then(|| "/nonexistent/ca.pem".to_owned())
        })
        .unwrap_err();
    assert_eq!(
        error.variable(),
        Some("OTEL_EXPORTER_OTLP_CERTIFICATE"),
        "{error}"
    );
}

/// An attempt dropped before its outcome (a cancelled future, say) ends its span with a
/// `step.cancelled` event and no status, through `SpanPipeline`'s direct path.
#[test]
fn an_abandoned_attempt_ends_its_span_with_step_cancelled() {
    let exported = Collect::default();
    let config = TelemetryConfig::default();
    let pipeline = SpanPipeline::with_exporter(&config, exported.clone());
    let telemetry = Telemetry::new(config).unwrap();
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    tracing::subscriber::with_default(subscriber, || {
        let task = tasker_telemetry::TaskScope::new(&telemetry, "t-cancel", "checkout");
        let step = task.step("t-cancel/slow", "slow");
        drop(step.attempt(1));
    });
    pipeline.shutdown();
    let spans = exported.0.lock().unwrap();
    let step = spans
        .iter()
        .find(|s| s.name == "tasker.step.execution")
        .expect("the step span was exported");
    let events: Vec<&str> = step.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(events, ["step.cancelled"]);
    assert_eq!(step.status, opentelemetry::trace::Status::Unset);
}

/// Under `SpanPipeline` the scope gives the step span its attributes itself: on first entering
/// it through the attempt, or, when the attempt is never entered that way, when it ends. Every
/// path must leave each attribute on the span exactly once.
#[test]
fn a_step_span_has_its_attributes_once_however_the_attempt_is_entered_or_ends() {
    let exported = Collect::default();
    let config = TelemetryConfig::default();
    let pipeline = SpanPipeline::with_exporter(&config, exported.clone());
    let telemetry = Telemetry::new(config).unwrap();
    // Without the trace route for step.cancelled, an abandoned attempt records nothing on its
    // span: the attributes still have to be there.
    telemetry.set_router(
        &tasker_telemetry::router::EventRouter::tasker_defaults()
            .disable("step.cancelled")
            .unwrap(),
    );
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    tracing::subscriber::with_default(subscriber, || {
        let task = TaskScope::new(&telemetry, "t-paths", "checkout");
        let ok = || Ok::<u32, std::io::Error>(1);
        // Entered through the attempt, twice.
        let step = task.step("t-paths/twice", "twice");
        let attempt = step.attempt(1);
        let _ = attempt.in_scope(ok);
        let result = attempt.in_scope(ok);
        attempt.finish(&result);
        // Entered by the caller, through the span itself.
        let step = task.step("t-paths/caller", "caller");
        let attempt = step.attempt(1);
        let result = attempt.span().in_scope(ok);
        attempt.finish(&result);
        // Never entered, failed.
        let step = task.step("t-paths/failed", "failed");
        step.attempt(1).fail(&std::io::Error::other("no"));
        // Never entered, abandoned.
        let step = task.step("t-paths/abandoned", "abandoned");
        drop(step.attempt(1));
        // The runner's path.
        let step = task.step("t-paths/run", "run");
        let _ = step.run_attempt(1, ok);
        // Held by the caller past the attempt's end: the span closes after the scope has let
        // go of it, so the scope writes the outcome through the span API.
        let step = task.step("t-paths/held", "held");
        let attempt = step.attempt(1);
        let held = attempt.span().clone();
        let result = attempt.in_scope(ok);
        attempt.finish(&result);
        drop(held);
    });
    pipeline.shutdown();
    let spans = exported.0.lock().unwrap();
    let mut seen = Vec::new();
    for span in spans.iter().filter(|s| s.name == "tasker.step.execution") {
        let keys: Vec<&str> = span.attributes.iter().map(|kv| kv.key.as_str()).collect();
        let step_name = span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "tasker.step_name")
            .map(|kv| kv.value.to_string())
            .unwrap_or_else(|| panic!("no step name: {keys:?}"));
        let mut expected = vec![
            "tasker.correlation_id",
            "tasker.task_id",
            "tasker.task_name",
            "tasker.step_id",
            "tasker.step_name",
            "tasker.attempt_number",
            "tasker.retry_limit",
        ];
        // Every outcome records the duration, abandonment too.
        expected.push("tasker.execution_duration");
        assert_eq!(keys, expected, "{step_name}");
        let events: Vec<&str> = span.events.iter().map(|e| e.name.as_ref()).collect();
        let (status, events_expected) = match step_name.as_str() {
            "failed" => (Status::error("no"), vec!["step.failed"]),
            "abandoned" => (Status::Unset, vec![]),
            _ => (Status::Ok, vec!["step.completed"]),
        };
        assert_eq!(span.status, status, "{step_name}");
        assert_eq!(events, events_expected, "{step_name}");
        seen.push(step_name);
    }
    seen.sort();
    assert_eq!(
        seen,
        ["abandoned", "caller", "failed", "held", "run", "twice"]
    );
}
