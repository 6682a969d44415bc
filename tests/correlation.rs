//! A task's correlation id is on every event and span of that task; incoming ids are validated.

use std::sync::{Arc, Mutex};

use tasker_telemetry::correlation::{CorrelationId, rejected_correlation_ids};
use tasker_telemetry::spans::SpanPipeline;
use tasker_telemetry::workflow::{RunOptions, StepDef, Workflow};
use tasker_telemetry::{Step, StepError, Telemetry, TelemetryConfig, step_handler, subscriber};
use tracing_subscriber::layer::SubscriberExt;

struct Work;

#[step_handler]
impl Work {
    async fn process(&self, step: &Step) -> Result<u32, StepError> {
        // A tokio task spawned inside process(), carrying the step's span along.
        let attempt = step.attempt_number();
        let spawned = tokio::spawn(tracing::Instrument::in_current_span(async move {
            tracing::info_span!("user.background").in_scope(|| attempt)
        }));
        spawned.await.map_err(|e| StepError::new(e.to_string()))
    }
}

#[tokio::test]
async fn the_correlation_id_is_on_every_event_and_span_of_its_task() {
    let config = TelemetryConfig::default();
    let pipeline = SpanPipeline::new(&config).unwrap();
    let telemetry = Telemetry::new(config).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    telemetry
        .publisher()
        .subscribe(
            &["*"],
            subscriber::from_fn("all", move |e| {
                sink.lock()
                    .unwrap()
                    .push((e.name().to_string(), e.correlation_id().map(str::to_owned)));
            }),
        )
        .unwrap();
    let workflow = Workflow::builder("correlated")
        .handler(Work)
        .step(StepDef::new("one").handler("work"))
        .step(StepDef::new("two").handler("work").depends_on(["one"]))
        .build()
        .unwrap();
    let incoming = CorrelationId::parse("req-2024-abc").unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(pipeline.layer()));
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let options = RunOptions {
        correlation_id: Some(incoming.clone()),
        ..Default::default()
    };
    let outcome = workflow
        .run_with(&telemetry, "t-corr", serde_json::json!({}), options)
        .await;
    assert!(outcome.is_complete(), "{outcome:?}");
    drop(_guard);
    pipeline.shutdown();

    let events = events.lock().unwrap().clone();
    assert!(events.len() > 20);
    for (name, id) in &events {
        assert_eq!(
            id.as_deref(),
            Some("req-2024-abc"),
            "{name} lacks the correlation id"
        );
    }
    let spans = pipeline.store().unwrap().task_spans("t-corr");
    let tasker_spans: Vec<_> = spans
        .iter()
        .filter(|s| s.name.starts_with("tasker."))
        .collect();
    assert_eq!(tasker_spans.len(), 3, "{spans:#?}");
    for span in tasker_spans {
        assert_eq!(
            span.attribute("tasker.correlation_id"),
            Some("req-2024-abc"),
            "{}",
            span.name
        );
    }
    // The spawned task's span joined the step's trace.
    let background: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "user.background")
        .collect();
    assert_eq!(background.len(), 2);
}

#[test]
fn invalid_incoming_ids_are_replaced_and_counted() {
    let before = rejected_correlation_ids();
    let replaced = CorrelationId::accept_or_generate(Some("drop table;--"));
    assert!(replaced.as_str().starts_with("tsk_"));
    assert_eq!(rejected_correlation_ids(), before + 1);
    let kept = CorrelationId::accept_or_generate(Some("order-9"));
    assert_eq!(kept.as_str(), "order-9");
    assert_eq!(rejected_correlation_ids(), before + 1);
}
