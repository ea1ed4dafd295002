//! Deadline lists: FIFO timer queues linked through the connection table.
//!
//! Every deadline in one list is `now + d` for the same constant `d` and a non-decreasing
//! `now`, so appending keeps the list sorted: insert, remove and peek are O(1) and nothing
//! ever scans all connections. The links live in a vector indexed by connection slot, so a
//! closed connection's timer is unlinked at once (no stale entries).

use std::time::Instant;

#[derive(Debug, Clone, Copy, Default)]
struct Link {
    prev: Option<u32>,
    next: Option<u32>,
    deadline: Option<Instant>,
}

/// A sorted list of (deadline, slot), at most one entry per slot.
#[derive(Debug, Default)]
pub struct DeadlineList {
    head: Option<u32>,
    tail: Option<u32>,
    links: Vec<Link>,
    len: usize,
}

impl DeadlineList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of slots with a deadline.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot has a deadline.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The earliest deadline and its slot.
    pub fn first(&self) -> Option<(Instant, u32)> {
        let slot = self.head?;
        let deadline = self.links.get(slot as usize)?.deadline?;
        Some((deadline, slot))
    }

    /// The deadline of `slot`, if it has one.
    pub fn deadline(&self, slot: u32) -> Option<Instant> {
        self.links.get(slot as usize)?.deadline
    }

    /// Gives `slot` the deadline `at`, moving it to the end of the list.
    ///
    /// `at` must not be earlier than the last deadline in the list; when it is (a caller
    /// mixing durations), it is raised to that deadline so the list stays sorted.
    pub fn schedule(&mut self, slot: u32, at: Instant) {
        self.cancel(slot);
        let index = slot as usize;
        if self.links.len() <= index {
            self.links.resize(index + 1, Link::default());
        }
        let at = match self.tail.and_then(|t| self.links[t as usize].deadline) {
            Some(last) if last > at => last,
            _ => at,
        };
        self.links[index] = Link {
            prev: self.tail,
            next: None,
            deadline: Some(at),
        };
        match self.tail {
            Some(t) => self.links[t as usize].next = Some(slot),
            None => self.head = Some(slot),
        }
        self.tail = Some(slot);
        self.len += 1;
    }

    /// Removes the deadline of `slot`, if any.
    pub fn cancel(&mut self, slot: u32) {
        let Some(link) = self.links.get(slot as usize).copied() else {
            return;
        };
        if link.deadline.is_none() {
            return;
        }
        match link.prev {
            Some(p) => self.links[p as usize].next = link.next,
            None => self.head = link.next,
        }
        match link.next {
            Some(n) => self.links[n as usize].prev = link.prev,
            None => self.tail = link.prev,
        }
        self.links[slot as usize] = Link::default();
        self.len -= 1;
    }

    /// Removes and returns the first slot whose deadline is at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<u32> {
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
    fn earlier_deadline_is_raised_to_keep_order() {
        let t0 = Instant::now();
        let mut l = DeadlineList::new();
        l.schedule(1, t0 + Duration::from_secs(5));
        l.schedule(2, t0 + Duration::from_secs(1));
        assert_eq!(l.deadline(2), Some(t0 + Duration::from_secs(5)));
    }
}
