//! Structured logs: the JSON stream of a failing 3-step workflow, line by line, with the task /
//! step context and the correlation id on every line (user lines and spawned tasks included).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tasker_telemetry::config::LogFormat;
use tasker_telemetry::logging::LogLayer;
use tasker_telemetry::workflow::{Backoff, StepDef, Workflow};
use tasker_telemetry::{ParameterFilter, Step, StepError, Telemetry, step_handler};
use tracing_subscriber::layer::SubscriberExt;

struct Chatty;

#[step_handler]
impl Chatty {
    async fn process(&self, step: &Step) -> Result<u32, StepError> {
        tracing::info!(password = "hunter2", "user line inside process()");
        let name = step.name().to_owned();
        let spawned = tokio::spawn(tracing::Instrument::in_current_span(async move {
            tracing::info!(spawned_for = %name, "line from a spawned task");
        }));
        spawned.await.map_err(|e| StepError::new(e.to_string()))?;
        Ok(step.attempt_number())
    }
}

struct Fails;

#[step_handler(retry_limit = 2)]
impl Fails {
    fn process(&self, _step: &Step) -> Result<u32, StepError> {
        Err(StepError::new("warehouse unreachable").with_class("Unreachable"))
    }
}

fn lines(buffer: &Arc<Mutex<Vec<u8>>>) -> Vec<serde_json::Value> {
    let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test]
async fn a_failing_workflow_logs_one_json_object_per_line_with_context() {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let layer = LogLayer::new(LogFormat::Json, ParameterFilter::tasker_default())
        .with_writer(buffer.clone());
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let _guard = tracing::dispatcher::set_default(&dispatch);

    let telemetry = Telemetry::new(Default::default()).unwrap();
    let quick = Backoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(1),
        jitter: 0.0,
    };
    let workflow = Workflow::builder("logged")
        .handler(Chatty)
        .handler(Fails)
        .step(StepDef::new("first").handler("chatty"))
        .step(
            StepDef::new("second")
                .handler("fails")
                .depends_on(["first"])
                .backoff(quick),
        )
        .step(
            StepDef::new("third")
                .handler("chatty")
                .depends_on(["second"]),
        )
        .build()
        .unwrap();
    let outcome = workflow
        .run(&telemetry, "t-logs", serde_json::json!({}))
        .await;
    assert!(!outcome.is_complete());

    let lines = lines(&buffer);
    assert!(lines.len() >= 8, "{lines:#?}");
    let correlation = lines[0]["correlation_id"]
        .as_str()
        .expect("correlation id")
        .to_owned();
    assert!(correlation.starts_with("tsk_"));
    for line in &lines {
        for key in [
            "timestamp",
            "level",
            "target",
            "message",
            "correlation_id",
            "task_id",
            "task_name",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
        assert_eq!(line["correlation_id"], correlation.as_str(), "{line}");
        assert_eq!(line["task_id"], "t-logs");
        let ts = line["timestamp"].as_str().unwrap();
        assert_eq!(
            ts.len(),
            "2026-11-23T20:35:48.123Z".len(),
            "milliseconds: {ts}"
        );
        assert!(ts.ends_with('Z'));
    }
    let find = |message: &str| {
        lines
            .iter()
            .filter(|l| l["message"] == message)
            .collect::<Vec<_>>()
    };
    assert_eq!(find("task started").len(), 1);
    let completed = find("step completed");
    assert_eq!(completed.len(), 1, "only the first step completes");
    let c = completed[0];
    assert_eq!(
        (
            c["level"].as_str(),
            c["step_name"].as_str(),
            c["attempt_number"].as_u64()
        ),
        (Some("INFO"), Some("first"), Some(1))
    );
    assert!(c["duration_ms"].as_f64().is_some() && c["performance_category"] == "fast");
    let retrying = find("step failed, will retry");
    assert_eq!(retrying.len(), 1);
    assert_eq!(retrying[0]["level"], "WARN");
    assert_eq!(retrying[0]["error_class"], "Unreachable");
    assert_eq!(find("step retrying").len(), 1);
    let failed = find("step failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (
            failed[0]["level"].as_str(),
            failed[0]["attempt_number"].as_u64()
        ),
        (Some("ERROR"), Some(2))
    );
    let task_failed = find("task failed");
    assert_eq!(task_failed[0]["level"], "ERROR");

    // The user's own lines inside process() carry the step's context, secrets filtered.
    let user = find("user line inside process()");
    assert_eq!(user.len(), 1);
    assert_eq!(user[0]["step_name"], "first");
    assert_eq!(user[0]["password"], "[FILTERED]");
    let spawned = find("line from a spawned task");
    assert_eq!(spawned.len(), 1);
    assert_eq!(spawned[0]["step_id"], "t-logs/first");
}

