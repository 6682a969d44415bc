//! Spans exported over OTLP/HTTP, checked as a real OTLP receiver decoded them off the wire: one
//! trace per task, steps under the task span, a user's own span under its step, attributes,
//! statuses and exception events, durations, propagation to a second process, no secrets.

mod support;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::otlp_receiver::{ReceivedSpan, Receiver};
use tasker_telemetry::scope::StepCounts;
use tasker_telemetry::spans::{SpanPipeline, TaskTimeline};
use tasker_telemetry::{
    Sequence, Step, StepError, StepHandler, Task, Telemetry, TelemetryConfig, step_handler,
};
use tracing_subscriber::layer::SubscriberExt;

const SECRET: &str = "sk_live_DO_NOT_LEAK_4242";
const WAIT: Duration = Duration::from_secs(20);

/// How long each process() ran, measured inside it.
static PROCESS_TIMES: Mutex<Vec<(String, Duration)>> = Mutex::new(Vec::new());

fn timed<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    PROCESS_TIMES
        .lock()
        .unwrap()
        .push((label.to_owned(), start.elapsed()));
    out
}

/// Busy work that takes a few milliseconds, so durations are measurable.
fn work(millis: u64) -> u64 {
    let until = Instant::now() + Duration::from_millis(millis);
    let mut n = 0u64;
    while Instant::now() < until {
        n = n.wrapping_add(1);
    }
    n
}

struct FetchCart;

#[step_handler]
impl FetchCart {
    fn process(&self, step: &Step) -> Result<u64, StepError> {
        Ok(timed(
            &format!("{}#{}", step.name(), step.attempt_number()),
            || work(15),
        ))
    }
}

struct ProcessPayment;

#[step_handler(retry_limit = 3)]
impl ProcessPayment {
    fn process(&self, step: &Step) -> Result<u64, StepError> {
        timed(
            &format!("{}#{}", step.name(), step.attempt_number()),
            || {
                work(5);
                if step.attempt_number() == 1 {
                    Err(StepError::new("gateway timed out").with_class("GatewayTimeout"))
                } else {
                    Ok(42)
                }
            },
        )
    }
}

struct SendConfirmation;

#[tracing::instrument(name = "user.render_email", skip_all)]
fn render_email() -> String {
    work(3);
    "email".to_owned()
}

#[step_handler]
impl SendConfirmation {
    fn process(&self, step: &Step) -> Result<String, StepError> {
        Ok(timed(
            &format!("{}#{}", step.name(), step.attempt_number()),
            render_email,
        ))
    }
}

fn pipeline_for(receiver: &Receiver, service: &str) -> (SpanPipeline, Telemetry) {
    let config = TelemetryConfig::builder()
        .service_name(service)
        .otlp_traces_endpoint(receiver.endpoint())
        .build()
        .unwrap();
    (
        SpanPipeline::new(&config).unwrap(),
        Telemetry::new(config).unwrap(),
    )
}

