use tasker_telemetry::{subscribe_to, Event};

struct Pager {
    endpoint: String,
}

#[subscribe_to("task.completed")]
impl Pager {
    fn handle_task_completed(&self, _event: &Event<'_>) {
        let _ = &self.endpoint;
    }
}

fn main() {}
