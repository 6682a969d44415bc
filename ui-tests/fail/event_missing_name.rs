use tasker_telemetry::Event;

/// No name.
#[derive(serde::Serialize, Event)]
struct Nameless {
    id: u64,
}

fn main() {}
