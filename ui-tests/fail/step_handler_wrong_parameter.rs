use tasker_telemetry::{step_handler, StepError};

struct FetchCart;

#[step_handler]
impl FetchCart {
    fn process(&self, cart_id: u64) -> Result<u64, StepError> {
        Ok(cart_id)
    }
}

fn main() {}
