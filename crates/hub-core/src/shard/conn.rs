//! One connection's state inside a shard.

use crate::ids::{ClientId, ConnId, RoomName, UserId};
use crate::queue::SendQueue;

/// Whether a connection still takes part in the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// Receives messages, is in the indexes.
    Open,
    /// Out of every index; its queue ends with a close frame and is being flushed.
    Draining,
}

/// A connection's entry in the shard's table.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: ConnId,
    pub(crate) client: ClientId,
    pub(crate) user: Option<UserId>,
    pub(crate) rooms: Vec<RoomName>,
    pub(crate) queue: SendQueue,
    pub(crate) state: ConnState,
    /// Whether the connection is in the shard's ready list.
    pub(crate) ready: bool,
    /// Whether a ping went out that no traffic has answered yet (its deadline is in the
    /// shard's pong timers).
    pub(crate) ping_unanswered: bool,
}

impl Conn {
    pub(crate) fn new(id: ConnId, client: ClientId, user: Option<UserId>) -> Self {
        Self {
            id,
            client,
            user,
            rooms: Vec::new(),
            queue: SendQueue::new(),
            state: ConnState::Open,
            ready: false,
            ping_unanswered: false,
        }
    }
}
