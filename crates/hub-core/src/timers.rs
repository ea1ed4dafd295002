//! Deadline lists: FIFO timer queues linked through the connection table.
//!
//! Every deadline in one list is `now + d` for the same constant `d` and a non-decreasing
//! `now`, so appending keeps the list sorted: insert, remove and peek are O(1) and nothing
//! ever scans all connections. The links live in a vector indexed by connection slot, so a
//! closed connection's timer is unlinked at once (no stale entries).

use std::time::{Duration, Instant};

/// "No slot" in a link.
const NONE: u32 = u32::MAX;
/// "No deadline" in a link.
const UNSET: u64 = u64::MAX;

/// A slot's place in the list: 16 bytes per slot (two slot numbers, and the deadline as
/// nanoseconds after the list's epoch), since every connection has one per list.
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    deadline: u64,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            prev: NONE,
            next: NONE,
            deadline: UNSET,
        }
    }
}

/// `Some(slot)` unless it is [`NONE`].
fn some(slot: u32) -> Option<u32> {
    (slot != NONE).then_some(slot)
}

/// A sorted list of (deadline, slot), at most one entry per slot.
///
/// Deadlines are kept as offsets from an epoch, the deadline that started the list when it
/// was last empty: every later one is at least as late (the list is sorted), so offsets are
/// never negative.
#[derive(Debug, Default)]
pub(crate) struct DeadlineList {
    head: Option<u32>,
    tail: Option<u32>,
    links: Vec<Link>,
    len: usize,
    epoch: Option<Instant>,
}

impl DeadlineList {
    /// An empty list.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Number of slots with a deadline.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot has a deadline.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The earliest deadline and its slot.
    pub(crate) fn first(&self) -> Option<(Instant, u32)> {
        let slot = self.head?;
        Some((self.deadline(slot)?, slot))
    }

    /// The deadline of `slot`, if it has one.
    pub(crate) fn deadline(&self, slot: u32) -> Option<Instant> {
        let offset = self.links.get(slot as usize)?.deadline;
        if offset == UNSET {
            return None;
        }
        self.epoch?.checked_add(Duration::from_nanos(offset))
    }

    /// Gives `slot` the deadline `at`, moving it to the end of the list.
    ///
    /// `at` must not be earlier than the last deadline in the list; when it is (a caller
    /// mixing durations), it is raised to that deadline so the list stays sorted.
    pub(crate) fn schedule(&mut self, slot: u32, at: Instant) {
        self.cancel(slot);
        if slot == NONE {
            return;
        }
        let index = slot as usize;
        if self.links.len() <= index {
            self.links.resize(index + 1, Link::default());
        }
        let epoch = match (self.tail, self.epoch) {
            (Some(_), Some(epoch)) => epoch,
            _ => *self.epoch.insert(at),
        };
        let offset = u64::try_from(at.saturating_duration_since(epoch).as_nanos())
            .unwrap_or(UNSET - 1)
            .min(UNSET - 1);
        let offset = match self.tail {
            Some(t) => offset.max(self.links[t as usize].deadline),
            None => offset,
        };
        self.links[index] = Link {
            prev: self.tail.unwrap_or(NONE),
            next: NONE,
            deadline: offset,
        };
        match self.tail {
            Some(t) => self.links[t as usize].next = slot,
            None => self.head = Some(slot),
        }
        self.tail = Some(slot);
        self.len += 1;
    }

    /// Removes the deadline of `slot`, if any.
    pub(crate) fn cancel(&mut self, slot: u32) {
        let Some(link) = self.links.get(slot as usize).copied() else {
            return;
        };
        if link.deadline == UNSET {
            return;
        }
        match some(link.prev) {
            Some(p) => self.links[p as usize].next = link.next,
            None => self.head = some(link.next),
        }
        match some(link.next) {
            Some(n) => self.links[n as usize].prev = link.prev,
            None => self.tail = some(link.prev),
        }
        self.links[slot as usize] = Link::default();
        self.len -= 1;
    }

    /// Removes and returns the first slot whose deadline is at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<u32> {
        let (deadline, slot) = self.first()?;
        if deadline > now {
            return None;
        }
        self.cancel(slot);
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fifo_order_cancel_and_pop() {
        let t0 = Instant::now();
        let mut l = DeadlineList::new();
        for slot in 0..5u32 {
            l.schedule(slot, t0 + Duration::from_secs(u64::from(slot)));
        }
        l.cancel(0);
        l.cancel(3);
        assert_eq!(l.len(), 3);
        assert_eq!(l.first().map(|f| f.1), Some(1));
        assert_eq!(l.pop_due(t0 + Duration::from_secs(2)), Some(1));
        assert_eq!(l.pop_due(t0 + Duration::from_secs(2)), Some(2));
        assert_eq!(l.pop_due(t0 + Duration::from_secs(2)), None);
        l.schedule(2, t0 + Duration::from_secs(9));
        l.schedule(4, t0 + Duration::from_secs(9));
        assert_eq!(l.first().map(|f| f.1), Some(2));
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn a_link_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Link>(), 16);
    }

    #[test]
    fn deadlines_round_trip_and_the_epoch_restarts_when_empty() {
        let t0 = Instant::now();
        let mut l = DeadlineList::new();
        l.schedule(3, t0 + Duration::from_millis(1500));
        l.schedule(7, t0 + Duration::from_secs(25));
        assert_eq!(l.deadline(3), Some(t0 + Duration::from_millis(1500)));
        assert_eq!(l.deadline(7), Some(t0 + Duration::from_secs(25)));
        assert_eq!(l.pop_due(t0 + Duration::from_secs(30)), Some(3));
        assert_eq!(l.pop_due(t0 + Duration::from_secs(30)), Some(7));
        assert!(l.is_empty());
        // Empty again: a deadline earlier than the old epoch starts a new one.
        l.schedule(1, t0);
        assert_eq!(l.first(), Some((t0, 1)));
        l.cancel(1);
        assert_eq!(l.first(), None);
        assert_eq!(l.deadline(1), None);
    }

    #[test]
    fn earlier_deadline_is_raised_to_keep_order() {
        let t0 = Instant::now();
        let mut l = DeadlineList::new();
        l.schedule(1, t0 + Duration::from_secs(5));
        l.schedule(2, t0 + Duration::from_secs(1));
        assert_eq!(l.deadline(2), Some(t0 + Duration::from_secs(5)));
    }
}
