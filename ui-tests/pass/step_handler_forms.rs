// Every form of #[step_handler] under #![deny(warnings)]: sync and async process, a free
// function, a generic handler type, a handler in a nested module, and use through a re-export
// with `crate = path`. main() runs each one and a test subscriber observes its events.
#![deny(warnings)]

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use tasker_telemetry::{step_handler, subscriber, Sequence, Step, StepError, StepHandler, Task, Telemetry};

extern crate tasker_telemetry as reexported;

/// Synchronous, all three contexts.
pub struct Sync3;

#[step_handler(retry_limit = 2)]
impl Sync3 {
    /// Documented process.
    #[inline]
    pub fn process(&self, task: &Task, sequence: &Sequence, step: &Step) -> Result<String, StepError> {
        let _ = sequence.results_of("none");
        Ok(format!("{}:{}", task.id(), step.name()))
    }
}

/// Asynchronous free function.
#[step_handler]
pub async fn fetch_cart(step: &Step) -> Result<u32, StepError> {
    std::future::ready(()).await;
    Ok(step.attempt_number())
}

/// Generic handler.
pub struct Constant<T>(pub T);

#[step_handler(name = "constant")]
impl<T: serde::Serialize + Clone + Send + Sync + 'static> Constant<T> {
    fn process(&self) -> Result<T, StepError> {
        Ok(self.0.clone())
    }
}

mod nested {
    /// In a module, through the re-export.
    pub struct Nested;

    #[reexported::step_handler(crate = reexported)]
    impl Nested {
        pub async fn process(&self, _task: &reexported::Task) -> Result<(), std::io::Error> {
            Ok(())
        }
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}

fn main() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let completed = Arc::new(AtomicU64::new(0));
    let counter = completed.clone();
    telemetry
        .publisher()
        .subscribe(&["step.completed"], subscriber::from_fn("count", move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        }))
        .unwrap();
    let task = Task::new(&telemetry, "t", "forms", serde_json::Value::Null);
    let sequence = Sequence::new();
    let step = task.step("t-1", "any");

    assert_eq!(Sync3.handle(&task, &sequence, &step).now().unwrap(), Ok(serde_json::json!("t:any")));
    assert_eq!(block_on(FetchCart.handle(&task, &sequence, &step)), Ok(serde_json::json!(1)));
    assert_eq!(Constant([1, 2]).handle(&task, &sequence, &step).now().unwrap(), Ok(serde_json::json!([1, 2])));
    assert_eq!(block_on(nested::Nested.handle(&task, &sequence, &step)), Ok(serde_json::Value::Null));
    assert_eq!(completed.load(Ordering::Relaxed), 4);
    assert_eq!((Sync3.name(), FetchCart.name(), nested::Nested.name()), ("sync3", "fetch_cart", "nested"));
    assert_eq!(Sync3.retry_limit(), Some(2));
}
