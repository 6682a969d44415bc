//! Building telemetry and dropping it leaves nothing behind: the bytes live on the heap after
//! 10,000 `Telemetry::new()` / drop rounds are those live after the first hundred (a dead
//! publisher's registration with the catalog used to stay until the next custom event, about
//! 225 bytes each).

use tasker_telemetry::{Publisher, Telemetry, TelemetryConfig};

/// The system allocator, counting the bytes live on the heap process-wide (the `cap` crate's).
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

fn live_bytes() -> i64 {
    ALLOCATOR.allocated() as i64
}

/// Heap bytes that outlive `rounds` of `make` then drop, after a warm-up of 100.
fn growth_over<T>(rounds: usize, make: impl Fn() -> T) -> i64 {
    for _ in 0..100 {
        drop(make());
    }
    let before = live_bytes();
    for _ in 0..rounds {
        drop(make());
    }
    live_bytes() - before
}

// One test in this binary: the count is process-wide, and another test's allocations would
// show in it.
#[test]
fn telemetry_and_publishers_dropped_leave_nothing() {
    let config = TelemetryConfig::default();
    let telemetry = growth_over(10_000, || Telemetry::new(config.clone()).unwrap());
    let publishers = growth_over(10_000, Publisher::new);
    // Less than a byte a round: a leak of one small allocation per round would be 10,000 times
    // its size.
    assert!(
        telemetry < 10_000,
        "{telemetry} bytes left by 10,000 Telemetry"
    );
    assert!(
        publishers < 10_000,
        "{publishers} bytes left by 10,000 Publishers"
    );
}
