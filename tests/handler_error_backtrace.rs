//! A backtrace the error carries is reported in `step.failed`: anyhow captures one when
//! `RUST_LIB_BACKTRACE` is set as the error is made. The test runs its check in a child process
//! of this test binary started with that variable, so the environment is never changed in a
//! running process.

use std::sync::{Arc, Mutex};

use tasker_telemetry::{Sequence, StepHandler, Task, Telemetry, step_handler, subscriber};

struct AnyhowIo;
#[step_handler]
impl AnyhowIo {
    fn process(&self) -> anyhow::Result<()> {
        Err(anyhow::Error::new(std::io::Error::other("connection reset")).context("loading"))
    }
}

/// Set in the child process that runs the check.
const CHILD: &str = "TASKER_TELEMETRY_BACKTRACE_CHILD";

#[test]
fn a_backtrace_the_error_carries_is_reported() {
    if std::env::var_os(CHILD).is_none() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_backtrace_the_error_carries_is_reported",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env("RUST_LIB_BACKTRACE", "1")
            .output()
            .expect("the test binary runs again");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "the check failed in the child:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    telemetry
        .publisher()
        .subscribe(
            &["step.failed"],
            subscriber::from_fn("recorder", move |e| {
                let bt = e
                    .get("backtrace")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
                sink.lock().unwrap().push(bt);
            }),
        )
        .unwrap();
    let task = Task::new(&telemetry, "t", "errors", serde_json::Value::Null);
    let step = task.step("t-1", "anyhow_io");
    let error = AnyhowIo
        .handle(&task, &Sequence::new(), &step)
        .now()
        .unwrap()
        .unwrap_err();
    let seen = seen.lock().unwrap().clone();
    let backtrace = seen[0].as_deref().expect("a backtrace in the payload");
    assert!(backtrace.contains("handler_error_backtrace"), "{backtrace}");
    assert_eq!(error.backtrace(), Some(backtrace));
}
