//! # hub-proto — Hubbub's gRPC types
//!
//! [`pb`] is generated at build time from `proto/hubbub.proto` (package `hubbub.v1`) with a
//! vendored `protoc`. The functions here map the node-to-node messages onto hub-core's
//! [`PeerMessage`] and back; a message that does not map (a missing field, an unknown
//! variant) is an error, never a panic.

use hub_core::node::{PeerMessage, RemoteOp, Reply};
use hub_core::{ClientId, NodeId, RoomName, Target, UserId};

/// The generated types and service stubs of `hubbub.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, rust_2018_idioms)]
pub mod pb {
    tonic::include_proto!("hubbub.v1");
}

/// A peer message that cannot be mapped to hub-core's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMessage(pub &'static str);

impl std::fmt::Display for BadMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed peer message: {}", self.0)
    }
}

impl std::error::Error for BadMessage {}

fn target_to_pb(target: &Target) -> Option<pb::Target> {
    use pb::target::Kind;
    let kind = match target {
        Target::Client(c) => Kind::Client(c.to_string()),
        Target::User(u) => Kind::User(u.to_string()),
        Target::Room(r) => Kind::Room(r.to_string()),
        Target::All => Kind::All(true),
        // A connection id means nothing on another node.
        Target::Conn(_) => return None,
    };
    Some(pb::Target { kind: Some(kind) })
}

fn target_from_pb(target: Option<pb::Target>) -> Result<Target, BadMessage> {
    use pb::target::Kind;
    match target.and_then(|t| t.kind) {
        Some(Kind::Client(c)) => Ok(Target::Client(ClientId::from(c))),
        Some(Kind::User(u)) => Ok(Target::User(UserId::from(u))),
        Some(Kind::Room(r)) => Ok(Target::Room(RoomName::from(r))),
        Some(Kind::All(_)) => Ok(Target::All),
        None => Err(BadMessage("target missing")),
    }
}

/// hub-core → wire. `None` for a message that cannot leave the node (a connection target).
pub fn message_to_pb(message: &PeerMessage) -> Option<pb::PeerMessage> {
    use pb::peer_message::Kind;
    let kind = match message {
        PeerMessage::Request { id, op } => {
            let op = match op {
                RemoteOp::Deliver { target, frame } => pb::request::Op::Deliver(pb::Deliver {
                    target: Some(target_to_pb(target)?),
                    frame: frame.clone(),
                }),
                RemoteOp::Online { client } => pb::request::Op::Online(pb::Lookup {
                    client: client.to_string(),
                }),
                RemoteOp::Disconnect { client, code } => {
                    pb::request::Op::Disconnect(pb::Disconnect {
                        client: client.to_string(),
                        code: u32::from(*code),
                    })
                }
            };
            Kind::Request(pb::Request {
                id: *id,
                op: Some(op),
            })
        }
        PeerMessage::Reply { id, reply } => {
            let kind = match reply {
                Reply::Delivered(n) => pb::reply::Kind::Delivered(*n),
                Reply::Online(Some(node)) => pb::reply::Kind::OnlineNode(node.to_string()),
                Reply::Online(None) => pb::reply::Kind::Offline(true),
                Reply::Disconnected(yes) => pb::reply::Kind::Disconnected(*yes),
            };
            Kind::Reply(pb::Reply {
                id: *id,
                kind: Some(kind),
            })
        }
        PeerMessage::Interest { room, active } => Kind::Interest(pb::Interest {
            room: room.to_string(),
            active: *active,
        }),
        PeerMessage::InterestSnapshot { rooms, reply } => Kind::Snapshot(pb::InterestSnapshot {
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            reply: *reply,
        }),
        PeerMessage::InterestDigest { count, hash } => Kind::Digest(pb::InterestDigest {
            count: *count,
            hash: *hash,
        }),
    };
    Some(pb::PeerMessage { kind: Some(kind) })
}

