//! Subscribers: the trait application code implements to receive events, how events reach it
//! (synchronously or through a bounded queue), and the helpers of Tasker's `BaseSubscriber`.

pub mod helpers;

use std::borrow::Cow;
use std::fmt;

use crate::event::Event;

/// Receives published events.
///
/// Delivery is synchronous by default: `on_event` runs in the publishing thread, so keep it
/// short, or subscribe with [`Delivery::Asynchronous`]. A panic inside `on_event` is caught,
/// counted and logged; it never reaches the publisher, the step, or other subscribers.
///
/// ```
/// use tasker_telemetry::{Event, Publisher, Subscriber};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// #[derive(Default)]
/// struct CountFailures(AtomicU64);
///
/// impl Subscriber for CountFailures {
///     fn on_event(&self, _event: &Event<'_>) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// let publisher = Publisher::new();
/// let handle = publisher.subscribe(&["step.failed"], CountFailures::default())?;
/// assert_eq!(handle.stats().delivered, 0);
/// # Ok::<(), tasker_telemetry::publisher::SubscribeError>(())
/// ```
pub trait Subscriber: Send + Sync + 'static {
    /// Handles one event.
    fn on_event(&self, event: &Event<'_>);

    /// The subscriber's name in statistics and logs; the type's name by default.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }
}

/// A subscriber made from a closure; see [`from_fn`].
pub struct FnSubscriber<F> {
    name: Cow<'static, str>,
    f: F,
}

impl<F> fmt::Debug for FnSubscriber<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSubscriber")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Makes a named subscriber from a closure.
///
/// ```
/// use tasker_telemetry::{subscriber, Publisher};
///
/// let publisher = Publisher::new();
/// publisher.subscribe(&["task.*"], subscriber::from_fn("audit", |event| {
///     let _ = event.get("task_id");
/// }))?;
/// # Ok::<(), tasker_telemetry::publisher::SubscribeError>(())
/// ```
pub fn from_fn<F>(name: impl Into<Cow<'static, str>>, f: F) -> FnSubscriber<F>
where
    F: Fn(&Event<'_>) + Send + Sync + 'static,
{
    FnSubscriber {
        name: name.into(),
        f,
    }
}

impl<F> Subscriber for FnSubscriber<F>
where
    F: Fn(&Event<'_>) + Send + Sync + 'static,
{
    fn on_event(&self, event: &Event<'_>) {
        (self.f)(event)
    }

    fn name(&self) -> Cow<'static, str> {
        self.name.clone()
    }
}

/// How events reach a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// In the publishing thread, before `publish` returns (Tasker's behaviour).
    #[default]
    Synchronous,
    /// Through a bounded queue drained by a dedicated thread. When the queue is full the event is
    /// dropped for this subscriber and counted; the publisher never waits. The queue also holds
    /// at most [`DEFAULT_QUEUE_BYTES`](crate::publisher::DEFAULT_QUEUE_BYTES) of events (as
    /// their JSON length counts them), and is allocated as events arrive, never for its whole
    /// capacity up front.
    Asynchronous {
        /// How many events may wait in the queue: 1 to
        /// [`MAX_QUEUE_CAPACITY`](crate::publisher::MAX_QUEUE_CAPACITY).
        capacity: usize,
    },
    /// [`Asynchronous`](Self::Asynchronous), with the queue's bound in bytes given.
    ///
    /// ```
    /// use tasker_telemetry::subscriber::{self, Delivery};
    /// use tasker_telemetry::Publisher;
    ///
    /// let publisher = Publisher::new();
    /// let delivery = Delivery::AsynchronousBounded { capacity: 1024, max_bytes: 8 << 20 };
    /// publisher.subscribe_with(&["task.*"], subscriber::from_fn("audit", |_| {}), delivery)?;
    ///
    /// let too_large = Delivery::Asynchronous { capacity: 1 << 40 };
    /// let refused = publisher.subscribe_with(&["task.*"], subscriber::from_fn("x", |_| {}), too_large);
    /// assert!(refused.unwrap_err().to_string().contains("at most 1048576"));
    /// # Ok::<(), tasker_telemetry::publisher::SubscribeError>(())
    /// ```
    AsynchronousBounded {
        /// How many events may wait in the queue: 1 to
        /// [`MAX_QUEUE_CAPACITY`](crate::publisher::MAX_QUEUE_CAPACITY).
        capacity: usize,
        /// How many bytes of events may wait: 1 to
        /// [`MAX_QUEUE_BYTES`](crate::publisher::MAX_QUEUE_BYTES). An event larger than this
        /// is dropped for this subscriber and counted.
        max_bytes: usize,
    },
}

/// Delivery statistics of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriberStats {
    /// Events handed to `on_event` that returned normally.
    pub delivered: u64,
    /// Events whose `on_event` panicked.
    pub panics: u64,
    /// Events dropped because the asynchronous queue was full (in events or bytes) or closed.
    pub dropped: u64,
}
