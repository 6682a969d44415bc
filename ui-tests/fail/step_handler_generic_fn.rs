use tasker_telemetry::{step_handler, Step, StepError};

#[step_handler]
fn fetch_cart<T: Default>(_step: &Step) -> Result<(), StepError> {
    Ok(())
}

fn main() {}
