use tasker_telemetry::{subscribe_to, Event};

#[derive(Default)]
struct Pager<T>(T);

#[subscribe_to("task.completed", register = true)]
impl<T: Send + Sync + 'static> Pager<T> {
    fn handle_task_completed(&self, _event: &Event<'_>) {}
}

fn main() {}
