use tasker_telemetry::Event;

/// Flagged.
#[derive(serde::Serialize, Event)]
#[event(name = "orders.flagged", priority = "high")]
struct Flagged {
    id: u64,
}

fn main() {}
