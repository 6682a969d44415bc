use tasker_telemetry::{subscribe_to, Event};

#[derive(Default)]
struct Pager;

#[subscribe_to(task_completed)]
impl Pager {
    fn handle_task_completed(&self, _event: &Event) {}
}

fn main() {}
