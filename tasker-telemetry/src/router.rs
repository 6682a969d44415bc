//! The event router: which sinks (span events, metrics, log lines) an event reaches, with
//! sampling. Tasker's default mappings are built in. The sampling decision is made once per
//! event and every sink honours it. Subscribers are not routed: they always receive what they
//! subscribed to (configuration's `filtered_events` is what drops an event entirely).
//!
//! The standard metrics (`tasker_tasks_total`, ...) are exact counts and are never sampled; the
//! metrics sink is `tasker_routed_events_total{event}`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::catalog::{self, MAX_EVENTS};
use crate::event::EventName;

/// A set of sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sinks(u8);

impl Sinks {
    /// No sink.
    pub const NONE: Sinks = Sinks(0);
    /// Span events.
    pub const TRACE: Sinks = Sinks(1);
    /// The routed-events counter.
    pub const METRICS: Sinks = Sinks(2);
    /// Log lines.
    pub const LOGS: Sinks = Sinks(4);
    /// Every sink.
    pub const ALL: Sinks = Sinks(7);

    /// Whether every sink of `other` is in `self`.
    pub const fn contains(self, other: Sinks) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Both sets.
    pub const fn union(self, other: Sinks) -> Sinks {
        Sinks(self.0 | other.0)
    }

    /// The sinks of `self` that are not in `other`.
    ///
    /// ```
    /// use tasker_telemetry::router::Sinks;
    ///
    /// let sinks = Sinks::ALL.difference(Sinks::LOGS);
    /// assert!(sinks.contains(Sinks::TRACE | Sinks::METRICS));
    /// assert!(!sinks.contains(Sinks::LOGS));
    /// ```
    pub const fn difference(self, other: Sinks) -> Sinks {
        Sinks(self.0 & !other.0)
    }
}

impl std::ops::BitOr for Sinks {
    type Output = Sinks;
    fn bitor(self, rhs: Sinks) -> Sinks {
        self.union(rhs)
    }
}

/// How important an event is (carried for backends that prioritise; routing does not drop by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Low.
    Low,
    /// Normal (the default).
    #[default]
    Normal,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// Why a route was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The pattern names no event in the catalog.
    #[error("route for {pattern:?} matches no event in the catalog{}", suggestion.map(|s| format!("; did you mean {s:?}?")).unwrap_or_default())]
    UnknownEvent {
        /// The pattern.
        pattern: String,
        /// The nearest catalog name.
        suggestion: Option<&'static str>,
    },
    /// A sampling rate outside 0..=1.
    #[error("sampling rate {rate} for {pattern:?} is outside 0.0..=1.0")]
    SamplingRate {
        /// The pattern.
        pattern: String,
        /// The rate, as text.
        rate: String,
    },
}

/// Routes events to sinks; see the module docs.
///
/// ```
/// use tasker_telemetry::event::names;
/// use tasker_telemetry::router::{EventRouter, Priority, Sinks};
///
/// let router = EventRouter::tasker_defaults()
///     .route("step.completed", Sinks::METRICS, 1.0, Priority::Normal)?;
/// assert_eq!(router.decide(names::STEP_COMPLETED), Sinks::METRICS);
/// assert!(router.decide(names::TASK_FAILED).contains(Sinks::TRACE | Sinks::LOGS));
/// # Ok::<(), tasker_telemetry::router::RouterError>(())
/// ```
#[derive(Debug)]
pub struct EventRouter {
    sinks: Box<[AtomicU8]>,
    rates: Box<[AtomicU64]>,
    priorities: Box<[AtomicU8]>,
    global_rate: AtomicU64,
}

impl Default for EventRouter {
    fn default() -> Self {
        Self::tasker_defaults()
    }
}

impl EventRouter {
    /// A router that sends nothing anywhere.
    pub fn empty() -> Self {
        Self {
            sinks: (0..MAX_EVENTS).map(|_| AtomicU8::new(0)).collect(),
            rates: (0..MAX_EVENTS)
                .map(|_| AtomicU64::new(1f64.to_bits()))
                .collect(),
            priorities: (0..MAX_EVENTS)
                .map(|_| AtomicU8::new(Priority::Normal as u8))
                .collect(),
            global_rate: AtomicU64::new(1f64.to_bits()),
        }
    }

