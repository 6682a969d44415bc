//! Nothing lost without a count: a task finishes once, a task dropped unfinished is reported, the
//! active gauges never drift (a dropped run, telemetry switched off mid-task, user types that
//! panic), and a step is reported once whatever its error's `Display` or its results' `Serialize`
//! do, through `run_attempt`, `finish` and `#[step_handler]`, with or without subscribers.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tasker_telemetry::scope::{Failure, StepCounts, TaskScope};
use tasker_telemetry::workflow::{StepDef, Workflow};
use tasker_telemetry::{Event, Sequence, StepHandler, Task, Telemetry, step_handler, subscriber};

/// `set_enabled` is process-wide: the tests of this binary take turns.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn recorder(telemetry: &Telemetry, events: &[&str]) -> Arc<Mutex<Vec<Event<'static>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    telemetry
        .publisher()
        .subscribe(
            events,
            subscriber::from_fn("recorder", move |e| {
                sink.lock().unwrap().push(e.clone().into_owned())
            }),
        )
        .unwrap();
    seen
}

fn prometheus(telemetry: &Telemetry) -> String {
    tasker_telemetry::metrics::prometheus_text(&telemetry.metrics().snapshot())
}

fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "missing {line:?} in\n{text}"
        );
    }
}

fn names(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.name().as_str()).collect()
}

#[test]
fn a_task_finishes_once_and_a_second_finish_is_counted() {
    let _serial = serial();
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(&telemetry, &["task.*"]);
    let task = TaskScope::new(&telemetry, "1", "once");
    task.start();
    task.complete(StepCounts::default());
    task.fail(&Failure::new("late", "Late"), StepCounts::default());
    task.cancel(StepCounts::default());
    assert!(task.is_finished());
    assert_eq!(
        names(&seen.lock().unwrap()),
        ["task.start_requested", "task.completed"]
    );
    assert_lines(
        &prometheus(&telemetry),
        &[
            "tasker_tasks_total{task_name=\"once\",status=\"completed\"} 1",
            "tasker_tasks_total{task_name=\"once\",status=\"failed\"} 0",
            "tasker_tasks_active 0",
            "tasker_telemetry_dropped_total{sink=\"task\",reason=\"already_finished\"} 2",
        ],
    );
}

#[test]
fn a_started_task_dropped_unfinished_is_reported_as_abandoned() {
    let _serial = serial();
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(&telemetry, &["task.failed"]);
    let task = TaskScope::new(&telemetry, "2", "abandoned");
    task.start();
    let clone = task.clone();
    drop(task);
    assert!(seen.lock().unwrap().is_empty(), "a clone is still alive");
    drop(clone);
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].get("error_class").and_then(|v| v.as_str()),
        Some("abandoned")
    );
    assert_lines(
        &prometheus(&telemetry),
        &[
            "tasker_tasks_total{task_name=\"abandoned\",status=\"failed\"} 1",
            "tasker_tasks_active 0",
        ],
    );
}

struct Slow;
#[step_handler]
impl Slow {
    async fn process(&self) -> Result<(), std::io::Error> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
// The guard only orders this binary's tests; nothing on this test's runtime takes it.
#[allow(clippy::await_holding_lock)]
async fn a_run_dropped_by_a_timeout_leaves_no_gauge_raised() {
    let _serial = serial();
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(&telemetry, &["task.failed", "step.cancelled"]);
    // Dropping the run aborts its step tasks; the runtime drops them when it next runs, so
    // the test waits for the task's report rather than for time.
    let (reported, mut abandoned) = tokio::sync::mpsc::unbounded_channel();
    telemetry
        .publisher()
        .subscribe(
            &["task.failed"],
            subscriber::from_fn("abandoned", move |_| {
                let _ = reported.send(());
            }),
        )
        .unwrap();
    let workflow = Workflow::builder("timed_out")
        .handler(Slow)
        .step(StepDef::new("slow").handler("slow"))
        .build()
        .unwrap();
    let run = workflow.run(&telemetry, "t-timeout", serde_json::json!({}));
    assert!(
        tokio::time::timeout(Duration::from_secs(1), run)
            .await
            .is_err()
    );
    abandoned
        .recv()
        .await
        .expect("task.failed for the dropped run");
    let seen = names(&seen.lock().unwrap());
    assert_eq!(seen, ["step.cancelled", "task.failed"]);
    assert_lines(
        &prometheus(&telemetry),
        &[
            "tasker_tasks_active 0",
            "tasker_steps_active{step_name=\"slow\"} 0",
            "tasker_tasks_total{task_name=\"timed_out\",status=\"failed\"} 1",
        ],
    );
}

#[test]
fn switching_telemetry_off_mid_task_leaves_no_gauge_raised() {
    let _serial = serial();
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let task = TaskScope::new(&telemetry, "3", "switched");
    task.start();
    let step = task.step("3-1", "charge");
    let attempt = step.attempt(1);
    tasker_telemetry::set_enabled(false);
    attempt.complete(&1);
    task.complete(StepCounts::default());
    tasker_telemetry::set_enabled(true);
    assert_lines(
        &prometheus(&telemetry),
        &[
            "tasker_tasks_active 0",
            "tasker_steps_active{step_name=\"charge\"} 0",
        ],
    );
}

/// An error whose `Display` panics.
#[derive(Debug)]
struct Unprintable;
impl fmt::Display for Unprintable {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("Display of Unprintable")
    }
}
impl std::error::Error for Unprintable {}

