//! One connection's state inside a shard.

use crate::config::ClientProtocol;
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
    /// The protocol the connection speaks.
    pub(crate) protocol: ClientProtocol,
    /// The only rooms the client may join and publish to; `None`: every room.
    pub(crate) allowed_rooms: Option<Box<RoomAllowList>>,
}

/// The rooms a connection's token allows, sorted for binary search.
#[derive(Debug)]
pub(crate) struct RoomAllowList(Vec<RoomName>);

impl RoomAllowList {
    pub(crate) fn new(mut rooms: Vec<RoomName>) -> Self {
        rooms.sort_unstable();
        rooms.dedup();
        Self(rooms)
    }

    pub(crate) fn allows(&self, room: &str) -> bool {
        self.0.binary_search_by(|r| r.as_str().cmp(room)).is_ok()
    }
}

impl Conn {
    pub(crate) fn new(
        id: ConnId,
        client: ClientId,
        user: Option<UserId>,
        allowed_rooms: Option<Vec<RoomName>>,
        protocol: ClientProtocol,
    ) -> Self {
        Self {
            id,
            client,
            user,
            allowed_rooms: allowed_rooms.map(|r| Box::new(RoomAllowList::new(r))),
            rooms: Vec::new(),
            queue: SendQueue::new(),
            state: ConnState::Open,
            ready: false,
            ping_unanswered: false,
            protocol,
        }
    }
}
