use tasker_telemetry::subscribe_to;

#[derive(Default)]
struct Pager;

#[subscribe_to()]
impl Pager {}

fn main() {}
