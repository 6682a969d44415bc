use tasker_telemetry::{subscribe_to, Event};

/// Flagged.
#[derive(serde::Serialize, Event)]
#[event(name = "orders.flagged")]
struct OrderFlagged {
    id: u64,
}

#[derive(Default)]
struct Pager;

#[subscribe_to(OrderFlaged)]
impl Pager {
    fn handle_order_flaged(&self, _event: &Event<'_>) {}
}

fn main() {}
