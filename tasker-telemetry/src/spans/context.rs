//! W3C trace context: the `traceparent` / `tracestate` a task carries so that its steps, run in
//! another thread, task or process, join the task's trace.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

/// The W3C header carrying the trace and parent span ids.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendor trace state.
pub const TRACESTATE: &str = "tracestate";

static REJECTED: AtomicU64 = AtomicU64::new(0);

/// How many malformed `traceparent` values were rejected in this process (each task that got one
/// started a fresh trace instead).
pub fn rejected_traceparents() -> u64 {
    REJECTED.load(Ordering::Relaxed)
}

/// Why a `traceparent` (or `tracestate`) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceContextError {
    /// Not four dash-separated fields of the right lengths.
    #[error(
        "malformed traceparent {value:?}: expected \"00-<32 hex trace id>-<16 hex span id>-<2 hex flags>\""
    )]
    Malformed {
        /// The rejected value (at most 128 characters of it).
        value: String,
    },
    /// A version this parser does not accept (`ff` is forbidden; only `00` is defined).
    #[error("unsupported traceparent version {version:?}: expected \"00\"")]
    UnsupportedVersion {
        /// The version field.
        version: String,
    },
    /// An all-zero trace or span id.
    #[error("invalid traceparent {value:?}: the trace id and parent span id must not be all zeros")]
    ZeroId {
        /// The rejected value.
        value: String,
    },
    /// A `tracestate` that is not a valid W3C list.
    #[error("invalid tracestate {value:?}: expected comma-separated key=value members")]
    InvalidTraceState {
        /// The rejected value (at most 128 characters of it).
        value: String,
    },
}

/// Where trace context is read from and written to: a map of header-like keys.
///
/// Implemented for `HashMap<String, String>` and `BTreeMap<String, String>`; keys are matched
/// case-insensitively on read, as HTTP header names are.
pub trait Carrier {
    /// The value under `key`, ignoring ASCII case.
    fn get(&self, key: &str) -> Option<&str>;
    /// Sets `key` to `value`.
    fn set(&mut self, key: &str, value: String);
}

/// Both standard maps are carriers; lookups try the exact key first, then any ASCII case.
macro_rules! map_carrier {
    ($($map:ident),*) => {$(
        impl Carrier for $map<String, String> {
            fn get(&self, key: &str) -> Option<&str> {
                $map::get(self, key)
                    .or_else(|| self.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
                    .map(String::as_str)
            }
            fn set(&mut self, key: &str, value: String) {
                self.insert(key.to_owned(), value);
            }
        }
    )*};
}
map_carrier!(HashMap, BTreeMap);

/// A parsed W3C trace context: the trace a task belongs to and the span to parent under.
///
/// ```
/// use tasker_telemetry::spans::TraceContext;
///
/// let ctx = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None)?;
/// assert_eq!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(ctx.is_sampled());
/// assert!(TraceContext::parse("00-xyz-00f067aa0ba902b7-01", None).is_err());
/// # Ok::<(), tasker_telemetry::spans::TraceContextError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TraceContext {
    span_context: SpanContext,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TraceContext")
            .field(&self.traceparent())
            .finish()
    }
}

fn clip(value: &str) -> String {
    value.chars().take(128).collect()
}

fn reject(e: TraceContextError) -> TraceContextError {
    REJECTED.fetch_add(1, Ordering::Relaxed);
    e
}

