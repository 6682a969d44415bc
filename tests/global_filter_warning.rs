//! A user's own `tracing` stack: with per-layer filtering the span pipeline exports, with a global
//! filter that disables the `tasker` spans it cannot, and then says so, once, with the fix.

use std::sync::{Arc, Mutex};

use tasker_telemetry::spans::SpanPipeline;
use tasker_telemetry::{TaskScope, Telemetry, TelemetryConfig};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the messages of the `warn` and `error` events it sees.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        if *event.metadata().level() <= tracing::Level::WARN {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().push(message.0);
        }
    }
}

fn run_task(telemetry: &Telemetry, id: &str) {
    let task = TaskScope::new(telemetry, id, "checkout");
    let step = task.step(format!("{id}-1"), "charge");
    step.attempt(1).complete(&"ok");
}

#[test]
fn a_global_filter_that_hides_the_spans_is_reported_once_with_the_fix() {
    let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();

    // Per-layer filtering, as README shows: the other layer is filtered, the spans are not.
    let pipeline = SpanPipeline::new(&TelemetryConfig::default()).unwrap();
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry()
        .with(warnings.clone().with_filter(EnvFilter::new("error")))
        .with(pipeline.layer());
    tracing::subscriber::with_default(subscriber, || run_task(&telemetry, "per-layer"));
    assert_eq!(pipeline.shutdown().exported, 2);
    assert!(warnings.0.lock().unwrap().is_empty());

    // A global filter that lets only errors through (`EnvFilter`'s default with RUST_LOG unset):
    // the `tasker` spans are disabled.
    let pipeline = SpanPipeline::new(&TelemetryConfig::default()).unwrap();
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry()
        .with(warnings.clone())
        .with(pipeline.layer())
        .with(EnvFilter::new("error"));
    tracing::subscriber::with_default(subscriber, || {
        run_task(&telemetry, "global-1");
        run_task(&telemetry, "global-2");
    });
    assert_eq!(pipeline.shutdown().exported, 0);
    let warnings = warnings.0.lock().unwrap().clone();
    assert_eq!(warnings.len(), 1, "once: {warnings:?}");
    assert!(
        warnings[0].contains("global filter") && warnings[0].contains("with_filter"),
        "{warnings:?}"
    );
}
