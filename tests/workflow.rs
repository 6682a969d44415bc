//! The workflow runner: event order for linear, diamond and failing workflows; retries with
//! growing backoff on tokio's paused clock; the concurrency limit, a step starting as soon as a
//! slot frees; cancellation; DAG validation, of a 10,000-step chain too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tasker_telemetry::workflow::{
    Backoff, CancelHandle, RunOptions, StepDef, StepState, TaskStatus, Workflow, WorkflowError,
};
use tasker_telemetry::{Event, Sequence, Step, StepError, Telemetry, step_handler, subscriber};

/// Records every event's name, and the step it concerns.
fn recorder(telemetry: &Telemetry) -> Arc<Mutex<Vec<(String, String)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    telemetry
        .publisher()
        .subscribe(
            &["*"],
            subscriber::from_fn("recorder", move |e: &Event<'_>| {
                let step = e
                    .get("step_name")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned();
                sink.lock().unwrap().push((e.name().to_string(), step));
            }),
        )
        .unwrap();
    seen
}

struct Echo;

#[step_handler]
impl Echo {
    fn process(&self, sequence: &Sequence, step: &Step) -> Result<serde_json::Value, StepError> {
        let upstream: Vec<&str> = sequence.step_names().collect();
        Ok(serde_json::json!({"step": step.name(), "after": upstream}))
    }
}

struct AlwaysFails;

#[step_handler(retry_limit = 3)]
impl AlwaysFails {
    fn process(&self, _step: &Step) -> Result<(), StepError> {
        Err(StepError::new("upstream unavailable").with_class("Unavailable"))
    }
}

fn names(events: &[(String, String)]) -> Vec<&str> {
    events.iter().map(|(e, _)| e.as_str()).collect()
}

fn position(events: &[(String, String)], event: &str, step: &str) -> usize {
    events
        .iter()
        .position(|(e, s)| e == event && s == step)
        .unwrap_or_else(|| panic!("{event} for {step:?} not published: {events:?}"))
}

#[tokio::test]
async fn linear_workflow_event_order() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(&telemetry);
    let workflow = Workflow::builder("linear")
        .handler(Echo)
        .step(StepDef::new("a").handler("echo"))
        .step(StepDef::new("b").handler("echo").depends_on(["a"]))
        .step(StepDef::new("c").handler("echo").depends_on(["b"]))
        .build()
        .unwrap();
    let outcome = workflow
        .run(&telemetry, "t-linear", serde_json::json!({}))
        .await;
    assert!(outcome.is_complete(), "{outcome:?}");
    assert_eq!(outcome.results["c"]["after"], serde_json::json!(["a", "b"]));
    let events = seen.lock().unwrap().clone();
    let order = names(&events);
    assert_eq!(
        &order[..4],
        [
            "observability.task.enqueue",
            "task.initialize_requested",
            "step.initialize_requested",
            "step.initialize_requested"
        ]
    );
    for expected in [
        "task.before_transition",
        "task.start_requested",
        "workflow.orchestration_requested",
        "workflow.task_started",
        "observability.task.handle",
    ] {
        assert!(order.contains(&expected), "{expected}");
    }
    let step_events = [
        "step.before_transition",
        "step.execution_requested",
        "step.handle",
        "step.before_handle",
        "step.completed",
    ];
    for step in ["a", "b", "c"] {
        let at: Vec<usize> = step_events
            .iter()
            .map(|e| position(&events, e, step))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{step}: {at:?}");
    }
    assert!(
        position(&events, "step.completed", "a") < position(&events, "step.before_handle", "b")
    );
    assert!(
        position(&events, "step.completed", "b") < position(&events, "step.before_handle", "c")
    );
    let tail = &order[order.len() - 6..];
    assert_eq!(
        tail,
        [
            "workflow.task_finalization_started",
            "observability.task.finalize",
            "task.before_transition",
            "task.completed",
            "workflow.task_completed",
            "workflow.task_finalization_completed"
        ]
    );
    assert_eq!(
        order
            .iter()
            .filter(|e| **e == "workflow.viable_steps_discovered")
            .count(),
        3
    );
    assert_eq!(
        order
            .iter()
            .filter(|e| **e == "workflow.no_viable_steps")
            .count(),
        1
    );
}

