//! Publishing an event nobody listens to performs no heap allocation and builds no payload.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tasker_telemetry::event::names;
use tasker_telemetry::payload::StepPayload;
use tasker_telemetry::{Publisher, TaskScope, Telemetry, subscriber};

/// Counts allocations made by the current thread while counting is switched on, so that other
/// test threads cannot disturb the figure.
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn the_counter_sees_allocations() {
    // Guards against a counter that can never fail.
    let n = allocations_during(|| drop(std::hint::black_box(vec![1u8; 32])));
    assert!(n >= 1);
}

#[test]
fn publishing_without_subscribers_allocates_nothing() {
    let publisher = Publisher::new();
    // Someone listens to another event: the table is populated, but not for step.completed.
    publisher
        .subscribe(&["task.completed"], subscriber::from_fn("other", |_| {}))
        .unwrap();

    let mut built = 0;
    let n = allocations_during(|| {
        for _ in 0..1_000 {
            publisher.publish_with(names::STEP_COMPLETED, || {
                built += 1;
                StepPayload::new("1", "t", "1-1", "s")
            });
        }
    });
    assert_eq!(n, 0, "allocations while publishing to nobody");
    assert_eq!(built, 0, "payload built with no subscriber");

    // The same loop with a subscriber does allocate (the payload), proving the test can fail.
    publisher
        .subscribe(&["step.completed"], subscriber::from_fn("now", |_| {}))
        .unwrap();
    let n = allocations_during(|| {
        publisher.publish_with(names::STEP_COMPLETED, || {
            StepPayload::new("1", "t", "1-1", "s")
        });
    });
    assert!(n > 0);
}

#[test]
fn a_step_attempt_with_no_subscriber_allocates_nothing() {
    let telemetry = Telemetry::new(Default::default()).unwrap();
    let task = TaskScope::new(&telemetry, "1", "t");
    let step = task.step("1-1", "s").with_retry_limit(3);
    // The first attempt resolves the step's metric handles (once per step scope, by design).
    step.attempt(1).complete(&0);
    let n = allocations_during(|| {
        for attempt in 1..=100 {
            let a = step.attempt(attempt);
            a.complete(&attempt);
        }
    });
    assert_eq!(n, 0);
}
