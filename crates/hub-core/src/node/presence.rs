//! Presence in the router: this node's members from its shards' reports, other nodes' from
//! their peer messages, the counts and events, and member notifications.
//!
//! How the cluster shares presence (whatever the registry and the bus):
//! - each member change of this node goes to every live peer at once (`PresenceJoin`,
//!   `PresenceLeave`), on the same ordered link as everything else;
//! - a peer met for the first time, or whose link comes back, gets all of this node's entries
//!   (`PresenceSnapshot`, in parts, the first one replacing what it held of this node) and
//!   is asked for its own;
//! - every few seconds (`ClusterEvent::InterestCheck`) each peer gets the digest of this
//!   node's entries; a peer whose view differs asks for a snapshot. A lost update heals so;
//! - a node the registry reports gone (its lease expired: a crash) loses its members at once
//!   on every node (`ClusterEvent::NodeDown`), so they leave presence within the lease TTL
//!   plus the membership poll. Messages from a node that is not a live peer are ignored.
//!
//! Every node thereby holds the whole cluster's presence and answers counts and lists
//! without asking anyone.

use std::time::Instant;

use super::*;
use crate::presence::{Member, PresenceEvent, Scope, Transition};
use crate::protocol;

/// Most entries in one `PresenceSnapshot` part.
pub const PRESENCE_PART: usize = 512;

impl Router {
    /// This node's view of every node's presence.
    pub fn presence(&self) -> &crate::presence::PresenceIndex {
        &self.presence
    }

    pub(super) fn member_joined(&mut self, now: Instant, room: RoomName, member: Member) {
        let me = self.config.node_id.clone();
        if self.is_clustered() {
            for node in self.peers.iter().cloned().collect::<Vec<_>>() {
                let message = PeerMessage::PresenceJoin {
                    room: room.clone(),
                    member: member.clone(),
                };
                self.send_peer(node, message);
            }
        }
        self.apply_join(now, &me, room, member, true);
    }

    pub(super) fn member_left(&mut self, now: Instant, room: RoomName, client: ClientId) {
        let me = self.config.node_id.clone();
        if self.is_clustered() {
            for node in self.peers.iter().cloned().collect::<Vec<_>>() {
                let message = PeerMessage::PresenceLeave {
                    room: room.clone(),
                    client: client.clone(),
                };
                self.send_peer(node, message);
            }
        }
        self.apply_leave(now, &me, room, &client, true);
    }

    /// Answers a presence query at once.
    pub(super) fn presence_query(&mut self, req: RequestId, room: &str, query: PresenceQuery) {
        let reply = match query {
            PresenceQuery::Members => PresenceReply::Members(
                self.presence
                    .members(room)
                    .into_iter()
                    .map(|(_, m)| m)
                    .collect(),
            ),
            PresenceQuery::Users => PresenceReply::Users(self.presence.users(room)),
            PresenceQuery::RoomsWithPrefix => {
                PresenceReply::Rooms(self.presence.rooms_with_prefix(room))
            }
            PresenceQuery::Count(Scope::Cluster) => PresenceReply::Count(self.presence.count(room)),
            PresenceQuery::Count(Scope::Node) => {
                PresenceReply::Count(self.presence.node_count(room, &self.config.node_id))
            }
        };
        self.outputs.push_back(Output::Reply {
            req,
            reply: Reply::Presence(reply),
        });
    }

    /// Sends `node` every entry of this node, asking for its own when `reply`.
    pub(super) fn send_presence_snapshot(&mut self, node: NodeId, reply: bool) {
        let entries = self.presence.node_entries(&self.config.node_id);
        let mut first = true;
        let mut parts = entries.chunks(PRESENCE_PART).peekable();
        if parts.peek().is_none() {
            let message = PeerMessage::PresenceSnapshot {
                entries: Vec::new(),
                first,
                reply,
            };
            self.send_peer(node, message);
            return;
        }
        for part in parts {
            let message = PeerMessage::PresenceSnapshot {
                entries: part.to_vec(),
                first,
                reply,
            };
            first = false;
            self.send_peer(node.clone(), message);
        }
    }

    /// Sends every peer the digest of this node's entries.
    pub(super) fn send_presence_digests(&mut self) {
        let digest = self.presence.digest(&self.config.node_id);
        for node in self.peers.iter().cloned().collect::<Vec<_>>() {
            let message = PeerMessage::PresenceDigest {
                count: digest.count,
                hash: digest.hash,
            };
            self.send_peer(node, message);
        }
    }

