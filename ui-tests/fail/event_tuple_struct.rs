use tasker_telemetry::Event;

/// Flagged.
#[derive(serde::Serialize, Event)]
#[event(name = "orders.flagged")]
struct Flagged(u64);

fn main() {}
