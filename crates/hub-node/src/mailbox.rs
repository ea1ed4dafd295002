//! A one-slot mailbox from a shard task to a connection task.
//!
//! The core hands out at most one `Transmit` per connection until the runtime reports it
//! `Sent`, so one slot is enough: no per-connection channel (and its block allocation) is
//! needed. An abort overrides whatever is waiting. Only the connection task takes from it,
//! so one stored waker is enough, and waiting for a command is a poll function of one
//! pointer (not a waiter node) in the connection's task.

use std::future::Future;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// What a connection task is told to do.
#[derive(Debug)]
pub(crate) enum WriterCmd {
    /// Write these frames; with `close`, shut the socket afterwards.
    Transmit { frames: Vec<Bytes>, close: bool },
    /// Drop the socket now.
    Abort,
}

/// The slot and the waker of the task waiting on it.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    cmd: Option<WriterCmd>,
    waker: Option<Waker>,
}

impl Mailbox {
    /// Puts `cmd` in the slot (an abort always wins) and wakes the connection task.
    pub(crate) fn put(&self, cmd: WriterCmd) {
        let waker = self.slot.lock().ok().and_then(|mut slot| {
            if !matches!(slot.cmd, Some(WriterCmd::Abort)) {
                slot.cmd = Some(cmd);
            }
            slot.waker.take()
        });
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The next command, or `Pending` (and the task is woken by the next `put`).
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<WriterCmd> {
        let Ok(mut slot) = self.slot.lock() else {
            return Poll::Pending;
        };
        match slot.cmd.take() {
            Some(cmd) => Poll::Ready(cmd),
            None => slot.wait(cx),
        }
    }

    /// Waits until a command is waiting (and leaves it there).
    pub(crate) fn ready(&self) -> impl Future<Output = ()> + Send + '_ {
        std::future::poll_fn(move |cx| {
            let Ok(mut slot) = self.slot.lock() else {
                return Poll::Pending;
            };
            match slot.cmd {
                Some(_) => Poll::Ready(()),
                None => slot.wait(cx),
            }
        })
    }

    /// The waiting command, if any.
    pub(crate) fn try_take(&self) -> Option<WriterCmd> {
        self.slot.lock().ok().and_then(|mut slot| slot.cmd.take())
    }
}

impl Slot {
    /// Keeps the task's waker for the next `put`.
    fn wait<T>(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        match &mut self.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}
