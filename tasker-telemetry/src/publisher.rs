//! The publisher: who listens to which event, and delivery to them.
//!
//! Routing is a table indexed by [`EventName`], replaced whole on (un)subscribe and read through
//! `arc-swap`, so a publish takes no lock; a replaced table (and with it an ended subscriber) is
//! dropped outside the subscriptions lock, so a subscriber's `Drop` may itself subscribe or
//! unsubscribe. Before
//! anything else, a publish reads one per-event listener count: an event nobody listens to
//! costs that load and a branch, and its payload is never built.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::catalog::{self, EventRegistrationListener, MAX_EVENTS};
use crate::event::rules::Pattern;
use crate::event::{Event, EventName};
use crate::metrics::cell::{self, Lane, Slots};
use crate::payload::Payload;
use crate::subscriber::{Delivery, Subscriber, SubscriberStats};
use crate::timestamp::Timestamp;

use arc_swap::ArcSwap;

mod queue;
mod reentry;

pub use queue::{DEFAULT_QUEUE_BYTES, MAX_QUEUE_BYTES, MAX_QUEUE_CAPACITY};
use queue::{Held, Queue, Queued};
pub use reentry::{MAX_DELIVERY_DEPTH, MAX_NESTED_PUBLISHES};

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// An exact event name that is not in the catalog.
    #[error("unknown event {name:?}{}", suggestion.map(|s| format!("; did you mean {s:?}?")).unwrap_or_default())]
    UnknownEvent {
        /// The name asked for.
        name: String,
        /// The nearest catalog name, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A pattern other than an exact name, `namespace.*` or `*`.
    #[error("invalid event pattern {pattern:?}: expected an event name, \"namespace.*\" or \"*\"")]
    InvalidPattern {
        /// The pattern asked for.
        pattern: String,
    },
    /// The subscription named no event at all.
    #[error("a subscription needs at least one event name or pattern")]
    NoEvents,
    /// An asynchronous subscription with a queue of zero.
    #[error("asynchronous delivery needs a queue capacity of at least 1")]
    ZeroCapacity,
    /// An asynchronous queue larger than [`MAX_QUEUE_CAPACITY`] events or [`MAX_QUEUE_BYTES`]
    /// bytes, or of zero bytes.
    #[error(
        "asynchronous delivery: a queue of {capacity} events and {max_bytes} bytes cannot be held; the capacity must be 1 to at most {MAX_QUEUE_CAPACITY} events and the bytes 1 to at most {MAX_QUEUE_BYTES}"
    )]
    QueueTooLarge {
        /// The capacity asked for.
        capacity: usize,
        /// The bytes asked for.
        max_bytes: usize,
    },
    /// The delivery thread of an asynchronous subscriber could not be started.
    #[error("could not start the delivery thread for subscriber {subscriber:?}: {message}")]
    Spawn {
        /// The subscriber's name.
        subscriber: String,
        /// The operating system's reason.
        message: String,
    },
}

/// Totals across every subscription of a publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublisherStats {
    /// Events delivered to at least one subscriber.
    pub published: u64,
    /// Subscriber panics caught.
    pub subscriber_panics: u64,
    /// Events dropped by full (in events or bytes) or closed asynchronous queues.
    pub dropped: u64,
    /// Events published from inside subscribers' handling and dropped: deeper than
    /// [`MAX_DELIVERY_DEPTH`], or past [`MAX_NESTED_PUBLISHES`] for one outermost publish.
    pub reentrant_dropped: u64,
}

