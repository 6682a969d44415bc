use tasker_telemetry::{step_handler, Step};

struct FetchCart;

#[step_handler]
impl FetchCart {
    fn process(&self, _step: &Step) -> u64 {
        42
    }
}

fn main() {}
