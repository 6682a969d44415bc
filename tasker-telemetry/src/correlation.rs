//! Correlation ids: one id per task, on every event, span and log line of that task, carried
//! across threads, tasks and processes (the `X-Correlation-ID` header, or any carrier map).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::spans::Carrier;

/// Tasker's default header for the correlation id.
pub const CORRELATION_ID_HEADER: &str = "X-Correlation-ID";
/// The longest accepted incoming id.
pub const MAX_LEN: usize = 100;

static REJECTED: AtomicU64 = AtomicU64::new(0);

/// Incoming correlation ids rejected (and replaced by fresh ones) in this process.
pub fn rejected_correlation_ids() -> u64 {
    REJECTED.load(Ordering::Relaxed)
}

/// Why an incoming correlation id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorrelationIdError {
    /// Empty, or longer than 100 characters.
    #[error("correlation id of {len} characters: expected 1 to 100")]
    Length {
        /// Its length in characters.
        len: usize,
    },
    /// A character outside `[A-Za-z0-9_-]`, or a first character outside `[A-Za-z0-9]`.
    #[error("correlation id {value:?} is malformed: expected [A-Za-z0-9][A-Za-z0-9_-]*")]
    Malformed {
        /// The refused id (at most 100 characters of it).
        value: String,
    },
}

/// A task's correlation id: `tsk_<milliseconds in base 36>_<6 random alphanumerics>` when
/// generated.
///
/// ```
/// use tasker_telemetry::correlation::CorrelationId;
///
/// let id = CorrelationId::generate();
/// assert!(id.as_str().starts_with("tsk_"));
/// assert_eq!(CorrelationId::parse("req-42_a")?.as_str(), "req-42_a");
/// assert!(CorrelationId::parse("bad id!").is_err());
/// // An invalid incoming id is replaced (and counted), never trusted.
/// let fresh = CorrelationId::accept_or_generate(Some("<script>"));
/// assert!(fresh.as_str().starts_with("tsk_"));
/// # Ok::<(), tasker_telemetry::correlation::CorrelationIdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CorrelationId(Arc<str>);

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CorrelationId").field(&&*self.0).finish()
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const ALPHANUMERIC: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base36(mut n: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Six characters from the operating system's secure generator (uniform: bytes 248..=255 are
/// drawn again rather than folded).
fn random_suffix() -> String {
    let mut out = String::with_capacity(6);
    let mut buf = [0u8; 16];
    while out.len() < 6 {
        if getrandom::fill(&mut buf).is_err() {
            // No OS randomness: fall back to the hasher's per-process random keys, still
            // unpredictable across processes.
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            buf[..8].copy_from_slice(&h.finish().to_le_bytes());
        }
        for b in buf {
            if b < 248 && out.len() < 6 {
                out.push(ALPHANUMERIC[(b % 62) as usize] as char);
            }
        }
    }
    out
}

impl CorrelationId {
    /// A fresh id: `tsk_<ms since the epoch, base 36>_<6 alphanumerics>`.
    pub fn generate() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        Self(Arc::from(format!(
            "tsk_{}_{}",
            base36(millis),
            random_suffix()
        )))
    }

    /// Validates an incoming id: 1 to 100 characters of `[A-Za-z0-9][A-Za-z0-9_-]*`.
    pub fn parse(value: &str) -> Result<Self, CorrelationIdError> {
        let len = value.chars().count();
        if len == 0 || len > MAX_LEN {
            return Err(CorrelationIdError::Length { len });
        }
        let mut bytes = value.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(CorrelationIdError::Malformed {
                value: value.chars().take(MAX_LEN).collect(),
            });
        }
        Ok(Self(Arc::from(value)))
    }

    /// The incoming id when valid; otherwise a fresh one, counting the rejection in
    /// [`rejected_correlation_ids`].
    pub fn accept_or_generate(incoming: Option<&str>) -> Self {
        match incoming.map(Self::parse) {
            Some(Ok(id)) => id,
            Some(Err(_)) => {
                REJECTED.fetch_add(1, Ordering::Relaxed);
                Self::generate()
            }
            None => Self::generate(),
        }
    }

    /// Reads the id from a carrier under `header` (case-insensitive), accepting or replacing
    /// it as [`accept_or_generate`](Self::accept_or_generate) does.
    pub fn extract(carrier: &impl Carrier, header: &str) -> Self {
        Self::accept_or_generate(carrier.get(header))
    }

    /// Writes the id into a carrier under `header`.
    pub fn inject(&self, carrier: &mut impl Carrier, header: &str) {
        carrier.set(header, self.0.to_string());
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn shared(&self) -> &Arc<str> {
        &self.0
    }

    /// How many handles share this id's text, this one included. The scopes, events and
    /// asynchronous queues of a task hold clones, so a leak test that keeps the only other
    /// clone can prove a finished task let go of everything: the count is back to 1. Not part
    /// of the stable API.
    #[doc(hidden)]
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn generated_ids_have_the_documented_shape_and_differ() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let id = CorrelationId::generate();
            let parts: Vec<&str> = id.as_str().split('_').collect();
            assert_eq!(parts.len(), 3, "{id}");
            assert_eq!(parts[0], "tsk");
            assert!(
                parts[1]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
            );
            assert_eq!(parts[2].len(), 6);
            assert!(parts[2].bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(
                CorrelationId::parse(id.as_str()).is_ok(),
                "generated ids are valid"
            );
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn incoming_ids_are_validated_and_rejections_counted() {
        for ok in ["a", "req-1", "A_b-C", &"x".repeat(100)] {
            assert!(CorrelationId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-lead",
            "_lead",
            "sp ace",
            "semi;colon",
            "é",
            &"x".repeat(101),
        ] {
            assert!(CorrelationId::parse(bad).is_err(), "{bad:?}");
        }
        let before = rejected_correlation_ids();
        let mut headers = HashMap::from([("x-correlation-id".to_owned(), "bad id".to_owned())]);
        let replaced = CorrelationId::extract(&headers, CORRELATION_ID_HEADER);
        assert!(replaced.as_str().starts_with("tsk_"));
        assert_eq!(rejected_correlation_ids(), before + 1);
        let id = CorrelationId::parse("order-77").unwrap();
        id.inject(&mut headers, CORRELATION_ID_HEADER);
        assert_eq!(CorrelationId::extract(&headers, CORRELATION_ID_HEADER), id);
    }
}
