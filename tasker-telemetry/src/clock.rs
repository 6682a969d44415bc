//! The clock step attempts are timed and stamped with.
//!
//! Readings come from [`quanta`]: the CPU's time-stamp counter where it runs at a constant rate
//! in step across cores, the operating system's monotonic clock otherwise. The counter is
//! calibrated on first use; [`Telemetry::new`](crate::Telemetry::new) does it up front so that no
//! step pays for it. Durations never go negative: a reading taken on another core that is behind
//! by a few ticks gives zero.
//!
//! Wall-clock times ([`wall_nanos_at`]) are the same readings converted against one anchor (a
//! system-clock time and the counter's reading beside it) that every thread shares and whoever
//! finds it older than [`REANCHOR`] renews: an event's timestamp then costs a counter read
//! rather than a system-clock read, and stays within a few microseconds of the system clock (NTP
//! slews it by at most 500 ppm, 10 µs over that span).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::OnceLock;

use crossbeam_utils::atomic::AtomicCell;

/// How long the wall-clock anchor is used before the system clock is read again.
const REANCHOR: Duration = Duration::from_millis(20);

/// A reading of the clock (raw counter ticks), meaningful only against another reading of the
/// same process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Reading(u64);

/// The calibrated clock, held here rather than reached through `quanta::Instant::now`, which
/// looks for a per-thread mock clock on every reading.
static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

#[inline]
fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the counter and sets the wall-clock anchor now rather than at the first reading,
/// so that no step pays for it.
pub(crate) fn calibrate() {
    wall_nanos_at(now());
}

/// Reads the clock.
#[inline]
pub(crate) fn now() -> Reading {
    Reading(clock().raw())
}

impl Reading {
    /// Time from this reading to `later` (zero if `later` is not later).
    #[inline]
    pub(crate) fn until(self, later: Reading) -> Elapsed {
        Elapsed(clock().delta_as_nanos(self.0, later.0))
    }
}

/// Time between two readings, in whole nanoseconds.
///
/// Kept as one integer because metrics want seconds and payloads want a [`Duration`]: seconds are
/// then one multiply, and the `Duration` is built only when an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Elapsed(u64);

impl Elapsed {
    /// In seconds.
    #[inline]
    pub(crate) fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-9
    }

    /// In nanoseconds.
    #[inline]
    pub(crate) fn as_nanos(self) -> u64 {
        self.0
    }

    /// As a [`Duration`].
    #[inline]
    pub(crate) fn to_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

/// The wall-clock anchor: a system-clock time and the reading taken beside it.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    unix_nanos: u64,
    taken: Reading,
}

/// The anchor every thread converts against; `None` until first use. A cell rather than a lock:
/// conversions read it on every stamped event, and renewals are rare.
static ANCHOR: AtomicCell<Option<Anchor>> = AtomicCell::new(None);

/// The current wall-clock time, in nanoseconds since the Unix epoch.
///
/// Nanoseconds rather than a [`SystemTime`]: a stamp is then an add, where building a
/// `SystemTime` splits it into seconds and nanoseconds on every event.
#[inline]
pub(crate) fn wall_nanos_now() -> u64 {
    wall_nanos_at(now())
}

/// The wall-clock time of `reading` (taken just now), in nanoseconds since the Unix epoch, so
/// that an event marking the same moment as a duration's end costs no second clock read.
#[inline]
pub(crate) fn wall_nanos_at(reading: Reading) -> u64 {
    if let Some(anchor) = ANCHOR.load() {
        // One of the two is zero: the reading may be a little older than the anchor.
        let after = anchor.taken.until(reading).as_nanos();
        let before = reading.until(anchor.taken).as_nanos();
        let limit = REANCHOR.as_nanos() as u64;
        if after < limit && before < limit {
            return (anchor.unix_nanos + after).saturating_sub(before);
        }
    }
    reanchor()
}

/// Reads the system clock and renews the anchor from it: once per [`REANCHOR`].
#[cold]
#[inline(never)]
fn reanchor() -> u64 {
    let taken = now();
    let unix_nanos = system_nanos(SystemTime::now());
    ANCHOR.store(Some(Anchor { unix_nanos, taken }));
    unix_nanos
}

/// `time` in nanoseconds since the Unix epoch: zero before it, saturated after 2554.
#[inline]
pub(crate) fn system_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn agrees_with_instant() {
        // Measure one interval with both clocks; they must agree to within 5% plus 50 µs
        // (scheduling between the reads).
        let start = now();
        let instant = Instant::now();
        let mut spin = 0u64;
        while instant.elapsed() < Duration::from_millis(20) {
            spin = std::hint::black_box(spin + 1);
        }
        let by_instant = instant.elapsed();
        let by_clock = start.until(now()).to_duration();
        let diff = by_clock.abs_diff(by_instant);
        assert!(
            diff < by_instant / 20 + Duration::from_micros(50),
            "clock {by_clock:?} vs Instant {by_instant:?}"
        );
    }

    #[test]
    fn wall_clock_follows_the_system_clock() {
        // Across several renewals of the anchor, every derived reading stays between two
        // system-clock readings taken around it (with 1 ms of slack for rounding and slew).
        let slack = Duration::from_millis(1);
        let until = Instant::now() + REANCHOR * 3;
        while Instant::now() < until {
            let before = SystemTime::now();
            let derived = UNIX_EPOCH + Duration::from_nanos(wall_nanos_now());
            let after = SystemTime::now();
            assert!(derived + slack >= before, "{derived:?} before {before:?}");
            assert!(derived <= after + slack, "{derived:?} after {after:?}");
        }
    }

    #[test]
    fn an_anchor_older_than_the_renewal_period_is_renewed() {
        let start = now();
        let spin = Instant::now();
        while spin.elapsed() < REANCHOR * 2 {
            std::hint::spin_loop();
        }
        let stale = Anchor {
            unix_nanos: system_nanos(SystemTime::now()),
            taken: start,
        };
        ANCHOR.store(Some(stale));
        wall_nanos_now();
        let renewed = ANCHOR.load().expect("an anchor");
        assert!(
            renewed.taken > stale.taken,
            "the stale anchor {stale:?} was kept"
        );
    }

    #[test]
    fn never_negative() {
        let later = now();
        let earlier = Reading(later.0 + 1_000_000);
        assert_eq!(earlier.until(later).to_duration(), Duration::ZERO);
        assert_eq!(earlier.until(later).as_secs_f64(), 0.0);
    }

    #[test]
    fn readings_are_monotonic_across_threads() {
        // A reading taken on one thread, then one taken on another thread after it (ordered by
        // the join): the second is never earlier than the first.
        for _ in 0..100 {
            let first = std::thread::spawn(now).join().unwrap();
            let second = std::thread::spawn(now).join().unwrap();
            assert!(second.0 >= first.0, "{second:?} < {first:?}");
        }
    }
}
