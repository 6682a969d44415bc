use tasker_telemetry::{step_handler, Step, StepError};

struct Cart;

struct FetchCart;

#[step_handler]
impl FetchCart {
    fn process(&self, _step: &Step) -> Result<Cart, StepError> {
        Ok(Cart)
    }
}

fn main() {}