#[test]
fn other_formats_render_the_same_fields() {
    for (format, needle) in [
        (LogFormat::Logfmt, "message=\"hello world\" user=ada"),
        (LogFormat::Compact, "hello world user=ada"),
        (LogFormat::Pretty, "user: ada"),
    ] {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let layer =
            LogLayer::new(format, ParameterFilter::tasker_default()).with_writer(buffer.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::info!(user = "ada", "hello world");
        });
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        assert!(text.contains(needle), "{format:?}: {text}");
    }
}

/// A layer of the user's own that keeps the messages of lifecycle lines.
#[derive(Clone, Default)]
struct Lifecycle(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lifecycle {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message<'a>(&'a mut Vec<String>);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0.push(format!("{value:?}"));
                }
            }
        }
        if event.metadata().target() == tasker_telemetry::logging::LIFECYCLE_TARGET {
            event.record(&mut Message(&mut self.0.lock().unwrap()));
        }
    }
}

/// `structured_logging_enabled = false` is the log sink off: no layer gets lifecycle lines,
/// while the scopes' other sinks (here a subscriber to `step.completed`) carry on.
#[test]
fn structured_logging_off_builds_no_lifecycle_lines() {
    let run = |enabled: bool| {
        let mut config = tasker_telemetry::TelemetryConfig::default();
        config.structured_logging_enabled = enabled;
        let telemetry = Telemetry::new(config).unwrap();
        let delivered = Arc::new(Mutex::new(0));
        let count = delivered.clone();
        telemetry
            .publisher()
            .subscribe(
                &["step.completed"],
                tasker_telemetry::subscriber::from_fn("count", move |_| {
                    *count.lock().unwrap() += 1;
                }),
            )
            .unwrap();
        let seen = Lifecycle::default();
        tracing::subscriber::with_default(
            tracing_subscriber::registry().with(seen.clone()),
            || {
                let task = tasker_telemetry::TaskScope::new(&telemetry, "t-quiet", "checkout");
                let step = task.step("t-quiet/a", "a");
                let _: Result<u32, std::io::Error> = step.run_attempt(1, || Ok(1));
                task.complete(tasker_telemetry::scope::StepCounts::default());
            },
        );
        let lines = seen.0.lock().unwrap().clone();
        (lines, *delivered.lock().unwrap())
    };
    let (lines, delivered) = run(true);
    assert!(lines.contains(&"step completed".to_owned()), "{lines:?}");
    assert_eq!(delivered, 1);
    let (lines, delivered) = run(false);
    assert_eq!(lines, Vec::<String>::new());
    assert_eq!(delivered, 1);
}

