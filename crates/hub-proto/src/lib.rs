//! # hub-proto — Hubbub's gRPC types
//!
//! [`pb`] is generated at build time from `proto/hubbub.proto` (package `hubbub.v1`) with a
//! vendored `protoc`. The functions here map the node-to-node messages onto hub-core's
//! [`PeerMessage`] and back; a message that does not map (a missing field, an unknown
//! variant) is an error, never a panic.
//!
//! Nodes never forward bytes they did not build: a delivery crosses as [`pb::Content`] (the
//! room, the sender and the JSON data of a `message` frame), and the receiver checks it and
//! builds the frame itself ([`frame_from_content`]); a close request crosses with one of the
//! codes a peer may ask for (4000, 4003), any other is refused.

use bytes::Bytes;
use hub_core::frame::close_code;
use hub_core::node::{PeerMessage, RemoteOp, Reply};
use hub_core::presence::Member;
use hub_core::protocol;
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

/// Longest room name or client id a peer's content may carry (the core's default limit).
pub const MAX_NAME_LEN: usize = 256;

/// The content of a `message` frame this node built, for another node; `None` for any other
/// frame (it cannot leave the node). The data is shared with the frame, not copied.
pub fn content_of(frame: &Bytes) -> Option<pb::Content> {
    if let Some(parts) = protocol::message_parts(frame) {
        return Some(pb::Content {
            room: parts.room,
            from: parts.from,
            data: parts.data,
            pusher_event: None,
            pusher_user_id: None,
        });
    }
    let parts = hub_pusher::frame::event_parts(frame)?;
    Some(pb::Content {
        room: Some(parts.channel),
        from: None,
        data: parts.data,
        pusher_event: Some(parts.event),
        pusher_user_id: parts.user_id,
    })
}

/// Longest Pusher event name a peer's content may carry (Pusher's limit).
pub const MAX_PUSHER_EVENT_LEN: usize = 200;

/// Checks a peer's content and builds the `message` frame clients get: `data` must be one
/// JSON value (UTF-8), `room` and `from` 1 to [`MAX_NAME_LEN`] bytes.
pub fn frame_from_content(content: Option<pb::Content>) -> Result<Bytes, BadMessage> {
    let content = content.ok_or(BadMessage("content missing"))?;
    let name_ok = |name: &Option<String>| {
        name.as_ref()
            .is_none_or(|n| !n.is_empty() && n.len() <= MAX_NAME_LEN)
    };
    if !name_ok(&content.room) || !name_ok(&content.from) {
        return Err(BadMessage("room or from not 1 to 256 bytes long"));
    }
    let data = std::str::from_utf8(&content.data).map_err(|_| BadMessage("data not UTF-8"))?;
    if !protocol::is_json(data) {
        return Err(BadMessage("data not one JSON value"));
    }
    if let Some(event) = &content.pusher_event {
        let channel = content.room.as_deref().unwrap_or_default();
        if hub_pusher::parse_channel(channel).is_err() {
            return Err(BadMessage("Pusher channel name not valid"));
        }
        if event.is_empty() || event.len() > MAX_PUSHER_EVENT_LEN {
            return Err(BadMessage("Pusher event name not 1 to 200 bytes long"));
        }
        if content.from.is_some() || !name_ok(&content.pusher_user_id) {
            return Err(BadMessage("Pusher event with a sender or a bad user id"));
        }
        return Ok(hub_pusher::frame::event(
            event,
            channel,
            data,
            content.pusher_user_id.as_deref(),
        ));
    }
    if content.pusher_user_id.is_some() {
        return Err(BadMessage("user id without a Pusher event"));
    }
    Ok(protocol::message(
        content.room.as_deref(),
        content.from.as_deref(),
        data,
    ))
}

fn target_to_pb(target: &Target) -> Option<pb::Target> {
    use pb::target::Kind;
    let kind = match target {
        Target::Client(c) => Kind::Client(c.to_string()),
        Target::User(u) => Kind::User(u.to_string()),
        Target::Room(r) => Kind::Room(r.to_string()),
        Target::RoomExcept { room, except } => {
            return Some(pb::Target {
                kind: Some(Kind::Room(room.to_string())),
                except: Some(except.to_string()),
            })
        }
        Target::All => Kind::All(true),
        // A connection id means nothing on another node.
        Target::Conn(_) => return None,
    };
    Some(pb::Target {
        kind: Some(kind),
        except: None,
    })
}

