//! Per-step delivery accounting: how many subscribers each measured message reached, the
//! loss against `messages × subscribers`, and the per-message last-subscriber latency.
//!
//! Invariants: a [`SeqTable`] covers the measured sequence numbers `first..first + len`;
//! merging tables adds counts and keeps the largest latency per message; a message counts
//! for the last-subscriber latency only when it reached every subscriber.

use serde::{Deserialize, Serialize};

use crate::hist::Latency;

/// For each measured message: deliveries seen and the largest latency (µs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqTable {
    /// The first sequence number covered.
    pub first: u64,
    /// Deliveries per message.
    pub counts: Vec<u32>,
    /// Largest delivery latency per message, µs.
    pub max_us: Vec<u64>,
}

impl SeqTable {
    /// A table for sequence numbers `first..first + len`.
    pub fn new(first: u64, len: usize) -> Self {
        Self {
            first,
            counts: vec![0; len],
            max_us: vec![0; len],
        }
    }

    /// Whether `seq` is covered.
    pub fn covers(&self, seq: u64) -> bool {
        self.index(seq).is_some()
    }

    fn index(&self, seq: u64) -> Option<usize> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        (i < self.counts.len()).then_some(i)
    }

    /// Records one delivery of `seq` after `us`; false when `seq` is not covered.
    pub fn record(&mut self, seq: u64, us: u64) -> bool {
        match self.index(seq) {
            Some(i) => {
                self.counts[i] = self.counts[i].saturating_add(1);
                self.max_us[i] = self.max_us[i].max(us);
                true
            }
            None => false,
        }
    }

    /// Adds another table of the same range (a table of another range is an error).
    pub fn merge(&mut self, other: &SeqTable) -> Result<(), String> {
        if other.first != self.first || other.counts.len() != self.counts.len() {
            return Err(format!(
                "tables cover different messages ({}+{} vs {}+{})",
                self.first,
                self.counts.len(),
                other.first,
                other.counts.len()
            ));
        }
        for (i, (&c, &m)) in other.counts.iter().zip(&other.max_us).enumerate() {
            self.counts[i] = self.counts[i].saturating_add(c);
            self.max_us[i] = self.max_us[i].max(m);
        }
        Ok(())
    }

    /// Total deliveries recorded.
    pub fn received(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// The last-subscriber latency of every message among the first `sent` that reached
    /// all `subscribers`, and how many of those `sent` did not.
    pub fn last_subscriber(&self, sent: u64, subscribers: u64) -> (Latency, u64) {
        let mut hist = Latency::new();
        let mut incomplete = 0;
        let n = usize::try_from(sent)
            .unwrap_or(usize::MAX)
            .min(self.counts.len());
        for (&c, &m) in self.counts[..n].iter().zip(&self.max_us[..n]) {
            if u64::from(c) >= subscribers {
                hist.record(m);
            } else {
                incomplete += 1;
            }
        }
        (hist, incomplete)
    }
}

/// Deliveries expected, received and lost in one step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// Messages sent × subscribers.
    pub expected: u64,
    /// Deliveries received.
    pub received: u64,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// Deliveries beyond the expected (duplicates); should be 0.
    pub extra: u64,
    /// `lost / expected` (0 when nothing was expected).
    pub fraction: f64,
}

/// Computes the loss of a step.
pub fn loss(sent: u64, subscribers: u64, received: u64) -> Loss {
    let expected = sent.saturating_mul(subscribers);
    let lost = expected.saturating_sub(received);
    Loss {
        expected,
        received,
        lost,
        extra: received.saturating_sub(expected),
        fraction: if expected == 0 {
            0.0
        } else {
            lost as f64 / expected as f64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_covered_messages() {
        let mut t = SeqTable::new(100, 3);
        assert!(t.record(100, 5));
        assert!(t.record(102, 9));
        assert!(!t.record(99, 1));
        assert!(!t.record(103, 1));
        assert!(t.covers(101) && !t.covers(103));
        assert_eq!(t.received(), 2);
    }

    #[test]
    fn merge_adds_counts_and_keeps_max() {
        let mut a = SeqTable::new(0, 2);
        a.record(0, 10);
        a.record(1, 50);
        let mut b = SeqTable::new(0, 2);
        b.record(0, 30);
        b.record(1, 20);
        a.merge(&b).expect("same range");
        assert_eq!(a.counts, vec![2, 2]);
        assert_eq!(a.max_us, vec![30, 50]);
        assert!(a.merge(&SeqTable::new(1, 2)).is_err());
    }

    #[test]
    fn last_subscriber_skips_incomplete_messages() {
        let mut t = SeqTable::new(0, 4);
        for seq in 0..3 {
            t.record(seq, 100 * (seq + 1));
            t.record(seq, 10);
        }
        t.record(3, 7); // reached only one of two subscribers
        let (hist, incomplete) = t.last_subscriber(4, 2);
        assert_eq!(incomplete, 1);
        assert_eq!(hist.count(), 3);
        assert_eq!(hist.summary().max_us, 300);
        // Only the first two messages were sent.
        let (hist, incomplete) = t.last_subscriber(2, 2);
        assert_eq!((hist.count(), incomplete), (2, 0));
    }

    #[test]
    fn loss_fraction() {
        let l = loss(10, 100, 990);
        assert_eq!((l.expected, l.lost, l.extra), (1000, 10, 0));
        assert!((l.fraction - 0.01).abs() < 1e-12);
        assert_eq!(loss(0, 5, 0).fraction, 0.0);
        assert_eq!(loss(1, 1, 3).extra, 2);
    }
}
