//! The monotonic clock step attempts are timed with.
//!
//! On x86_64, when the CPU has an invariant time-stamp counter *and* the kernel has chosen that
//! counter as its own clocksource (which it does only after checking that the counter runs at a
//! constant rate and in step across cores), a reading is one `rdtsc`, cheaper than
//! `Instant::now()` (BENCHMARKS.md has the figures). Everywhere else, and whenever a check
//! fails, readings come from `Instant`. The counter's rate is calibrated against `Instant` once
//! per process; [`Telemetry::new`](crate::Telemetry::new) does it up front so that no step pays
//! for it.
//!
//! Durations never go negative: a reading taken on another core that is behind by a few ticks
//! gives zero, not a wrapped-around huge value.
//!
//! The wall clock ([`wall_nanos_now`]) is derived the same way: each thread anchors the counter to
//! `SystemTime::now()` and re-anchors every [`REANCHOR`], so an event timestamp costs one counter
//! read and stays within a few microseconds of the system clock (NTP slews it by at most
//! 500 ppm, 10 µs over that span).

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a thread's wall-clock anchor is used before it is read again.
const REANCHOR: Duration = Duration::from_millis(20);

/// A reading of the clock, meaningful only against another reading of the same process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading(u64);

/// Nanoseconds per counter tick in 32.32 fixed point: a conversion is one multiply, where a
/// float one costs two conversions and their fix-ups on every reading.
#[derive(Debug, Clone, Copy)]
struct TickScale {
    /// `nanos_per_tick * 2^32`, rounded.
    mult: u64,
}

impl TickScale {
    /// For `nanos_per_tick` in (0, 10] (calibration accepts 0.05 to 10).
    fn new(nanos_per_tick: f64) -> Self {
        Self {
            mult: (nanos_per_tick * 4_294_967_296.0).round() as u64,
        }
    }

    /// `ticks` in nanoseconds (saturating).
    #[inline]
    fn nanos(self, ticks: u64) -> u64 {
        u64::try_from((u128::from(ticks) * u128::from(self.mult)) >> 32).unwrap_or(u64::MAX)
    }
}

#[derive(Debug)]
enum Source {
    /// `rdtsc`, scaled to nanoseconds.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Tsc { scale: TickScale },
    /// Nanoseconds since `anchor`.
    Instant { anchor: Instant },
}

static SOURCE: OnceLock<Source> = OnceLock::new();

/// The clock, chosen on first use. Inlined (the hot paths read it several times per attempt),
/// with the choice itself out of line.
#[inline]
fn source() -> &'static Source {
    match SOURCE.get() {
        Some(source) => source,
        None => init_source(),
    }
}

#[cold]
#[inline(never)]
fn init_source() -> &'static Source {
    SOURCE.get_or_init(choose)
}

/// Chooses (and calibrates) the clock now rather than at the first reading.
pub(crate) fn calibrate() {
    source();
}

/// Whether readings come from the CPU's time-stamp counter.
#[cfg(test)]
fn uses_tsc() -> bool {
    matches!(source(), Source::Tsc { .. })
}

/// Reads the clock.
#[inline]
pub(crate) fn now() -> Reading {
    match source() {
        #[cfg(target_arch = "x86_64")]
        Source::Tsc { .. } => Reading(rdtsc()),
        #[cfg(not(target_arch = "x86_64"))]
        Source::Tsc { .. } => Reading(0),
        Source::Instant { anchor } => Reading(anchor.elapsed().as_nanos() as u64),
    }
}

impl Reading {
    /// Time since this reading.
    #[inline]
    pub(crate) fn elapsed(self) -> Elapsed {
        self.until(now())
    }

    /// Time from this reading to `later` (zero if `later` is not later).
    #[inline]
    pub(crate) fn until(self, later: Reading) -> Elapsed {
        let delta = later.0.saturating_sub(self.0);
        match source() {
            Source::Tsc { scale } => Elapsed(scale.nanos(delta)),
            Source::Instant { .. } => Elapsed(delta),
        }
    }
}

/// Time between two readings, in whole nanoseconds.
///
/// Kept as one integer because metrics want seconds and payloads want a [`Duration`]: seconds are
/// then one multiply, where `Duration::as_secs_f64` splits and divides on every attempt, and the
/// `Duration` is built only when an event is.
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

/// The current wall-clock time, in nanoseconds since the Unix epoch: the system clock, or, with
/// the time-stamp counter, the counter read against this thread's anchor to it.
///
/// Nanoseconds rather than a [`SystemTime`]: a stamp is then an add, where building a
/// `SystemTime` splits it into seconds and nanoseconds on every event.
#[inline]
pub(crate) fn wall_nanos_now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if let Source::Tsc { scale } = source() {
        return tsc_wall_nanos_at(rdtsc(), *scale);
    }
    system_nanos(SystemTime::now())
}

/// The wall-clock time of `reading` (taken just now by this thread), in nanoseconds since the
/// Unix epoch, sparing a second clock read when an event's timestamp marks the same moment as a
/// duration's end.
#[inline]
pub(crate) fn wall_nanos_at(reading: Reading) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if let Source::Tsc { scale } = source() {
        return tsc_wall_nanos_at(reading.0, *scale);
    }
    let _ = reading;
    system_nanos(SystemTime::now())
}

