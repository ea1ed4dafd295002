//! The router's presence: local members from shard reports, peers' members from their
//! messages, counts, events, notifications, snapshots and digests, and a lost node.

use std::time::Instant;

use super::tests::drain;
use super::*;
use crate::presence::{Member, PresenceChange, PresenceCount, PresenceEvent, Scope};
use crate::shard::Input as ShardInput;

fn router(mode: ClusterMode, me: &str, notify: &str) -> Router {
    Router::new(NodeConfig {
        mode,
        presence_events: true,
        presence_notify: RoomPatterns::parse_list(notify).expect("patterns"),
        ..NodeConfig::standalone(me.into(), 2)
    })
}

fn member(client: &str, user: &str) -> Member {
    Member {
        client: client.into(),
        user: Some(user.into()),
        info: None,
    }
}

fn report(n: &mut Router, now: Instant, shard: u16, report: Report) -> Vec<Output> {
    let shard = ShardId(shard);
    n.handle_input(now, Input::Shard { shard, report });
    drain(n)
}

fn join(n: &mut Router, now: Instant, shard: u16, room: &str, m: Member) -> Vec<Output> {
    let room = RoomName::from(room);
    let mut out = report(n, now, shard, Report::RoomActive(room.clone()));
    out.extend(report(
        n,
        now,
        shard,
        Report::MemberJoined { room, member: m },
    ));
    out
}

fn count(n: &mut Router, now: Instant, room: &str, scope: Scope) -> PresenceCount {
    let query = PresenceQuery::Count(scope);
    let room = room.into();
    let command = Command::Presence { room, query };
    let req = RequestId(9);
    n.handle_input(now, Input::Command { req, command });
    match &drain(n)[..] {
        [Output::Reply {
            reply: Reply::Presence(PresenceReply::Count(c)),
            ..
        }] => *c,
        other => panic!("{other:?}"),
    }
}

fn events(out: &[Output]) -> Vec<(Scope, PresenceChange, bool)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Presence(PresenceEvent {
                scope,
                change,
                announce,
                ..
            }) => Some((*scope, change.clone(), *announce)),
            _ => None,
        })
        .collect()
}

/// The texts of the notification frames delivered to local shards.
fn notifications(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::ToShard {
                input: ShardInput::Deliver { frame, .. },
                ..
            } => Some(String::from_utf8_lossy(&crate::frame::payload_of(frame)).into_owned()),
            _ => None,
        })
        .collect()
}

fn from_b(n: &mut Router, now: Instant, message: PeerMessage) -> Vec<Output> {
    let from = NodeId::from("b");
    n.handle_input(now, Input::Peer { from, message });
    drain(n)
}

#[test]
fn one_node_counts_users_once_and_notifies_rooms_that_ask() {
    let now = Instant::now();
    let mut n = router(ClusterMode::Standalone, "me", "chat:*");
    let out = join(&mut n, now, 0, "chat:1", member("c1", "ann"));
    assert_eq!(
        events(&out),
        vec![
            (Scope::Cluster, PresenceChange::Occupied, true),
            (Scope::Node, PresenceChange::Occupied, true),
            (
                Scope::Node,
                PresenceChange::UserJoined {
                    user: "ann".into(),
                    info: None
                },
                true
            ),
            (
                Scope::Cluster,
                PresenceChange::UserJoined {
                    user: "ann".into(),
                    info: None
                },
                true
            ),
        ]
    );
    assert_eq!(
        notifications(&out),
        vec![r#"{"type":"presence","room":"chat:1","join":{"id":"c1","user":"ann"}}"#]
    );
    // Ann's second connection, on the other shard: a connection more, no user more.
    let out = join(&mut n, now, 1, "chat:1", member("c2", "ann"));
    assert!(events(&out).is_empty());
    assert_eq!(notifications(&out).len(), 2, "one per shard with members");
    let both = PresenceCount {
        clients: 2,
        users: 1,
    };
    assert_eq!(count(&mut n, now, "chat:1", Scope::Cluster), both);
    assert_eq!(count(&mut n, now, "chat:1", Scope::Node), both);
    // A room without notifications.
    let out = join(&mut n, now, 0, "quiet", member("c1", "ann"));
    assert!(notifications(&out).is_empty());

    let room = RoomName::from("chat:1");
    let client = ClientId::from("c1");
    let out = report(&mut n, now, 0, Report::MemberLeft { room, client });
    assert!(events(&out).is_empty());
    assert_eq!(
        notifications(&out),
        vec![
            r#"{"type":"presence","room":"chat:1","leave":{"id":"c1","user":"ann"}}"#,
            r#"{"type":"presence","room":"chat:1","leave":{"id":"c1","user":"ann"}}"#
        ]
    );
    let command = Command::Presence {
        room: "chat:1".into(),
        query: PresenceQuery::Members,
    };
    n.handle_input(
        now,
        Input::Command {
            req: RequestId(1),
            command,
        },
    );
    assert!(matches!(
        &drain(&mut n)[..],
        [Output::Reply { reply: Reply::Presence(PresenceReply::Members(m)), .. }]
            if m == &vec![member("c2", "ann")]
    ));
    assert!(
        n.presence().node_entries(&"me".into()).len() == 2,
        "c2 in chat:1, c1 in quiet"
    );
    let command = Command::Presence {
        room: "chat:".into(),
        query: PresenceQuery::RoomsWithPrefix,
    };
    n.handle_input(
        now,
        Input::Command {
            req: RequestId(2),
            command,
        },
    );
    assert!(matches!(
        &drain(&mut n)[..],
        [Output::Reply { reply: Reply::Presence(PresenceReply::Rooms(rooms)), .. }]
            if rooms == &vec![(RoomName::from("chat:1"), PresenceCount { clients: 1, users: 1 })]
    ));
}

#[test]
fn peers_share_members_and_a_lost_node_leaves_with_its_members() {
    let now = Instant::now();
    let grpc = ClusterMode::Cluster { bus: BusKind::Grpc };
    let mut n = router(grpc, "me", "*");
    // Before b is a live peer, what it says is ignored.
    let early = PeerMessage::PresenceJoin {
        room: "r".into(),
        member: member("x", "zed"),
    };
    assert!(from_b(&mut n, now, early.clone()).is_empty());
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp("b".into())));
    let out = drain(&mut n);
    assert!(out.iter().any(|o| matches!(o,
        Output::ToPeer { message: PeerMessage::PresenceSnapshot { first: true, reply: true, entries }, .. }
            if entries.is_empty())));
    // Our member goes to b.
    let out = join(&mut n, now, 0, "r", member("c1", "ann"));
    assert!(out.iter().any(|o| matches!(o,
        Output::ToPeer { node, message: PeerMessage::PresenceJoin { member, .. } }
            if node.as_str() == "b" && member.client.as_str() == "c1")));
    // b's members count here; our members hear of them.
    let out = from_b(&mut n, now, early);
    assert_eq!(
        notifications(&out),
        vec![r#"{"type":"presence","room":"r","join":{"id":"x","user":"zed"}}"#]
    );
    assert_eq!(
        events(&out),
        vec![(
            Scope::Cluster,
            PresenceChange::UserJoined {
                user: "zed".into(),
                info: None
            },
            false
        )]
    );
    let ann = member("y", "ann");
    from_b(
        &mut n,
        now,
        PeerMessage::PresenceJoin {
            room: "r".into(),
            member: ann,
        },
    );
    let cluster = count(&mut n, now, "r", Scope::Cluster);
    assert_eq!(
        cluster,
        PresenceCount {
            clients: 3,
            users: 2
        }
    );
    assert_eq!(count(&mut n, now, "r", Scope::Node).clients, 1);

    // b is lost: its members leave, and "me" < "b" is false... "b" is the lowest id, but
    // it is gone: "me" is the only live node and announces.
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeDown("b".into())));
    let out = drain(&mut n);
    assert_eq!(
        events(&out),
        vec![(
            Scope::Cluster,
            PresenceChange::UserLeft { user: "zed".into() },
            true
        )]
    );
    assert_eq!(notifications(&out).len(), 2, "x and y left");
    assert_eq!(
        count(&mut n, now, "r", Scope::Cluster),
        PresenceCount {
            clients: 1,
            users: 1
        }
    );
}

