use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::shard::Input as ShardInput;

pub(super) fn node(mode: ClusterMode, shards: u16) -> Router {
    Router::new(NodeConfig {
        mode,
        ..NodeConfig::standalone("me".into(), shards)
    })
}

pub(super) fn drain(node: &mut Router) -> Vec<Output> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

fn frame() -> Bytes {
    Bytes::from_static(b"\x81\x01x")
}

/// Answers every `ToShard` delivery/join with `count`, and lookups with `found`.
pub(super) fn answer_shards(
    node: &mut Router,
    now: Instant,
    outputs: &[Output],
    count: u64,
    found: bool,
) -> Vec<Output> {
    for out in outputs {
        if let Output::ToShard { shard, input } = out {
            let report = match input {
                ShardInput::Deliver { req: Some(req), .. }
                | ShardInput::Join { req: Some(req), .. }
                | ShardInput::Leave { req: Some(req), .. }
                | ShardInput::Disconnect { req: Some(req), .. } => {
                    Report::Delivered { req: *req, count }
                }
                ShardInput::Lookup { req, .. } => Report::Found { req: *req, found },
                _ => continue,
            };
            node.handle_input(
                now,
                Input::Shard {
                    shard: *shard,
                    report,
                },
            );
        }
    }
    drain(node)
}

fn replies(outputs: &[Output]) -> Vec<(RequestId, Reply)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Reply { req, reply } => Some((*req, reply.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn broadcast_goes_to_every_shard_and_sums() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Standalone, 4);
    n.handle_input(
        now,
        Input::Command {
            req: RequestId(1),
            command: Command::Deliver {
                target: Target::All,
                frame: frame(),
            },
        },
    );
    let out = drain(&mut n);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::ToShard { .. }))
            .count(),
        4
    );
    let out = answer_shards(&mut n, now, &out, 3, false);
    assert_eq!(replies(&out), vec![(RequestId(1), Reply::Delivered(12))]);
    assert_eq!(n.pending_requests(), 0);
}

#[test]
fn room_publish_only_reaches_shards_with_members_and_skips_origin() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Standalone, 4);
    for s in [0, 2, 3] {
        n.handle_input(
            now,
            Input::Shard {
                shard: ShardId(s),
                report: Report::RoomActive("r".into()),
            },
        );
    }
    drain(&mut n);
    n.handle_input(
        now,
        Input::Shard {
            shard: ShardId(2),
            report: Report::Route {
                target: Target::Room("r".into()),
                frame: frame(),
            },
        },
    );
    let shards: Vec<u16> = drain(&mut n)
        .iter()
        .filter_map(|o| match o {
            Output::ToShard { shard, .. } => Some(shard.0),
            _ => None,
        })
        .collect();
    assert_eq!(shards, vec![0, 3]);
}

#[test]
fn standalone_emit_to_unknown_client_answers_zero_without_registry() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Standalone, 2);
    n.handle_input(
        now,
        Input::Command {
            req: RequestId(5),
            command: Command::Deliver {
                target: Target::Client("x".into()),
                frame: frame(),
            },
        },
    );
    let out = drain(&mut n);
    let out = answer_shards(&mut n, now, &out, 0, false);
    assert_eq!(replies(&out), vec![(RequestId(5), Reply::Delivered(0))]);
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Registry(_) | Output::ToPeer { .. } | Output::Bus(_)
    )));
}

#[test]
fn clustered_emit_looks_up_registry_and_forwards() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 2);
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp("b".into())));
    drain(&mut n);
    n.handle_input(
        now,
        Input::Command {
            req: RequestId(9),
            command: Command::Deliver {
                target: Target::Client("x".into()),
                frame: frame(),
            },
        },
    );
    let out = drain(&mut n);
    let out = answer_shards(&mut n, now, &out, 0, false);
    let Some(Output::Registry(RegistryCommand::Lookup { req, .. })) = out.first() else {
        panic!("lookup expected: {out:?}")
    };
    n.handle_input(
        now,
        Input::RegistryAnswer {
            req: *req,
            node: Some("b".into()),
        },
    );
    let out = drain(&mut n);
    let Some(Output::ToPeer {
        node,
        message:
            PeerMessage::Request {
                id: Some(id),
                op: RemoteOp::Deliver { target, .. },
            },
    }) = out.first()
    else {
        panic!("forward expected: {out:?}")
    };
    assert_eq!(node.as_str(), "b");
    assert_eq!(*target, Target::Client("x".into()));
    n.handle_input(
        now,
        Input::Peer {
            from: "b".into(),
            message: PeerMessage::Reply {
                id: *id,
                reply: Reply::Delivered(1),
            },
        },
    );
    assert_eq!(
        replies(&drain(&mut n)),
        vec![(RequestId(9), Reply::Delivered(1))]
    );
}

