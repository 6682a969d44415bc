use tasker_telemetry::{step_handler, Step, StepError};

struct FetchCart;

#[step_handler]
impl FetchCart {
    fn run(&self, _step: &Step) -> Result<(), StepError> {
        Ok(())
    }
}

fn main() {}