struct Counters {
    /// Counted on every delivery, so per thread lane (a plain add, no locked instruction).
    delivered: Slots,
    panics: AtomicU64,
    dropped: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            delivered: Slots::new(1, 0),
            panics: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

impl Counters {
    fn snapshot(&self) -> SubscriberStats {
        SubscriberStats {
            delivered: self.delivered.sum_u64(0),
            panics: self.panics.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

enum Target {
    Sync(Arc<dyn Subscriber>),
    Async(Queue),
}

struct Entry {
    id: u64,
    name: Arc<str>,
    target: Target,
    counters: Arc<Counters>,
}

#[derive(Clone, Default)]
struct Slot {
    entries: Arc<[Arc<Entry>]>,
    has_async: bool,
}

struct Table {
    slots: Vec<Slot>,
}

struct Subscription {
    entry: Arc<Entry>,
    patterns: Vec<String>,
}

struct Inner {
    listeners: Box<[AtomicU32]>,
    muted: Box<[AtomicBool]>,
    /// Read by every publish, replaced (under the subscriptions lock) by every change.
    table: ArcSwap<Table>,
    subscriptions: Mutex<Vec<Subscription>>,
    next_id: AtomicU64,
    /// Events published, one word per event, per thread lane: counted on every publish.
    published_by_event: Slots,
    panics: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    /// Publishes refused for nesting too deep (see `reentry`).
    reentrant_dropped: AtomicU64,
}

/// Routes published events to subscribers.
///
/// Cheap to clone (clones share the same subscriptions). Publishing never panics and never
/// blocks: sync subscribers run in the caller's thread, each inside `catch_unwind`; async
/// subscribers get the event through a bounded queue or have it dropped and counted.
///
/// ```
/// use tasker_telemetry::event::names;
/// use tasker_telemetry::payload::TaskPayload;
/// use tasker_telemetry::{subscriber, Publisher};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// let publisher = Publisher::new();
/// let seen = Arc::new(AtomicU64::new(0));
/// let counter = seen.clone();
/// publisher.subscribe(&["task.*"], subscriber::from_fn("count", move |_| {
///     counter.fetch_add(1, Ordering::Relaxed);
/// }))?;
///
/// // The closure building the payload only runs because someone listens.
/// publisher.publish_with(names::TASK_COMPLETED, || TaskPayload::new("42", "checkout"));
/// publisher.publish_with(names::STEP_COMPLETED, || -> TaskPayload {
///     unreachable!("nobody listens to step.completed")
/// });
/// assert_eq!(seen.load(Ordering::Relaxed), 1);
/// # Ok::<(), tasker_telemetry::publisher::SubscribeError>(())
/// ```
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    /// A publisher with no subscriptions.
    pub fn new() -> Self {
        let inner = Arc::new(Inner {
            listeners: (0..MAX_EVENTS).map(|_| AtomicU32::new(0)).collect(),
            muted: (0..MAX_EVENTS).map(|_| AtomicBool::new(false)).collect(),
            table: ArcSwap::from_pointee(Table {
                slots: vec![Slot::default(); MAX_EVENTS],
            }),
            subscriptions: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            published_by_event: Slots::new(MAX_EVENTS, 0),
            panics: Arc::new(AtomicU64::new(0)),
            dropped: Arc::new(AtomicU64::new(0)),
            reentrant_dropped: AtomicU64::new(0),
        });
        let weak: std::sync::Weak<dyn EventRegistrationListener> =
            Arc::downgrade(&inner) as std::sync::Weak<dyn EventRegistrationListener>;
        catalog::add_registration_listener(weak);
        Self { inner }
    }

    /// Subscribes synchronously to events by exact name or pattern (`"step.*"`, `"*"`).
    ///
    /// An exact name must be in the catalog (the error suggests the nearest one); a namespace
    /// pattern may also match custom events registered later.
    pub fn subscribe<S: Subscriber>(
        &self,
        events: &[&str],
        subscriber: S,
    ) -> Result<SubscriptionHandle, SubscribeError> {
        self.subscribe_with(events, subscriber, Delivery::Synchronous)
    }

    /// Subscribes with the given delivery mode.
    pub fn subscribe_with<S: Subscriber>(
        &self,
        events: &[&str],
        subscriber: S,
        delivery: Delivery,
    ) -> Result<SubscriptionHandle, SubscribeError> {
        self.subscribe_arc(events, Arc::new(subscriber), delivery)
    }

    /// Subscribes a shared subscriber (for example one also kept elsewhere).
    pub fn subscribe_arc(
        &self,
        events: &[&str],
        subscriber: Arc<dyn Subscriber>,
        delivery: Delivery,
    ) -> Result<SubscriptionHandle, SubscribeError> {
        if events.is_empty() {
            return Err(SubscribeError::NoEvents);
        }
        let mut targets = Vec::new();
        for pattern in events {
            targets.extend(resolve(pattern)?);
        }
        let name: Arc<str> = Arc::from(subscriber.name().as_ref());
        let counters = Arc::new(Counters::default());
        let target = match delivery {
            Delivery::Synchronous => Target::Sync(subscriber),
            Delivery::Asynchronous { capacity: 0 }
            | Delivery::AsynchronousBounded { capacity: 0, .. } => {
                return Err(SubscribeError::ZeroCapacity);
            }
            Delivery::Asynchronous { capacity } => {
                self.spawn_queue(capacity, DEFAULT_QUEUE_BYTES, subscriber, &name, &counters)?
            }
            Delivery::AsynchronousBounded {
                capacity,
                max_bytes,
            } => self.spawn_queue(capacity, max_bytes, subscriber, &name, &counters)?,
        };
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            id,
            name,
            target,
            counters: counters.clone(),
        });
        let mut subs = self.inner.lock_subscriptions();
        let old = self.inner.update_table(|slots| {
            for event in &targets {
                add_entry(&mut slots[event.index()], &entry);
            }
        });
        subs.push(Subscription {
            entry,
            patterns: events.iter().map(|p| (*p).to_owned()).collect(),
        });
        drop(subs);
        drop(old);
        Ok(SubscriptionHandle {
            publisher: Arc::downgrade(&self.inner),
            id,
            counters,
        })
    }

