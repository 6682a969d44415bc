use tasker_telemetry::subscribe_to;

#[subscribe_to("task.completed")]
struct Pager;

fn main() {}
