use tasker_telemetry::{subscribe_to, Event};

#[derive(Default)]
struct Pager;

#[subscribe_to("task.completed")]
impl Pager {
    fn handle_task_completed(&self, _event: Event) {}
}

fn main() {
    // A later use of the subscriber raises no second error.
    let publisher = tasker_telemetry::Publisher::new();
    let _ = publisher.subscribe(&["task.completed"], Pager);
}
