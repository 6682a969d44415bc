//! Model check of the metric lanes' protocol (tasker-telemetry/src/metrics/cell.rs) with loom:
//! every interleaving, and every value a relaxed load may legally return, of threads that lease
//! a lane, update it with a plain load + store, and give it back at exit, next to threads that
//! found no free lane and share one with atomic read-modify-writes, and a reader summing the
//! lanes. Proves that no update is lost when a lane changes hands (the pool's release / acquire
//! pair orders the old owner's last store before the new owner's first load), that the shared
//! lane loses nothing, and that a reader's totals never go backwards or overshoot.
//!
//! cell.rs uses std atomics and `thread_local!` directly, which loom cannot intercept, so the
//! protocol is replicated here step for step (`assign`, `LaneLease::drop`, `Slots::add_u64`,
//! `Slots::add_f64`, `Slots::sum_*`), with a thread's lifetime standing in for its
//! thread-locals. A mutated copy with the hand-over orderings relaxed must fail, which shows the
//! model can see the bug it guards against.

use std::sync::atomic::AtomicUsize as StdAtomicUsize;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;

/// The orderings of the lane hand-over: `assign`'s successful compare-exchange and
/// `LaneLease::drop`'s `fetch_and`.
#[derive(Debug, Clone, Copy)]
struct HandOver {
    lease: Ordering,
    release: Ordering,
}

/// As cell.rs ships it.
const SHIPPED: HandOver = HandOver {
    lease: Ordering::Acquire,
    release: Ordering::Release,
};

/// The mutation: no synchronisation between a lane's old and new owner.
const RELAXED: HandOver = HandOver {
    lease: Ordering::Relaxed,
    release: Ordering::Relaxed,
};

/// The pool and one series' slots: a u64 word (a counter) and, unless left out to keep a model
/// small, an f64 word (a gauge or a histogram's sum) per lane, the shared lane last.
struct Lanes {
    leased: usize,
    hand_over: HandOver,
    pool: AtomicU64,
    count: Vec<AtomicU64>,
    sum: Vec<AtomicU64>,
}

impl Lanes {
    fn new(leased: usize, hand_over: HandOver) -> Arc<Self> {
        Self::with_words(leased, hand_over, true)
    }

    fn with_words(leased: usize, hand_over: HandOver, f64_word: bool) -> Arc<Self> {
        let f64_lanes = if f64_word { leased + 1 } else { 0 };
        Arc::new(Self {
            leased,
            hand_over,
            pool: AtomicU64::new(0),
            count: (0..=leased).map(|_| AtomicU64::new(0)).collect(),
            sum: (0..f64_lanes)
                .map(|_| AtomicU64::new(0f64.to_bits()))
                .collect(),
        })
    }

    fn shared(&self) -> usize {
        self.leased
    }

    /// `cell::assign`: the lowest free lane, or the shared one when none is free.
    fn lease(&self) -> usize {
        let mut pool = self.pool.load(Ordering::Relaxed);
        loop {
            let free = (!pool).trailing_zeros() as usize;
            if free >= self.leased {
                return self.shared();
            }
            match self.pool.compare_exchange_weak(
                pool,
                pool | (1 << free),
                self.hand_over.lease,
                Ordering::Relaxed,
            ) {
                Ok(_) => return free,
                Err(now) => pool = now,
            }
        }
    }

    /// `LaneLease::drop` at thread exit (and `assign`'s hand-back when the thread is already
    /// tearing down its thread-locals).
    fn release(&self, lane: usize) {
        if lane != self.shared() {
            self.pool.fetch_and(!(1u64 << lane), self.hand_over.release);
        }
    }

    /// `Slots::add_u64`.
    fn add_u64(&self, lane: usize, n: u64) {
        let cell = &self.count[lane];
        if lane == self.shared() {
            cell.fetch_add(n, Ordering::Relaxed);
        } else {
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        }
    }

    /// `Slots::add_f64`.
    fn add_f64(&self, lane: usize, delta: f64) {
        let Some(cell) = self.sum.get(lane) else {
            return;
        };
        if lane == self.shared() {
            let mut current = cell.load(Ordering::Relaxed);
            loop {
                let next = (f64::from_bits(current) + delta).to_bits();
                match cell.compare_exchange_weak(
                    current,
                    next,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(actual) => current = actual,
                }
            }
        } else {
            let next = f64::from_bits(cell.load(Ordering::Relaxed)) + delta;
            cell.store(next.to_bits(), Ordering::Relaxed);
        }
    }

    /// `Slots::sum_u64` and `Slots::sum_f64`.
    fn totals(&self) -> (u64, f64) {
        let count = self
            .count
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add);
        let sum = self
            .sum
            .iter()
            .map(|c| f64::from_bits(c.load(Ordering::Relaxed)))
            .sum();
        (count, sum)
    }
}

