use tasker_telemetry::Event;

/// No name.
#[derive(serde::Serialize, Event)]
struct Nameless {
    id: u64,
}

fn publish<E: tasker_telemetry::EventPayload>(_: E) {}

fn main() {
    // A later use of the payload type raises no second error.
    publish(Nameless { id: 1 });
}
