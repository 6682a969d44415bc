use tasker_telemetry::{subscribe_to, Event};

#[derive(Default)]
struct Pager;

#[subscribe_to("step*" => handle_step)]
impl Pager {
    fn handle_step(&self, _event: &Event<'_>) {}
}

fn main() {}
