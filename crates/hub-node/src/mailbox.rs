//! A one-slot mailbox from a shard task to a connection task, and the shard task's way of
//! writing to the connection's socket itself.
//!
//! The core hands out at most one `Transmit` per connection until the runtime reports it
//! `Sent`, so one slot is enough: no per-connection channel (and its block allocation) is
//! needed. An abort overrides whatever is waiting. Only the connection task takes from it,
//! so one stored waker is enough, and the connection task holds nothing while it waits for
//! a command ([`Mailbox::poll_take`] keeps the waker in the slot).
//!
//! Write-through. The mailbox and the connection's stream live in one shared [`Link`]. The
//! shard task writes a batch straight to the stream, without waiting ([`Link::transmit`],
//! through [`Conn::write_now`]): a batch the socket takes whole costs one system call and no
//! task wake-up; what it does not take goes to the connection task, which waits for the
//! socket to drain. Since the core hands out one batch at a time and the write-through is
//! done under the slot's lock, the two never write at once.

use std::io::{self, IoSlice};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::runtime::{write_until_blocked, Conn};

/// What a connection task shares with its shard task: the mailbox, and the stream the shard
/// task writes through. The shard task holds it as `Link<dyn WriteNow>`.
pub(crate) struct Link<S: ?Sized> {
    /// Commands for the connection task.
    pub(crate) mailbox: Mailbox,
    /// The connection's stream.
    pub(crate) socket: S,
}

/// [`Conn::write_now`], for the shard task's type-erased view of a [`Link`].
pub(crate) trait WriteNow: Send + Sync {
    /// Writes what the stream takes now, without waiting.
    fn write_now(&self, slices: &[IoSlice<'_>]) -> io::Result<usize>;
}

impl<C: Conn> WriteNow for C {
    fn write_now(&self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        Conn::write_now(self, slices)
    }
}

impl<S: WriteNow + ?Sized> Link<S> {
    /// Writes `frames` to the stream now if nothing else waits in the slot; whatever the
    /// stream does not take goes to the connection task as a `Transmit`.
    pub(crate) fn transmit(&self, frames: Vec<Bytes>) -> Transmitted {
        self.mailbox.transmit(&self.socket, frames)
    }
}

/// What a connection task is told to do.
#[derive(Debug)]
pub(crate) enum WriterCmd {
    /// Write these frames; with `close`, shut the socket afterwards.
    Transmit { frames: Vec<Bytes>, close: bool },
    /// Drop the socket now.
    Abort,
}

/// What became of a batch given to [`Mailbox::transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transmitted {
    /// The socket took it all: the batch is sent.
    Written,
    /// (The rest of) it went to the connection task, which reports when it is sent.
    Handed,
}

/// The slot and the waker of the task waiting on it.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    /// Boxed: a command waits only when the socket is full or the connection ends, and the
    /// slot is part of every connection's memory.
    cmd: Option<Box<WriterCmd>>,
    waker: Option<Waker>,
}

impl Mailbox {
    /// Puts `cmd` in the slot (an abort always wins) and wakes the connection task.
    pub(crate) fn put(&self, cmd: WriterCmd) {
        let waker = self.slot.lock().ok().and_then(|mut slot| slot.put(cmd));
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Writes `frames` through `socket` now if nothing else waits in the slot; whatever it
    /// does not take goes to the connection task as a `Transmit`.
    fn transmit<S: WriteNow + ?Sized>(&self, socket: &S, mut frames: Vec<Bytes>) -> Transmitted {
        let waker = {
            let Ok(mut slot) = self.slot.lock() else {
                return Transmitted::Handed;
            };
            if slot.cmd.is_none() && write_through(socket, &mut frames) {
                return Transmitted::Written;
            }
            slot.put(WriterCmd::Transmit {
                frames,
                close: false,
            })
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Transmitted::Handed
    }

    /// The next command, or `Pending` (and the task is woken by the next `put`).
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<WriterCmd> {
        let Ok(mut slot) = self.slot.lock() else {
            return Poll::Pending;
        };
        match slot.cmd.take() {
            Some(cmd) => Poll::Ready(*cmd),
            None => slot.wait(cx),
        }
    }
}

impl Slot {
    /// Stores `cmd` (unless an abort waits) and returns the waker to wake.
    fn put(&mut self, cmd: WriterCmd) -> Option<Waker> {
        if !matches!(self.cmd.as_deref(), Some(WriterCmd::Abort)) {
            self.cmd = Some(Box::new(cmd));
        }
        self.waker.take()
    }

    /// Keeps the task's waker for the next `put`.
    fn wait<T>(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        match &mut self.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Writes `frames` through `socket` until they are all written (true) or it takes no more
/// (false; `frames` then holds what is left, and the connection task finds any error
/// itself).
fn write_through<S: WriteNow + ?Sized>(socket: &S, frames: &mut Vec<Bytes>) -> bool {
    matches!(
        write_until_blocked(|slices| socket.write_now(slices), frames),
        Ok(true)
    )
}
