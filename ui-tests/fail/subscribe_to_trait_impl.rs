use tasker_telemetry::{subscribe_to, Event};

#[derive(Default)]
struct Pager;

trait Notify {
    fn handle_task_completed(&self, event: &Event<'_>);
}

#[subscribe_to("task.completed")]
impl Notify for Pager {
    fn handle_task_completed(&self, _event: &Event<'_>) {}
}

fn main() {}
