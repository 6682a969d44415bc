//! The quick start: instrument a two-step task by hand with `TaskScope` / `StepScope`, and
//! subscribe to its lifecycle events.
//!
//! `cargo run --example quickstart`

use std::io::Write;
use std::sync::{Arc, Mutex};

use tasker_telemetry::scope::{StepCounts, TaskScope};
use tasker_telemetry::subscriber::helpers;
use tasker_telemetry::{Telemetry, TelemetryConfig, subscriber};

#[derive(Debug)]
struct CardDeclined;

impl std::fmt::Display for CardDeclined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined by issuer")
    }
}

impl std::error::Error for CardDeclined {}

fn charge_card(attempt: u32) -> Result<serde_json::Value, CardDeclined> {
    if attempt == 1 {
        Err(CardDeclined)
    } else {
        Ok(serde_json::json!({"charge_id": "ch_1", "api_key": "sk_live_x"}))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = TelemetryConfig::builder()
        .service_name("quickstart")
        .build()?
        .with_env()?;
    let telemetry = Telemetry::new(config)?;

    // One JSON line per event, through the same filter every sink uses.
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    telemetry.publisher().subscribe(
        &["task.*", "step.*"],
        subscriber::from_fn("json_lines", move |event| {
            let mut line = serde_json::to_string(event).unwrap_or_default();
            if event.name().as_str() == "step.failed" {
                let errors = helpers::error_metrics(event);
                line.push_str(&format!(
                    "  # error_type={} final={}",
                    errors.error_type, errors.final_failure
                ));
            }
            if let Ok(mut l) = sink.lock() {
                l.push(line);
            }
        }),
    )?;

    let task = TaskScope::new(&telemetry, "task-1", "order_processing")
        .with_context(serde_json::json!({"order_id": 1001, "customer_email": "ada@example.com"}));
    task.start();

    let fetch = task.step("task-1/fetch_cart", "fetch_cart");
    fetch.attempt(1).complete(&serde_json::json!({"items": 3}));

    let charge = task
        .step("task-1/charge_card", "charge_card")
        .with_retry_limit(2);
    for attempt in 1..=charge.retry_limit() {
        let scope = charge.attempt(attempt);
        let result = charge_card(attempt);
        let ok = result.is_ok();
        scope.finish(&result);
        if ok {
            break;
        }
    }
    task.complete(StepCounts {
        total: 2,
        completed: 2,
        failed: 0,
        pending: 0,
    });

    let mut out = std::io::stdout().lock();
    for line in lines
        .lock()
        .map_err(|_| "subscriber poisoned the lock")?
        .iter()
    {
        writeln!(out, "{line}")?;
    }
    Ok(())
}