fn by_name<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[test]
fn a_three_step_task_is_one_trace_with_steps_under_the_task() {
    let receiver = Receiver::start();
    let (pipeline, telemetry) = pipeline_for(&receiver, "spans-e2e");
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    tracing::subscriber::with_default(subscriber, || {
        let task = Task::new(
            &telemetry,
            "t-100",
            "order_processing",
            serde_json::json!({"cart_id": 7, "api_token": SECRET, "customer": {"password": SECRET}}),
        );
        task.scope().start();
        let sequence = Sequence::new();
        let run = |handler: &dyn StepHandler, name: &str, attempt: u32| {
            let step = task
                .step(format!("t-100/{name}"), name.to_owned())
                .with_attempt(attempt)
                .with_inputs(serde_json::json!({"card_token": SECRET}));
            handler.handle(&task, &sequence, &step).now().unwrap()
        };
        assert!(run(&FetchCart, "fetch_cart", 1).is_ok());
        assert!(run(&ProcessPayment, "process_payment", 1).is_err());
        assert!(run(&ProcessPayment, "process_payment", 2).is_ok());
        assert!(run(&SendConfirmation, "send_confirmation", 1).is_ok());
        task.scope().complete(StepCounts {
            total: 3,
            completed: 3,
            failed: 0,
            pending: 0,
        });
    });
    let report = pipeline.shutdown();
    assert_eq!(report.exported, 6, "{report:?}");
    assert!(report.is_clean(), "{report:?}");

    let spans = receiver.wait_for_spans(6, WAIT);
    assert_eq!(spans.len(), 6, "{spans:#?}");
    assert!(
        receiver.decode_errors().is_empty(),
        "{:?}",
        receiver.decode_errors()
    );

    // The in-process store keeps the task as well, with the endpoint set: the same spans the
    // receiver decoded, through the same parameter filter.
    let store = pipeline.store().expect("a store beside the OTLP endpoint");
    let mut kept: Vec<String> = store
        .task_spans("t-100")
        .into_iter()
        .map(|s| s.span_id)
        .collect();
    let mut received: Vec<String> = spans.iter().map(|s| s.span_id.clone()).collect();
    kept.sort();
    received.sort();
    assert_eq!(kept, received);
    let timeline = TaskTimeline::of(store, "t-100").unwrap();
    assert_eq!(
        (
            timeline.summary.steps,
            timeline.summary.attempts,
            timeline.summary.failed_attempts
        ),
        (3, 4, 1),
        "{timeline:#?}"
    );
    assert!(!serde_json::to_string(&timeline).unwrap().contains(SECRET));

    // One trace, one root.
    let trace = &spans[0].trace_id;
    assert!(spans.iter().all(|s| &s.trace_id == trace), "one trace");
    let roots: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1);
    let task = roots[0];
    assert_eq!(task.name, "tasker.task.execution");
    assert_eq!(
        task.attr("tasker.task_id").and_then(|v| v.as_str()),
        Some("t-100")
    );
    assert_eq!(
        task.attr("tasker.task_name").and_then(|v| v.as_str()),
        Some("order_processing")
    );
    assert_eq!(
        task.attr("tasker.total_steps").and_then(|v| v.as_i64()),
        Some(3),
        "{:?}",
        task.attributes
    );
    assert_eq!(
        task.attr("tasker.completed_steps").and_then(|v| v.as_i64()),
        Some(3)
    );
    assert_eq!(
        task.attr("tasker.failed_steps").and_then(|v| v.as_i64()),
        Some(0)
    );
    assert_eq!(task.status_code, 1, "task OK");
    assert!(task.event("task.started").is_some() && task.event("task.completed").is_some());
    assert_eq!(
        task.resource.get("service.name").and_then(|v| v.as_str()),
        Some("spans-e2e")
    );
    assert_eq!(
        task.resource
            .get("service.framework")
            .and_then(|v| v.as_str()),
        Some("tasker")
    );
    assert!(task.resource.contains_key("service.version"));

    // Every step attempt is a child of the task span, with its attributes.
    let steps = by_name(&spans, "tasker.step.execution");
    assert_eq!(steps.len(), 4);
    for step in &steps {
        assert_eq!(step.parent_span_id, task.span_id, "{}", step.name);
        // Each attribute exactly once: the text ones are added apart from the numeric ones.
        let mut keys = step.attribute_keys.clone();
        keys.sort();
        assert_eq!(
            keys,
            [
                "tasker.attempt_number",
                "tasker.correlation_id",
                "tasker.execution_duration",
                "tasker.retry_limit",
                "tasker.step_id",
                "tasker.step_name",
                "tasker.task_id",
                "tasker.task_name",
            ],
            "attributes of {:?}",
            step.attr("tasker.step_name")
        );
    }
    let step_names: std::collections::BTreeSet<_> = steps
        .iter()
        .filter_map(|s| s.attr("tasker.step_name").and_then(|v| v.as_str()))
        .collect();
    assert_eq!(step_names.len(), 3, "{step_names:?}");
    assert!(
        steps
            .iter()
            .all(|s| s.attr("tasker.task_id") == task.attr("tasker.task_id")
                && s.attr("tasker.task_name") == task.attr("tasker.task_name")),
        "steps carry their task's id and name"
    );
    let attempt = |name: &str, n: i64| {
        *steps
            .iter()
            .find(|s| {
                s.attr("tasker.step_name").and_then(|v| v.as_str()) == Some(name)
                    && s.attr("tasker.attempt_number").and_then(|v| v.as_i64()) == Some(n)
            })
            .unwrap_or_else(|| panic!("{name}#{n}"))
    };

    // The failing attempt: ERROR with the message, and an exception event.
    let failed = attempt("process_payment", 1);
    assert_eq!(failed.status_code, 2);
    assert_eq!(failed.status_message, "gateway timed out");
    assert_eq!(
        failed.attr("tasker.retry_limit").and_then(|v| v.as_i64()),
        Some(3)
    );
    let exception = failed.event("step.failed").expect("step.failed span event");
    assert_eq!(
        exception
            .attributes
            .get("exception.type")
            .and_then(|v| v.as_str()),
        Some("GatewayTimeout")
    );
    assert_eq!(
        exception
            .attributes
            .get("exception.message")
            .and_then(|v| v.as_str()),
        Some("gateway timed out")
    );
    let retried = attempt("process_payment", 2);
    assert_eq!(retried.status_code, 1);
    assert!(retried.event("step.completed").is_some());

    // The user's own #[instrument] span nests under its step.
    let confirm = attempt("send_confirmation", 1);
    let user = by_name(&spans, "user.render_email");
    assert_eq!(user.len(), 1);
    assert_eq!(user[0].parent_span_id, confirm.span_id);

    // Step spans last as long as process() did (within 5 ms).
    for (label, measured) in PROCESS_TIMES.lock().unwrap().iter() {
        let (name, n) = label.split_once('#').unwrap();
        let span = attempt(name, n.parse().unwrap());
        let diff = span.duration().abs_diff(*measured);
        assert!(
            diff < Duration::from_millis(5),
            "{label}: span {:?} vs process {measured:?}",
            span.duration()
        );
    }

    // Secrets under default filter keys never reach the collector.
    let bytes = receiver.raw_bodies();
    assert!(!bytes.is_empty());
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "secret leaked"
    );
}

