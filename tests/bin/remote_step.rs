//! A second process for the cross-process trace test: runs one step of a task whose span lives
//! in the parent process, with the task's `traceparent`, exporting to the given OTLP endpoint.
//!
//! `remote_step <otlp traces endpoint> <traceparent> [correlation id]`; exits non-zero if anything
//! fails.

use std::process::ExitCode;

use tasker_telemetry::correlation::CorrelationId;
use tasker_telemetry::spans::{SpanPipeline, TraceContext};
use tasker_telemetry::{
    Sequence, StepError, StepHandler, Task, TaskScope, Telemetry, TelemetryConfig, step_handler,
};
use tracing_subscriber::layer::SubscriberExt;

/// The step run remotely.
struct ShipOrder;

#[step_handler]
impl ShipOrder {
    fn process(&self, task: &Task) -> Result<String, StepError> {
        Ok(format!("shipped {}", task.id()))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(endpoint), Some(traceparent)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: remote_step <otlp traces endpoint> <traceparent>");
        return ExitCode::from(2);
    };
    match run(endpoint, traceparent, args.get(3).map(String::as_str)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("remote_step: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    endpoint: &str,
    traceparent: &str,
    correlation: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = TelemetryConfig::builder()
        .service_name("remote-worker")
        .otlp_traces_endpoint(endpoint)
        .build()?;
    let pipeline = SpanPipeline::new(&config)?;
    let telemetry = Telemetry::new(config)?;
    let parent = TraceContext::parse(traceparent, None)?;
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    let output = tracing::subscriber::with_default(subscriber, || {
        let scope = TaskScope::remote(&telemetry, "t-remote", "order_processing", parent)
            .with_correlation_id(CorrelationId::accept_or_generate(correlation));
        let task = Task::from_scope(scope);
        let step = task.step("t-remote/ship", "ship_order");
        ShipOrder
            .handle(&task, &Sequence::new(), &step)
            .now()
            .ok_or("async output")?
            .map_err(|e| e.to_string())
    })?;
    let report = pipeline.shutdown();
    if output != serde_json::json!("shipped t-remote") || report.exported != 1 {
        return Err(format!("unexpected outcome {output} / {report:?}").into());
    }
    Ok(())
}