/// `time` in nanoseconds since the Unix epoch: zero before it, saturated after 2554.
#[inline]
pub(crate) fn system_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// This thread's (counter, nanoseconds since the Unix epoch), read together; (0, 0) until
    /// first use.
    static ANCHOR: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn tsc_wall_nanos_at(now: u64, scale: TickScale) -> u64 {
    let (tsc, unix_nanos) = ANCHOR.with(Cell::get);
    let since = scale.nanos(now.wrapping_sub(tsc));
    if tsc != 0 && now >= tsc && since < REANCHOR.as_nanos() as u64 {
        return unix_nanos.saturating_add(since);
    }
    anchor_wall_nanos()
}

/// Reads the system clock and anchors this thread's counter to it: once per [`REANCHOR`].
#[cfg(target_arch = "x86_64")]
#[cold]
#[inline(never)]
fn anchor_wall_nanos() -> u64 {
    let wall = system_nanos(SystemTime::now());
    if wall != 0 {
        let _ = ANCHOR.try_with(|a| a.set((rdtsc(), wall)));
    }
    wall
}

fn fallback() -> Source {
    Source::Instant {
        anchor: Instant::now(),
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` is in the x86_64 baseline and touches no memory.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(target_arch = "x86_64")]
fn choose() -> Source {
    if !invariant_tsc() || !kernel_trusts_tsc() {
        return fallback();
    }
    match calibrate_tsc() {
        Some(nanos_per_tick) => Source::Tsc {
            scale: TickScale::new(nanos_per_tick),
        },
        None => fallback(),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn choose() -> Source {
    fallback()
}

/// CPUID leaf 0x8000_0007, EDX bit 8: the counter ticks at a constant rate in every P-, C- and
/// T-state.
#[cfg(target_arch = "x86_64")]
fn invariant_tsc() -> bool {
    use core::arch::x86_64::__cpuid;
    // Leaf 0x8000_0000 reports the highest extended leaf; 0x8000_0007 is read only if it exists.
    __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

/// The kernel keeps the TSC as its clocksource only while it finds it synchronised across cores
/// and stable; on any doubt it switches away, and so do we.
#[cfg(target_arch = "x86_64")]
fn kernel_trusts_tsc() -> bool {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .is_ok_and(|s| s.trim() == "tsc")
}

/// Nanoseconds per tick, from two (counter, `Instant`) pairs about 2 ms apart. Each pair is the
/// tightest of a few tries, so a preemption between the two reads cannot skew it.
#[cfg(target_arch = "x86_64")]
fn calibrate_tsc() -> Option<f64> {
    fn pair() -> (u64, Instant) {
        let mut best = (u64::MAX, 0, Instant::now());
        for _ in 0..5 {
            let before = rdtsc();
            let instant = Instant::now();
            let after = rdtsc();
            let width = after.saturating_sub(before);
            if width < best.0 {
                best = (width, before + width / 2, instant);
            }
        }
        (best.1, best.2)
    }
    let (tsc0, t0) = pair();
    while t0.elapsed() < Duration::from_millis(2) {
        std::hint::spin_loop();
    }
    let (tsc1, t1) = pair();
    let ticks = tsc1.checked_sub(tsc0)? as f64;
    let nanos = t1.duration_since(t0).as_nanos() as f64;
    let nanos_per_tick = nanos / ticks;
    // A counter between 100 MHz and 20 GHz; anything else means the readings are not to be
    // trusted.
    (0.05..=10.0)
        .contains(&nanos_per_tick)
        .then_some(nanos_per_tick)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_scale_matches_the_float_conversion() {
        for nanos_per_tick in [0.05, 0.2857, 0.3448275862, 1.0, 2.5, 10.0] {
            let scale = TickScale::new(nanos_per_tick);
            for ticks in [
                0u64,
                1,
                1_000,
                2_900_000_000,
                3_600 * 3_000_000_000,
                u64::MAX / 16,
            ] {
                let exact = ticks as f64 * nanos_per_tick;
                let got = scale.nanos(ticks) as f64;
                // Rounding the scale to 2^-32 ns per tick: under 1 ns per 4e9 ticks, plus one
                // for truncation.
                let tolerance = 1.0 + ticks as f64 / 4.0e9;
                assert!(
                    (got - exact).abs() <= tolerance,
                    "{nanos_per_tick} x {ticks}: {got} vs {exact}"
                );
            }
        }
        assert_eq!(TickScale::new(10.0).nanos(u64::MAX), u64::MAX, "saturates");
    }

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
        let by_clock = start.elapsed().to_duration();
        let diff = by_clock.abs_diff(by_instant);
        assert!(
            diff < by_instant / 20 + Duration::from_micros(50),
            "clock {by_clock:?} vs Instant {by_instant:?} (tsc: {})",
            uses_tsc()
        );
    }

    #[test]
    fn wall_clock_follows_the_system_clock() {
        // Across several re-anchorings, every derived reading stays between two system-clock
        // readings taken around it (with 1 ms of slack for rounding and slew).
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
    fn never_negative() {
        let later = now();
        let earlier = Reading(later.0.saturating_add(1_000_000));
        assert_eq!(earlier.until(later).to_duration(), Duration::ZERO);
        assert_eq!(earlier.until(later).as_secs_f64(), 0.0);
    }

    #[test]
    fn readings_are_monotonic_across_threads() {
        // A reading taken on one thread, then one taken on another thread after it (ordered by
        // the join): the second is never earlier than the first by more than rounding.
        for _ in 0..100 {
            let first = std::thread::spawn(now).join().unwrap();
            let second = std::thread::spawn(now).join().unwrap();
            assert!(second.0 >= first.0, "{second:?} < {first:?}");
        }
    }
}