/// A recording thread's life: its lane is leased at the first update, kept for every later one
/// (cell.rs caches it in a thread-local), and given back when the thread exits.
fn worker(lanes: &Lanes, updates: u64) {
    let lane = lanes.lease();
    for _ in 0..updates {
        lanes.add_u64(lane, 1);
        lanes.add_f64(lane, 0.5);
    }
    lanes.release(lane);
}

/// A thread that first records while tearing down its thread-locals: `assign` leases a lane,
/// cannot record the lease, hands the lane straight back and uses the shared lane.
fn tearing_down_worker(lanes: &Lanes, updates: u64) {
    let lane = lanes.lease();
    lanes.release(lane);
    let shared = lanes.shared();
    for _ in 0..updates {
        lanes.add_u64(shared, 1);
        lanes.add_f64(shared, 0.5);
    }
}

/// Runs `body` under loom and returns the interleavings explored. The preemptions per
/// interleaving are capped at `bound` in the default run (seconds in a debug build) and at
/// `soak_bound` with `TASKER_SOAK=1` (`None`: every interleaving); `LOOM_MAX_PREEMPTIONS`
/// overrides both.
fn explore(
    bound: Option<usize>,
    soak_bound: Option<usize>,
    body: impl Fn() + Sync + Send + 'static,
) -> usize {
    let explored = std::sync::Arc::new(StdAtomicUsize::new(0));
    let counter = explored.clone();
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        let soak = std::env::var_os("TASKER_SOAK").is_some_and(|v| v == "1");
        builder.preemption_bound = if soak { soak_bound } else { bound };
    }
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        body();
    });
    explored.load(std::sync::atomic::Ordering::Relaxed)
}

/// One leasable lane, two threads of two updates each: the second thread either shares the
/// lane (the first still holds it) or leases it after the first gave it back.
fn hand_over_model(hand_over: HandOver) -> usize {
    explore(None, None, move || {
        let lanes = Lanes::new(1, hand_over);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let lanes = lanes.clone();
                thread::spawn(move || worker(&lanes, 2))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(lanes.totals(), (4, 2.0), "an update was lost");
    })
}

#[test]
fn a_lane_handed_to_the_next_thread_keeps_every_update() {
    let explored = hand_over_model(SHIPPED);
    println!("loom: lane hand-over, {explored} interleavings explored, lost updates: 0");
    assert!(explored > 1);
}

#[test]
fn the_model_catches_a_hand_over_without_release_acquire() {
    let caught = std::panic::catch_unwind(|| hand_over_model(RELAXED));
    let message = caught
        .err()
        .and_then(|p| p.downcast::<String>().ok())
        .expect(
            "with relaxed hand-over orderings a new owner may read the lane before the old \
             owner's last store; loom must find that interleaving",
        );
    assert!(message.contains("an update was lost"), "{message}");
}

#[test]
fn threads_beyond_the_lanes_share_one_without_losing_updates() {
    let explored = explore(Some(2), Some(4), || {
        let lanes = Lanes::new(1, SHIPPED);
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let lanes = lanes.clone();
                thread::spawn(move || worker(&lanes, 1))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(lanes.totals(), (3, 1.5));
        assert_eq!(lanes.pool.load(Ordering::Relaxed), 0, "every lane returned");
    });
    println!("loom: three threads, one lane, {explored} interleavings explored, lost updates: 0");
}

#[test]
fn a_reader_never_sees_totals_go_backwards_or_overshoot() {
    let explored = explore(Some(2), Some(4), || {
        // Counter words only: the reader's loads multiply the interleavings.
        let lanes = Lanes::with_words(1, SHIPPED, false);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let lanes = lanes.clone();
                thread::spawn(move || worker(&lanes, 2))
            })
            .collect();
        let reader = {
            let lanes = lanes.clone();
            thread::spawn(move || {
                let first = lanes.totals().0;
                let second = lanes.totals().0;
                assert!(
                    first <= second,
                    "totals went backwards: {first} then {second}"
                );
                assert!(second <= 4, "totals overshot: {second}");
            })
        };
        for t in threads {
            t.join().unwrap();
        }
        reader.join().unwrap();
        assert_eq!(lanes.totals().0, 4);
    });
    println!("loom: two writers and a reader, {explored} interleavings explored, lost updates: 0");
}

#[test]
fn a_lane_handed_back_during_teardown_is_not_written_afterwards() {
    let explored = explore(Some(3), None, || {
        let lanes = Lanes::new(1, SHIPPED);
        let tearing = {
            let lanes = lanes.clone();
            thread::spawn(move || tearing_down_worker(&lanes, 2))
        };
        let normal = {
            let lanes = lanes.clone();
            thread::spawn(move || worker(&lanes, 2))
        };
        tearing.join().unwrap();
        normal.join().unwrap();
        assert_eq!(lanes.totals(), (4, 2.0));
    });
    println!("loom: teardown hand-back, {explored} interleavings explored, lost updates: 0");
}
