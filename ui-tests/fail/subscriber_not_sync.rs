// Subscribers run on the publishing thread and on delivery threads: one that is not Sync
// (here it holds a RefCell) is refused at compile time.
use std::cell::RefCell;
use tasker_telemetry::{Event, Subscriber};

struct Counter(RefCell<u64>);

impl Subscriber for Counter {
    fn on_event(&self, _event: &Event<'_>) {
        *self.0.borrow_mut() += 1;
    }
}

fn main() {}
