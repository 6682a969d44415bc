//! The error types users write `process()` with, as `step.failed` reports them: anyhow, eyre,
//! boxed errors, thiserror enums, `StepError`; the class is the most specific type that can be
//! known, the message carries the cause chain, a carried backtrace is reported, and a
//! `Retryable` error that says "permanent" ends the step's attempts in the workflow runner.
//! (Backtraces: `handler_error_backtrace.rs`, a process of its own because it sets the
//! environment.)

use std::sync::{Arc, Mutex};

use tasker_telemetry::handler::Retryable;
use tasker_telemetry::workflow::{StepDef, StepState, Workflow};
use tasker_telemetry::{Event, Sequence, StepError, StepHandler, Task, Telemetry};
use tasker_telemetry::{step_handler, subscriber};

fn failed_event(handler: &dyn StepHandler) -> (Event<'static>, StepError) {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    telemetry
        .publisher()
        .subscribe(
            &["step.failed"],
            subscriber::from_fn("recorder", move |e| {
                sink.lock().unwrap().push(e.clone().into_owned())
            }),
        )
        .unwrap();
    let task = Task::new(&telemetry, "t", "errors", serde_json::Value::Null);
    let step = task.step("t-1", handler.name());
    let error = handler
        .handle(&task, &Sequence::new(), &step)
        .now()
        .expect("ready after one poll")
        .expect_err("the handler fails");
    let mut events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "one step.failed: {events:?}");
    (events.remove(0), error)
}

fn key<'a>(event: &'a Event<'_>, key: &str) -> Option<&'a str> {
    event.get(key).and_then(|v| v.as_str())
}

