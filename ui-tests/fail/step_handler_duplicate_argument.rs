use tasker_telemetry::{step_handler, Step, StepError};

struct FetchCart;

#[step_handler(name = "fetch_cart", name = "load_cart")]
impl FetchCart {
    fn process(&self, _step: &Step) -> Result<(), StepError> {
        Ok(())
    }
}

fn main() {}
