//! An asynchronous subscriber's queue: bounded in events and in bytes, allocated as events
//! arrive (never for its whole capacity up front), drained by the subscriber's own thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::event::Event;
use crate::payload::{Payload, Value};

/// The bytes an asynchronous subscriber's queue may hold when
/// [`Delivery::Asynchronous`](crate::subscriber::Delivery::Asynchronous) does not say: 64 MiB.
pub const DEFAULT_QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// The most events an asynchronous queue may be asked to hold: 1,048,576.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;

/// The most bytes an asynchronous queue may be asked to hold: 4 GiB.
pub const MAX_QUEUE_BYTES: usize = 1 << 32;

/// An event waiting, with the bytes it was counted as.
pub(super) type Queued = (Arc<Event<'static>>, usize);

/// The sending side, kept in the routing table.
pub(super) struct Queue {
    tx: Sender<Queued>,
    held: Arc<Held>,
    capacity: usize,
    max_bytes: usize,
}

/// What the queue holds now: events and their bytes, counted by both sides.
#[derive(Default)]
pub(super) struct Held {
    events: AtomicUsize,
    bytes: AtomicUsize,
}

impl Held {
    /// The receiving side took an event off the queue.
    pub(super) fn release(&self, bytes: usize) {
        self.events.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl Queue {
    /// A queue of at most `capacity` events and `max_bytes` bytes, and its receiving side.
    pub(super) fn new(capacity: usize, max_bytes: usize) -> (Self, Receiver<Queued>, Arc<Held>) {
        let (tx, rx) = channel();
        let held = Arc::new(Held::default());
        (
            Self {
                tx,
                held: held.clone(),
                capacity,
                max_bytes,
            },
            rx,
            held,
        )
    }

    /// Queues `event` (counted as `bytes`), or `false` when that would pass either bound or the
    /// subscriber's thread is gone: the caller counts the drop.
    pub(super) fn try_push(&self, event: &Arc<Event<'static>>, bytes: usize) -> bool {
        // Reserved first, given back on refusal: concurrent publishers never together pass a
        // bound.
        if self.held.events.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.held.events.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        let before = self.held.bytes.fetch_add(bytes, Ordering::AcqRel);
        if before.saturating_add(bytes) > self.max_bytes {
            self.held.release(bytes);
            return false;
        }
        if self.tx.send((event.clone(), bytes)).is_err() {
            self.held.release(bytes);
            return false;
        }
        true
    }
}

/// The bytes `event` is counted as in a queue: a fixed part for the event and its keys, plus the
/// length of every text and the size of every JSON value it carries (task context, step inputs
/// and results, error messages), which is where an event's size can grow. Read through the
/// payload's fields, without serialising.
pub(super) fn size_of(event: &Event<'_>) -> usize {
    const FIXED: usize = 256;
    let payload = event.payload();
    let mut bytes = FIXED;
    match payload {
        Payload::Fields(fields) => {
            for (key, value) in fields.iter() {
                bytes += key.len() + json_size(value);
            }
        }
        _ => {
            for field in payload.kind().fields() {
                bytes += match payload.get(field.name) {
                    Some(Value::Str(s)) => s.len(),
                    Some(Value::List(names)) => names.iter().map(|n| n.len() + 8).sum(),
                    Some(Value::Json(json)) => json_size(json),
                    _ => 0,
                };
            }
        }
    }
    bytes
}

/// About what `value` occupies: its texts' lengths, and a word per node. Walked with a stack
/// of its own, so that a deeply nested value cannot overflow the thread's.
fn json_size(value: &serde_json::Value) -> usize {
    let mut bytes = 0;
    let mut pending = vec![value];
    while let Some(v) = pending.pop() {
        bytes += 16;
        match v {
            serde_json::Value::String(s) => bytes += s.len(),
            serde_json::Value::Array(items) => pending.extend(items),
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    bytes += k.len();
                    pending.push(item);
                }
            }
            _ => {}
        }
    }
    bytes
}
