//! Custom events, declared with `#[derive(Event)]`:
//!
//! - the declaration puts each event in the catalog, with its description and fields taken from
//!   the doc comments (`catalog::event(name)` lists them);
//! - `#[subscribe_to(PaymentCaptured, RefundIssued)]` subscribes to them by type, calling
//!   `handle_payment_captured` / `handle_refund_issued`;
//! - `Telemetry::publish_event(&value)` publishes a value, through the sensitive-data filter (the
//!   `card_token` field arrives as `"[FILTERED]"`), and builds nothing when nobody listens;
//! - `catalog::register_event` refuses a name in a reserved namespace, or one already taken,
//!   with a typed `CatalogError`.
//!
//! `cargo run --example custom_events`

use std::io::Write as _;
use std::sync::{Mutex, PoisonError};

use tasker_telemetry::catalog::{self, CatalogError, CustomEvent, EventSource};
use tasker_telemetry::event::{Category, EventPayload};
use tasker_telemetry::{Event, Telemetry, subscribe_to};

/// A card payment was captured.
#[derive(serde::Serialize, Event)]
#[event(name = "payments.captured")]
struct PaymentCaptured {
    /// The order paid for.
    order_id: u64,
    /// The amount captured, in cents.
    amount_cents: u64,
    /// ISO 4217 currency code.
    currency: String,
    /// The card's vault token; sensitive, so filtered out of every event.
    card_token: String,
}

/// A refund was issued for an order.
#[derive(serde::Serialize, Event)]
#[event(name = "payments.refund_issued")]
struct RefundIssued {
    /// The order refunded.
    order_id: u64,
    /// The amount refunded, in cents.
    amount_cents: u64,
    /// Why the refund was issued.
    reason: String,
}

/// What `Ledger` received, as the JSON a sink would write. `Ledger` is built by
/// `subscribe_registered`, so `main` reads what it saw here.
static RECEIVED: Mutex<Vec<serde_json::Value>> = Mutex::new(Vec::new());

/// Keeps a ledger of payment events.
#[derive(Default)]
struct Ledger;

#[subscribe_to(PaymentCaptured, RefundIssued)]
impl Ledger {
    fn handle_payment_captured(&self, event: &Event<'_>) {
        self.record(event);
    }

    fn handle_refund_issued(&self, event: &Event<'_>) {
        self.record(event);
    }
}

impl Ledger {
    fn record(&self, event: &Event<'_>) {
        let json = serde_json::to_value(event).unwrap_or_default();
        RECEIVED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(json);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut out = std::io::stdout().lock();

    // 1. The catalog knows both events, with their fields, before anything is published.
    writeln!(out, "== the catalog ==")?;
    for name in [PaymentCaptured::NAME, RefundIssued::NAME] {
        let descriptor = catalog::event(name).ok_or_else(|| format!("{name} not in catalog"))?;
        writeln!(
            out,
            "{} [{}] {}",
            descriptor.name,
            descriptor.category.as_str(),
            descriptor.description
        )?;
        for field in descriptor.fields {
            writeln!(
                out,
                "  {:<13} {:<8} {}",
                field.name, field.ty, field.description
            )?;
        }
        assert_eq!(descriptor.category, Category::Custom);
        assert_eq!(descriptor.source, EventSource::Custom);
    }
    let captured = catalog::event("payments.captured").ok_or("payments.captured not found")?;
    assert_eq!(captured.description, "A card payment was captured.");
    let fields: Vec<&str> = captured.fields.iter().map(|f| f.name).collect();
    assert_eq!(
        fields,
        ["order_id", "amount_cents", "currency", "card_token"]
    );
    assert_eq!(
        captured.fields[1].description,
        "The amount captured, in cents."
    );
    assert!(catalog::declaration_errors().is_empty());

    // 2. Published with nobody listening: nothing is built, nobody receives it.
    let telemetry = Telemetry::new(Default::default())?;
    let payment = PaymentCaptured {
        order_id: 1001,
        amount_cents: 4999,
        currency: "EUR".into(),
        card_token: "tok_visa_4242".into(),
    };
    assert!(!telemetry.publish_event(&payment));

    // 3. Subscribed by type, through the registry, then published.
    let wired = telemetry.publisher().subscribe_registered()?;
    assert!(telemetry.publish_event(&payment));
    assert!(telemetry.publish_event(&RefundIssued {
        order_id: 1001,
        amount_cents: 1500,
        reason: "one item arrived damaged".into(),
    }));

    writeln!(out, "\n== what Ledger received ==")?;
    let received = RECEIVED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for event in &received {
        writeln!(out, "{event}")?;
    }
    assert_eq!(received.len(), 2);
    assert_eq!(received[0]["event_type"], "payments.captured");
    assert_eq!(received[0]["order_id"], 1001);
    assert_eq!(received[0]["currency"], "EUR");
    assert_eq!(
        received[0]["card_token"], "[FILTERED]",
        "the sensitive-data filter applies to custom events"
    );
    assert_eq!(received[1]["event_type"], "payments.refund_issued");
    assert_eq!(received[1]["reason"], "one item arrived damaged");
    let stats: Vec<_> = wired.iter().map(|h| h.stats()).collect();
    assert_eq!(stats.iter().map(|s| s.delivered).sum::<u64>(), 2);
    assert!(stats.iter().all(|s| s.panics == 0));

    // 4. Run-time registration follows the same naming rules, as typed errors.
    writeln!(out, "\n== catalog::register_event ==")?;
    let reserved = catalog::register_event(CustomEvent::new(
        "task.payment_captured",
        "A payment, in Tasker's own namespace.",
    ));
    match &reserved {
        Err(error) => writeln!(out, "refused: {error}\n  {error:?}")?,
        Ok(name) => writeln!(out, "unexpectedly registered {name}")?,
    }
    assert!(matches!(
        &reserved,
        Err(CatalogError::ReservedNamespace { namespace, .. }) if namespace == "task"
    ));

    let duplicate = catalog::register_event(CustomEvent::new(
        "payments.captured",
        "Declared a second time.",
    ));
    match &duplicate {
        Err(error) => writeln!(out, "refused: {error}\n  {error:?}")?,
        Ok(name) => writeln!(out, "unexpectedly registered {name}")?,
    }
    assert!(matches!(duplicate, Err(CatalogError::Duplicate { .. })));

    let accepted = catalog::register_event(
        CustomEvent::new(
            "payments.chargeback_opened",
            "A cardholder disputed a charge.",
        )
        .field("order_id", "integer", "The disputed order."),
    )?;
    writeln!(out, "registered: {accepted}")?;
    assert!(catalog::event("payments.chargeback_opened").is_some());

    writeln!(out, "\nall checks passed")?;
    Ok(())
}