#[test]
fn registry_entry_of_dead_node_reads_offline() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 1);
    n.handle_input(
        now,
        Input::Command {
            req: RequestId(1),
            command: Command::Online { client: "x".into() },
        },
    );
    let out = drain(&mut n);
    let out = answer_shards(&mut n, now, &out, 0, false);
    let Some(Output::Registry(RegistryCommand::Lookup { req, .. })) = out.first() else {
        panic!("{out:?}")
    };
    n.handle_input(
        now,
        Input::RegistryAnswer {
            req: *req,
            node: Some("dead".into()),
        },
    );
    assert_eq!(
        replies(&drain(&mut n)),
        vec![(RequestId(1), Reply::Online(None))]
    );
}

#[test]
fn silent_peer_times_out_with_partial_count() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 1);
    for peer in ["b", "c"] {
        n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp(peer.into())));
    }
    drain(&mut n);
    n.handle_input(
        now,
        Input::Command {
            req: RequestId(3),
            command: Command::Deliver {
                target: Target::All,
                frame: frame(),
            },
        },
    );
    let out = drain(&mut n);
    let id = out
        .iter()
        .find_map(|o| match o {
            Output::ToPeer {
                message: PeerMessage::Request { id, .. },
                ..
            } => *id,
            _ => None,
        })
        .expect("a request to each peer");
    let out = answer_shards(&mut n, now, &out, 2, false);
    assert!(replies(&out).is_empty());
    n.handle_input(
        now,
        Input::Peer {
            from: "b".into(),
            message: PeerMessage::Reply {
                id,
                reply: Reply::Delivered(5),
            },
        },
    );
    assert!(replies(&drain(&mut n)).is_empty());
    let deadline = n.poll_timeout().expect("deadline");
    assert_eq!(deadline, now + Duration::from_secs(2));
    n.handle_timeout(deadline);
    assert_eq!(
        replies(&drain(&mut n)),
        vec![(RequestId(3), Reply::Delivered(7))]
    );
    assert_eq!(n.stats().timeouts, 1);
    assert!(n.poll_timeout().is_none_or(|t| t > deadline));
}

#[test]
fn redis_bus_subscribes_per_room_and_drops_own_echo() {
    let now = Instant::now();
    let mut n = node(
        ClusterMode::Cluster {
            bus: BusKind::Redis,
        },
        2,
    );
    n.handle_input(
        now,
        Input::Shard {
            shard: ShardId(0),
            report: Report::RoomActive("r".into()),
        },
    );
    n.handle_input(
        now,
        Input::Shard {
            shard: ShardId(1),
            report: Report::RoomActive("r".into()),
        },
    );
    let out = drain(&mut n);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::Bus(BusCommand::Subscribe(_))))
            .count(),
        1
    );
    n.handle_input(
        now,
        Input::Shard {
            shard: ShardId(0),
            report: Report::Route {
                target: Target::Room("r".into()),
                frame: frame(),
            },
        },
    );
    let out = drain(&mut n);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Bus(BusCommand::Publish { room: Some(_), .. }))));
    n.handle_input(
        now,
        Input::Bus {
            origin: "me".into(),
            room: Some("r".into()),
            frame: frame(),
        },
    );
    assert!(
        drain(&mut n).is_empty(),
        "own publish is not delivered twice"
    );
    n.handle_input(
        now,
        Input::Bus {
            origin: "other".into(),
            room: Some("r".into()),
            frame: frame(),
        },
    );
    assert_eq!(
        drain(&mut n).len(),
        2,
        "a peer's publish reaches both local shards"
    );
    n.handle_input(
        now,
        Input::Shard {
            shard: ShardId(0),
            report: Report::RoomIdle("r".into()),
        },
    );
    n.handle_input(
        now,
        Input::Shard {
            shard: ShardId(1),
            report: Report::RoomIdle("r".into()),
        },
    );
    assert!(matches!(
        &drain(&mut n)[..],
        [Output::Bus(BusCommand::Unsubscribe(_))]
    ));
}

