use tasker_telemetry::{subscribe_to, Event};

#[derive(Default)]
struct Pager {
    pages: u64,
}

#[subscribe_to("task.completed")]
impl Pager {
    fn handle_task_completed(&mut self, _event: &Event<'_>) {
        self.pages += 1;
    }
}

fn main() {}