#[tokio::test]
async fn diamond_runs_the_middle_steps_in_one_batch() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(&telemetry);
    let workflow = Workflow::builder("diamond")
        .handler(Echo)
        .step(StepDef::new("a").handler("echo"))
        .step(StepDef::new("b").handler("echo").depends_on(["a"]))
        .step(StepDef::new("c").handler("echo").depends_on(["a"]))
        .step(StepDef::new("d").handler("echo").depends_on(["b", "c"]))
        .build()
        .unwrap();
    let outcome = workflow
        .run(&telemetry, "t-diamond", serde_json::json!({}))
        .await;
    assert!(outcome.is_complete());
    let events = seen.lock().unwrap().clone();
    let batches: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, (e, _))| e == "workflow.steps_execution_started")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(batches.len(), 3, "a, then {{b, c}}, then d");
    let d = position(&events, "step.before_handle", "d");
    for middle in ["b", "c"] {
        let started = position(&events, "step.before_handle", middle);
        assert!(started > batches[1] && started < batches[2]);
        assert!(position(&events, "step.completed", middle) < d);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_step_retries_exactly_retry_limit_times_with_growing_delays() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(&telemetry);
    let backoff_seconds = Arc::new(Mutex::new(Vec::new()));
    let sink = backoff_seconds.clone();
    telemetry
        .publisher()
        .subscribe(
            &["observability.step.backoff"],
            subscriber::from_fn("delays", move |e| {
                sink.lock()
                    .unwrap()
                    .push(e.get("backoff_seconds").and_then(|v| v.as_f64()).unwrap());
            }),
        )
        .unwrap();
    let workflow = Workflow::builder("failing")
        .handler(Echo)
        .handler(AlwaysFails)
        .step(StepDef::new("a").handler("echo"))
        .step(
            StepDef::new("b")
                .handler("always_fails")
                .depends_on(["a"])
                .backoff(Backoff {
                    base: Duration::from_secs(1),
                    max: Duration::from_secs(60),
                    jitter: 0.0,
                }),
        )
        .step(StepDef::new("c").handler("echo").depends_on(["b"]))
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let outcome = workflow
        .run(&telemetry, "t-fail", serde_json::json!({}))
        .await;
    let waited = start.elapsed();
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert_eq!(outcome.attempts["b"], 3);
    assert_eq!(outcome.steps["b"], StepState::Failed);
    assert_eq!(outcome.steps["c"], StepState::Pending);
    assert_eq!(outcome.errors["b"], "upstream unavailable");
    assert_eq!(*backoff_seconds.lock().unwrap(), [1.0, 2.0], "exponential");
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?} on the paused clock"
    );
    let events = seen.lock().unwrap().clone();
    let count = |event: &str| {
        events
            .iter()
            .filter(|(e, s)| e == event && s == "b")
            .count()
    };
    assert_eq!(count("step.before_handle"), 3);
    assert_eq!(count("step.failed"), 3);
    assert_eq!(count("step.retry_requested"), 2);
    assert_eq!(count("observability.step.max_retries_reached"), 1);
    assert!(names(&events).contains(&"workflow.step_failed"));
    assert!(names(&events).contains(&"task.failed"));
    assert!(names(&events).contains(&"workflow.task_failed"));
}

/// Tracks how many run at once.
struct Concurrent {
    active: Arc<AtomicUsize>,
    high: Arc<AtomicUsize>,
}

