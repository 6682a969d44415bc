use tasker_telemetry::Event;

/// Sneaky.
#[derive(serde::Serialize, Event)]
#[event(name = "task.sneaky")]
struct Sneaky {
    id: u64,
}

fn main() {}
