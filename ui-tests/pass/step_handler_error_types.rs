// process() may fail with the error types users already have, with no adapter: anyhow, eyre,
// boxed errors, thiserror enums (retryable or not, through `Retryable`), and StepError.

use std::marker::PhantomData;

use tasker_telemetry::handler::Retryable;
use tasker_telemetry::{step_handler, Step, StepError, StepHandler, Task, Telemetry};

struct WithAnyhow;
#[step_handler]
impl WithAnyhow {
    fn process(&self, _step: &Step) -> anyhow::Result<u64> {
        Err(anyhow::anyhow!("gateway down"))
    }
}

struct WithAnyhowError;
#[step_handler]
impl WithAnyhowError {
    async fn process(&self, _step: &Step) -> Result<u64, anyhow::Error> {
        Err(anyhow::anyhow!("gateway down"))
    }
}

struct WithEyre;
#[step_handler]
impl WithEyre {
    fn process(&self) -> eyre::Result<()> {
        Err(eyre::eyre!("gateway down"))
    }
}

struct WithBox;
#[step_handler]
impl WithBox {
    fn process(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err("gateway down".into())
    }
}

#[derive(Debug, thiserror::Error)]
enum CartError {
    #[error("cart {0} not found")]
    NotFound(u64),
    #[error("inventory unavailable")]
    Unavailable(#[source] std::io::Error),
}

impl Retryable for CartError {
    fn is_retryable(&self) -> bool {
        matches!(self, CartError::Unavailable(_))
    }
}

struct WithThiserror;
#[step_handler]
impl WithThiserror {
    fn process(&self) -> Result<(), CartError> {
        Err(CartError::NotFound(7))
    }
}

#[step_handler]
fn with_step_error(_task: &Task) -> Result<(), StepError> {
    Err(StepError::permanent("declined"))
}

// Generic and lifetime-parameterised handler types: supported when the type is
// Send + Sync + 'static.
struct Generic<T>(PhantomData<fn() -> T>);
#[step_handler(name = "generic")]
impl<T: Default + serde::Serialize + 'static> Generic<T> {
    fn process(&self) -> Result<T, std::io::Error> {
        Ok(T::default())
    }
}

struct Borrowing<'a>(&'a str);
#[step_handler(name = "borrowing")]
impl Borrowing<'static> {
    fn process(&self) -> Result<&'static str, std::io::Error> {
        Ok(self.0)
    }
}

fn main() {
    let task = Task::new(Telemetry::global(), "1", "t", serde_json::Value::Null);
    let step = task.step("1-1", "s");
    // The output does not keep borrowing handle()'s arguments.
    let out = WithAnyhow.handle(&task, &Default::default(), &step).now();
    assert!(out.unwrap().is_err());
    assert!(WithAnyhowError.handle(&task, &Default::default(), &step).now().unwrap().is_err());
    assert!(WithEyre.handle(&task, &Default::default(), &step).now().unwrap().is_err());
    assert!(WithBox.handle(&task, &Default::default(), &step).now().unwrap().is_err());
    let e = WithThiserror.handle(&task, &Default::default(), &step).now().unwrap().unwrap_err();
    assert!(!e.is_retryable());
    let e = WithStepError.handle(&task, &Default::default(), &step).now().unwrap().unwrap_err();
    assert!(!e.is_retryable());
    let g = Generic::<u8>(PhantomData);
    assert_eq!(g.handle(&task, &Default::default(), &step).now(), Some(Ok(serde_json::json!(0))));
    let b = Borrowing("x");
    assert_eq!(b.handle(&task, &Default::default(), &step).now(), Some(Ok(serde_json::json!("x"))));
}
