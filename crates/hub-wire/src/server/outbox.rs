//! The bytes a connection still has to write, as shared frames ([`Outbox`]).
//!
//! Invariants:
//! * Frames are handed out in the order they were queued; none is empty; only the first
//!   may be partly written (it is advanced in place, never copied).
//! * Queuing a batch into an empty outbox moves the caller's `Vec` in: no allocation and
//!   no copy per recipient. An outbox that empties frees its storage, so an idle one owns
//!   no heap.

use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// Frames waiting to be written, in order.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// The frames; the first may be partly written already.
    frames: Vec<Bytes>,
}

impl Outbox {
    /// Whether nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Queues one frame (dropped when empty).
    pub(crate) fn push(&mut self, frame: Bytes) {
        if !frame.is_empty() {
            self.frames.push(frame);
        }
    }

    /// Queues a batch, taking over its storage when nothing else is waiting.
    pub(crate) fn append(&mut self, mut frames: Vec<Bytes>) {
        if frames.iter().any(Bytes::is_empty) {
            frames.retain(|f| !f.is_empty());
        }
        if self.frames.is_empty() {
            self.frames = frames;
        } else {
            self.frames.append(&mut frames);
        }
    }

    /// Fills `out` with the next slices to write; returns how many it filled.
    pub(crate) fn fill<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut count = 0;
        for (slot, frame) in out.iter_mut().zip(&self.frames) {
            *slot = IoSlice::new(frame);
            count += 1;
        }
        count
    }

    /// Drops the first `n` bytes; returns how many there were (at most `n`).
    pub(crate) fn consume(&mut self, mut n: usize) -> usize {
        let asked = n;
        let mut done = 0;
        for frame in &mut self.frames {
            if frame.len() > n {
                frame.advance(n);
                n = 0;
                break;
            }
            n -= frame.len();
            done += 1;
        }
        if done == self.frames.len() {
            self.frames = Vec::new();
        } else {
            self.frames.drain(..done);
        }
        asked - n
    }

    /// Drops everything and frees the storage.
    pub(crate) fn clear(&mut self) {
        self.frames = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_advances_across_frames_and_frees_when_empty() {
        let mut outbox = Outbox::default();
        outbox.append(vec![Bytes::from_static(b"abc"), Bytes::new()]);
        outbox.push(Bytes::from_static(b"de"));
        assert_eq!(outbox.fill(&mut [IoSlice::new(&[]); 4]), 2);
        assert_eq!(outbox.consume(4), 4);
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(outbox.fill(&mut slices), 1);
        assert_eq!(&*slices[0], b"e");
        assert_eq!(outbox.consume(10), 1);
        assert!(outbox.is_empty());
        assert_eq!(outbox.frames.capacity(), 0);
    }
}