    /// A node is gone: its members leave (each told to the members here, when notified).
    pub(super) fn presence_node_down(&mut self, now: Instant, node: &NodeId) {
        // The node with the lowest id of those alive announces what the lost node's members
        // changed for the whole cluster.
        let lowest = self
            .peers
            .iter()
            .next()
            .is_none_or(|p| *p > self.config.node_id);
        for (room, member) in self.presence.node_entries(node) {
            self.apply_leave(now, node, room, &member.client, lowest);
        }
    }

    /// A presence message from a peer.
    pub(super) fn on_presence_peer(&mut self, now: Instant, from: NodeId, message: PeerMessage) {
        if !self.peers.contains(&from) || from == self.config.node_id {
            return;
        }
        match message {
            PeerMessage::PresenceJoin { room, member } => {
                self.apply_join(now, &from, room, member, false)
            }
            PeerMessage::PresenceLeave { room, client } => {
                self.apply_leave(now, &from, room, &client, false)
            }
            PeerMessage::PresenceSnapshot {
                entries,
                first,
                reply,
            } => {
                if first {
                    // Replace the sender's entries: drop those the snapshot does not hold.
                    let keep: std::collections::BTreeSet<(RoomName, ClientId)> = entries
                        .iter()
                        .map(|(r, m)| (r.clone(), m.client.clone()))
                        .collect();
                    let stale: Vec<(RoomName, ClientId)> = self
                        .presence
                        .node_entries(&from)
                        .into_iter()
                        .map(|(r, m)| (r, m.client))
                        .filter(|key| !keep.contains(key))
                        .collect();
                    // A later part may still hold a dropped entry: it joins again then.
                    for (room, client) in stale {
                        self.apply_leave(now, &from, room, &client, false);
                    }
                }
                for (room, member) in entries {
                    self.apply_join(now, &from, room, member, false);
                }
                if first && reply {
                    self.send_presence_snapshot(from, false);
                }
            }
            PeerMessage::PresenceDigest { count, hash } => {
                let view = self.presence.digest(&from);
                if (view.count, view.hash) != (count, hash) {
                    self.stats.presence_resyncs += 1;
                    self.send_presence_snapshot(from, true);
                }
            }
            _ => {}
        }
    }

    fn apply_join(
        &mut self,
        now: Instant,
        node: &NodeId,
        room: RoomName,
        member: Member,
        own: bool,
    ) {
        let mut out = std::mem::take(&mut self.presence_buf);
        let notify = self.config.presence_notify.matches(room.as_str());
        let frame = notify.then(|| protocol::presence(room.as_str(), true, &member));
        let changed = self.presence.join(node, &room, member, &mut out);
        for t in out.drain(..) {
            self.presence_event(room.clone(), t, own);
        }
        self.presence_buf = out;
        if let (true, Some(frame)) = (changed, frame) {
            self.notify_members(now, room, frame);
        }
    }

    fn apply_leave(
        &mut self,
        now: Instant,
        node: &NodeId,
        room: RoomName,
        client: &ClientId,
        own: bool,
    ) {
        let mut out = std::mem::take(&mut self.presence_buf);
        let left = self
            .presence
            .leave(node, room.as_str(), client.as_str(), &mut out);
        for t in out.drain(..) {
            self.presence_event(room.clone(), t, own);
        }
        self.presence_buf = out;
        if let Some(member) = left {
            if self.config.presence_notify.matches(room.as_str()) {
                let frame = protocol::presence(room.as_str(), false, &member);
                self.notify_members(now, room, frame);
            }
        }
    }

    /// Sends a presence notification to this node's members of `room` (encoded once).
    fn notify_members(&mut self, now: Instant, room: RoomName, frame: Bytes) {
        if self.room_shards.contains_key(room.as_str()) {
            self.route(now, Origin::Nobody, Target::Room(room), frame, None, false);
        }
    }

    fn presence_event(
        &mut self,
        room: RoomName,
        (scope, change): Transition,
        cluster_announce: bool,
    ) {
        if !self.config.presence_events {
            return;
        }
        let announce = scope == Scope::Node || cluster_announce;
        self.outputs.push_back(Output::Presence(PresenceEvent {
            room,
            scope,
            change,
            announce,
        }));
    }
}