    /// The queue and thread of an asynchronous subscription, within the bounds.
    fn spawn_queue(
        &self,
        capacity: usize,
        max_bytes: usize,
        subscriber: Arc<dyn Subscriber>,
        name: &Arc<str>,
        counters: &Arc<Counters>,
    ) -> Result<Target, SubscribeError> {
        if capacity > MAX_QUEUE_CAPACITY || max_bytes == 0 || max_bytes > MAX_QUEUE_BYTES {
            return Err(SubscribeError::QueueTooLarge {
                capacity,
                max_bytes,
            });
        }
        let (queue, rx, held) = Queue::new(capacity, max_bytes);
        spawn_worker(
            rx,
            held,
            subscriber,
            name.clone(),
            counters.clone(),
            self.inner.panics.clone(),
        )?;
        Ok(Target::Async(queue))
    }

    /// Subscribes every subscriber registered with `#[subscribe_to]` in the linked program (those
    /// with a constructor), synchronously. [`init`](crate::init) calls this for the process-wide
    /// publisher.
    ///
    /// All or nothing: if one registration names an event the catalog does not know, none is
    /// subscribed and the error names it.
    pub fn subscribe_registered(&self) -> Result<Vec<SubscriptionHandle>, SubscribeError> {
        let registered: Vec<_> = catalog::subscribers()
            .into_iter()
            .filter_map(|d| d.constructor.map(|make| (d, make)))
            .collect();
        for (descriptor, _) in &registered {
            for pattern in descriptor.events {
                resolve(pattern)?;
            }
        }
        registered
            .into_iter()
            .map(|(descriptor, make)| {
                self.subscribe_arc(descriptor.events, make(), Delivery::Synchronous)
            })
            .collect()
    }

    /// Whether anyone listens to `event` (one atomic load).
    #[inline]
    pub fn has_subscribers(&self, event: EventName) -> bool {
        self.inner.listeners[event.index()].load(Ordering::Acquire) != 0
    }

    /// Publishes an event whose payload is built by `build` only if someone listens.
    ///
    /// Returns whether the event was delivered to anyone. With no listener this performs no heap
    /// allocation and does not call `build`.
    #[inline]
    pub fn publish_with<'a, P, F>(&self, event: EventName, build: F) -> bool
    where
        P: Into<Payload<'a>>,
        F: FnOnce() -> P,
    {
        if !self.has_subscribers(event) {
            return false;
        }
        self.inner.dispatch(Event::new(event, build()))
    }

    /// Like [`publish_with`](Self::publish_with), stamping the event with a task's correlation id.
    #[inline]
    pub fn publish_correlated<'a, P, F>(
        &self,
        event: EventName,
        correlation_id: &'a Arc<str>,
        build: F,
    ) -> bool
    where
        P: Into<Payload<'a>>,
        F: FnOnce() -> P,
    {
        self.publish_stamped(event, correlation_id, |_| build().into())
    }

