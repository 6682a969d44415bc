use tasker_telemetry::{step_handler, Step, StepError};

struct FetchCart;

#[step_handler(retries = 3)]
impl FetchCart {
    fn process(&self, _step: &Step) -> Result<(), StepError> {
        Ok(())
    }
}

fn main() {}
