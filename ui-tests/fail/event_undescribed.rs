use tasker_telemetry::Event;

#[derive(serde::Serialize, Event)]
#[event(name = "orders.flagged")]
struct Flagged {
    id: u64,
}

fn main() {}
