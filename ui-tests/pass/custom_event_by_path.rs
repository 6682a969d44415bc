// A custom event declared with #[derive(Event)], subscribed by path, published from its struct.
use std::sync::atomic::{AtomicU64, Ordering};

use tasker_telemetry::{subscribe_to, Event, Telemetry};

mod events {
    /// An order was flagged for review.
    #[derive(serde::Serialize, tasker_telemetry::Event)]
    #[event(name = "orders.flagged")]
    pub struct OrderFlagged {
        /// The order.
        pub id: u64,
    }
}

#[derive(Default)]
struct Reviewers(AtomicU64);

#[subscribe_to(events::OrderFlagged)]
impl Reviewers {
    fn handle_order_flagged(&self, event: &Event<'_>) {
        assert_eq!(event.get("id").and_then(|v| v.as_u64()), Some(42));
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let wired = telemetry.publisher().subscribe_registered().unwrap();
    assert!(telemetry.publish_event(&events::OrderFlagged { id: 42 }));
    assert_eq!(wired[0].stats().delivered, 1);
}