/// Results whose `Serialize` panics.
struct PanickingResults;
impl Serialize for PanickingResults {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("Serialize of PanickingResults")
    }
}

/// Results whose `Serialize` fails.
struct FailingResults;
impl Serialize for FailingResults {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("no representation"))
    }
}

struct DisplayPanics;
#[step_handler]
impl DisplayPanics {
    fn process(&self) -> Result<(), Unprintable> {
        Err(Unprintable)
    }
}

struct SerializePanics;
#[step_handler]
impl SerializePanics {
    fn process(&self) -> Result<PanickingResults, std::io::Error> {
        Ok(PanickingResults)
    }
}

struct SerializeFails;
#[step_handler]
impl SerializeFails {
    fn process(&self) -> Result<FailingResults, std::io::Error> {
        Ok(FailingResults)
    }
}

/// Runs `attempt` on a fresh step, with or without a subscriber, and checks that it was
/// reported once, as failed with `class`.
fn reported_once_as_failed(listening: bool, class: &str, attempt: impl FnOnce(&Task)) {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = listening.then(|| recorder(&telemetry, &["step.completed", "step.failed"]));
    let task = Task::new(&telemetry, "4", "hostile", serde_json::Value::Null);
    // Quiet the expected panics' default messages.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    attempt(&task);
    std::panic::set_hook(hook);
    if let Some(seen) = seen {
        let events = seen.lock().unwrap().clone();
        assert_eq!(names(&events), ["step.failed"], "{events:?}");
        assert_eq!(
            events[0].get("error_class").and_then(|v| v.as_str()),
            Some(class)
        );
    }
    let text = prometheus(&telemetry);
    assert_lines(
        &text,
        &[
            "tasker_steps_total{task_name=\"hostile\",step_name=\"s\",status=\"failed\"} 1",
            "tasker_steps_total{task_name=\"hostile\",step_name=\"s\",status=\"completed\"} 0",
            "tasker_steps_active{step_name=\"s\"} 0",
        ],
    );
}

fn through_handler(handler: &dyn StepHandler) -> impl FnOnce(&Task) + '_ {
    move |task| {
        let step = task.step("4-1", "s");
        let out = handler.handle(task, &Sequence::new(), &step).now().unwrap();
        assert!(out.is_err(), "{out:?}");
    }
}

#[test]
fn a_step_is_reported_once_whatever_its_types_do() {
    let _serial = serial();
    for listening in [true, false] {
        // #[step_handler]
        reported_once_as_failed(listening, "panic", through_handler(&DisplayPanics));
        reported_once_as_failed(listening, "panic", through_handler(&SerializePanics));
        reported_once_as_failed(
            listening,
            "serde_json::Error",
            through_handler(&SerializeFails),
        );
        // StepScope::run_attempt: the user gets their own result back.
        reported_once_as_failed(listening, "panic", |task| {
            let step = task.scope().step("4-1", "s");
            assert!(step.run_attempt(1, || Err::<(), _>(Unprintable)).is_err());
        });
        // StepAttempt::finish
        reported_once_as_failed(listening, "panic", |task| {
            let step = task.scope().step("4-1", "s");
            step.attempt(1).finish(&Err::<(), _>(Unprintable));
        });
        // Results are serialised whoever listens: a `Serialize` that panics or fails makes the
        // attempt failed, through every entry point.
        reported_once_as_failed(listening, "panic", |task| {
            let step = task.scope().step("4-1", "s");
            let out: Result<_, std::io::Error> = step.run_attempt(1, || Ok(PanickingResults));
            assert!(out.is_ok());
        });
        reported_once_as_failed(listening, "serde_json::Error", |task| {
            let step = task.scope().step("4-1", "s");
            step.attempt(1)
                .finish(&Ok::<_, std::io::Error>(FailingResults));
        });
        reported_once_as_failed(listening, "panic", |task| {
            let step = task.scope().step("4-1", "s");
            step.attempt(1).complete(&PanickingResults);
        });
    }
}

#[test]
fn a_context_given_to_a_shared_task_applies_to_the_same_task() {
    let _serial = serial();
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let id = tasker_telemetry::correlation::CorrelationId::accept_or_generate(Some("corr-42"));
    let task = TaskScope::new(&telemetry, "5", "shared").with_correlation_id(id);
    let step = task.step("5-1", "s");
    let task = task.with_context(serde_json::json!({"cart_id": 7}));
    assert_eq!(task.correlation_id().as_str(), "corr-42");
    assert_eq!(
        step.task().context(),
        Some(&serde_json::json!({"cart_id": 7}))
    );
    // A second context on the shared task is ignored, and counted.
    let task = task.with_context(serde_json::json!({"cart_id": 8}));
    assert_eq!(task.context(), Some(&serde_json::json!({"cart_id": 7})));
    assert_lines(
        &prometheus(&telemetry),
        &["tasker_telemetry_dropped_total{sink=\"task\",reason=\"context_already_set\"} 1"],
    );
}
