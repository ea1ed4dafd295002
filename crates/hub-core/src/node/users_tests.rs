use std::time::Instant;

use super::super::tests::{answer_shards, drain, node};
use super::super::*;
use crate::shard::Input as ShardInput;

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
fn disconnect_user_closes_on_the_users_shards_and_asks_every_peer() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 4);
    for peer in ["b", "c"] {
        n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp(peer.into())));
    }
    for shard in [1, 3] {
        n.handle_input(
            now,
            Input::Shard {
                shard: ShardId(shard),
                report: Report::UserActive("u".into()),
            },
        );
    }
    drain(&mut n);
    n.handle_input(
        now,
        Input::Command {
            req: RequestId(9),
            command: Command::DisconnectUser { user: "u".into() },
        },
    );
    let out = drain(&mut n);
    let shards: Vec<u16> = out
        .iter()
        .filter_map(|o| match o {
            Output::ToShard {
                shard,
                input:
                    ShardInput::Disconnect {
                        target: Target::User(u),
                        code: 4003,
                        ..
                    },
            } if u.as_str() == "u" => Some(shard.0),
            _ => None,
        })
        .collect();
    assert_eq!(shards, vec![1, 3]);
    let mut asked = Vec::new();
    for o in &out {
        if let Output::ToPeer {
            node,
            message:
                PeerMessage::Request {
                    id: Some(id),
                    op: RemoteOp::DisconnectUser { user, code: 4003 },
                },
        } = o
        {
            assert_eq!(user.as_str(), "u");
            asked.push((node.clone(), *id));
        }
    }
    assert_eq!(asked.len(), 2, "{out:?}");
    // Two closed here, one on b, none on c.
    let out = answer_shards(&mut n, now, &out, 1, false);
    assert!(replies(&out).is_empty());
    for ((node, id), count) in asked.into_iter().zip([1, 0]) {
        n.handle_input(
            now,
            Input::Peer {
                from: node,
                message: PeerMessage::Reply {
                    id,
                    reply: Reply::Delivered(count),
                },
            },
        );
    }
    assert_eq!(
        replies(&drain(&mut n)),
        vec![(RequestId(9), Reply::Delivered(3))]
    );
    // A user with no connection here: only the peers are asked.
    n.handle_input(
        now,
        Input::Command {
            req: RequestId(10),
            command: Command::DisconnectUser {
                user: "nobody".into(),
            },
        },
    );
    let out = drain(&mut n);
    assert!(
        out.iter().all(|o| matches!(o, Output::ToPeer { .. })),
        "{out:?}"
    );
}

#[test]
fn a_peers_disconnect_user_closes_local_connections_only() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 2);
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp("b".into())));
    n.handle_input(
        now,
        Input::Shard {
            shard: ShardId(0),
            report: Report::UserActive("u".into()),
        },
    );
    drain(&mut n);
    let ask = |n: &mut Router, code: u16| {
        n.handle_input(
            now,
            Input::Peer {
                from: "b".into(),
                message: PeerMessage::Request {
                    id: Some(7),
                    op: RemoteOp::DisconnectUser {
                        user: "u".into(),
                        code,
                    },
                },
            },
        );
        drain(n)
    };
    let out = ask(&mut n, 4003);
    assert!(matches!(
        &out[..],
        [Output::ToShard {
            input: ShardInput::Disconnect { code: 4003, .. },
            ..
        }]
    ));
    let out = answer_shards(&mut n, now, &out, 1, false);
    assert!(matches!(
        &out[..],
        [Output::ToPeer {
            message: PeerMessage::Reply {
                id: 7,
                reply: Reply::Delivered(1)
            },
            ..
        }]
    ));
    // A close code peers may not ask for closes nothing.
    let out = ask(&mut n, 1000);
    assert!(matches!(
        &out[..],
        [Output::ToPeer {
            message: PeerMessage::Reply {
                id: 7,
                reply: Reply::Delivered(0)
            },
            ..
        }]
    ));
}
