//! A connection's bounded send queue.
//!
//! Invariants: `bytes()` is the sum of the lengths of the queued frames plus the frames handed
//! to the runtime and not yet reported written (`in_flight`); neither the byte nor the frame
//! count passes its limit, except that a close frame may always be appended once.

use std::collections::VecDeque;

use bytes::Bytes;

/// The queue would pass one of its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueFull;

/// Frames waiting to be written to one connection, bounded in bytes and in frames.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    frames: VecDeque<Bytes>,
    queued_bytes: usize,
    in_flight_bytes: usize,
    in_flight_frames: usize,
}

impl SendQueue {
    /// An empty queue (allocates nothing until the first push).
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Bytes held: queued plus in flight.
    pub(crate) fn bytes(&self) -> usize {
        self.queued_bytes + self.in_flight_bytes
    }

    /// Frames held: queued plus in flight.
    pub(crate) fn len(&self) -> usize {
        self.frames.len() + self.in_flight_frames
    }

    /// Whether nothing is queued (frames in flight do not count).
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether a batch is in flight.
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight_frames > 0
    }

    /// Frames waiting, not yet handed out.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> impl Iterator<Item = &Bytes> {
        self.frames.iter()
    }

    /// Appends `frame` if both limits allow it.
    pub(crate) fn push(
        &mut self,
        frame: Bytes,
        max_bytes: usize,
        max_frames: usize,
    ) -> Result<(), QueueFull> {
        if self.bytes() + frame.len() > max_bytes || self.len() + 1 > max_frames {
            return Err(QueueFull);
        }
        self.push_unbounded(frame);
        Ok(())
    }

    /// Appends `frame` whatever the limits (for the one close frame at the end).
    pub(crate) fn push_unbounded(&mut self, frame: Bytes) {
        self.queued_bytes += frame.len();
        self.frames.push_back(frame);
    }

    /// Drops the oldest queued frame (not in flight); returns its length.
    pub(crate) fn drop_oldest(&mut self) -> Option<usize> {
        let frame = self.frames.pop_front()?;
        self.queued_bytes -= frame.len();
        Some(frame.len())
    }

    /// Drops every queued frame (frames in flight stay counted until written); returns the
    /// bytes dropped.
    pub(crate) fn clear(&mut self) -> usize {
        self.frames.clear();
        std::mem::take(&mut self.queued_bytes)
    }

    /// Moves up to `max_frames` frames and about `max_bytes` bytes (at least one frame) into
    /// `out` and counts them in flight. Returns how many frames moved.
    ///
    /// When the batch takes every queued frame and `out` is empty, the queue's buffer becomes
    /// `out`'s: an emptied queue holds no memory (an idle connection's would otherwise keep
    /// the capacity of its largest burst), and the batch needs no allocation of its own.
    pub(crate) fn take_batch(
        &mut self,
        max_frames: usize,
        max_bytes: usize,
        out: &mut Vec<Bytes>,
    ) -> usize {
        let all = self.frames.len();
        if out.is_empty()
            && all > 0
            && all <= max_frames.max(1)
            && (all == 1 || self.queued_bytes <= max_bytes)
        {
            *out = Vec::from(std::mem::take(&mut self.frames));
            self.in_flight_bytes += self.queued_bytes;
            self.in_flight_frames += all;
            self.queued_bytes = 0;
            return all;
        }
        let mut moved = 0;
        let mut size = 0;
        while moved < max_frames.max(1) {
            let Some(next) = self.frames.front() else {
                break;
            };
            if moved > 0 && size + next.len() > max_bytes {
                break;
            }
            let Some(frame) = self.frames.pop_front() else {
                break;
            };
            size += frame.len();
            moved += 1;
            out.push(frame);
        }
        self.queued_bytes -= size;
        self.in_flight_bytes += size;
        self.in_flight_frames += moved;
        moved
    }

    /// The runtime wrote the batch in flight; returns its bytes.
    pub(crate) fn batch_written(&mut self) -> usize {
        self.in_flight_frames = 0;
        std::mem::take(&mut self.in_flight_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(n: usize) -> Bytes {
        Bytes::from(vec![0u8; n])
    }

    #[test]
    fn limits_hold_in_bytes_and_frames() {
        let mut q = SendQueue::new();
        assert!(q.push(f(60), 100, 3).is_ok());
        assert_eq!(q.push(f(50), 100, 3), Err(QueueFull));
        assert!(q.push(f(40), 100, 3).is_ok());
        assert_eq!(q.push(f(0), 100, 2), Err(QueueFull));
        assert_eq!(q.bytes(), 100);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn batches_count_in_flight_until_written() {
        let mut q = SendQueue::new();
        for _ in 0..5 {
            q.push(f(10), 1000, 10).expect("fits");
        }
        let mut out = Vec::new();
        assert_eq!(q.take_batch(3, 1000, &mut out), 3);
        assert_eq!(out.len(), 3);
        assert!(q.in_flight());
        assert_eq!(q.bytes(), 50);
        assert_eq!(q.len(), 5);
        q.batch_written();
        assert_eq!(q.bytes(), 20);
        out.clear();
        assert_eq!(
            q.take_batch(10, 15, &mut out),
            1,
            "byte budget stops the batch"
        );
        q.batch_written();
        q.clear();
        assert_eq!((q.bytes(), q.len()), (0, 0));
    }

    #[test]
    fn oversized_single_frame_still_goes_alone() {
        let mut q = SendQueue::new();
        q.push_unbounded(f(500));
        let mut out = Vec::new();
        assert_eq!(q.take_batch(10, 100, &mut out), 1);
    }

    #[test]
    fn a_batch_of_everything_takes_the_buffer() {
        let mut q = SendQueue::new();
        for _ in 0..3 {
            q.push(f(10), 1000, 10).expect("fits");
        }
        let mut out = Vec::new();
        assert_eq!(q.take_batch(3, 30, &mut out), 3);
        assert_eq!(out.len(), 3);
        assert_eq!(q.frames.capacity(), 0, "the buffer went with the batch");
        assert_eq!((q.bytes(), q.len()), (30, 3));
        q.push(f(5), 1000, 10).expect("fits");
        q.batch_written();
        assert_eq!((q.bytes(), q.len()), (5, 1));
        // Over the byte budget: not everything goes, and the buffer stays.
        q.push(f(30), 1000, 10).expect("fits");
        out.clear();
        assert_eq!(q.take_batch(10, 20, &mut out), 1);
        assert!(q.frames.capacity() > 0);
        assert_eq!((q.bytes(), q.len()), (35, 2));
    }

    #[test]
    fn drop_oldest_keeps_counters_right() {
        let mut q = SendQueue::new();
        q.push(f(10), 100, 10).expect("fits");
        q.push(f(20), 100, 10).expect("fits");
        assert_eq!(q.drop_oldest(), Some(10));
        assert_eq!(q.bytes(), 20);
        assert_eq!(q.queued().count(), 1);
    }
}
