//! Building telemetry and dropping it leaves nothing behind: the bytes live on the heap after
//! 10,000 `Telemetry::new()` / drop rounds are those live after the first hundred (a dead
//! publisher's registration with the catalog used to stay until the next custom event, about
//! 225 bytes each).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use tasker_telemetry::{Publisher, Telemetry, TelemetryConfig};

/// Counts the bytes live on the heap, process-wide.
struct LiveBytes;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the count is one atomic
// add, which never allocates.
unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: LiveBytes = LiveBytes;

/// Heap bytes that outlive `rounds` of `make` then drop, after a warm-up of 100.
fn growth_over<T>(rounds: usize, make: impl Fn() -> T) -> i64 {
    for _ in 0..100 {
        drop(make());
    }
    let before = LIVE.load(Ordering::Relaxed);
    for _ in 0..rounds {
        drop(make());
    }
    LIVE.load(Ordering::Relaxed) - before
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