#[test]
fn grpc_bus_forwards_room_publish_only_to_interested_live_peers() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 1);
    for peer in ["b", "c", "d"] {
        n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp(peer.into())));
    }
    n.handle_input(
        now,
        Input::Peer {
            from: "b".into(),
            message: PeerMessage::Interest {
                room: "r".into(),
                active: true,
            },
        },
    );
    n.handle_input(
        now,
        Input::Peer {
            from: "c".into(),
            message: PeerMessage::InterestSnapshot {
                rooms: vec!["r".into()],
                reply: false,
            },
        },
    );
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeDown("c".into())));
    drain(&mut n);
    n.handle_input(
        now,
        Input::Command {
            req: RequestId(1),
            command: Command::Deliver {
                target: Target::Room("r".into()),
                frame: frame(),
            },
        },
    );
    let peers: Vec<String> = drain(&mut n)
        .iter()
        .filter_map(|o| match o {
            Output::ToPeer { node, .. } => Some(node.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(peers, vec!["b"]);
}

#[test]
fn registry_follows_clients_only_when_clustered() {
    let now = Instant::now();
    for (mode, expected) in [
        (ClusterMode::Standalone, 0),
        (ClusterMode::Cluster { bus: BusKind::Grpc }, 2),
    ] {
        let mut n = node(mode, 1);
        let conn = crate::ConnId {
            shard: ShardId(0),
            slot: 0,
            gen: 0,
        };
        n.handle_input(
            now,
            Input::Shard {
                shard: ShardId(0),
                report: Report::ClientUp {
                    client: "a".into(),
                    user: None,
                    conn,
                },
            },
        );
        n.handle_input(
            now,
            Input::Shard {
                shard: ShardId(0),
                report: Report::ClientDown {
                    client: "a".into(),
                    conn,
                },
            },
        );
        let registry = drain(&mut n)
            .into_iter()
            .filter(|o| matches!(o, Output::Registry(_)))
            .count();
        assert_eq!(registry, expected);
    }
}

#[test]
fn remote_delivery_is_local_only() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 2);
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp("b".into())));
    drain(&mut n);
    let op = RemoteOp::Deliver {
        target: Target::All,
        frame: frame(),
    };
    n.handle_input(
        now,
        Input::Peer {
            from: "b".into(),
            message: PeerMessage::Request { id: Some(77), op },
        },
    );
    let out = drain(&mut n);
    assert!(
        !out.iter().any(|o| matches!(o, Output::ToPeer { .. })),
        "never forwarded again"
    );
    let out = answer_shards(&mut n, now, &out, 4, false);
    assert!(matches!(
        &out[..],
        [Output::ToPeer {
            message: PeerMessage::Reply {
                id: 77,
                reply: Reply::Delivered(8)
            },
            ..
        }]
    ));
}

#[test]
fn a_peer_may_ask_only_for_the_documented_close_codes() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 1);
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp("b".into())));
    drain(&mut n);
    let ask = |n: &mut Router, code: u16| {
        let op = RemoteOp::Disconnect {
            client: "c".into(),
            code,
        };
        n.handle_input(
            now,
            Input::Peer {
                from: "b".into(),
                message: PeerMessage::Request { id: Some(5), op },
            },
        );
        drain(n)
    };
    for code in [0, 1000, 1002, 1005, 4001, 4008] {
        let out = ask(&mut n, code);
        assert!(
            matches!(
                &out[..],
                [Output::ToPeer {
                    message: PeerMessage::Reply {
                        id: 5,
                        reply: Reply::Disconnected(false)
                    },
                    ..
                }]
            ),
            "{code}: {out:?}"
        );
    }
    assert_eq!(n.pending_requests(), 0);
    for code in [4000, 4003] {
        let out = ask(&mut n, code);
        assert!(
            matches!(
                &out[..],
                [Output::ToShard {
                    input: ShardInput::Disconnect { code: c, .. },
                    ..
                }] if *c == code
            ),
            "{code}: {out:?}"
        );
    }
}

#[test]
fn displaced_client_is_closed_on_its_old_node_with_4000() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 1);
    n.handle_input(
        now,
        Input::Displaced {
            client: "c".into(),
            node: "old".into(),
        },
    );
    let out = drain(&mut n);
    assert!(matches!(
        &out[..],
        [Output::ToPeer { node, message: PeerMessage::Request { id: None, op: RemoteOp::Disconnect { code: 4000, .. } } }]
            if node.as_str() == "old"
    ));
    n.handle_input(
        now,
        Input::Displaced {
            client: "c".into(),
            node: "me".into(),
        },
    );
    assert!(drain(&mut n).is_empty(), "never told to itself");
}

