use tasker_telemetry::{subscribe_to, Event};

#[derive(Default)]
struct Pager;

#[subscribe_to("completed")]
impl Pager {
    fn handle_completed(&self, _event: &Event<'_>) {}
}

fn main() {}
