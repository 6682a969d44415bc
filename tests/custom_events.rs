//! Custom events declared with `#[derive(Event)]`: catalogued with their fields, published from
//! the typed struct (filtered), and subscribed to by path.

use std::sync::Mutex;

use serde::Serialize;
use tasker_telemetry::payload::Value;
use tasker_telemetry::{Event, EventPayload, Telemetry, catalog, set_enabled, subscribe_to};

/// A payment went through.
#[derive(Serialize, Event)]
#[event(name = "order.payment_processed")]
struct PaymentProcessed {
    /// The order paid for.
    order_id: u64,
    /// The card's token (secret: filtered).
    card_token: String,
}

/// Sent to the warehouse.
#[derive(Serialize, Event)]
#[event(name = "order.shipped", description = "An order left the warehouse.")]
struct Shipped {
    order_id: u64,
}

/// What the ledger saw: event name, order id, card token.
type Entry = (String, Option<u64>, Option<String>);

#[derive(Default)]
struct Ledger {
    seen: Mutex<Vec<Entry>>,
}

#[subscribe_to(PaymentProcessed, Shipped => on_shipped, register = false)]
impl Ledger {
    fn handle_payment_processed(&self, event: &Event<'_>) {
        self.record(event);
    }

    fn on_shipped(&self, event: &Event<'_>) {
        self.record(event);
    }
}

impl Ledger {
    fn record(&self, event: &Event<'_>) {
        let token = event
            .get("card_token")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let order = event.get("order_id").and_then(|v: Value<'_>| v.as_u64());
        self.seen
            .lock()
            .unwrap()
            .push((event.name().to_string(), order, token));
    }
}

#[test]
fn derived_events_are_catalogued_published_filtered_and_dispatched() {
    let declared = catalog::event("order.payment_processed").expect("declared");
    assert_eq!(declared.description, "A payment went through.");
    let keys: Vec<_> = declared
        .fields
        .iter()
        .map(|f| (f.name, f.ty, f.description))
        .collect();
    assert_eq!(
        keys,
        [
            ("order_id", "u64", "The order paid for."),
            (
                "card_token",
                "String",
                "The card's token (secret: filtered)."
            )
        ]
    );
    assert_eq!(
        catalog::event("order.shipped").unwrap().description,
        "An order left the warehouse."
    );
    assert!(catalog::declaration_errors().is_empty());
    assert_eq!(
        PaymentProcessed::event_name().map(|n| n.as_str()),
        Some("order.payment_processed")
    );

    let telemetry = Telemetry::new(Default::default()).unwrap();
    let ledger = std::sync::Arc::new(Ledger::default());
    telemetry
        .publisher()
        .subscribe_arc(
            &["order.payment_processed", "order.shipped"],
            ledger.clone(),
            Default::default(),
        )
        .unwrap();

    set_enabled(true);
    assert!(telemetry.publish_event(&PaymentProcessed {
        order_id: 7,
        card_token: "tok_live_123".into()
    }));
    assert!(telemetry.publish_event(&Shipped { order_id: 7 }));

    let seen = ledger.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (
                "order.payment_processed".to_owned(),
                Some(7),
                Some("[FILTERED]".to_owned())
            ),
            ("order.shipped".to_owned(), Some(7), None),
        ]
    );
}

#[test]
fn nobody_listening_means_nothing_published() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    assert!(!telemetry.publish_event(&Shipped { order_id: 1 }));
}