#[test]
fn local_delivery_command_never_leaves_the_node() {
    let now = Instant::now();
    let mut n = node(
        ClusterMode::Cluster {
            bus: BusKind::Redis,
        },
        2,
    );
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp("b".into())));
    drain(&mut n);
    n.handle_input(
        now,
        Input::Command {
            req: RequestId(4),
            command: Command::DeliverLocal {
                target: Target::All,
                frame: frame(),
            },
        },
    );
    let out = drain(&mut n);
    assert!(
        out.iter().all(|o| matches!(o, Output::ToShard { .. })),
        "{out:?}"
    );
    let out = answer_shards(&mut n, now, &out, 1, false);
    assert_eq!(replies(&out), vec![(RequestId(4), Reply::Delivered(2))]);
}

#[test]
fn a_reappearing_peer_is_asked_for_its_rooms() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 1);
    n.handle_input(
        now,
        Input::Shard {
            shard: ShardId(0),
            report: Report::RoomActive("mine".into()),
        },
    );
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp("b".into())));
    let out = drain(&mut n);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::ToPeer {
            message: PeerMessage::InterestSnapshot { reply: true, .. },
            ..
        }
    )));
    // b lost our interests while we seemed gone: it asks, and we answer once (no ping-pong).
    let ask = PeerMessage::InterestSnapshot {
        rooms: vec!["theirs".into()],
        reply: true,
    };
    n.handle_input(
        now,
        Input::Peer {
            from: "b".into(),
            message: ask,
        },
    );
    let out = drain(&mut n);
    assert!(matches!(
        &out[..],
        [Output::ToPeer { message: PeerMessage::InterestSnapshot { rooms, reply: false }, .. }] if rooms == &vec![RoomName::from("mine")]
    ));
    assert_eq!(n.room_peers("theirs"), vec![NodeId::from("b")]);
    let answer = PeerMessage::InterestSnapshot {
        rooms: vec![],
        reply: false,
    };
    n.handle_input(
        now,
        Input::Peer {
            from: "b".into(),
            message: answer,
        },
    );
    assert!(drain(&mut n).is_empty());
}

#[test]
fn a_client_publish_and_a_bus_frame_record_no_request_and_ask_no_answer() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 3);
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp("b".into())));
    n.handle_input(
        now,
        Input::Peer {
            from: "b".into(),
            message: PeerMessage::Interest {
                room: "r".into(),
                active: true,
            },
        },
    );
    for s in 0..3 {
        let report = Report::RoomActive("r".into());
        n.handle_input(
            now,
            Input::Shard {
                shard: ShardId(s),
                report,
            },
        );
    }
    drain(&mut n);
    let route = Report::Route {
        target: Target::Room("r".into()),
        frame: frame(),
    };
    n.handle_input(
        now,
        Input::Shard {
            shard: ShardId(1),
            report: route,
        },
    );
    let outputs = drain(&mut n);
    assert_eq!(n.pending_requests(), 0);
    assert_eq!(
        n.poll_timeout(),
        None,
        "no deadline for an answer nobody waits for"
    );
    let mut shards = Vec::new();
    for out in &outputs {
        match out {
            Output::ToShard {
                shard,
                input: ShardInput::Deliver { req, .. },
            } => {
                assert_eq!(*req, None);
                shards.push(shard.0);
            }
            Output::ToPeer {
                message: PeerMessage::Request { id, .. },
                ..
            } => assert_eq!(*id, None),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(shards, vec![0, 2]);
    assert_eq!(outputs.len(), 3, "two shards and the interested peer");
    // A room frame from another node's bus publish is fire and forget as well.
    n.handle_input(
        now,
        Input::Bus {
            origin: "b".into(),
            room: Some("r".into()),
            frame: frame(),
        },
    );
    let outputs = drain(&mut n);
    assert_eq!(outputs.len(), 3);
    assert!(outputs.iter().all(|o| matches!(
        o,
        Output::ToShard {
            input: ShardInput::Deliver { req: None, .. },
            ..
        }
    )));
    assert_eq!(n.pending_requests(), 0);
}
