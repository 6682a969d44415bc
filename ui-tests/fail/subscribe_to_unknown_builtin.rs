use tasker_telemetry::{subscribe_to, Event};

#[derive(Default)]
struct Pager;

#[subscribe_to("task.complted")]
impl Pager {
    fn handle_task_complted(&self, _event: &Event<'_>) {}
}

fn main() {}