#[test]
fn a_step_in_another_process_joins_the_task_trace() {
    let receiver = Receiver::start();
    let (pipeline, telemetry) = pipeline_for(&receiver, "spans-e2e-parent");
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    let traceparent = tracing::subscriber::with_default(subscriber, || {
        let task = Task::new(
            &telemetry,
            "t-remote",
            "order_processing",
            serde_json::Value::Null,
        );
        let traceparent = task
            .scope()
            .trace_context()
            .expect("task has a trace context")
            .traceparent();
        let status = Command::new(env!("CARGO_BIN_EXE_remote_step"))
            .arg(receiver.endpoint())
            .arg(&traceparent)
            .arg(task.scope().correlation_id().as_str())
            .status()
            .expect("second process starts");
        assert!(status.success(), "remote step failed: {status}");
        task.scope().complete(StepCounts {
            total: 1,
            completed: 1,
            ..Default::default()
        });
        traceparent
    });
    pipeline.shutdown();
    let spans = receiver.wait_for_spans(2, WAIT);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let task = by_name(&spans, "tasker.task.execution")[0];
    let step = by_name(&spans, "tasker.step.execution")[0];
    assert!(traceparent.contains(&task.trace_id) && traceparent.contains(&task.span_id));
    assert_eq!(step.trace_id, task.trace_id, "same trace");
    assert_eq!(step.parent_span_id, task.span_id, "child of the task span");
    assert_eq!(
        step.resource.get("service.name").and_then(|v| v.as_str()),
        Some("remote-worker")
    );
    let correlation = task
        .attr("tasker.correlation_id")
        .and_then(|v| v.as_str())
        .unwrap();
    assert!(correlation.starts_with("tsk_"));
    assert_eq!(
        step.attr("tasker.correlation_id").and_then(|v| v.as_str()),
        Some(correlation),
        "the correlation id crossed the process boundary"
    );
}

#[test]
fn a_malformed_traceparent_is_an_error_and_the_task_starts_fresh() {
    let before = tasker_telemetry::spans::rejected_traceparents();
    let err = tasker_telemetry::spans::TraceContext::parse("00-not-a-trace-01", None).unwrap_err();
    assert!(err.to_string().contains("malformed traceparent"), "{err}");
    assert!(tasker_telemetry::spans::rejected_traceparents() > before);
}
