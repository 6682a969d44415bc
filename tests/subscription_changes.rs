//! Subscribing and unsubscribing never deadlock, whatever a subscriber's `Drop` does: one that
//! unsubscribes another as it is dropped, and one that subscribes a new subscriber. Each case
//! runs on its own thread under a watchdog, so a deadlock fails the test instead of hanging it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tasker_telemetry::event::names;
use tasker_telemetry::payload::StepPayload;
use tasker_telemetry::publisher::SubscriptionHandle;
use tasker_telemetry::{Publisher, Subscriber, subscriber};

/// How long a case may take before it counts as deadlocked.
const WATCHDOG: Duration = Duration::from_secs(20);

fn within_watchdog(case: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        case();
        let _ = done.send(());
    });
    finished
        .recv_timeout(WATCHDOG)
        .expect("the case finished: no deadlock");
}

fn publish(publisher: &Publisher) -> bool {
    publisher.publish_with(names::STEP_COMPLETED, || {
        StepPayload::new("t", "checkout", "t/1", "charge")
    })
}

/// Unsubscribes `other` when dropped.
struct UnsubscribesOnDrop {
    other: Mutex<Option<SubscriptionHandle>>,
    unsubscribed: Arc<AtomicU64>,
}

impl Subscriber for UnsubscribesOnDrop {
    fn on_event(&self, _: &tasker_telemetry::Event) {}
}

impl Drop for UnsubscribesOnDrop {
    fn drop(&mut self) {
        if let Some(other) = self.other.lock().unwrap().take()
            && other.unsubscribe()
        {
            self.unsubscribed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Subscribes a counter when dropped.
struct SubscribesOnDrop {
    publisher: Publisher,
    seen_by_successor: Arc<AtomicU64>,
}

impl Subscriber for SubscribesOnDrop {
    fn on_event(&self, _: &tasker_telemetry::Event) {}
}

impl Drop for SubscribesOnDrop {
    fn drop(&mut self) {
        let seen = self.seen_by_successor.clone();
        self.publisher
            .subscribe(
                &["step.completed"],
                subscriber::from_fn("successor", move |_| {
                    seen.fetch_add(1, Ordering::SeqCst);
                }),
            )
            .expect("subscribe from Drop");
    }
}

#[test]
fn a_subscriber_that_unsubscribes_another_as_it_is_dropped() {
    within_watchdog(|| {
        let publisher = Publisher::new();
        let other = publisher
            .subscribe(&["step.completed"], subscriber::from_fn("other", |_| {}))
            .unwrap();
        let unsubscribed = Arc::new(AtomicU64::new(0));
        let first = publisher
            .subscribe(
                &["step.completed"],
                UnsubscribesOnDrop {
                    other: Mutex::new(Some(other.clone())),
                    unsubscribed: unsubscribed.clone(),
                },
            )
            .unwrap();
        assert!(publish(&publisher));
        assert!(first.unsubscribe());
        assert_eq!(unsubscribed.load(Ordering::SeqCst), 1, "the Drop ran");
        assert!(!other.unsubscribe(), "already ended by the Drop");
        assert!(!publish(&publisher), "nobody listens any more");
    });
}

#[test]
fn a_subscriber_that_subscribes_another_as_it_is_dropped() {
    within_watchdog(|| {
        let publisher = Publisher::new();
        let seen = Arc::new(AtomicU64::new(0));
        let first = publisher
            .subscribe(
                &["step.completed"],
                SubscribesOnDrop {
                    publisher: publisher.clone(),
                    seen_by_successor: seen.clone(),
                },
            )
            .unwrap();
        assert!(first.unsubscribe());
        assert!(publish(&publisher), "the successor listens");
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_subscriber_dropped_while_another_thread_publishes() {
    within_watchdog(|| {
        let publisher = Publisher::new();
        let unsubscribed = Arc::new(AtomicU64::new(0));
        let mut rounds = 0;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let publishing = {
            let publisher = publisher.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    publish(&publisher);
                    n += 1;
                }
                n
            })
        };
        while rounds < 1_000 {
            let other = publisher
                .subscribe(&["step.completed"], subscriber::from_fn("other", |_| {}))
                .unwrap();
            let first = publisher
                .subscribe(
                    &["step.*"],
                    UnsubscribesOnDrop {
                        other: Mutex::new(Some(other)),
                        unsubscribed: unsubscribed.clone(),
                    },
                )
                .unwrap();
            first.unsubscribe();
            rounds += 1;
        }
        stop.store(true, Ordering::Relaxed);
        assert!(publishing.join().unwrap() > 0);
        // Each first subscriber is dropped, by this thread or by the publishing one once it has
        // let go of the old table; every Drop has run by the time both are done.
        drop(publisher);
        assert_eq!(unsubscribed.load(Ordering::SeqCst), 1_000);
    });
}