fn target_from_pb(target: Option<pb::Target>) -> Result<Target, BadMessage> {
    use pb::target::Kind;
    let target = target.ok_or(BadMessage("target missing"))?;
    match (target.kind, target.except) {
        (Some(Kind::Room(_)), Some(except)) if except.is_empty() || except.len() > MAX_NAME_LEN => {
            Err(BadMessage("exclusion not 1 to 256 bytes long"))
        }
        (Some(Kind::Room(room)), Some(except)) => Ok(Target::RoomExcept {
            room: RoomName::from(room),
            except: ClientId::from(except),
        }),
        (_, Some(_)) => Err(BadMessage("an exclusion without a room target")),
        (kind, None) => target_kind(kind),
    }
}

fn target_kind(kind: Option<pb::target::Kind>) -> Result<Target, BadMessage> {
    use pb::target::Kind;
    match kind {
        Some(Kind::Client(c)) => Ok(Target::Client(ClientId::from(c))),
        Some(Kind::User(u)) => Ok(Target::User(UserId::from(u))),
        Some(Kind::Room(r)) => Ok(Target::Room(RoomName::from(r))),
        Some(Kind::All(_)) => Ok(Target::All),
        None => Err(BadMessage("target missing")),
    }
}

/// hub-core → wire. `None` for a message that cannot leave the node (a connection target, a
/// frame that is not a `message`).
pub fn message_to_pb(message: &PeerMessage) -> Option<pb::PeerMessage> {
    use pb::peer_message::Kind;
    let kind = match message {
        PeerMessage::Request { id, op } => {
            let op = match op {
                RemoteOp::Deliver { target, frame } => pb::request::Op::Deliver(pb::Deliver {
                    target: Some(target_to_pb(target)?),
                    content: Some(content_of(frame)?),
                }),
                RemoteOp::Online { client } => pb::request::Op::Online(pb::Lookup {
                    client: client.to_string(),
                }),
                RemoteOp::Disconnect { client, code } => {
                    pb::request::Op::Disconnect(pb::Disconnect {
                        client: client.to_string(),
                        code: u32::from(*code),
                        user: None,
                    })
                }
                RemoteOp::DisconnectUser { user, code } => {
                    pb::request::Op::Disconnect(pb::Disconnect {
                        client: String::new(),
                        code: u32::from(*code),
                        user: Some(user.to_string()),
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
                // Answers of the node's own history; never asked of a peer.
                Reply::History(_) | Reply::Position(_) => return None,
                // Presence questions are answered by the asking node itself.
                Reply::Presence(_) => return None,
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
        PeerMessage::PresenceJoin { room, member } => Kind::PresenceJoin(pb::PresenceJoin {
            entry: Some(entry_to_pb(room, member)),
        }),
        PeerMessage::PresenceLeave { room, client } => Kind::PresenceLeave(pb::PresenceLeave {
            room: room.to_string(),
            client: client.to_string(),
        }),
        PeerMessage::PresenceSnapshot {
            entries,
            first,
            reply,
        } => Kind::PresenceSnapshot(pb::PresenceSnapshot {
            entries: entries.iter().map(|(r, m)| entry_to_pb(r, m)).collect(),
            first: *first,
            reply: *reply,
        }),
        PeerMessage::PresenceDigest { count, hash } => Kind::PresenceDigest(pb::PresenceDigest {
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
                    frame: frame_from_content(d.content)?,
                },
                pb::request::Op::Online(l) => RemoteOp::Online {
                    client: ClientId::from(l.client),
                },
                pb::request::Op::Disconnect(d) => {
                    let code = u16::try_from(d.code)
                        .ok()
                        .filter(|code| close_code::peer_may_request(*code))
                        .ok_or(BadMessage("close code not one a peer may ask for"))?;
                    match d.user {
                        Some(user) => RemoteOp::DisconnectUser {
                            user: UserId::from(user),
                            code,
                        },
                        None => RemoteOp::Disconnect {
                            client: ClientId::from(d.client),
                            code,
                        },
                    }
                }
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
        Kind::PresenceJoin(j) => {
            let (room, member) = entry_from_pb(j.entry.ok_or(BadMessage("entry missing"))?)?;
            Ok(PeerMessage::PresenceJoin { room, member })
        }
        Kind::PresenceLeave(l) => {
            if !name_ok(&l.room) || !name_ok(&l.client) {
                return Err(BadMessage("room or client not 1 to 256 bytes long"));
            }
            Ok(PeerMessage::PresenceLeave {
                room: RoomName::from(l.room),
                client: ClientId::from(l.client),
            })
        }
        Kind::PresenceSnapshot(s) => Ok(PeerMessage::PresenceSnapshot {
            entries: s
                .entries
                .into_iter()
                .map(entry_from_pb)
                .collect::<Result<_, _>>()?,
            first: s.first,
            reply: s.reply,
        }),
        Kind::PresenceDigest(d) => Ok(PeerMessage::PresenceDigest {
            count: d.count,
            hash: d.hash,
        }),
    }
}

fn name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN
}

fn entry_to_pb(room: &RoomName, member: &Member) -> pb::PresenceEntry {
    pb::PresenceEntry {
        room: room.to_string(),
        client: member.client.to_string(),
        user: member.user.as_ref().map(|u| u.to_string()),
        info: member.info.as_deref().map(str::to_owned),
    }
}

/// Checks a peer's presence entry: names 1 to [`MAX_NAME_LEN`] bytes, `info` one JSON value
/// (it is copied into notification frames as it is).
fn entry_from_pb(entry: pb::PresenceEntry) -> Result<(RoomName, Member), BadMessage> {
    if !name_ok(&entry.room)
        || !name_ok(&entry.client)
        || entry.user.as_deref().is_some_and(|u| !name_ok(u))
    {
        return Err(BadMessage("room, client or user not 1 to 256 bytes long"));
    }
    if entry.info.as_deref().is_some_and(|i| !protocol::is_json(i)) {
        return Err(BadMessage("presence info not one JSON value"));
    }
    let member = Member {
        client: ClientId::from(entry.client),
        user: entry.user.map(UserId::from),
        info: entry.info.map(std::sync::Arc::from),
    };
    Ok((RoomName::from(entry.room), member))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn every_peer_message_round_trips() {
        let frame = protocol::message(Some("r"), Some("c"), r#"{"hi":1}"#);
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
                op: RemoteOp::Deliver {
                    target: Target::RoomExcept {
                        room: hub_pusher::room_name("app", "presence-a"),
                        except: "1.2".into(),
                    },
                    frame: hub_pusher::frame::event("client-x", "presence-a", "{}", Some("u")),
                },
            },
            PeerMessage::Request {
                id: None,
                op: RemoteOp::Deliver {
                    target: Target::Room(hub_pusher::room_name("app", "news")),
                    frame: hub_pusher::frame::event("e", "news", r#""{\"x\":1}""#, None),
                },
            },
            PeerMessage::Request {
                id: None,
                op: RemoteOp::Disconnect {
                    client: "c".into(),
                    code: 4000,
                },
            },
            PeerMessage::Request {
                id: Some(4),
                op: RemoteOp::DisconnectUser {
                    user: "u".into(),
                    code: 4003,
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
            PeerMessage::PresenceJoin {
                room: "r".into(),
                member: Member {
                    client: "c".into(),
                    user: Some("u".into()),
                    info: Some(std::sync::Arc::from(r#"{"name":"Ann"}"#)),
                },
            },
            PeerMessage::PresenceLeave {
                room: "r".into(),
                client: "c".into(),
            },
            PeerMessage::PresenceSnapshot {
                entries: vec![(
                    "r".into(),
                    Member {
                        client: "c".into(),
                        user: None,
                        info: None,
                    },
                )],
                first: true,
                reply: false,
            },
            PeerMessage::PresenceDigest {
                count: 3,
                hash: 1 << 63,
            },
        ];
        for m in messages {
            let wire = message_to_pb(&m).expect("maps");
            assert_eq!(message_from_pb(wire), Ok(m));
        }
    }

    #[test]
    fn presence_entries_with_bad_names_or_info_are_refused() {
        let entry = |client: &str, info: Option<&str>| pb::PeerMessage {
            kind: Some(pb::peer_message::Kind::PresenceJoin(pb::PresenceJoin {
                entry: Some(pb::PresenceEntry {
                    room: "r".into(),
                    client: client.into(),
                    user: None,
                    info: info.map(str::to_owned),
                }),
            })),
        };
        assert!(message_from_pb(entry("c", Some("[1]"))).is_ok());
        assert!(message_from_pb(entry("", None)).is_err());
        assert!(message_from_pb(entry("c", Some("1},{"))).is_err());
        assert!(message_from_pb(entry(&"c".repeat(MAX_NAME_LEN + 1), None)).is_err());
        let none = pb::PeerMessage {
            kind: Some(pb::peer_message::Kind::PresenceJoin(pb::PresenceJoin {
                entry: None,
            })),
        };
        assert!(message_from_pb(none).is_err());
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(message_from_pb(pb::PeerMessage { kind: None }).is_err());
        let deliver = |target: Option<pb::Target>, content: Option<pb::Content>| pb::PeerMessage {
            kind: Some(pb::peer_message::Kind::Request(pb::Request {
                id: None,
                op: Some(pb::request::Op::Deliver(pb::Deliver { target, content })),
            })),
        };
        let all = Some(pb::Target {
            kind: Some(pb::target::Kind::All(true)),
            except: None,
        });
        let content = |room: Option<&str>, from: Option<&str>, data: &[u8]| pb::Content {
            room: room.map(str::to_owned),
            from: from.map(str::to_owned),
            data: Bytes::copy_from_slice(data),
            pusher_event: None,
            pusher_user_id: None,
        };
        let all_except = Some(pb::Target {
            kind: Some(pb::target::Kind::All(true)),
            except: Some("c".into()),
        });
        let one = Some(content(None, None, b"1"));
        assert!(message_from_pb(deliver(all_except, one)).is_err());
        let pusher = |channel: &str, event: &str, user: Option<&str>| pb::Content {
            pusher_event: Some(event.to_owned()),
            pusher_user_id: user.map(str::to_owned),
            ..content(Some(channel), None, b"{}")
        };
        for bad in [
            pusher("a b", "e", None),
            pusher("", "e", None),
            pusher("c", "", None),
            pusher("c", &"e".repeat(201), None),
            pusher("c", "e", Some("")),
            pb::Content {
                from: Some("x".into()),
                ..pusher("c", "e", None)
            },
            pb::Content {
                pusher_user_id: Some("u".into()),
                ..content(None, None, b"1")
            },
        ] {
            assert!(
                message_from_pb(deliver(all.clone(), Some(bad.clone()))).is_err(),
                "{bad:?}"
            );
        }
        assert!(message_from_pb(deliver(None, Some(content(None, None, b"1")))).is_err());
        assert!(
            message_from_pb(deliver(all.clone(), None)).is_err(),
            "no content"
        );
        // Content that would make another frame, or no valid one, is refused.
        let long = "r".repeat(MAX_NAME_LEN + 1);
        for bad in [
            content(None, None, b"\x88\x02\x0f\xa0"),
            content(None, None, b"1},\"type\":\"welcome\""),
            content(None, None, b""),
            content(None, None, b"\xff"),
            content(Some(""), None, b"1"),
            content(None, Some(&long), b"1"),
        ] {
            assert!(
                message_from_pb(deliver(all.clone(), Some(bad.clone()))).is_err(),
                "{bad:?}"
            );
        }
        // Good content becomes the frame this node would have built.
        let built = message_from_pb(deliver(all, Some(content(None, Some("m"), b"[1]"))));
        assert_eq!(
            built,
            Ok(PeerMessage::Request {
                id: None,
                op: RemoteOp::Deliver {
                    target: Target::All,
                    frame: protocol::message(None, Some("m"), "[1]"),
                },
            })
        );
        for code in [0, 1000, 1005, 1008, 4001, 4008, 70000] {
            for user in [None, Some("u".to_owned())] {
                let bad_code = pb::PeerMessage {
                    kind: Some(pb::peer_message::Kind::Request(pb::Request {
                        id: None,
                        op: Some(pb::request::Op::Disconnect(pb::Disconnect {
                            client: "c".into(),
                            code,
                            user,
                        })),
                    })),
                };
                assert!(message_from_pb(bad_code).is_err(), "close code {code}");
            }
        }
    }

    #[test]
    fn only_message_frames_leave_the_node() {
        let m = PeerMessage::Request {
            id: None,
            op: RemoteOp::Deliver {
                target: Target::All,
                frame: hub_core::frame::close(4000, "x"),
            },
        };
        assert!(message_to_pb(&m).is_none());
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