#[step_handler(name = "concurrent")]
impl Concurrent {
    async fn process(&self, _step: &Step) -> Result<(), StepError> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.high.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.active.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn concurrency_never_exceeds_the_limit() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let (active, high) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut builder = Workflow::builder("wide").handler(Concurrent {
        active: active.clone(),
        high: high.clone(),
    });
    for i in 0..7 {
        builder = builder.step(StepDef::new(format!("s{i}")).handler("concurrent"));
    }
    let workflow = builder.build().unwrap();
    let options = RunOptions {
        max_concurrent_steps: Some(2),
        ..Default::default()
    };
    let outcome = workflow
        .run_with(&telemetry, "t-wide", serde_json::json!({}), options)
        .await;
    assert!(outcome.is_complete());
    assert_eq!(high.load(Ordering::SeqCst), 2, "high-water mark");
    // The configuration's default (Tasker's 3) applies without an option.
    high.store(0, Ordering::SeqCst);
    workflow
        .run(&telemetry, "t-wide-2", serde_json::json!({}))
        .await;
    assert_eq!(high.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_new_steps_and_reports_cancelled() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(&telemetry);
    let (active, high) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workflow = Workflow::builder("cancellable")
        .handler(Concurrent { active, high })
        .step(StepDef::new("first").handler("concurrent"))
        .step(
            StepDef::new("second")
                .handler("concurrent")
                .depends_on(["first"]),
        )
        .build()
        .unwrap();
    let cancel = CancelHandle::new();
    let options = RunOptions {
        cancel: cancel.clone(),
        ..Default::default()
    };
    let run = workflow.run_with(&telemetry, "t-cancel", serde_json::json!({}), options);
    let canceller = async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        cancel.cancel();
    };
    let (outcome, ()) = tokio::join!(run, canceller);
    assert_eq!(outcome.status, TaskStatus::Cancelled);
    assert_eq!(
        outcome.steps["first"],
        StepState::Cancelled,
        "the running step was stopped at its await"
    );
    assert_eq!(
        outcome.steps["second"],
        StepState::Pending,
        "no new step started"
    );
    let events = seen.lock().unwrap().clone();
    assert!(names(&events).contains(&"task.cancelled"));
    assert!(
        events
            .iter()
            .any(|(e, s)| e == "step.cancelled" && s == "first"),
        "the stopped attempt says so"
    );
    assert!(
        !events
            .iter()
            .any(|(e, s)| e == "step.before_handle" && s == "second")
    );
}

/// Never returns.
struct Hangs;

#[step_handler]
impl Hangs {
    async fn process(&self, _step: &Step) -> Result<(), StepError> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_step_is_stopped_by_cancellation_and_by_its_timeout() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = recorder(&telemetry);
    // Cancellation: the run returns although the step never would.
    let workflow = Workflow::builder("hung")
        .handler(Hangs)
        .step(StepDef::new("hangs"))
        .build()
        .unwrap();
    let cancel = CancelHandle::new();
    let options = RunOptions {
        cancel: cancel.clone(),
        ..Default::default()
    };
    let run = workflow.run_with(&telemetry, "t-hung", serde_json::json!({}), options);
    let canceller = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        cancel.cancel();
    };
    let (outcome, ()) = tokio::join!(run, canceller);
    assert_eq!(outcome.status, TaskStatus::Cancelled);
    assert_eq!(outcome.steps["hangs"], StepState::Cancelled);

    // A timeout: each attempt stopped after 100 ms, retried, then the step timed out.
    let quick = Backoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(1),
        jitter: 0.0,
    };
    let workflow = Workflow::builder("bounded")
        .handler(Hangs)
        .step(
            StepDef::new("hangs")
                .timeout(Duration::from_millis(100))
                .retry_limit(2)
                .backoff(quick),
        )
        .build()
        .unwrap();
    let outcome = workflow
        .run(&telemetry, "t-bounded", serde_json::json!({}))
        .await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert_eq!(outcome.steps["hangs"], StepState::TimedOut);
    assert_eq!(outcome.attempts["hangs"], 2);
    assert!(
        outcome.errors["hangs"].contains("timed out after 100ms"),
        "{:?}",
        outcome.errors
    );
    let events = seen.lock().unwrap().clone();
    let stopped = events
        .iter()
        .filter(|(e, s)| e == "step.cancelled" && s == "hangs")
        .count();
    assert_eq!(stopped, 3, "each stopped attempt ends as step.cancelled");
}