    /// Tasker's default mappings: task and step lifecycle to trace + metrics, orchestration
    /// discovery and backoff / skip / slow operations to trace + metrics, enqueue and memory
    /// spikes to metrics, handle / find-viable / finalize to trace; log lines for every task and
    /// step terminal event and retries.
    pub fn tasker_defaults() -> Self {
        let r = Self::empty();
        let tm = Sinks::TRACE | Sinks::METRICS;
        let defaults: &[(&str, Sinks, Priority)] = &[
            ("task.initialize_requested", tm, Priority::Normal),
            ("task.start_requested", tm | Sinks::LOGS, Priority::Normal),
            ("task.completed", tm | Sinks::LOGS, Priority::Normal),
            ("task.failed", tm | Sinks::LOGS, Priority::High),
            (
                "task.cancelled",
                Sinks::TRACE | Sinks::LOGS,
                Priority::Normal,
            ),
            ("step.execution_requested", tm, Priority::Normal),
            ("step.completed", tm | Sinks::LOGS, Priority::Normal),
            ("step.failed", tm | Sinks::LOGS, Priority::High),
            (
                "step.cancelled",
                Sinks::TRACE | Sinks::LOGS,
                Priority::Normal,
            ),
            ("step.retry_requested", tm | Sinks::LOGS, Priority::Normal),
            ("workflow.viable_steps_discovered", tm, Priority::Normal),
            ("observability.step.backoff", tm, Priority::Normal),
            ("observability.step.skip", tm, Priority::Normal),
            ("performance.slow_operation", tm, Priority::High),
            ("observability.step.max_retries_reached", tm, Priority::High),
            ("observability.task.enqueue", Sinks::METRICS, Priority::High),
            ("memory.spike_detected", Sinks::METRICS, Priority::Critical),
            (
                "observability.task.finalize",
                Sinks::TRACE,
                Priority::Normal,
            ),
            (
                "observability.step.find_viable",
                Sinks::TRACE,
                Priority::Normal,
            ),
            ("observability.step.handle", Sinks::TRACE, Priority::Normal),
            ("step.before_handle", Sinks::TRACE, Priority::Normal),
        ];
        for (name, sinks, priority) in defaults {
            if let Some(event) = EventName::lookup(name) {
                r.set(event, *sinks, 1.0, *priority);
            }
        }
        r
    }

    fn set(&self, event: EventName, sinks: Sinks, rate: f64, priority: Priority) {
        self.sinks[event.index()].store(sinks.0, Ordering::Relaxed);
        self.rates[event.index()].store(rate.to_bits(), Ordering::Relaxed);
        self.priorities[event.index()].store(priority as u8, Ordering::Relaxed);
    }

    /// Routes the events `pattern` names (an event, `namespace.*` or `*`) to `sinks`, keeping
    /// `sampling_rate` of them. A pattern matching no catalog event is an error.
    pub fn route(
        self,
        pattern: &str,
        sinks: Sinks,
        sampling_rate: f64,
        priority: Priority,
    ) -> Result<Self, RouterError> {
        if !(0.0..=1.0).contains(&sampling_rate) {
            return Err(RouterError::SamplingRate {
                pattern: pattern.to_owned(),
                rate: sampling_rate.to_string(),
            });
        }
        let events = if pattern.contains('*') {
            catalog::matching(pattern)
        } else {
            EventName::lookup(pattern).into_iter().collect()
        };
        if events.is_empty() {
            return Err(RouterError::UnknownEvent {
                pattern: pattern.to_owned(),
                suggestion: catalog::suggest(pattern),
            });
        }
        for event in events {
            self.set(event, sinks, sampling_rate, priority);
        }
        Ok(self)
    }

    /// Disables a route: the events reach no sink.
    pub fn disable(self, pattern: &str) -> Result<Self, RouterError> {
        self.route(pattern, Sinks::NONE, 1.0, Priority::Normal)
    }

    /// Scales every route's sampling by `rate` (configuration's `event_sampling_rate`).
    pub fn with_global_sampling(self, rate: f64) -> Self {
        self.global_rate
            .store(rate.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
        self
    }

    /// Takes every route of `other` (how a running [`Telemetry`](crate::Telemetry) changes its
    /// routes).
    pub fn replace_with(&self, other: &EventRouter) {
        for i in 0..MAX_EVENTS {
            self.sinks[i].store(other.sinks[i].load(Ordering::Relaxed), Ordering::Relaxed);
            self.rates[i].store(other.rates[i].load(Ordering::Relaxed), Ordering::Relaxed);
            self.priorities[i].store(
                other.priorities[i].load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
        self.global_rate
            .store(other.global_rate.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The event's priority.
    pub fn priority(&self, event: EventName) -> Priority {
        match self.priorities[event.index()].load(Ordering::Relaxed) {
            0 => Priority::Low,
            2 => Priority::High,
            3 => Priority::Critical,
            _ => Priority::Normal,
        }
    }

    /// Which sinks this occurrence of `event` reaches: its routes, after one sampling decision
    /// (so every sink agrees).
    #[inline]
    pub fn decide(&self, event: EventName) -> Sinks {
        let sinks = self.sinks[event.index()].load(Ordering::Relaxed);
        if sinks == 0 {
            return Sinks::NONE;
        }
        let rate = f64::from_bits(self.rates[event.index()].load(Ordering::Relaxed))
            * f64::from_bits(self.global_rate.load(Ordering::Relaxed));
        if rate >= 1.0 || sample(rate) {
            Sinks(sinks)
        } else {
            Sinks::NONE
        }
    }
}

/// A fast per-thread generator (xorshift64*): sampling needs speed and spread, not secrecy.
fn sample(rate: f64) -> bool {
    thread_local! {
        /// This thread's generator state, seeded per thread; read and advanced only here, by
        /// the router's sampling decisions made on this thread.
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u8(0);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        let unit = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        unit < rate
    })
}
