//! A one-slot mailbox from a shard task to a connection task.
//!
//! The core hands out at most one `Transmit` per connection until the runtime reports it
//! `Sent`, so one slot is enough: no per-connection channel (and its block allocation) is
//! needed. An abort overrides whatever is waiting.

use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::Notify;

/// What a connection task is told to do.
#[derive(Debug)]
pub(crate) enum WriterCmd {
    /// Write these frames; with `close`, shut the socket afterwards.
    Transmit { frames: Vec<Bytes>, close: bool },
    /// Drop the socket now.
    Abort,
}

/// The slot and its wake-up.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    slot: Mutex<Option<WriterCmd>>,
    notify: Notify,
}

impl Mailbox {
    /// Puts `cmd` in the slot (an abort always wins) and wakes the connection task.
    pub(crate) fn put(&self, cmd: WriterCmd) {
        if let Ok(mut slot) = self.slot.lock() {
            let keep_abort = matches!(*slot, Some(WriterCmd::Abort));
            if !keep_abort {
                *slot = Some(cmd);
            }
        }
        self.notify.notify_one();
    }

    /// Waits for the next command.
    pub(crate) async fn take(&self) -> WriterCmd {
        loop {
            if let Some(cmd) = self.slot.lock().ok().and_then(|mut s| s.take()) {
                return cmd;
            }
            self.notify.notified().await;
        }
    }
}