#[test]
fn each_dag_error_is_typed() {
    let base = || Workflow::builder("w").handler(Echo);
    assert_eq!(
        base().build().unwrap_err(),
        WorkflowError::Empty {
            workflow: "w".into()
        }
    );
    assert_eq!(
        base()
            .step(StepDef::new("a").handler("echo"))
            .step(StepDef::new("a").handler("echo"))
            .build()
            .unwrap_err(),
        WorkflowError::DuplicateStep {
            workflow: "w".into(),
            step: "a".into()
        }
    );
    assert_eq!(
        base()
            .step(StepDef::new("a").handler("echo").depends_on(["ghost"]))
            .build()
            .unwrap_err(),
        WorkflowError::UnknownDependency {
            workflow: "w".into(),
            step: "a".into(),
            dependency: "ghost".into()
        }
    );
    let unknown = base()
        .step(StepDef::new("a").handler("nope"))
        .build()
        .unwrap_err();
    assert!(
        matches!(&unknown, WorkflowError::UnknownHandler { handler, registered, .. } if handler == "nope" && registered == "echo")
    );
    let cycle = base()
        .step(StepDef::new("a").handler("echo").depends_on(["c"]))
        .step(StepDef::new("b").handler("echo").depends_on(["a"]))
        .step(StepDef::new("c").handler("echo").depends_on(["b"]))
        .step(StepDef::new("d").handler("echo"))
        .build()
        .unwrap_err();
    let WorkflowError::Cycle { steps, .. } = &cycle else {
        panic!("{cycle:?}")
    };
    assert_eq!(steps.first(), steps.last());
    let mut members: Vec<&str> = steps[..steps.len() - 1]
        .iter()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["a", "b", "c"]);
    assert!(cycle.to_string().contains("->"));
}

/// Waits until the gate opens, at most 10 s: when the step that opens it can only start after
/// this one ends (batch by batch), it times out and fails instead.
struct Slow {
    gate: Arc<tokio::sync::Notify>,
}

#[step_handler]
impl Slow {
    async fn process(&self, _step: &Step) -> Result<&'static str, StepError> {
        tokio::time::timeout(Duration::from_secs(10), self.gate.notified())
            .await
            .map_err(|_| StepError::new("the other steps never ran beside this one"))?;
        Ok("released")
    }
}

/// Opens the gate once it has run.
struct Opener {
    gate: Arc<tokio::sync::Notify>,
    runs: Arc<AtomicUsize>,
}

#[step_handler]
impl Opener {
    fn process(&self, _step: &Step) -> Result<(), StepError> {
        // The third run is the step that only a freed slot lets start.
        if self.runs.fetch_add(1, Ordering::SeqCst) + 1 == 3 {
            self.gate.notify_one();
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_step_starts_as_soon_as_a_slot_is_free() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    // Two slots; `slow` holds one until the third quick step has run in the other, which
    // happens only if each quick step starts as the one before it frees its slot.
    let workflow = Workflow::builder("slots")
        .handler(Slow { gate: gate.clone() })
        .handler(Opener {
            gate,
            runs: runs.clone(),
        })
        .step(StepDef::new("slow"))
        .step(StepDef::new("quick_1").handler("opener"))
        .step(StepDef::new("quick_2").handler("opener"))
        .step(StepDef::new("quick_3").handler("opener"))
        .build()
        .unwrap();
    let options = RunOptions {
        max_concurrent_steps: Some(2),
        ..Default::default()
    };
    let outcome = workflow
        .run_with(&telemetry, "t-slots", serde_json::json!({}), options)
        .await;
    assert!(outcome.is_complete(), "{outcome:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

struct Noop;

#[step_handler]
impl Noop {
    fn process(&self, _step: &Step) -> Result<(), StepError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_10000_step_chain_declared_last_step_first_validates_and_runs() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let mut builder = Workflow::builder("long_chain").handler(Noop);
    for i in (0..10_000).rev() {
        let mut def = StepDef::new(format!("s{i}")).handler("noop");
        if i > 0 {
            def = def.depends_on([format!("s{}", i - 1)]);
        }
        builder = builder.step(def);
    }
    let workflow = builder.build().expect("validated without deep recursion");
    let outcome = workflow
        .run(&telemetry, "t-long", serde_json::json!({}))
        .await;
    assert!(outcome.is_complete());
    assert_eq!(outcome.results.len(), 10_000);
    // A cycle that long is found as well, and named.
    let mut builder = Workflow::builder("long_cycle").handler(Noop);
    for i in 0..10_000 {
        builder = builder.step(
            StepDef::new(format!("s{i}"))
                .handler("noop")
                .depends_on([format!("s{}", (i + 1) % 10_000)]),
        );
    }
    match builder.build() {
        Err(WorkflowError::Cycle { steps, .. }) => assert_eq!(steps.len(), 10_001),
        other => panic!("expected a cycle, got {other:?}"),
    }
}
