//! Wall-clock timestamps rendered as RFC 3339 in UTC.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// A point in wall-clock time, rendered as RFC 3339 UTC with microseconds
/// (`2026-11-23T20:35:48.123456Z`).
///
/// Event payloads carry these for `timestamp`, `started_at` and `completed_at`. Durations are
/// never computed from them (they come from a monotonic clock); they exist so that people and
/// log pipelines can read when something happened.
///
/// A timestamp holds nanoseconds since the Unix epoch: a time before the epoch is taken as the
/// epoch itself, and one after 2554 as the last nanosecond a `u64` counts.
///
/// ```
/// use tasker_telemetry::Timestamp;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let t = Timestamp::from(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
/// assert_eq!(t.to_string(), "2023-11-14T22:13:20.123000Z");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Nanoseconds since the Unix epoch: stamping an event is then an add, where a
    /// `SystemTime` is split into seconds and nanoseconds each time it is built or shifted.
    unix_nanos: u64,
}

impl Timestamp {
    /// The current wall-clock time. Where the CPU's time-stamp counter is trusted it is read
    /// against a per-thread anchor to the system clock, which keeps it within a few microseconds
    /// of `SystemTime::now()` at a third of the cost.
    ///
    /// ```
    /// use tasker_telemetry::Timestamp;
    /// use std::time::{Duration, SystemTime};
    ///
    /// let now = Timestamp::now().as_system_time();
    /// let system = SystemTime::now();
    /// assert!(now <= system + Duration::from_millis(1));
    /// ```
    #[inline]
    pub fn now() -> Self {
        Self::from_unix_nanos(crate::clock::wall_nanos_now())
    }

    /// The wall-clock time of a monotonic reading just taken by this thread.
    #[inline]
    pub(crate) fn at_reading(reading: crate::clock::Reading) -> Self {
        Self::from_unix_nanos(crate::clock::wall_nanos_at(reading))
    }

    #[inline]
    pub(crate) const fn from_unix_nanos(unix_nanos: u64) -> Self {
        Self { unix_nanos }
    }

    /// This time less `nanos` nanoseconds (the epoch at the earliest).
    #[inline]
    pub(crate) fn minus_nanos(self, nanos: u64) -> Self {
        Self::from_unix_nanos(self.unix_nanos.saturating_sub(nanos))
    }

    /// The underlying [`SystemTime`].
    ///
    /// ```
    /// use tasker_telemetry::Timestamp;
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// let time = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
    /// assert_eq!(Timestamp::from(time).as_system_time(), time);
    /// ```
    pub fn as_system_time(&self) -> SystemTime {
        UNIX_EPOCH + self.since_epoch()
    }

    /// RFC 3339 UTC with milliseconds (`2026-11-23T20:35:48.123Z`), as log lines carry it.
    pub fn to_millis_string(&self) -> String {
        let micros = self.to_string();
        // `...SS.uuuuuuZ` -> `...SS.mmmZ`
        format!("{}Z", &micros[..micros.len().saturating_sub(4)])
    }

    /// Time since the Unix epoch; zero for times before it.
    pub fn since_epoch(&self) -> Duration {
        Duration::from_nanos(self.unix_nanos)
    }
}

/// Times before the Unix epoch become the epoch; times after 2554 saturate.
impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        Self::from_unix_nanos(crate::clock::system_nanos(time))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self.since_epoch();
        let secs = since.as_secs();
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60,
            since.subsec_micros()
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm), so that no
/// date crate is needed for the one format we emit.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_instants() {
        let cases = [
            (0_u64, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, "2000-02-29T00:00:00.000000Z"),
            (1_709_251_199, "2024-02-29T23:59:59.000000Z"),
            (4_102_444_800, "2100-01-01T00:00:00.000000Z"),
        ];
        for (secs, want) in cases {
            let t = Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(t.to_string(), want, "{secs}");
        }
    }

    #[test]
    fn clamps_to_what_nanoseconds_since_the_epoch_hold() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(Timestamp::from(before).as_system_time(), UNIX_EPOCH);
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 2);
        assert_eq!(
            Timestamp::from(far).since_epoch(),
            Duration::from_nanos(u64::MAX)
        );
        let t = Timestamp::from(UNIX_EPOCH + Duration::from_nanos(5));
        assert_eq!(t.minus_nanos(3).since_epoch(), Duration::from_nanos(2));
        assert_eq!(t.minus_nanos(9).since_epoch(), Duration::ZERO);
    }

    #[test]
    fn serialises_as_string() {
        let t = Timestamp::from(UNIX_EPOCH + Duration::from_micros(1_500_000));
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"1970-01-01T00:00:01.500000Z\""
        );
    }
}