impl TraceContext {
    /// Parses a `traceparent` header value (and optionally `tracestate`). A malformed value is a
    /// typed error, counted in [`rejected_traceparents`].
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Result<Self, TraceContextError> {
        let value = traceparent.trim();
        let malformed = || reject(TraceContextError::Malformed { value: clip(value) });
        let mut parts = value.split('-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !hex(version, 2) || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return Err(malformed());
        }
        // Version 00 has exactly four fields; later versions may append more (W3C §3.2.4).
        if version == "ff" || (version == "00" && parts.next().is_some()) {
            return Err(reject(TraceContextError::UnsupportedVersion {
                version: version.to_owned(),
            }));
        }
        let trace_id = TraceId::from_hex(trace).map_err(|_| malformed())?;
        let span_id = SpanId::from_hex(span).map_err(|_| malformed())?;
        if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
            return Err(reject(TraceContextError::ZeroId { value: clip(value) }));
        }
        let flags = u8::from_str_radix(flags, 16).map_err(|_| malformed())?;
        let state = match tracestate.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => s
                .parse::<TraceState>()
                .map_err(|_| reject(TraceContextError::InvalidTraceState { value: clip(s) }))?,
            None => TraceState::default(),
        };
        Ok(Self {
            span_context: SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::new(flags & 0x01),
                true,
                state,
            ),
        })
    }

    /// Reads `traceparent` / `tracestate` from a carrier: `Ok(None)` when there is no
    /// `traceparent`, an error when it is malformed.
    pub fn extract(carrier: &impl Carrier) -> Result<Option<Self>, TraceContextError> {
        match carrier.get(TRACEPARENT) {
            Some(tp) => Self::parse(tp, carrier.get(TRACESTATE)).map(Some),
            None => Ok(None),
        }
    }

    /// Reads trace context from HTTP headers given as name / value pairs (names matched
    /// case-insensitively).
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<Self>, TraceContextError> {
        let mut map = HashMap::new();
        for (k, v) in headers {
            if k.eq_ignore_ascii_case(TRACEPARENT) || k.eq_ignore_ascii_case(TRACESTATE) {
                map.insert(k.to_ascii_lowercase(), v.to_owned());
            }
        }
        Self::extract(&map)
    }

    /// Writes `traceparent` (and `tracestate` when non-empty) into a carrier.
    pub fn inject(&self, carrier: &mut impl Carrier) {
        for (k, v) in self.headers() {
            carrier.set(k, v);
        }
    }

    /// The headers to send with an HTTP request: `traceparent`, and `tracestate` when non-empty.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![(TRACEPARENT, self.traceparent())];
        let state = self.span_context.trace_state().header();
        if !state.is_empty() {
            out.push((TRACESTATE, state));
        }
        out
    }

    /// The `traceparent` value.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.span_context.trace_id(),
            self.span_context.span_id(),
            self.span_context.trace_flags().to_u8()
        )
    }

    /// The trace id, as 32 lower-case hex digits.
    pub fn trace_id(&self) -> String {
        self.span_context.trace_id().to_string()
    }

    /// The parent span id, as 16 lower-case hex digits.
    pub fn span_id(&self) -> String {
        self.span_context.span_id().to_string()
    }

    /// Whether the trace is sampled upstream.
    pub fn is_sampled(&self) -> bool {
        self.span_context.is_sampled()
    }

    pub(crate) fn from_span_context(span_context: SpanContext) -> Option<Self> {
        span_context.is_valid().then_some(Self { span_context })
    }

    pub(crate) fn to_otel_context(&self) -> opentelemetry::Context {
        opentelemetry::Context::new().with_remote_span_context(self.span_context.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_values_round_trip() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::parse(tp, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(ctx.traceparent(), tp);
        let mut carrier = HashMap::new();
        ctx.inject(&mut carrier);
        assert_eq!(
            carrier.get("tracestate").map(String::as_str),
            Some("congo=t61rcWkgMzE")
        );
        let back = TraceContext::extract(&carrier).unwrap().unwrap();
        assert_eq!(back, ctx);
        let unsampled = TraceContext::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            None,
        )
        .unwrap();
        assert!(!unsampled.is_sampled());
        let from_headers = TraceContext::from_headers([("TraceParent", tp), ("Content-Type", "x")])
            .unwrap()
            .unwrap();
        assert_eq!(from_headers.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(TraceContext::extract(&HashMap::new()), Ok(None));
    }

    #[test]
    fn malformed_values_are_typed_errors_and_counted() {
        let before = rejected_traceparents();
        let cases = [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ];
        for case in cases {
            assert!(
                TraceContext::parse(case, None).is_err(),
                "{case:?} accepted"
            );
        }
        assert!(matches!(
            TraceContext::parse(
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                None
            ),
            Err(TraceContextError::ZeroId { .. })
        ));
        assert!(matches!(
            TraceContext::parse(
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None
            ),
            Err(TraceContextError::UnsupportedVersion { .. })
        ));
        assert!(rejected_traceparents() >= before + cases.len() as u64 + 2);
        let long = "x".repeat(10_000);
        match TraceContext::parse(&long, None) {
            Err(TraceContextError::Malformed { value }) => assert_eq!(value.len(), 128),
            other => panic!("{other:?}"),
        }
    }
}
