//! Two subscribers declared with `#[subscribe_to]`, fed by `#[step_handler]` steps:
//!
//! - `PrometheusMetrics`, a metrics subscriber built on the `subscriber::helpers` (timing and
//!   error metrics, bounded tags, Prometheus metric names) that pushes a Prometheus-style
//!   exposition when a task ends, as a batch job pushes to a Pushgateway;
//! - `SentryReporter`, an error subscriber that turns `step.failed` and
//!   `observability.step.max_retries_reached` into the JSON a Sentry client would send.
//!
//! Nothing leaves the process: the two statics `PUSHGATEWAY` and `SENTRY_OUTBOX` stand in for
//! the network, and `main` prints and checks what reached them. Registered subscribers are built
//! by `Publisher::subscribe_registered` (from `Default`), so whatever `main` reads afterwards must
//! be reachable from outside the instance.
//!
//! Two tasks run: in `order-1001` the payment gateway times out once and the retry succeeds; in
//! `order-1002` the gateway is down and the payment step uses up its three attempts.
//!
//! `cargo run --example custom_subscriber`

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tasker_telemetry::event::names;
use tasker_telemetry::payload::ErrorPayload;
use tasker_telemetry::scope::{Failure, StepCounts};
use tasker_telemetry::subscriber::helpers::{self, ErrorType};
use tasker_telemetry::{
    Event, Sequence, Step, StepError, StepHandler, Task, Telemetry, step_handler, subscribe_to,
};

// ---------------------------------------------------------------------------------------------
// The "network": what the subscribers would have sent.

/// The last exposition `PrometheusMetrics` pushed (a stand-in for a Pushgateway).
static PUSHGATEWAY: Mutex<Option<String>> = Mutex::new(None);

/// The events `SentryReporter` would have sent, in order (a stand-in for Sentry's transport).
static SENTRY_OUTBOX: Mutex<Vec<serde_json::Value>> = Mutex::new(Vec::new());

/// Locks a mutex even if a panicking subscriber poisoned it (the publisher catches such panics).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// A metrics subscriber.

/// Counters and duration summaries, keyed by Prometheus metric name and bounded labels.
#[derive(Default)]
struct PrometheusMetrics {
    /// Every event received.
    events: AtomicU64,
    /// `step.failed` events that used up the step's last attempt.
    final_failures: AtomicU64,
    /// `(metric name, labels)` to value; counters and `_sum` / `_count` pairs.
    series: Mutex<BTreeMap<(String, String), f64>>,
}

#[subscribe_to("step.completed", "step.failed", "task.completed", "task.failed")]
impl PrometheusMetrics {
    fn handle_step_completed(&self, event: &Event<'_>) {
        self.count(event);
        self.observe_duration(event);
    }

