use tasker_telemetry::subscribe_to;

#[derive(Default)]
struct Pager;

#[subscribe_to("task.completed")]
impl Pager {
    fn handle_task_completed(&self) {}
}

fn main() {}
