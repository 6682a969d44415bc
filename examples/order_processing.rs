//! The main example: a five-step order workflow run by the workflow runner, fully instrumented.
//!
//! fetch_cart -> validate_products -> {reserve_inventory, process_payment} -> send_confirmation,
//! where process_payment times out on its first attempt and succeeds on the retry.
//!
//! `cargo run --example order_processing` runs offline and prints the task's span tree, how many
//! of each event were published, and the `tasker_*` metrics in Prometheus text. With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported too. With `-- --serve`, `/metrics`,
//! `/health/*` and the task timeline page `/tasks` (its URL is printed) stay up on
//! 127.0.0.1:9464 (`--port N` for another; 0 for any free one) until the process is
//! interrupted, while the workflow runs in a loop, four orders a second, every fourth one
//! failing for good (its cart is missing): a live workload for a Prometheus to scrape and for
//! the dashboards of `cargo run --example dashboards`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use tasker_telemetry::http::MetricsServer;
use tasker_telemetry::metrics::prometheus_text;
use tasker_telemetry::workflow::{Backoff, StepDef, Workflow};
use tasker_telemetry::{Event, Sequence, Step, StepError, Task, step_handler, subscribe_to};

/// Loads the customer's cart.
struct FetchCart;

#[step_handler]
impl FetchCart {
    fn process(&self, task: &Task) -> Result<serde_json::Value, StepError> {
        let cart_id = task.context()["cart_id"]
            .as_u64()
            .ok_or_else(|| StepError::permanent("no cart_id"))?;
        Ok(
            serde_json::json!({"cart_id": cart_id, "items": [{"sku": "BOOK-1", "qty": 2}, {"sku": "PEN-7", "qty": 1}]}),
        )
    }
}

/// Checks that every product exists and is sold.
struct ValidateProducts;

#[step_handler]
impl ValidateProducts {
    fn process(&self, sequence: &Sequence) -> Result<usize, StepError> {
        let cart = sequence
            .results_of("fetch_cart")
            .ok_or_else(|| StepError::permanent("no cart"))?;
        Ok(cart["items"].as_array().map_or(0, Vec::len))
    }
}

/// Reserves stock for the order.
struct ReserveInventory;

#[step_handler]
impl ReserveInventory {
    async fn process(&self, sequence: &Sequence) -> Result<serde_json::Value, StepError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let items = sequence
            .results_of("validate_products")
            .cloned()
            .unwrap_or_default();
        Ok(serde_json::json!({"reserved": items}))
    }
}

/// A payment gateway that times out the first time it is called for an order.
#[derive(Debug)]
struct GatewayTimeout;

impl std::fmt::Display for GatewayTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("payment gateway timed out after 30 seconds")
    }
}

impl std::error::Error for GatewayTimeout {}

/// Charges the card.
struct ProcessPayment;

#[step_handler(retry_limit = 3)]
impl ProcessPayment {
    async fn process(&self, task: &Task, step: &Step) -> Result<serde_json::Value, GatewayTimeout> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        if step.attempt_number() == 1 {
            return Err(GatewayTimeout);
        }
        Ok(
            serde_json::json!({"charged_cents": task.context()["amount_cents"], "payment_token": "tok_live_123"}),
        )
    }
}

/// Emails the customer.
struct SendConfirmation;

#[step_handler]
impl SendConfirmation {
    fn process(&self, task: &Task) -> Result<String, StepError> {
        Ok(format!("confirmation sent for order {}", task.id()))
    }
}

/// Counts every event published, by name (a subscriber declared with `#[subscribe_to]` and wired
/// by `init()`).
#[derive(Default)]
struct EventCounter;

static COUNTS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

#[subscribe_to("*" => count)]
impl EventCounter {
    fn count(&self, event: &Event<'_>) {
        if let Ok(mut counts) = COUNTS.lock() {
            *counts.entry(event.name().to_string()).or_default() += 1;
        }
    }
}

/// `--serve` and `--port N` from the command line.
fn serve_port() -> Result<Option<u16>, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match args.iter().position(|a| a == "--port") {
        Some(i) => args
            .get(i + 1)
            .and_then(|p| p.parse().ok())
            .ok_or("--port takes a port number (0 for any free one)")?,
        None => 9464,
    };
    Ok(args.iter().any(|a| a == "--serve").then_some(port))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve = serve_port()?;
    let guard = tasker_telemetry::init()?;
    let telemetry = guard.telemetry();

    let workflow = Workflow::builder("order_processing")
        .handler(FetchCart)
        .handler(ValidateProducts)
        .handler(ReserveInventory)
        .handler(ProcessPayment)
        .handler(SendConfirmation)
        .step(StepDef::new("fetch_cart"))
        .step(StepDef::new("validate_products").depends_on(["fetch_cart"]))
        .step(StepDef::new("reserve_inventory").depends_on(["validate_products"]))
        .step(
            StepDef::new("process_payment")
                .depends_on(["validate_products"])
                .backoff(Backoff {
                    base: Duration::from_millis(50),
                    max: Duration::from_secs(1),
                    jitter: 0.0,
                }),
        )
        .step(
            StepDef::new("send_confirmation").depends_on(["reserve_inventory", "process_payment"]),
        )
        .build()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let order = |cart_id: Option<u64>| {
        let mut context =
            serde_json::json!({"amount_cents": 4999, "customer_email": "ada@example.com"});
        if let Some(cart_id) = cart_id {
            context["cart_id"] = cart_id.into();
        }
        context
    };
    let outcome = runtime.block_on(workflow.run(telemetry, "order-1001", order(Some(42))));
    guard.spans().flush();

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "task order-1001: {:?} in {:.0?}",
        outcome.status, outcome.duration
    )?;
    writeln!(out, "\n== span tree ==")?;
    if let Some(store) = guard.spans().store() {
        write!(out, "{}", store.task_tree("order-1001"))?;
    } else {
        writeln!(
            out,
            "(exported to {})",
            guard.spans().report().endpoint.unwrap_or_default()
        )?;
    }
    writeln!(out, "\n== events published ==")?;
    for (event, count) in COUNTS.lock().map_err(|_| "event counter poisoned")?.iter() {
        writeln!(out, "{event} {count}")?;
    }
    writeln!(out, "\n== metrics (Prometheus text) ==")?;
    let text = prometheus_text(&telemetry.metrics().snapshot());
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with("tasker_") && !l.contains("_bucket"))
    {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    drop(out);

    if let Some(port) = serve {
        let server = MetricsServer::local(telemetry, Some(guard.spans()), port)?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "\nserving http://{}/metrics and /health/* until interrupted",
            server.addr()
        )?;
        writeln!(out, "task timeline: http://{}/tasks", server.addr())?;
        out.flush()?;
        drop(out);
        // Orders in a loop, every fourth without a cart: fetch_cart fails for good.
        for n in 1002u64.. {
            let cart = (n % 4 != 0).then_some(n);
            runtime.block_on(workflow.run(telemetry, format!("order-{n}"), order(cart)));
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    if !outcome.is_complete() {
        return Err(format!("the order did not complete: {:?}", outcome.errors).into());
    }
    Ok(())
}
