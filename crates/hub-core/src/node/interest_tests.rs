//! The router's room interest repair and registry recovery inputs: links that come back,
//! interest digests, and clients superseded after an outage.

use std::time::Instant;

use super::tests::{answer_shards, drain, node};
use super::*;
use crate::shard::Input as ShardInput;

/// The outputs but the presence messages (tested in `presence_tests`).
fn drain_interest(n: &mut Router) -> Vec<Output> {
    drain(n)
        .into_iter()
        .filter(|o| !matches!(o, Output::ToPeer { message, .. } if is_presence(message)))
        .collect()
}

pub(super) fn is_presence(message: &PeerMessage) -> bool {
    matches!(
        message,
        PeerMessage::PresenceJoin { .. }
            | PeerMessage::PresenceLeave { .. }
            | PeerMessage::PresenceSnapshot { .. }
            | PeerMessage::PresenceDigest { .. }
    )
}

#[test]
fn a_link_that_comes_back_resends_room_interest() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 1);
    n.handle_input(now, Input::Cluster(ClusterEvent::LinkUp("b".into())));
    assert!(
        drain(&mut n).is_empty(),
        "a node not met yet waits for NodeUp"
    );
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp("b".into())));
    drain(&mut n);
    n.handle_input(
        now,
        Input::Shard {
            shard: ShardId(0),
            report: Report::RoomActive("late".into()),
        },
    );
    drain(&mut n); // the Interest that the broken link lost
    n.handle_input(now, Input::Cluster(ClusterEvent::LinkUp("b".into())));
    assert!(matches!(
        &drain_interest(&mut n)[..],
        [Output::ToPeer { node, message: PeerMessage::InterestSnapshot { rooms, reply: true } }]
            if node.as_str() == "b" && rooms == &vec![RoomName::from("late")]
    ));
}

#[test]
fn a_digest_that_disagrees_asks_for_a_snapshot() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 1);
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp("b".into())));
    let interest = |room: &str, active| Input::Peer {
        from: "b".into(),
        message: PeerMessage::Interest {
            room: room.into(),
            active,
        },
    };
    n.handle_input(now, interest("x", true));
    n.handle_input(now, interest("y", true));
    n.handle_input(now, interest("x", true)); // repeated: counted once
    n.handle_input(now, interest("y", false));
    drain(&mut n);
    let mut theirs = InterestDigest::default();
    theirs.add("x");
    let digest = |d: InterestDigest| Input::Peer {
        from: "b".into(),
        message: PeerMessage::InterestDigest {
            count: d.count,
            hash: d.hash,
        },
    };
    n.handle_input(now, digest(theirs));
    assert!(drain(&mut n).is_empty(), "views agree: nothing to do");
    // b gained "z" but its Interest was lost on the way.
    theirs.add("z");
    n.handle_input(now, digest(theirs));
    assert!(matches!(
        &drain(&mut n)[..],
        [Output::ToPeer {
            message: PeerMessage::InterestSnapshot { reply: true, .. },
            ..
        }]
    ));
    assert_eq!(n.stats().interest_resyncs, 1);
    let answer = PeerMessage::InterestSnapshot {
        rooms: vec!["x".into(), "z".into()],
        reply: false,
    };
    n.handle_input(
        now,
        Input::Peer {
            from: "b".into(),
            message: answer,
        },
    );
    assert_eq!(n.room_peers("z"), vec![NodeId::from("b")]);
    n.handle_input(now, digest(theirs));
    assert!(drain(&mut n).is_empty(), "healed");

    // Our own digest goes to every peer on a check, and follows our rooms.
    n.handle_input(
        now,
        Input::Shard {
            shard: ShardId(0),
            report: Report::RoomActive("mine".into()),
        },
    );
    drain(&mut n);
    n.handle_input(now, Input::Cluster(ClusterEvent::InterestCheck));
    let mut mine = InterestDigest::default();
    mine.add("mine");
    assert!(matches!(
        &drain_interest(&mut n)[..],
        [Output::ToPeer { message: PeerMessage::InterestDigest { count, hash }, .. }]
            if *count == mine.count && *hash == mine.hash
    ));
}

#[test]
fn a_superseded_client_is_closed_here_with_4000() {
    let now = Instant::now();
    let mut n = node(ClusterMode::Cluster { bus: BusKind::Grpc }, 2);
    n.handle_input(now, Input::Superseded { client: "x".into() });
    let out = drain(&mut n);
    assert!(matches!(
        &out[..],
        [Output::ToShard { input: ShardInput::Disconnect { target: Target::Client(c), code, .. }, .. }]
            if c.as_str() == "x" && *code == close_code::REPLACED
    ));
    // The shard's answer finishes the request without a reply to anyone.
    let rest = answer_shards(&mut n, now, &out, 1, false);
    assert!(rest.is_empty());
    assert_eq!(n.pending_requests(), 0);
    let mut alone = node(ClusterMode::Standalone, 1);
    alone.handle_input(now, Input::Superseded { client: "x".into() });
    assert!(
        drain(&mut alone).is_empty(),
        "a standalone node has no registry"
    );
}