    /// Like [`publish_correlated`](Self::publish_correlated), handing `build` the event's own
    /// timestamp so a payload's `started_at` / `completed_at` costs no second clock read.
    #[inline]
    pub(crate) fn publish_stamped<'a, F>(
        &self,
        event: EventName,
        correlation_id: &'a Arc<str>,
        build: F,
    ) -> bool
    where
        F: FnOnce(Timestamp) -> Payload<'a>,
    {
        self.publish_stamped_at(event, correlation_id, Timestamp::now, build)
    }

    /// Like [`publish_stamped`](Self::publish_stamped), stamped `at()`: a moment the caller has
    /// already read (an attempt's end).
    #[inline]
    pub(crate) fn publish_stamped_at<'a>(
        &self,
        event: EventName,
        correlation_id: &'a Arc<str>,
        at: impl FnOnce() -> Timestamp,
        build: impl FnOnce(Timestamp) -> Payload<'a>,
    ) -> bool {
        self.publish_built(event, at, |now| {
            Event::stamped(event, now, Some(Cow::Borrowed(correlation_id)), build(now))
        })
    }

    /// Publishes the event `build` makes from the timestamp `stamp` gives, both called only if
    /// someone listens. Synchronous subscribers get the event by reference; with an asynchronous
    /// one among them, it is built into an `Arc` they share.
    #[inline]
    pub(crate) fn publish_built<'a>(
        &self,
        event: EventName,
        stamp: impl FnOnce() -> Timestamp,
        build: impl FnOnce(Timestamp) -> Event<'a>,
    ) -> bool {
        if !self.has_subscribers(event) {
            return false;
        }
        self.inner.dispatch_with(event, || build(stamp()))
    }

    /// Publishes a ready-made event. Returns whether anyone received it.
    pub fn publish(&self, event: Event<'_>) -> bool {
        if !self.has_subscribers(event.name()) {
            return false;
        }
        self.inner.dispatch(event)
    }

    /// Stops delivering `event` (configuration's `filtered_events`), or resumes it.
    pub fn set_muted(&self, event: EventName, muted: bool) {
        self.inner.muted[event.index()].store(muted, Ordering::Relaxed);
    }

    /// Totals across every subscription.
    pub fn stats(&self) -> PublisherStats {
        PublisherStats {
            published: (0..MAX_EVENTS)
                .map(|i| self.inner.published_by_event.sum_u64(i))
                .sum(),
            subscriber_panics: self.inner.panics.load(Ordering::Relaxed),
            dropped: self.inner.dropped.load(Ordering::Relaxed),
            reentrant_dropped: self.inner.reentrant_dropped.load(Ordering::Relaxed),
        }
    }

    /// Events delivered to at least one subscriber, per namespace (`task`, `step`, ...).
    pub fn published_by_namespace(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let mut out = std::collections::BTreeMap::new();
        for event in catalog::events() {
            let n = self.inner.published_by_event.sum_u64(event.name.index());
            if n > 0 {
                *out.entry(event.name.namespace()).or_insert(0) += n;
            }
        }
        out
    }

    /// Each current subscription's name and statistics.
    pub fn subscriber_stats(&self) -> Vec<(Arc<str>, SubscriberStats)> {
        self.inner
            .lock_subscriptions()
            .iter()
            .map(|s| (s.entry.name.clone(), s.entry.counters.snapshot()))
            .collect()
    }
}

fn resolve(pattern: &str) -> Result<Vec<EventName>, SubscribeError> {
    match crate::event::rules::parse_pattern(pattern) {
        None => {
            return Err(SubscribeError::InvalidPattern {
                pattern: pattern.to_owned(),
            });
        }
        Some(Pattern::All | Pattern::Namespace(_)) => return Ok(catalog::matching(pattern)),
        Some(Pattern::Name(_)) => {}
    }
    EventName::lookup(pattern)
        .map(|e| vec![e])
        .ok_or_else(|| SubscribeError::UnknownEvent {
            name: pattern.to_owned(),
            suggestion: catalog::suggest(pattern),
        })
}

