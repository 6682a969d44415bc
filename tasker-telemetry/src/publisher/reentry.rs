//! How deep publishes may nest on one thread: a subscriber that publishes while it handles an
//! event (the same event, say) would otherwise recurse until the thread's stack overflows and the
//! process aborts. The bound is per thread because that is where the recursion lives; the state
//! is this module's own and nothing else reads it.

use std::cell::Cell;

/// The deepest a publish may nest inside subscribers' handling on one thread: an event published
/// by a subscriber while it handles an event is one level down. A publish deeper than this is
/// dropped and counted ([`PublisherStats::reentrant_dropped`](super::PublisherStats)).
pub const MAX_DELIVERY_DEPTH: u32 = 16;

/// The most events subscribers may publish while one outermost publish is delivered (a
/// subscriber publishing two events per event it handles would otherwise make 2^16 of them
/// within the depth bound). The ones after are dropped and counted.
pub const MAX_NESTED_PUBLISHES: u32 = 1024;

thread_local! {
    /// (depth, nested publishes since the outermost one began).
    static NESTING: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
}

/// A publish in progress on this thread; leaving it (also by unwinding) goes back up a level.
pub(super) struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        NESTING.with(|n| {
            let (depth, nested) = n.get();
            let depth = depth.saturating_sub(1);
            n.set((depth, if depth == 0 { 0 } else { nested }));
        });
    }
}

/// Enters a publish, or `None` when it would nest deeper than [`MAX_DELIVERY_DEPTH`] or past
/// [`MAX_NESTED_PUBLISHES`].
#[inline]
pub(super) fn enter() -> Option<Entered> {
    NESTING.with(|n| {
        let (depth, nested) = n.get();
        if depth == 0 {
            n.set((1, 0));
            return Some(Entered(()));
        }
        if depth >= MAX_DELIVERY_DEPTH || nested >= MAX_NESTED_PUBLISHES {
            return None;
        }
        n.set((depth + 1, nested + 1));
        Some(Entered(()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_bounded_and_restored_on_the_way_out() {
        fn nest(level: u32, reached: &mut u32) {
            if let Some(_entered) = enter() {
                *reached = level;
                nest(level + 1, reached);
            }
        }
        let mut reached = 0;
        nest(1, &mut reached);
        assert_eq!(reached, MAX_DELIVERY_DEPTH);
        assert_eq!(NESTING.with(Cell::get), (0, 0));
    }

    #[test]
    fn nested_publishes_are_bounded_per_outermost_publish() {
        let outer = enter().unwrap();
        let mut entered = 0;
        for _ in 0..MAX_NESTED_PUBLISHES + 10 {
            if enter().is_some() {
                entered += 1;
            }
        }
        assert_eq!(entered, MAX_NESTED_PUBLISHES);
        drop(outer);
        // A new outermost publish has the whole budget again.
        let _outer = enter().unwrap();
        assert!(enter().is_some());
    }
}
