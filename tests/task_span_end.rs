//! A task span ends when the task completes, fails or is cancelled, whatever clones of its
//! `TaskScope` / `Task` / `Step` remain alive; a task or step attempt still open when the pipeline shuts down is
//! ended then, exported marked as open at shutdown (status and attribute) and counted, and the
//! report is not clean.

use tasker_telemetry::scope::{Failure, StepCounts};
use tasker_telemetry::spans::SpanPipeline;
use tasker_telemetry::{Task, Telemetry, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt;

fn pipeline() -> (SpanPipeline, Telemetry) {
    let config = TelemetryConfig::default();
    (
        SpanPipeline::new(&config).unwrap(),
        Telemetry::new(config).unwrap(),
    )
}

#[test]
fn a_finished_task_is_exported_while_its_task_and_step_are_still_alive() {
    let (pipeline, telemetry) = pipeline();
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    let kept = tracing::subscriber::with_default(subscriber, || {
        let mut kept = Vec::new();
        for (id, finish) in [("done", 0), ("failed", 1), ("cancelled", 2)] {
            let task = Task::new(&telemetry, id, "held", serde_json::Value::Null);
            task.scope().start();
            let step = task.step(format!("{id}-1"), "charge");
            step.scope().attempt(1).complete(&1);
            let counts = StepCounts {
                total: 1,
                completed: 1,
                ..Default::default()
            };
            match finish {
                0 => task.scope().complete(counts),
                1 => task
                    .scope()
                    .fail(&Failure::new("declined", "Declined"), counts),
                _ => task.scope().cancel(counts),
            }
            // Both stay alive past the pipeline's shutdown.
            kept.push((task.clone(), step));
        }
        kept
    });
    let report = pipeline.shutdown();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.open_at_shutdown, 0);
    let spans = pipeline.store().unwrap().spans();
    for id in ["done", "failed", "cancelled"] {
        let task = spans
            .iter()
            .find(|s| {
                s.name == "tasker.task.execution" && s.attribute("tasker.task_id") == Some(id)
            })
            .unwrap_or_else(|| panic!("task span {id} not exported: {spans:#?}"));
        assert_eq!(
            task.attribute("tasker.ended"),
            None,
            "the end marker is no attribute"
        );
        assert_eq!(task.attribute("tasker.completed_steps"), Some("1"));
        let step = spans
            .iter()
            .find(|s| {
                s.name == "tasker.step.execution" && s.attribute("tasker.task_id") == Some(id)
            })
            .expect("step span");
        assert_eq!(step.parent_span_id, task.span_id);
    }
    drop(kept);
}

#[test]
fn a_task_still_open_at_shutdown_is_counted_and_the_report_is_not_clean() {
    let (pipeline, telemetry) = pipeline();
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    let (task, step) = tracing::subscriber::with_default(subscriber, || {
        let task = Task::new(&telemetry, "open", "held", serde_json::Value::Null);
        task.scope().start();
        let step = task.step("open-1", "charge");
        step.scope().attempt(1).complete(&1);
        (task, step)
    });
    let report = pipeline.shutdown();
    assert_eq!(report.open_at_shutdown, 1, "{report:?}");
    assert!(!report.is_clean());
    // Ended by the shutdown and exported, marked.
    let spans = pipeline.store().unwrap().spans();
    let open = spans
        .iter()
        .find(|s| s.name == "tasker.task.execution")
        .unwrap_or_else(|| panic!("the open task span was not exported: {spans:#?}"));
    assert_eq!(open.attribute("tasker.open_at_shutdown"), Some("true"));
    assert!(open.status.starts_with("error"), "{}", open.status);
    assert_eq!(
        report.exported, 2,
        "the task span and its step span: {report:?}"
    );
    drop((task, step));
}

#[test]
fn a_step_attempt_still_running_at_shutdown_is_ended_exported_marked_and_counted() {
    let (pipeline, telemetry) = pipeline();
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    let dispatch = tracing::Dispatch::new(subscriber);
    let task = tracing::dispatcher::with_default(&dispatch, || {
        let task = Task::new(&telemetry, "running", "held", serde_json::Value::Null);
        task.scope().start();
        task
    });
    let step = task.step("running-1", "charge");
    let scope = step.scope();
    let attempt = tracing::dispatcher::with_default(&dispatch, || scope.attempt(1));
    let report = pipeline.shutdown();
    assert_eq!(
        report.open_at_shutdown, 2,
        "the task span and the attempt's: {report:?}"
    );
    assert!(!report.is_clean());
    assert_eq!(report.exported, 2, "{report:?}");
    let spans = pipeline.store().unwrap().spans();
    let task_span = spans
        .iter()
        .find(|s| s.name == "tasker.task.execution")
        .unwrap_or_else(|| panic!("the open task span was not exported: {spans:#?}"));
    let step_span = spans
        .iter()
        .find(|s| s.name == "tasker.step.execution")
        .unwrap_or_else(|| panic!("the running attempt's span was not exported: {spans:#?}"));
    assert_eq!(step_span.attribute("tasker.open_at_shutdown"), Some("true"));
    assert!(
        step_span.status.starts_with("error"),
        "{}",
        step_span.status
    );
    assert_eq!(step_span.parent_span_id, task_span.span_id);
    assert_eq!(step_span.trace_id, task_span.trace_id);
    // The attempt ends after the shutdown: nothing more is exported, nothing panics.
    tracing::dispatcher::with_default(&dispatch, || attempt.complete(&1));
    assert_eq!(pipeline.report().exported, 2);
    drop((step, task));
}

#[test]
fn a_finished_attempt_is_not_counted_open_at_shutdown() {
    let (pipeline, telemetry) = pipeline();
    let subscriber = tracing_subscriber::registry().with(pipeline.layer());
    tracing::subscriber::with_default(subscriber, || {
        let task = Task::new(&telemetry, "finished", "held", serde_json::Value::Null);
        task.scope().start();
        for n in 0..50 {
            let step = task.step(format!("s{n}"), "charge");
            step.scope().attempt(1).complete(&n);
        }
        task.scope().complete(StepCounts {
            total: 50,
            completed: 50,
            ..Default::default()
        });
    });
    let report = pipeline.shutdown();
    assert_eq!(report.open_at_shutdown, 0, "{report:?}");
    assert_eq!(report.exported, 51, "{report:?}");
    assert!(report.is_clean(), "{report:?}");
}