fn add_entry(slot: &mut Slot, entry: &Arc<Entry>) {
    if slot.entries.iter().any(|e| e.id == entry.id) {
        return;
    }
    let mut v: Vec<Arc<Entry>> = slot.entries.to_vec();
    v.push(entry.clone());
    slot.has_async |= matches!(entry.target, Target::Async(_));
    slot.entries = v.into();
}

fn spawn_worker(
    rx: Receiver<Queued>,
    held: Arc<Held>,
    subscriber: Arc<dyn Subscriber>,
    name: Arc<str>,
    counters: Arc<Counters>,
    panics: Arc<AtomicU64>,
) -> Result<(), SubscribeError> {
    let thread_name = format!("tasker-sub-{name}");
    let subscriber_name = name.to_string();
    std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            // Ends when the subscription is dropped and the queue drained.
            for (event, bytes) in rx {
                // Off the queue: its place is free while the subscriber handles it (the queue
                // bounds what waits; this one event is in the subscriber's hands).
                held.release(bytes);
                deliver(
                    &*subscriber,
                    &event,
                    &name,
                    &counters,
                    cell::lane(),
                    &panics,
                );
            }
        })
        .map(drop)
        .map_err(|e| SubscribeError::Spawn {
            subscriber: subscriber_name,
            message: e.to_string(),
        })
}

#[inline]
fn deliver(
    subscriber: &dyn Subscriber,
    event: &Event<'_>,
    name: &str,
    counters: &Counters,
    lane: Lane,
    panics: &AtomicU64,
) {
    match catch_unwind(AssertUnwindSafe(|| subscriber.on_event(event))) {
        Ok(()) => counters.delivered.add_u64(lane, 0, 1),
        Err(payload) => {
            counters.panics.fetch_add(1, Ordering::Relaxed);
            panics.fetch_add(1, Ordering::Relaxed);
            report_panic(name, event, payload);
        }
    }
}

#[cold]
fn report_panic(name: &str, event: &Event<'_>, payload: Box<dyn std::any::Any + Send>) {
    let message: Cow<'_, str> = if let Some(s) = payload.downcast_ref::<&str>() {
        Cow::Borrowed(s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Cow::Borrowed(s.as_str())
    } else {
        Cow::Borrowed("non-string panic payload")
    };
    tracing::warn!(
        target: "tasker_telemetry::publisher",
        subscriber = name,
        event = event.name().as_str(),
        panic = %message,
        "subscriber panicked; the event was still delivered to the other subscribers"
    );
    // Dropping a panic payload can itself panic; never let that escape publish.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
}

impl Inner {
    fn lock_subscriptions(&self) -> MutexGuard<'_, Vec<Subscription>> {
        // Updates below either complete or leave the old table in place, so a poisoned lock
        // still guards consistent data.
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the routing table; callers hold the subscriptions lock, so updates are serial.
    /// Returns the table replaced, for the caller to drop once it has released the lock: the
    /// last reference to an ended subscriber may be in it, and that subscriber's `Drop` may
    /// (un)subscribe.
    #[must_use = "drop the old table after releasing the subscriptions lock"]
    fn update_table(&self, change: impl FnOnce(&mut Vec<Slot>)) -> Arc<Table> {
        let mut slots = self.table.load().slots.clone();
        change(&mut slots);
        for (i, slot) in slots.iter().enumerate() {
            self.listeners[i].store(slot.entries.len() as u32, Ordering::Release);
        }
        self.table.swap(Arc::new(Table { slots }))
    }

    #[inline(never)]
    fn dispatch(&self, event: Event<'_>) -> bool {
        // The event is lent to the delivery, not moved into it: a closure capturing a
        // ~300-byte event by value is copied again into each closure wrapped around it. An
        // asynchronous subscriber's copy is a clone.
        let event = &event;
        self.route(event.name(), |slot, lane| {
            self.deliver_lent(slot, event, lane)
        })
        .is_some()
    }

