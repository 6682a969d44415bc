use tasker_telemetry::{subscribe_to, Event};

#[derive(Default)]
struct Pager;

#[subscribe_to("task.completed", delivery = "async")]
impl Pager {
    fn handle_task_completed(&self, _event: &Event<'_>) {}
}

fn main() {}
