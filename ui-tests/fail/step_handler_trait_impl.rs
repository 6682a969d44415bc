use tasker_telemetry::{step_handler, Step, StepError};

struct FetchCart;

trait Process {
    fn process(&self, step: &Step) -> Result<(), StepError>;
}

#[step_handler]
impl Process for FetchCart {
    fn process(&self, _step: &Step) -> Result<(), StepError> {
        Ok(())
    }
}

fn main() {}
