//! The global switch: with telemetry off, scopes publish nothing. (Its own test binary, because
//! the switch is process-wide.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tasker_telemetry::{TaskScope, Telemetry, set_enabled, subscriber};

#[test]
fn switched_off_scopes_publish_nothing_and_switching_back_on_resumes() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    telemetry
        .publisher()
        .subscribe(
            &["*"],
            subscriber::from_fn("all", move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
            }),
        )
        .unwrap();
    let task = TaskScope::new(&telemetry, "1", "t");
    let step = task.step("1-1", "s");

    set_enabled(false);
    task.start();
    step.attempt(1).complete(&1);
    drop(step.attempt(2));
    assert_eq!(seen.load(Ordering::Relaxed), 0);

    set_enabled(true);
    step.attempt(3).complete(&1);
    assert_eq!(
        seen.load(Ordering::Relaxed),
        2,
        "before_handle and completed"
    );
}
