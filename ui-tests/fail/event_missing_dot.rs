use tasker_telemetry::Event;

/// Flagged.
#[derive(serde::Serialize, Event)]
#[event(name = "flagged")]
struct Flagged {
    id: u64,
}

fn main() {}