    /// Delivers an event the caller keeps: synchronous subscribers get it by reference,
    /// asynchronous ones a clone.
    #[inline]
    fn deliver_lent(&self, slot: &Slot, event: &Event<'_>, lane: Lane) {
        if let [entry] = &*slot.entries
            && let Target::Sync(subscriber) = &entry.target
        {
            // One synchronous subscriber, the usual case: delivered here rather than through
            // `fan_out`'s loop, a call and a frame the hottest events can do without.
            deliver(
                &**subscriber,
                event,
                &entry.name,
                &entry.counters,
                lane,
                &self.panics,
            );
        } else if slot.has_async {
            let shared = Arc::new(event.clone().into_owned());
            let bytes = queue::size_of(&shared);
            self.fan_out(slot, event, Some((&shared, bytes)), lane);
        } else {
            self.fan_out(slot, event, None, lane);
        }
    }

    /// Delivers the event `make` builds, building it only once it is known to have a receiver
    /// and in place (a payload is a few hundred bytes: moving it costs more than building it).
    #[inline]
    fn dispatch_with<'a>(&self, name: EventName, make: impl FnOnce() -> Event<'a>) -> bool {
        self.route(name, |slot, lane| {
            if slot.has_async {
                let shared = Arc::new(make().into_owned());
                let bytes = queue::size_of(&shared);
                self.fan_out(slot, &shared, Some((&shared, bytes)), lane);
            } else {
                self.deliver_lent(slot, &make(), lane);
            }
        })
        .is_some()
    }

    /// Runs `deliver` with the subscriptions of an event that is not muted and has subscribers,
    /// and the caller's lane; the event is counted as published. `None` if no one listens.
    #[inline]
    fn route<R>(&self, name: EventName, deliver: impl FnOnce(&Slot, Lane) -> R) -> Option<R> {
        let index = name.index();
        if self.muted[index].load(Ordering::Relaxed) {
            return None;
        }
        let table = self.table.load();
        let slot = &table.slots[index];
        if slot.entries.is_empty() {
            return None;
        }
        let Some(_entered) = reentry::enter() else {
            self.reentrant_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let lane = cell::lane();
        self.published_by_event.add_u64(lane, index, 1);
        Some(deliver(slot, lane))
    }

    fn fan_out(
        &self,
        slot: &Slot,
        event: &Event<'_>,
        shared: Option<(&Arc<Event<'static>>, usize)>,
        lane: Lane,
    ) {
        for entry in slot.entries.iter() {
            match (&entry.target, shared) {
                (Target::Sync(s), _) => deliver(
                    &**s,
                    event,
                    &entry.name,
                    &entry.counters,
                    lane,
                    &self.panics,
                ),
                (Target::Async(queue), Some((shared, bytes))) => {
                    if !queue.try_push(shared, bytes) {
                        entry.counters.dropped.fetch_add(1, Ordering::Relaxed);
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // has_async is set whenever an async entry is present, so this arm is unreachable;
                // counting it as a drop keeps the books honest if that ever changes.
                (Target::Async(_), None) => {
                    entry.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn unsubscribe(&self, id: u64) -> bool {
        let mut subs = self.lock_subscriptions();
        let Some(pos) = subs.iter().position(|s| s.entry.id == id) else {
            return false;
        };
        let ended = subs.remove(pos);
        let old = self.update_table(|slots| {
            for slot in slots.iter_mut() {
                if slot.entries.iter().any(|e| e.id == id) {
                    let kept: Vec<_> = slot
                        .entries
                        .iter()
                        .filter(|e| e.id != id)
                        .cloned()
                        .collect();
                    slot.has_async = kept.iter().any(|e| matches!(e.target, Target::Async(_)));
                    slot.entries = kept.into();
                }
            }
        });
        // The subscriber goes with these (unless a publish still holds the old table): after
        // the lock, so that its `Drop` may subscribe or unsubscribe.
        drop(subs);
        drop((ended, old));
        true
    }
}

impl EventRegistrationListener for Inner {
    fn event_registered(&self, name: EventName) {
        let subs = self.lock_subscriptions();
        let matching: Vec<_> = subs
            .iter()
            .filter(|s| {
                s.patterns
                    .iter()
                    .any(|p| p.contains('*') && catalog::pattern_matches(p, name.as_str()))
            })
            .map(|s| s.entry.clone())
            .collect();
        let old = (!matching.is_empty()).then(|| {
            self.update_table(|slots| {
                for entry in &matching {
                    add_entry(&mut slots[name.index()], entry);
                }
            })
        });
        drop(subs);
        drop(old);
    }
}

/// A live subscription: its statistics, and the way to end it.
///
/// Dropping the handle keeps the subscription (subscribers registered at start-up usually live as
/// long as the process); call [`unsubscribe`](Self::unsubscribe) to end it.
#[derive(Debug, Clone)]
pub struct SubscriptionHandle {
    publisher: std::sync::Weak<Inner>,
    id: u64,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publisher")
    }
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl SubscriptionHandle {
    /// Delivery statistics so far.
    pub fn stats(&self) -> SubscriberStats {
        self.counters.snapshot()
    }

    /// Ends the subscription. An asynchronous subscriber's queue is drained by its thread, which
    /// then exits. Returns `false` if it had already ended.
    ///
    /// The subscriber is dropped at once, unless another thread is delivering an event at that
    /// moment: then by that thread once it is done, or at the latest by the next publish or
    /// subscription change of this publisher.
    pub fn unsubscribe(self) -> bool {
        self.publisher
            .upgrade()
            .is_some_and(|p| p.unsubscribe(self.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::names;
    use crate::payload::TaskPayload;
    use crate::subscriber::from_fn;

    fn count() -> (Arc<AtomicU64>, impl Subscriber) {
        let n = Arc::new(AtomicU64::new(0));
        let m = n.clone();
        (
            n,
            from_fn("count", move |_| {
                m.fetch_add(1, Ordering::Relaxed);
            }),
        )
    }

    #[test]
    fn exact_and_pattern_subscriptions_route() {
        let p = Publisher::new();
        let (exact, s1) = count();
        let (ns, s2) = count();
        p.subscribe(&["task.completed"], s1).unwrap();
        p.subscribe(&["task.*"], s2).unwrap();
        p.publish_with(names::TASK_COMPLETED, || TaskPayload::new("1", "t"));
        p.publish_with(names::TASK_FAILED, || TaskPayload::new("1", "t"));
        p.publish_with(names::STEP_COMPLETED, || TaskPayload::new("1", "t"));
        assert_eq!(exact.load(Ordering::Relaxed), 1);
        assert_eq!(ns.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn unknown_names_are_refused_with_a_suggestion() {
        let p = Publisher::new();
        let (_, s) = count();
        let err = p.subscribe(&["task.complete"], s).unwrap_err();
        assert_eq!(
            err,
            SubscribeError::UnknownEvent {
                name: "task.complete".into(),
                suggestion: Some("task.completed")
            }
        );
        let (_, s) = count();
        assert!(matches!(
            p.subscribe(&["ta*sk"], s),
            Err(SubscribeError::InvalidPattern { .. })
        ));
        let (_, s) = count();
        assert_eq!(p.subscribe(&[], s).unwrap_err(), SubscribeError::NoEvents);
    }

    #[test]
    fn unsubscribe_stops_delivery() {
        let p = Publisher::new();
        let (n, s) = count();
        let h = p.subscribe(&["task.completed"], s).unwrap();
        p.publish_with(names::TASK_COMPLETED, || TaskPayload::new("1", "t"));
        assert!(h.clone().unsubscribe());
        assert!(!p.has_subscribers(names::TASK_COMPLETED));
        p.publish_with(names::TASK_COMPLETED, || TaskPayload::new("1", "t"));
        assert_eq!(n.load(Ordering::Relaxed), 1);
        assert!(!h.unsubscribe());
    }

    #[test]
    fn patterns_reach_custom_events_registered_later() {
        let p = Publisher::new();
        let (n, s) = count();
        p.subscribe(&["publisher_late.*"], s).unwrap();
        let e = catalog::register_event(catalog::CustomEvent::new("publisher_late.thing", "d"))
            .unwrap();
        p.publish_with(e, crate::payload::Fields::new);
        assert_eq!(n.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn muted_events_are_not_delivered() {
        let p = Publisher::new();
        let (n, s) = count();
        p.subscribe(&["task.completed"], s).unwrap();
        p.set_muted(names::TASK_COMPLETED, true);
        assert!(!p.publish_with(names::TASK_COMPLETED, || TaskPayload::new("1", "t")));
        assert_eq!(n.load(Ordering::Relaxed), 0);
    }
}