    fn handle_step_failed(&self, event: &Event<'_>) {
        self.count(event);
        if helpers::error_metrics(event).final_failure {
            self.final_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn handle_task_completed(&self, event: &Event<'_>) {
        self.count(event);
        self.observe_duration(event);
        self.push();
    }

    fn handle_task_failed(&self, event: &Event<'_>) {
        self.count(event);
        self.observe_duration(event);
        self.push();
    }
}

impl PrometheusMetrics {
    /// `tasker_<event>_total{task_name, step_name[, error_type]}` += 1.
    fn count(&self, event: &Event<'_>) {
        self.events.fetch_add(1, Ordering::Relaxed);
        let name = helpers::prometheus_metric_name("tasker", event.name().as_str()) + "_total";
        *lock(&self.series).entry((name, labels(event))).or_default() += 1.0;
    }

    /// `tasker_<event>_duration_seconds_{sum,count}{task_name, step_name}`.
    fn observe_duration(&self, event: &Event<'_>) {
        let timing = helpers::timing_metrics(event);
        let base = helpers::prometheus_metric_name("tasker", event.name().as_str());
        let labels = labels(event);
        let mut series = lock(&self.series);
        *series
            .entry((format!("{base}_duration_seconds_sum"), labels.clone()))
            .or_default() += timing.execution_duration;
        *series
            .entry((format!("{base}_duration_seconds_count"), labels))
            .or_default() += 1.0;
    }

    /// Renders the exposition and "pushes" it.
    fn push(&self) {
        let mut text = String::new();
        let mut family = "";
        let series = lock(&self.series);
        for ((name, labels), value) in series.iter() {
            let base = name
                .strip_suffix("_sum")
                .or_else(|| name.strip_suffix("_count"))
                .unwrap_or(name);
            if base != family {
                family = base;
                let kind = if base == name { "counter" } else { "summary" };
                let _ = writeln!(text, "# TYPE {base} {kind}");
            }
            let _ = writeln!(text, "{name}{{{labels}}} {value}");
        }
        let _ = writeln!(
            text,
            "# events received: {}, final step failures: {}",
            self.events.load(Ordering::Relaxed),
            self.final_failures.load(Ordering::Relaxed)
        );
        *lock(&PUSHGATEWAY) = Some(text);
    }
}

/// The event's bounded tags as Prometheus labels; the event type is already in the metric name.
fn labels(event: &Event<'_>) -> String {
    helpers::metric_tags(event)
        .into_iter()
        .filter(|(key, _)| *key != "event_type")
        .map(|(key, value)| format!("{key}=\"{value}\""))
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------------------------------
// An error-reporting subscriber.

/// Builds the Sentry event for each step failure; sends nothing.
#[derive(Default)]
struct SentryReporter {
    /// Events built so far; numbers the event ids.
    sent: AtomicU64,
}

#[subscribe_to("step.failed", "observability.step.max_retries_reached")]
impl SentryReporter {
    fn handle_step_failed(&self, event: &Event<'_>) {
        let errors = helpers::error_metrics(event);
        // A failure that will be retried is a warning; the last attempt's failure is an error.
        let level = if errors.final_failure {
            "error"
        } else {
            "warning"
        };
        let step = helpers::get_str(event, "step_name", "unknown_step");
        let message = format!("{step} failed: {}", errors.error_message);
        self.send(event, level, message);
    }

    fn handle_observability_step_max_retries_reached(&self, event: &Event<'_>) {
        let errors = helpers::error_metrics(event);
        let step = helpers::get_str(event, "step_name", "unknown_step");
        let message = format!("{step} used up its {} attempts", errors.retry_limit);
        self.send(event, "fatal", message);
    }
}

impl SentryReporter {
    fn send(&self, event: &Event<'_>, level: &str, message: String) {
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        let errors = helpers::error_metrics(event);
        let tags: serde_json::Map<String, serde_json::Value> = helpers::metric_tags(event)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        // The whole event as Tasker's flat JSON, already through the sensitive-data filter.
        let payload = serde_json::to_value(event).unwrap_or_default();
        let mut body = serde_json::json!({
            // Sentry ids are 32 hex digits; numbered here so that the output is reproducible.
            "event_id": format!("{n:032x}"),
            "timestamp": event.timestamp(),
            "level": level,
            "message": message,
            "exception": [{
                "type": errors.error_class,
                "value": errors.error_message,
            }],
            "tags": tags,
            "extra": {
                "error_type": errors.error_type.as_str(),
                "final_failure": errors.final_failure,
                "attempt": format!("{}/{}", errors.attempt_number, errors.retry_limit),
                "task_id": payload["task_id"],
                "step_id": payload["step_id"],
                "inputs": payload["inputs"],
            },
        });
        if let Some(extra) = body["extra"].as_object_mut() {
            extra.retain(|_, v| !v.is_null());
        }
        lock(&SENTRY_OUTBOX).push(body);
    }
}

// ---------------------------------------------------------------------------------------------
// The steps.

/// The payment gateway did not answer in time.
#[derive(Debug)]
struct GatewayTimeout {
    after_ms: u64,
}

impl std::fmt::Display for GatewayTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "payment gateway timed out after {} ms", self.after_ms)
    }
}

