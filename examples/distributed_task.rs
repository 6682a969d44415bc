//! One task across two processes, one trace: a producer creates the task (its
//! `tasker.task.execution` span and its correlation id) and hands the worker a carrier; the
//! worker runs the task's steps with the workflow runner as children of the producer's task span,
//! and both processes' JSON log lines carry the same correlation id.
//!
//! ```text
//! cargo run --example distributed_task                      # both processes, spans kept local
//! cargo run --example distributed_task -- <traces endpoint> # both, exporting over OTLP/HTTP
//! distributed_task producer [<traces endpoint>]             # the producer alone: prints the
//!                                                           # carrier on stderr, then waits
//!                                                           # for a line on stdin to finish
//! distributed_task worker <carrier JSON> [<traces endpoint>]
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};

use tasker_telemetry::correlation::CorrelationId;
use tasker_telemetry::scope::{StepCounts, TaskScope};
use tasker_telemetry::spans::TraceContext;
use tasker_telemetry::workflow::{RunOptions, StepDef, Workflow};
use tasker_telemetry::{Step, StepError, Task, TelemetryConfig, TelemetryGuard, step_handler};

/// The carrier's key for the correlation id, beside `traceparent` / `tracestate`.
const CORRELATION_KEY: &str = "x-correlation-id";
/// What the producer prints on stderr before the carrier.
const CARRIER_PREFIX: &str = "carrier: ";

type BoxError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("producer") => producer(args.get(1).map(String::as_str)),
        Some("worker") => match args.get(1) {
            Some(carrier) => worker(carrier, args.get(2).map(String::as_str)),
            None => Err("usage: distributed_task worker <carrier JSON> [<endpoint>]".into()),
        },
        endpoint => demo(endpoint),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("distributed_task: {e}");
            ExitCode::FAILURE
        }
    }
}

fn telemetry(service: &str, endpoint: Option<&str>) -> Result<TelemetryGuard, BoxError> {
    let mut config = TelemetryConfig::builder().service_name(service);
    if let Some(endpoint) = endpoint {
        config = config.otlp_traces_endpoint(endpoint);
    }
    Ok(tasker_telemetry::init_with(config.build()?)?)
}

/// Creates the task, hands its carrier over (stderr), and completes it once told the worker is
/// done (a line on stdin).
fn producer(endpoint: Option<&str>) -> Result<(), BoxError> {
    let guard = telemetry("order-api", endpoint)?;
    let task = TaskScope::new(guard.telemetry(), "order-2001", "fulfilment");
    task.start();
    let mut carrier = HashMap::new();
    task.inject(&mut carrier);
    carrier.insert(
        CORRELATION_KEY.to_owned(),
        task.correlation_id().as_str().to_owned(),
    );
    eprintln!("{CARRIER_PREFIX}{}", serde_json::to_string(&carrier)?);
    let mut done = String::new();
    std::io::stdin().read_line(&mut done)?;
    task.complete(StepCounts {
        total: 2,
        completed: 2,
        ..Default::default()
    });
    drop(task);
    let report = guard.shutdown();
    if !report.is_clean() {
        return Err(format!("spans not exported: {report:?}").into());
    }
    Ok(())
}

/// Picks the order.
struct PickItems;

#[step_handler]
impl PickItems {
    fn process(&self, task: &Task) -> Result<u64, StepError> {
        tracing::info!(task_id = task.id(), "picking items");
        Ok(3)
    }
}

/// Ships the order.
struct ShipParcel;

#[step_handler]
impl ShipParcel {
    async fn process(&self, step: &Step) -> Result<String, StepError> {
        tracing::info!(step = step.name(), "parcel handed to the carrier");
        Ok("parcel-7".to_owned())
    }
}

/// Runs the task's steps, joining the producer's trace and correlation id.
fn worker(carrier: &str, endpoint: Option<&str>) -> Result<(), BoxError> {
    let carrier: HashMap<String, String> = serde_json::from_str(carrier)?;
    let guard = telemetry("order-worker", endpoint)?;
    let parent = TraceContext::extract(&carrier)?.ok_or("the carrier has no traceparent")?;
    let correlation_id =
        CorrelationId::accept_or_generate(carrier.get(CORRELATION_KEY).map(String::as_str));
    let workflow = Workflow::builder("fulfilment")
        .handler(PickItems)
        .handler(ShipParcel)
        .step(StepDef::new("pick_items").handler("pick_items"))
        .step(
            StepDef::new("ship_parcel")
                .handler("ship_parcel")
                .depends_on(["pick_items"]),
        )
        .build()?;
    let options = RunOptions {
        parent: Some(parent),
        correlation_id: Some(correlation_id),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let outcome = runtime.block_on(workflow.run_with(
        guard.telemetry(),
        "order-2001",
        serde_json::json!({}),
        options,
    ));
    let report = guard.shutdown();
    if !outcome.is_complete() || !report.is_clean() {
        return Err(format!("worker: {outcome:?} / {report:?}").into());
    }
    Ok(())
}

/// Both processes, started from this one, as a deployment would run them.
fn demo(endpoint: Option<&str>) -> Result<(), BoxError> {
    let exe = std::env::current_exe()?;
    let mut producer = Command::new(&exe);
    producer.arg("producer").args(endpoint);
    let mut producer = producer
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = BufReader::new(producer.stderr.take().ok_or("no producer stderr")?);
    let mut line = String::new();
    stderr.read_line(&mut line)?;
    let carrier = line
        .trim_end()
        .strip_prefix(CARRIER_PREFIX)
        .ok_or_else(|| format!("the producer printed {line:?} instead of its carrier"))?
        .to_owned();
    let worker = Command::new(&exe)
        .arg("worker")
        .arg(&carrier)
        .args(endpoint)
        .status()?;
    producer
        .stdin
        .take()
        .ok_or("no producer stdin")?
        .write_all(b"done\n")?;
    let produced = producer.wait()?;
    if !worker.success() || !produced.success() {
        return Err(format!("worker {worker}, producer {produced}").into());
    }
    println!("one task, two processes: carrier {carrier}");
    Ok(())
}
