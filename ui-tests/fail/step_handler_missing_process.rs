use tasker_telemetry::{step_handler, Step, StepError};

struct FetchCart;

#[step_handler]
impl FetchCart {
    fn run(&self, _step: &Step) -> Result<(), StepError> {
        Ok(())
    }
}

fn register(_: impl tasker_telemetry::StepHandler) {}

fn main() {
    // A later use of the handler raises no second error.
    register(FetchCart);
}
