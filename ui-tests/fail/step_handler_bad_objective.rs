use tasker_telemetry::{step_handler, StepError};

struct NoUnit;

#[step_handler(objective = "250")]
impl NoUnit {
    fn process(&self) -> Result<(), StepError> {
        Ok(())
    }
}

struct Zero;

#[step_handler(objective = "0ms")]
impl Zero {
    fn process(&self) -> Result<(), StepError> {
        Ok(())
    }
}

struct NotANumber;

#[step_handler(objective = "fast")]
impl NotANumber {
    fn process(&self) -> Result<(), StepError> {
        Ok(())
    }
}

fn main() {}
