use tasker_telemetry::{subscribe_to, Event};

/// Flagged.
#[derive(serde::Serialize, Event)]
#[event(name = "orders.flagged")]
struct OrderFlagged {
    id: u64,
}

#[derive(Default)]
struct Pager;

#[subscribe_to(OrderFlagged)]
impl Pager {
    fn handle_flagged(&self, _event: &Event<'_>) {}
}

fn main() {}