/// wire → hub-core.
pub fn message_from_pb(message: pb::PeerMessage) -> Result<PeerMessage, BadMessage> {
    use pb::peer_message::Kind;
    match message.kind.ok_or(BadMessage("empty message"))? {
        Kind::Request(request) => {
            let op = match request.op.ok_or(BadMessage("request without op"))? {
                pb::request::Op::Deliver(d) => RemoteOp::Deliver {
                    target: target_from_pb(d.target)?,
                    frame: d.frame,
                },
                pb::request::Op::Online(l) => RemoteOp::Online {
                    client: ClientId::from(l.client),
                },
                pb::request::Op::Disconnect(d) => RemoteOp::Disconnect {
                    client: ClientId::from(d.client),
                    code: u16::try_from(d.code)
                        .map_err(|_| BadMessage("close code out of range"))?,
                },
            };
            Ok(PeerMessage::Request { id: request.id, op })
        }
        Kind::Reply(reply) => {
            let answer = match reply.kind.ok_or(BadMessage("reply without answer"))? {
                pb::reply::Kind::Delivered(n) => Reply::Delivered(n),
                pb::reply::Kind::OnlineNode(node) => Reply::Online(Some(NodeId::from(node))),
                pb::reply::Kind::Offline(_) => Reply::Online(None),
                pb::reply::Kind::Disconnected(yes) => Reply::Disconnected(yes),
            };
            Ok(PeerMessage::Reply {
                id: reply.id,
                reply: answer,
            })
        }
        Kind::Interest(i) => Ok(PeerMessage::Interest {
            room: RoomName::from(i.room),
            active: i.active,
        }),
        Kind::Snapshot(s) => Ok(PeerMessage::InterestSnapshot {
            rooms: s.rooms.into_iter().map(RoomName::from).collect(),
            reply: s.reply,
        }),
        Kind::Digest(d) => Ok(PeerMessage::InterestDigest {
            count: d.count,
            hash: d.hash,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn every_peer_message_round_trips() {
        let frame = Bytes::from_static(b"\x81\x02hi");
        let messages = vec![
            PeerMessage::Request {
                id: Some(7),
                op: RemoteOp::Deliver {
                    target: Target::Room("r".into()),
                    frame: frame.clone(),
                },
            },
            PeerMessage::Request {
                id: None,
                op: RemoteOp::Deliver {
                    target: Target::All,
                    frame: frame.clone(),
                },
            },
            PeerMessage::Request {
                id: Some(1),
                op: RemoteOp::Deliver {
                    target: Target::User("u".into()),
                    frame: frame.clone(),
                },
            },
            PeerMessage::Request {
                id: Some(1),
                op: RemoteOp::Deliver {
                    target: Target::Client("c".into()),
                    frame,
                },
            },
            PeerMessage::Request {
                id: Some(2),
                op: RemoteOp::Online { client: "c".into() },
            },
            PeerMessage::Request {
                id: None,
                op: RemoteOp::Disconnect {
                    client: "c".into(),
                    code: 4000,
                },
            },
            PeerMessage::Reply {
                id: 3,
                reply: Reply::Delivered(9),
            },
            PeerMessage::Reply {
                id: 3,
                reply: Reply::Online(Some("n".into())),
            },
            PeerMessage::Reply {
                id: 3,
                reply: Reply::Online(None),
            },
            PeerMessage::Reply {
                id: 3,
                reply: Reply::Disconnected(true),
            },
            PeerMessage::Interest {
                room: "r".into(),
                active: false,
            },
            PeerMessage::InterestSnapshot {
                rooms: vec!["a".into(), "b".into()],
                reply: true,
            },
            PeerMessage::InterestDigest {
                count: 2,
                hash: u64::MAX - 1,
            },
        ];
        for m in messages {
            let wire = message_to_pb(&m).expect("maps");
            assert_eq!(message_from_pb(wire), Ok(m));
        }
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(message_from_pb(pb::PeerMessage { kind: None }).is_err());
        let no_target = pb::PeerMessage {
            kind: Some(pb::peer_message::Kind::Request(pb::Request {
                id: None,
                op: Some(pb::request::Op::Deliver(pb::Deliver {
                    target: None,
                    frame: Bytes::new(),
                })),
            })),
        };
        assert!(message_from_pb(no_target).is_err());
        let bad_code = pb::PeerMessage {
            kind: Some(pb::peer_message::Kind::Request(pb::Request {
                id: None,
                op: Some(pb::request::Op::Disconnect(pb::Disconnect {
                    client: "c".into(),
                    code: 70000,
                })),
            })),
        };
        assert!(message_from_pb(bad_code).is_err());
    }

    #[test]
    fn connection_targets_stay_local() {
        let conn = hub_core::ConnId {
            shard: hub_core::ShardId(0),
            slot: 0,
            gen: 0,
        };
        let m = PeerMessage::Request {
            id: None,
            op: RemoteOp::Deliver {
                target: Target::Conn(conn),
                frame: Bytes::new(),
            },
        };
        assert!(message_to_pb(&m).is_none());
    }
}
