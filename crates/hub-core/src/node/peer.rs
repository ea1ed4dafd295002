//! Messages between nodes: requests from peers, their replies, and room interest.
//!
//! Invariant: a node's interest in a room is announced to every live peer when its first
//! local member joins and withdrawn when the last one leaves (gRPC bus), or mirrored as a
//! Redis channel subscription (Redis bus); a peer that (re)appears, or whose link comes back,
//! gets a full snapshot and answers with its own; and every few seconds each peer gets this
//! node's [`InterestDigest`], which it compares with its view to ask for a snapshot when
//! they differ.

use std::time::Instant;

use super::*;

impl Router {
    pub(super) fn room_interest(&mut self, room: RoomName, active: bool) {
        if active {
            self.own_digest.add(room.as_str());
        } else {
            self.own_digest.remove(room.as_str());
        }
        match self.bus() {
            Some(BusKind::Grpc) => {
                if self.keeps_history(room.as_str()) {
                    // History rooms travel over Redis pub/sub whatever the bus (shared.rs).
                    let command = if active {
                        BusCommand::Subscribe(room.clone())
                    } else {
                        BusCommand::Unsubscribe(room.clone())
                    };
                    self.outputs.push_back(Output::Bus(command));
                }
                let peers: Vec<NodeId> = self.peers.iter().cloned().collect();
                for node in peers {
                    self.send_peer(
                        node,
                        PeerMessage::Interest {
                            room: room.clone(),
                            active,
                        },
                    );
                }
            }
            Some(BusKind::Redis) => {
                let command = if active {
                    BusCommand::Subscribe(room)
                } else {
                    BusCommand::Unsubscribe(room)
                };
                self.outputs.push_back(Output::Bus(command));
            }
            None => {}
        }
    }

    /// A change in the cluster: peers met and lost, links back, and the periodic digest.
    pub(super) fn on_cluster(&mut self, now: Instant, event: ClusterEvent) {
        let grpc = self.bus() == Some(BusKind::Grpc);
        match event {
            ClusterEvent::NodeUp(node) => {
                if node == self.config.node_id || !self.is_clustered() {
                    return;
                }
                if self.peers.insert(node.clone()) {
                    if grpc {
                        let rooms = self.rooms();
                        let message = PeerMessage::InterestSnapshot { rooms, reply: true };
                        self.send_peer(node.clone(), message);
                    }
                    self.send_presence_snapshot(node, true);
                }
            }
            ClusterEvent::LinkUp(node) => {
                if self.peers.contains(&node) {
                    if grpc {
                        let rooms = self.rooms();
                        let message = PeerMessage::InterestSnapshot { rooms, reply: true };
                        self.send_peer(node.clone(), message);
                    }
                    self.send_presence_snapshot(node, true);
                }
            }
            ClusterEvent::InterestCheck => {
                if self.is_clustered() {
                    self.send_presence_digests();
                }
                if grpc {
                    let InterestDigest { count, hash } = self.own_digest;
                    let peers: Vec<NodeId> = self.peers.iter().cloned().collect();
                    for node in peers {
                        self.send_peer(node, PeerMessage::InterestDigest { count, hash });
                    }
                }
            }
            ClusterEvent::NodeDown(node) => {
                self.peer_digests.remove(&node);
                self.peers.remove(&node);
                if node != self.config.node_id {
                    self.presence_node_down(now, &node);
                }
                self.room_peers.retain(|_, nodes| {
                    nodes.remove(&node);
                    !nodes.is_empty()
                });
            }
        }
    }

    pub(super) fn on_peer(&mut self, now: Instant, from: NodeId, message: PeerMessage) {
        match message {
            PeerMessage::Request { id, op } => {
                let origin = match id {
                    Some(id) => Origin::Peer { node: from, id },
                    None => Origin::Nobody,
                };
                match op {
                    RemoteOp::Deliver { target, frame } => {
                        self.route(now, origin, target, frame, None, false)
                    }
                    // Remote questions are answered from local knowledge only.
                    RemoteOp::Online { client } => {
                        self.ask_owner(now, origin, client, Stage::OnlineLookup)
                    }
                    RemoteOp::Disconnect { client, code } if close_code::peer_may_request(code) => {
                        self.close_on_owner(now, origin, client, code, Stage::DisconnectRemote)
                    }
                    RemoteOp::DisconnectUser { user, code }
                        if close_code::peer_may_request(code) =>
                    {
                        self.close_user(now, origin, user, code, false)
                    }
                    // Any other close code is refused: nothing is closed.
                    RemoteOp::DisconnectUser { .. } => {
                        let id = self.start(now, origin, Stage::Count, 0, false);
                        self.advance(now, id);
                    }
                    RemoteOp::Disconnect { .. } => {
                        let id = self.start(now, origin, Stage::DisconnectRemote, 0, false);
                        self.advance(now, id);
                    }
                }
            }
            PeerMessage::Reply { id, reply } => {
                self.stats.peer_replies += 1;
                self.answer(now, id, |p| match reply {
                    Reply::Delivered(n) => p.delivered += n,
                    Reply::Online(node) => {
                        if node.is_some() {
                            p.online = node;
                        }
                    }
                    Reply::Disconnected(yes) => p.delivered += u64::from(yes),
                    // Never asked of a peer: history answers stay on their node.
                    Reply::History(_) | Reply::Position(_) => {}
                    Reply::Presence(_) => {}
                });
            }
            PeerMessage::Interest { room, active } => {
                let digest = self.peer_digests.entry(from.clone()).or_default();
                if active {
                    if self
                        .room_peers
                        .entry(room.clone())
                        .or_default()
                        .insert(from)
                    {
                        digest.add(room.as_str());
                    }
                } else if let Some(nodes) = self.room_peers.get_mut(room.as_str()) {
                    if nodes.remove(&from) {
                        digest.remove(room.as_str());
                    }
                    if nodes.is_empty() {
                        self.room_peers.remove(room.as_str());
                    }
                }
            }
            PeerMessage::InterestSnapshot { rooms, reply } => {
                self.room_peers.retain(|_, nodes| {
                    nodes.remove(&from);
                    !nodes.is_empty()
                });
                let mut digest = InterestDigest::default();
                for room in rooms {
                    if self
                        .room_peers
                        .entry(room.clone())
                        .or_default()
                        .insert(from.clone())
                    {
                        digest.add(room.as_str());
                    }
                }
                self.peer_digests.insert(from.clone(), digest);
                if reply && self.bus() == Some(BusKind::Grpc) {
                    let rooms = self.rooms();
                    self.send_peer(
                        from,
                        PeerMessage::InterestSnapshot {
                            rooms,
                            reply: false,
                        },
                    );
                }
            }
            PeerMessage::PresenceJoin { .. }
            | PeerMessage::PresenceLeave { .. }
            | PeerMessage::PresenceSnapshot { .. }
            | PeerMessage::PresenceDigest { .. } => self.on_presence_peer(now, from, message),
            PeerMessage::InterestDigest { count, hash } => {
                let view = self.peer_digests.get(&from).copied().unwrap_or_default();
                if view != (InterestDigest { count, hash })
                    && self.peers.contains(&from)
                    && self.bus() == Some(BusKind::Grpc)
                {
                    // Our view of the sender lost something (or kept what it withdrew):
                    // send our rooms and ask for theirs.
                    self.stats.interest_resyncs += 1;
                    let rooms = self.rooms();
                    self.send_peer(from, PeerMessage::InterestSnapshot { rooms, reply: true });
                }
            }
        }
    }
}
