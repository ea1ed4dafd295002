//! Where the frame decoder's output goes: events for the caller ([`Sink`]) while a
//! WebSocket reads, or nothing but a note of the client's close frame ([`Watch`]) while it
//! closes.
//!
//! Invariant: the client's close frame always sets `closed`; nothing else does.

use std::collections::VecDeque;

use super::ConnEvent;
use crate::ws::{echo_code, Decoded};

/// Turns decoded frames into events; notes the client's close frame.
pub(super) struct Sink<'a> {
    /// Where the events go.
    pub(super) events: &'a mut VecDeque<ConnEvent>,
    /// Set by the client's close frame.
    pub(super) closed: bool,
}

impl Extend<Decoded> for Sink<'_> {
    fn extend<I: IntoIterator<Item = Decoded>>(&mut self, iter: I) {
        for decoded in iter {
            let event = match decoded {
                Decoded::Text(data) => ConnEvent::Message {
                    data,
                    binary: false,
                },
                Decoded::Binary(data) => ConnEvent::Message { data, binary: true },
                Decoded::Ping(payload) => ConnEvent::Ping(payload),
                Decoded::Pong(payload) => ConnEvent::Pong(payload),
                Decoded::Close { code, .. } => {
                    self.closed = true;
                    ConnEvent::PeerClose {
                        code: echo_code(code),
                    }
                }
            };
            self.events.push_back(event);
        }
    }
}

/// Discards decoded frames; notes the client's close frame.
pub(super) struct Watch {
    /// Set by the client's close frame.
    pub(super) closed: bool,
}

impl Extend<Decoded> for Watch {
    fn extend<I: IntoIterator<Item = Decoded>>(&mut self, iter: I) {
        for decoded in iter {
            self.closed |= matches!(decoded, Decoded::Close { .. });
        }
    }
}
