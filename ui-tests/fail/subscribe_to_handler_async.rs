use tasker_telemetry::{subscribe_to, Event};

#[derive(Default)]
struct Pager;

#[subscribe_to("step.failed")]
impl Pager {
    async fn handle_step_failed(&self, _event: &Event<'_>) {}
}

fn main() {}