/// The span pipeline's layer drops lifecycle lines (the span carries those moments as events),
/// but never for the layers beside it: a user's own layer and the log layer get every line.
#[test]
fn lifecycle_lines_reach_any_layer_beside_the_span_pipeline() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let config = tasker_telemetry::TelemetryConfig::default();
    let run = |subscriber: tracing::Dispatch| {
        tracing::dispatcher::with_default(&subscriber, || {
            let task = tasker_telemetry::TaskScope::new(&telemetry, "t-lines", "checkout");
            let step = task.step("t-lines/a", "a");
            let _: Result<u32, std::io::Error> = step.run_attempt(1, || Ok(1));
        });
    };

    let seen = Lifecycle::default();
    let pipeline = tasker_telemetry::spans::SpanPipeline::new(&config).unwrap();
    run(tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(pipeline.layer())
            .with(seen.clone()),
    ));
    assert_eq!(*seen.0.lock().unwrap(), ["step completed"]);

    let buffer = Arc::new(Mutex::new(Vec::new()));
    let logs = LogLayer::new(LogFormat::Json, ParameterFilter::tasker_default())
        .with_writer(buffer.clone());
    run(tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(pipeline.layer())
            .with(logs),
    ));
    let logged = lines(&buffer);
    assert!(
        logged.iter().any(|l| l["message"] == "step completed"),
        "{logged:#?}"
    );
    pipeline.shutdown();
}

/// Inside a span, every line names the span it was written in: `trace_id` and `span_id` as the
/// exported span carries them (the step's lifecycle lines the attempt's span, the user's line its
/// own `#[instrument]` span, the task's lines the task span); outside any span, neither key.
#[test]
fn lines_written_inside_a_span_carry_its_trace_and_span_ids() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let pipeline =
        tasker_telemetry::spans::SpanPipeline::new(&tasker_telemetry::TelemetryConfig::default())
            .unwrap();
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let logs = LogLayer::new(LogFormat::Json, ParameterFilter::tasker_default())
        .with_writer(buffer.clone());
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(pipeline.layer())
            .with(logs),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!("before any task");
        let task = tasker_telemetry::TaskScope::new(&telemetry, "t-ids", "checkout");
        let step = task.step("t-ids/a", "a").with_retry_limit(3);
        let ok: Result<u32, std::io::Error> = step.run_attempt(1, || {
            let span = tracing::info_span!("user.work");
            span.in_scope(|| tracing::info!("inside the user's span"));
            tracing::info!("inside the attempt");
            Ok(1)
        });
        assert!(ok.is_ok());
        let failed: Result<u32, std::io::Error> =
            step.run_attempt(2, || Err(std::io::Error::other("boom")));
        assert!(failed.is_err());
        task.fail(
            &tasker_telemetry::scope::Failure::new("boom", "Boom"),
            tasker_telemetry::scope::StepCounts::default(),
        );
    });
    let store = pipeline.store().expect("in-process store").clone();
    pipeline.shutdown();
    let spans = store.task_spans("t-ids");
    let span_named = |name: &str| {
        let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
        assert!(!found.is_empty(), "no span {name}: {spans:#?}");
        found
    };
    let task_span = span_named("tasker.task.execution")[0];
    let attempts = span_named("tasker.step.execution");
    let user_span = span_named("user.work")[0];
    let lines = lines(&buffer);
    let ids_of = |message: &str| {
        let line = lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no line {message:?}: {lines:#?}"));
        (
            line["trace_id"].as_str().map(str::to_owned),
            line["span_id"].as_str().map(str::to_owned),
        )
    };
    let ids = |span: &tasker_telemetry::spans::StoredSpan| {
        (Some(span.trace_id.clone()), Some(span.span_id.clone()))
    };
    assert_eq!(ids_of("before any task"), (None, None));
    assert_eq!(ids_of("inside the user's span"), ids(user_span));
    let first = attempts
        .iter()
        .find(|s| s.attribute("tasker.attempt_number") == Some("1"))
        .unwrap();
    let second = attempts
        .iter()
        .find(|s| s.attribute("tasker.attempt_number") == Some("2"))
        .unwrap();
    assert_eq!(ids_of("inside the attempt"), ids(first));
    assert_eq!(ids_of("step completed"), ids(first));
    assert_eq!(ids_of("step failed, will retry"), ids(second));
    assert_eq!(ids_of("task failed"), ids(task_span));
}