#[derive(Debug, thiserror::Error)]
enum CartError {
    #[error("cart {0} not found")]
    NotFound(u64),
    #[error("inventory unavailable")]
    Unavailable(#[source] std::io::Error),
}

impl Retryable for CartError {
    fn is_retryable(&self) -> bool {
        matches!(self, CartError::Unavailable(_))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("shipping quote failed")]
struct QuoteError(#[source] std::io::Error);

#[derive(Debug, thiserror::Error)]
#[error("carrier refused the parcel")]
struct Refused;

struct AnyhowIo;
#[step_handler]
impl AnyhowIo {
    fn process(&self) -> anyhow::Result<()> {
        let io = std::io::Error::other("connection reset");
        Err(anyhow::Error::new(io).context("loading the cart"))
    }
}

struct AnyhowAdhoc;
#[step_handler]
impl AnyhowAdhoc {
    fn process(&self) -> Result<(), anyhow::Error> {
        anyhow::bail!("no cart")
    }
}

struct AnyhowPermanent;
#[step_handler]
impl AnyhowPermanent {
    fn process(&self) -> anyhow::Result<()> {
        Err(
            anyhow::Error::new(StepError::permanent("card declined").with_class("Declined"))
                .context("charging"),
        )
    }
}

struct EyreIo;
#[step_handler]
impl EyreIo {
    fn process(&self) -> eyre::Result<()> {
        use eyre::WrapErr;
        Err(std::io::Error::other("connection reset")).wrap_err("loading the cart")
    }
}

struct Boxed;
#[step_handler]
impl Boxed {
    fn process(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let parse: Result<u32, _> = "x".parse::<u32>();
        parse?;
        Ok(())
    }
}

struct BoxedOpaque;
#[step_handler]
impl BoxedOpaque {
    fn process(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err(Box::new(QuoteError(std::io::Error::other("timeout"))))
    }
}

struct BoxedRefused;
#[step_handler]
impl BoxedRefused {
    fn process(&self) -> Result<(), Box<dyn std::error::Error>> {
        Err(Box::new(Refused))
    }
}

struct Typed;
#[step_handler]
impl Typed {
    fn process(&self) -> Result<(), QuoteError> {
        Err(QuoteError(std::io::Error::other("timeout")))
    }
}

struct TypedPermanent;
#[step_handler]
impl TypedPermanent {
    fn process(&self) -> Result<(), CartError> {
        Err(CartError::NotFound(7))
    }
}

#[test]
fn anyhow_reports_the_root_cause_type_and_the_whole_chain() {
    let (event, error) = failed_event(&AnyhowIo);
    assert_eq!(key(&event, "error_class"), Some("std::io::error::Error"));
    assert_eq!(
        key(&event, "error_message"),
        Some("loading the cart: connection reset")
    );
    assert!(error.is_retryable());
}

#[test]
fn anyhow_without_a_nameable_cause_is_named_anyhow() {
    let (event, _) = failed_event(&AnyhowAdhoc);
    assert_eq!(key(&event, "error_class"), Some("anyhow::Error"));
    assert_eq!(key(&event, "error_message"), Some("no cart"));
}

#[test]
fn a_step_error_inside_anyhow_decides_class_and_retryability() {
    let (event, error) = failed_event(&AnyhowPermanent);
    assert_eq!(key(&event, "error_class"), Some("Declined"));
    assert_eq!(
        key(&event, "error_message"),
        Some("charging: card declined")
    );
    assert!(!error.is_retryable());
}

#[test]
fn eyre_reports_the_root_cause_type_and_the_whole_chain() {
    let (event, _) = failed_event(&EyreIo);
    assert_eq!(key(&event, "error_class"), Some("std::io::error::Error"));
    assert_eq!(
        key(&event, "error_message"),
        Some("loading the cart: connection reset")
    );
}

#[test]
fn a_boxed_error_is_named_by_its_root_cause_or_its_container() {
    let (event, _) = failed_event(&Boxed);
    assert_eq!(
        key(&event, "error_class"),
        Some("core::num::error::ParseIntError")
    );
    let (event, _) = failed_event(&BoxedOpaque);
    assert_eq!(key(&event, "error_class"), Some("std::io::error::Error"));
    assert_eq!(
        key(&event, "error_message"),
        Some("shipping quote failed: timeout")
    );
    let (event, _) = failed_event(&BoxedRefused);
    assert_eq!(
        key(&event, "error_class"),
        Some("Box<dyn std::error::Error>")
    );
    assert_eq!(
        key(&event, "error_message"),
        Some("carrier refused the parcel")
    );
}

#[test]
fn a_typed_error_is_named_by_its_own_type_with_its_sources_in_the_message() {
    let (event, error) = failed_event(&Typed);
    assert_eq!(
        key(&event, "error_class"),
        Some("handler_errors::QuoteError")
    );
    assert_eq!(
        key(&event, "error_message"),
        Some("shipping quote failed: timeout")
    );
    assert!(error.is_retryable());
    let (event, error) = failed_event(&TypedPermanent);
    assert_eq!(
        key(&event, "error_class"),
        Some("handler_errors::CartError")
    );
    assert!(!error.is_retryable());
    let unavailable = CartError::Unavailable(std::io::Error::other("down"));
    assert!(unavailable.is_retryable());
}

#[tokio::test]
async fn the_runner_makes_no_further_attempt_after_a_permanent_error() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let sink = attempts.clone();
    telemetry
        .publisher()
        .subscribe(
            &["step.failed"],
            subscriber::from_fn("attempts", move |e| {
                sink.lock()
                    .unwrap()
                    .push(e.get("attempt_number").and_then(|v| v.as_u64()));
            }),
        )
        .unwrap();
    let workflow = Workflow::builder("permanent")
        .handler(TypedPermanent)
        .handler(Typed)
        .step(
            StepDef::new("cart")
                .handler("typed_permanent")
                .retry_limit(3),
        )
        .step(StepDef::new("quote").handler("typed").retry_limit(3))
        .build()
        .unwrap();
    let outcome = workflow
        .run(&telemetry, "t-permanent", serde_json::json!({}))
        .await;
    assert_eq!(outcome.steps["cart"], StepState::Failed);
    let mut seen = attempts.lock().unwrap().clone();
    seen.sort();
    // cart: one attempt (permanent); quote: three (retryable, up to its limit).
    assert_eq!(seen, vec![Some(1), Some(1), Some(2), Some(3)]);
}

#[test]
fn a_hand_written_attempt_reports_the_same_cause_chain() {
    let failure =
        tasker_telemetry::scope::Failure::from_error(&QuoteError(std::io::Error::other("timeout")));
    assert_eq!(failure.message(), "shipping quote failed: timeout");
    assert_eq!(failure.class(), "handler_errors::QuoteError");
}
