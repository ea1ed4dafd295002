//! Messages between nodes: requests from peers, their replies, and room interest.
//!
//! Invariant: a node's interest in a room is announced to every live peer when its first
//! local member joins and withdrawn when the last one leaves (gRPC bus), or mirrored as a
//! Redis channel subscription (Redis bus); a peer that (re)appears gets a full snapshot and
//! answers with its own.

use std::time::Instant;

use super::*;

impl Node {
    pub(super) fn room_interest(&mut self, room: RoomName, active: bool) {
        match self.bus() {
            Some(BusKind::Grpc) => {
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
                    RemoteOp::Disconnect { client, code } => {
                        self.close_on_owner(now, origin, client, code, Stage::DisconnectRemote)
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
                });
            }
            PeerMessage::Interest { room, active } => {
                if active {
                    self.room_peers.entry(room).or_default().insert(from);
                } else if let Some(nodes) = self.room_peers.get_mut(room.as_str()) {
                    nodes.remove(&from);
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
                for room in rooms {
                    self.room_peers
                        .entry(room)
                        .or_default()
                        .insert(from.clone());
                }
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
        }
    }
}
