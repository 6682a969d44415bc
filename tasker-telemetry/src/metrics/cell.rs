//! Sharded metric cells: the storage behind every counter, gauge and histogram series.
//!
//! A series keeps one slot per *lane*, each on its own cache line. A thread that records a metric
//! leases a lane for its lifetime and is then that lane's only writer, so an update is a plain
//! load and store (no locked read-modify-write) on a line no other thread writes: two threads on
//! one series never contend. Threads beyond the leased lanes share one more lane and update it
//! with atomic read-modify-writes, so updates are never lost, only slower. Readers (snapshots) sum
//! the lanes with relaxed loads.
//!
//! A lane goes back to the pool when its thread exits; the release / acquire pair on the pool
//! orders the old owner's last stores before the new owner's first load.

use std::cell::Cell as StdCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Leasable lanes (one bit each in [`POOL`]); the shared lane comes after them.
const MAX_LEASED: usize = 64;
/// A thread that has not asked for a lane yet.
const UNASSIGNED: usize = usize::MAX;
/// Marks the shared lane in [`LANE`], so telling it apart needs no other load.
const SHARED_BIT: usize = 1 << (usize::BITS - 2);

/// Bit `i` set: lane `i` is leased.
static POOL: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's lane: leased, the shared lane, or [`UNASSIGNED`]; read by every metric
    /// update this thread makes ([`lane`]). Const-initialised and
    /// without a destructor, so reading it is one TLS load and it stays readable while other
    /// thread-locals are destroyed.
    static LANE: StdCell<usize> = const { StdCell::new(UNASSIGNED) };
    /// The lane this thread leased, which its destructor gives back when the thread exits; read
    /// by nothing else.
    static LEASE: LaneLease = const { LaneLease(StdCell::new(None)) };
}

struct LaneLease(StdCell<Option<usize>>);

impl Drop for LaneLease {
    fn drop(&mut self) {
        if let Some(lane) = self.0.take() {
            // Anything this thread still records (from later TLS destructors) goes to the
            // shared lane, never to a lane someone else may lease next.
            let _ = LANE.try_with(|l| l.set(shared_lane().0));
            POOL.fetch_and(!(1u64 << lane), Ordering::Release);
        }
    }
}

/// Lanes leased to threads: twice the available parallelism (so short-lived threads rarely
/// miss out), at least 8, at most [`MAX_LEASED`].
fn leased_lanes() -> usize {
    static LANES: OnceLock<usize> = OnceLock::new();
    *LANES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(8, |n| n.get() * 2)
            .clamp(8, MAX_LEASED)
    })
}

fn shared_lane() -> Lane {
    Lane(leased_lanes() | SHARED_BIT)
}

/// Slots per series: the leased lanes plus the shared one.
pub(crate) fn lanes() -> usize {
    leased_lanes() + 1
}

/// The calling thread's lane.
#[inline]
pub(crate) fn lane() -> Lane {
    let lane = LANE.with(StdCell::get);
    if lane != UNASSIGNED {
        return Lane(lane);
    }
    assign()
}

#[cold]
#[inline(never)]
fn assign() -> Lane {
    let leased = leased_lanes();
    let mut pool = POOL.load(Ordering::Relaxed);
    let lane = loop {
        let free = (!pool).trailing_zeros() as usize;
        if free >= leased {
            break shared_lane().0;
        }
        match POOL.compare_exchange_weak(
            pool,
            pool | (1 << free),
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                // If the thread is already tearing down its TLS, the lease cannot be recorded
                // for release: hand the lane straight back and use the shared one.
                if LEASE.try_with(|l| l.0.set(Some(free))).is_err() {
                    POOL.fetch_and(!(1u64 << free), Ordering::Release);
                    break shared_lane().0;
                }
                break free;
            }
            Err(now) => pool = now,
        }
    };
    let _ = LANE.try_with(|l| l.set(lane));
    Lane(lane)
}

/// A thread's lane (its index, with [`SHARED_BIT`] set for the shared lane), looked up once per
/// batch of updates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lane(usize);

impl Lane {
    #[inline]
    fn is_shared(self) -> bool {
        self.0 & SHARED_BIT != 0
    }

    #[inline]
    fn index(self) -> usize {
        self.0 & !SHARED_BIT
    }
}

/// `words` u64 slots per lane, each lane padded to its own cache lines.
#[derive(Debug)]
pub(crate) struct Slots {
    words: usize,
    /// Words per lane, rounded up to a multiple of 8 (one 64-byte line).
    stride: usize,
    cells: Box<[AtomicU64]>,
}

impl Slots {
    pub(crate) fn new(words: usize, init: u64) -> Self {
        let stride = words.div_ceil(8).max(1) * 8;
        Self {
            words,
            stride,
            cells: (0..stride * lanes())
                .map(|_| AtomicU64::new(init))
                .collect(),
        }
    }

    #[inline]
    fn cell(&self, lane: Lane, word: usize) -> &AtomicU64 {
        debug_assert!(word < self.words);
        &self.cells[lane.index() * self.stride + word]
    }

    /// Adds `n` to `word` in `lane`.
    #[inline]
    pub(crate) fn add_u64(&self, lane: Lane, word: usize, n: u64) {
        let cell = self.cell(lane, word);
        if lane.is_shared() {
            cell.fetch_add(n, Ordering::Relaxed);
        } else {
            // The lane's only writer: no read-modify-write needed.
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        }
    }

    /// Adds `delta` to the f64 held (as bits) in `word` in `lane`.
    #[inline]
    pub(crate) fn add_f64(&self, lane: Lane, word: usize, delta: f64) {
        let cell = self.cell(lane, word);
        if lane.is_shared() {
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

    /// `word` summed over every lane, as an integer.
    pub(crate) fn sum_u64(&self, word: usize) -> u64 {
        (0..lanes())
            .map(|l| self.cell(Lane(l), word).load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// `word` summed over every lane, as an f64.
    pub(crate) fn sum_f64(&self, word: usize) -> f64 {
        (0..lanes())
            .map(|l| f64::from_bits(self.cell(Lane(l), word).load(Ordering::Relaxed)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two tests lease many lanes at once; run them one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn concurrent_adds_are_never_lost() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // More threads than leased lanes, so the shared lane is exercised too.
        let threads = lanes() * 2;
        let slots = Slots::new(2, 0);
        let per_thread = 10_000u64;
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..per_thread {
                        let lane = lane();
                        slots.add_u64(lane, 0, 1);
                        slots.add_f64(lane, 1, 0.5);
                    }
                });
            }
        });
        let expected = threads as u64 * per_thread;
        assert_eq!(slots.sum_u64(0), expected);
        assert_eq!(slots.sum_f64(1), expected as f64 * 0.5);
    }

    #[test]
    fn lanes_are_returned_when_threads_exit() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // Far more short-lived threads, one after another, than there are lanes: a lane that was
        // not returned would soon leave none to lease.
        for _ in 0..MAX_LEASED * 3 {
            let leased = std::thread::spawn(|| !lane().is_shared()).join().unwrap();
            assert!(
                leased,
                "a lane leaked: pool {:#x}",
                POOL.load(Ordering::Relaxed)
            );
        }
    }
}
