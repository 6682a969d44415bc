use std::marker::PhantomData;
use std::rc::Rc;

use tasker_telemetry::{step_handler, StepHandler, Step};

struct Lookup<T>(PhantomData<T>);

#[step_handler]
impl<T: 'static> Lookup<T> {
    fn process(&self, _step: &Step) -> Result<u64, std::io::Error> {
        Ok(1)
    }
}

fn register(_: impl StepHandler) {}

fn main() {
    // Fine: Lookup<u8> is Send + Sync + 'static.
    register(Lookup::<u8>(PhantomData));
    // Not: the error names the requirement, here at the user's own code.
    register(Lookup::<Rc<u8>>(PhantomData));
}