#[test]
fn digests_heal_a_lost_update_and_a_first_part_replaces() {
    let now = Instant::now();
    let redis = ClusterMode::Cluster {
        bus: BusKind::Redis,
    };
    let mut n = router(redis, "a", "");
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp("b".into())));
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeUp("c".into())));
    drain(&mut n);
    let snapshot = |entries: Vec<(RoomName, Member)>, first| PeerMessage::PresenceSnapshot {
        entries,
        first,
        reply: false,
    };
    let r = RoomName::from("r");
    from_b(
        &mut n,
        now,
        snapshot(vec![(r.clone(), member("x", "u1"))], true),
    );
    from_b(
        &mut n,
        now,
        snapshot(vec![(r.clone(), member("y", "u2"))], false),
    );
    assert_eq!(n.presence().count("r").clients, 2);
    // b's digest says it has x and z: ours differs, so we ask for b's snapshot.
    let mut theirs = crate::presence::PresenceIndex::new("t".into(), &Seed::default());
    let mut sink = Vec::new();
    theirs.join(&"b".into(), &r, member("x", "u1"), &mut sink);
    theirs.join(&"b".into(), &r, member("z", "u3"), &mut sink);
    let d = theirs.digest(&"b".into());
    let digest = PeerMessage::PresenceDigest {
        count: d.count,
        hash: d.hash,
    };
    let out = from_b(&mut n, now, digest.clone());
    assert!(matches!(&out[..],
        [Output::ToPeer { node, message: PeerMessage::PresenceSnapshot { reply: true, first: true, .. } }]
            if node.as_str() == "b"));
    assert_eq!(n.stats().presence_resyncs, 1);
    // The answer's first part replaces y by z; the views agree then.
    let out = from_b(
        &mut n,
        now,
        snapshot(
            vec![
                (r.clone(), member("x", "u1")),
                (r.clone(), member("z", "u3")),
            ],
            true,
        ),
    );
    assert!(events(&out)
        .iter()
        .any(|(_, c, _)| *c == PresenceChange::UserLeft { user: "u2".into() }));
    assert!(from_b(&mut n, now, digest).is_empty(), "healed");
    assert_eq!(n.presence().count("r").clients, 2);
    // Our own digest goes to every peer on a check.
    n.handle_input(now, Input::Cluster(ClusterEvent::InterestCheck));
    let digests = drain(&mut n)
        .into_iter()
        .filter(|o| {
            matches!(
                o,
                Output::ToPeer {
                    message: PeerMessage::PresenceDigest { count: 0, .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(digests, 2);
    // When b is lost, "a" (lowest of a and c) announces.
    n.handle_input(now, Input::Cluster(ClusterEvent::NodeDown("b".into())));
    let out = drain(&mut n);
    assert!(events(&out)
        .iter()
        .all(|(scope, _, announce)| *scope == Scope::Cluster && *announce));
    assert_eq!(
        events(&out).len(),
        3,
        "two users left and the room is vacant"
    );
}