impl std::error::Error for GatewayTimeout {}

/// Checks the cart is not empty; returns its item count.
#[step_handler]
fn validate_cart(task: &Task) -> Result<u64, StepError> {
    match task.context()["items"].as_u64() {
        Some(items) if items > 0 => Ok(items),
        _ => Err(StepError::permanent("the cart is empty").with_class("EmptyCart")),
    }
}

/// Charges the card: the gateway times out on the first attempt (and on every attempt when the
/// task's context says it is down).
struct ProcessPayment;

#[step_handler(retry_limit = 3)]
impl ProcessPayment {
    fn process(
        &self,
        task: &Task,
        sequence: &Sequence,
        step: &Step,
    ) -> Result<serde_json::Value, GatewayTimeout> {
        let gateway_down = task.context()["gateway_down"].as_bool().unwrap_or(false);
        if gateway_down || step.attempt_number() == 1 {
            return Err(GatewayTimeout { after_ms: 30_000 });
        }
        Ok(serde_json::json!({
            "charge_id": format!("ch_{}", task.id()),
            "items": sequence.results_of("validate_cart"),
        }))
    }
}

const NOT_READY: &str = "a synchronous step handler is always ready";

/// Runs one task: the cart check, then the payment with up to its retry limit of attempts.
/// Returns whether the payment went through.
fn run_order(
    telemetry: &Telemetry,
    id: &str,
    context: serde_json::Value,
) -> Result<bool, Box<dyn std::error::Error>> {
    let task = Task::new(telemetry, id, "order_processing", context);
    task.scope().start();
    let mut sequence = Sequence::new();

    let validate = task.step(format!("{id}/validate_cart"), "validate_cart");
    // A synchronous process() is done when handle() returns: `now()` reads its outcome (and
    // hands back the future for an async one, which this example has none of).
    let output = ValidateCart
        .handle(&task, &sequence, &validate)
        .now()
        .ok_or(NOT_READY)?;
    if let Ok(items) = output {
        sequence.record("validate_cart", items);
    }

    let inputs = serde_json::json!({"amount_cents": 4999, "card_token": "tok_visa_4242"});
    let retry_limit = ProcessPayment.retry_limit().unwrap_or(1);
    let mut paid = false;
    let mut last = None;
    for attempt in 1..=retry_limit {
        let step = task
            .step(format!("{id}/process_payment"), "process_payment")
            .with_inputs(inputs.clone())
            .with_attempt(attempt);
        let output = ProcessPayment
            .handle(&task, &sequence, &step)
            .now()
            .ok_or(NOT_READY)?;
        match output {
            Ok(charge) => {
                sequence.record("process_payment", charge);
                paid = true;
                break;
            }
            // The error as events reported it: message and the concrete type's name.
            Err(error) => last = Some((step, error)),
        }
    }

    let completed = sequence.step_names().count() as u64;
    if paid {
        task.scope().complete(StepCounts {
            total: 2,
            completed,
            failed: 0,
            pending: 0,
        });
    } else if let Some((step, error)) = last {
        // What the workflow runner (a later milestone) publishes when a step runs out of
        // attempts; published here by hand.
        let failure = Failure::new(error.message().to_owned(), error.class().to_owned());
        step.scope()
            .publish(names::OBSERVABILITY_STEP_MAX_RETRIES_REACHED, |s| {
                let mut p = ErrorPayload::for_task(
                    id.to_owned(),
                    "order_processing",
                    failure.message().to_owned(),
                    failure.class().to_owned(),
                );
                p.step_id = Some(s.id().into());
                p.step_name = Some(s.name().into());
                p.attempt_number = Some(retry_limit);
                p.retry_limit = Some(retry_limit);
                p
            });
        task.scope().fail(
            &failure,
            StepCounts {
                total: 2,
                completed,
                failed: 1,
                pending: 0,
            },
        );
    }
    Ok(paid)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = Telemetry::new(Default::default())?;
    let wired = telemetry.publisher().subscribe_registered()?;
    assert_eq!(wired.len(), 2, "PrometheusMetrics and SentryReporter");

    let context = |gateway_down: bool| {
        serde_json::json!({
            "items": 3,
            "customer_email": "ada@example.com",
            "gateway_down": gateway_down,
        })
    };
    let first = run_order(&telemetry, "order-1001", context(false))?;
    let second = run_order(&telemetry, "order-1002", context(true))?;
    assert!(first && !second);

    let mut out = std::io::stdout().lock();

    writeln!(out, "== what SentryReporter would have sent ==")?;
    let outbox = lock(&SENTRY_OUTBOX).clone();
    for body in &outbox {
        writeln!(out, "{body}")?;
    }

    writeln!(
        out,
        "\n== what PrometheusMetrics pushed after the last task =="
    )?;
    let exposition = lock(&PUSHGATEWAY).clone().ok_or("nothing was pushed")?;
    write!(out, "{exposition}")?;

    // Sentry: attempt 1 of order-1001 (retried), attempts 1-3 of order-1002, then max retries.
    let levels: Vec<&str> = outbox.iter().filter_map(|b| b["level"].as_str()).collect();
    assert_eq!(
        levels,
        ["warning", "warning", "warning", "error", "fatal"],
        "one retried failure in order-1001; three attempts, the last final, in order-1002"
    );
    let first_failure = &outbox[0];
    // error_class is the concrete error type's name.
    assert_eq!(
        first_failure["exception"][0]["type"],
        std::any::type_name::<GatewayTimeout>()
    );
    assert_eq!(
        first_failure["extra"]["error_type"],
        ErrorType::Timeout.as_str()
    );
    assert_eq!(first_failure["extra"]["final_failure"], false);
    assert_eq!(first_failure["extra"]["attempt"], "1/3");
    assert_eq!(first_failure["tags"]["step_name"], "process_payment");
    assert_eq!(first_failure["tags"]["error_type"], "timeout");
    // Sensitive inputs and context never reach the reporter unfiltered.
    assert_eq!(first_failure["extra"]["inputs"]["card_token"], "[FILTERED]");
    assert_eq!(first_failure["extra"]["inputs"]["amount_cents"], 4999);
    assert_eq!(outbox[3]["extra"]["final_failure"], true);
    assert_eq!(
        outbox[4]["message"],
        "process_payment used up its 3 attempts"
    );

    // Metrics: counters per step, error type as a label, one push per task.
    let expected = [
        "tasker_step_completed_total{task_name=\"order_processing\",step_name=\"process_payment\"} 1",
        "tasker_step_completed_total{task_name=\"order_processing\",step_name=\"validate_cart\"} 2",
        "tasker_step_failed_total{task_name=\"order_processing\",step_name=\"process_payment\",error_type=\"timeout\"} 4",
        "tasker_task_completed_total{task_name=\"order_processing\"} 1",
        "tasker_task_failed_total{task_name=\"order_processing\",error_type=\"timeout\"} 1",
        "tasker_task_completed_duration_seconds_count{task_name=\"order_processing\"} 1",
        "# events received: 9, final step failures: 1",
    ];
    for line in expected {
        assert!(
            exposition.lines().any(|l| l == line),
            "missing from the exposition: {line}"
        );
    }
    // Nothing panicked, and each subscriber received what it subscribed to.
    let delivered: Vec<(u64, u64)> = wired
        .iter()
        .map(|h| (h.stats().delivered, h.stats().panics))
        .collect();
    assert!(delivered.iter().all(|&(_, panics)| panics == 0));
    assert_eq!(
        delivered.iter().map(|&(d, _)| d).sum::<u64>(),
        9 + 5,
        "9 metrics events, 5 Sentry events"
    );
    writeln!(out, "\nall checks passed")?;
    Ok(())
}
