use super::*;
use crate::Seed;

fn index(me: &str) -> PresenceIndex {
    PresenceIndex::new(NodeId::from(me), &Seed::from_u64(7))
}

fn member(client: &str, user: Option<&str>) -> Member {
    Member {
        client: ClientId::from(client),
        user: user.map(UserId::from),
        info: None,
    }
}

fn count(clients: u64, users: u64) -> PresenceCount {
    PresenceCount { clients, users }
}

/// Recomputes every count and digest from the members and compares.
fn check(idx: &PresenceIndex) {
    for (room, r) in &idx.rooms {
        assert!(!r.groups.is_empty(), "{room} has no group");
        let mut users: BTreeMap<&str, u32> = BTreeMap::new();
        let mut clients = 0;
        for (node, g) in &r.groups {
            assert!(!g.members.is_empty(), "{room}/{node} is empty");
            assert!(idx.node_rooms[node].contains(room));
            let mut group_users: BTreeMap<&str, u32> = BTreeMap::new();
            for m in g.members.values() {
                clients += 1;
                if let Some(u) = &m.user {
                    *users.entry(u.as_str()).or_default() += 1;
                    *group_users.entry(u.as_str()).or_default() += 1;
                }
            }
            let kept: BTreeMap<&str, u32> = g.users.iter().map(|(u, n)| (u.as_str(), *n)).collect();
            assert_eq!(kept, group_users);
        }
        assert_eq!(r.clients, clients);
        let kept: BTreeMap<&str, u32> = r.users.iter().map(|(u, n)| (u.as_str(), *n)).collect();
        assert_eq!(kept, users);
    }
    for (node, rooms) in &idx.node_rooms {
        let mut digest = PresenceDigest::default();
        for room in rooms {
            for m in idx.rooms[room].groups[node].members.values() {
                digest.toggle(room.as_str(), m, true);
            }
        }
        assert_eq!(idx.digest(node), digest, "digest of {node}");
    }
    assert!(idx.digests.keys().all(|n| idx.node_rooms.contains_key(n)));
}

#[test]
fn counts_follow_joins_and_leaves_with_node_and_cluster_transitions() {
    let mut idx = index("a");
    let (a, b) = (NodeId::from("a"), NodeId::from("b"));
    let room = RoomName::from("r");
    let mut out = Vec::new();
    idx.join(&a, &room, member("c1", Some("u1")), &mut out);
    assert_eq!(
        out,
        vec![
            (Scope::Cluster, PresenceChange::Occupied),
            (Scope::Node, PresenceChange::Occupied),
            (
                Scope::Node,
                PresenceChange::UserJoined {
                    user: "u1".into(),
                    info: None
                }
            ),
            (
                Scope::Cluster,
                PresenceChange::UserJoined {
                    user: "u1".into(),
                    info: None
                }
            ),
        ]
    );
    out.clear();
    // The same user on another node: no cluster-wide user event, no node event here.
    idx.join(&b, &room, member("c2", Some("u1")), &mut out);
    assert!(out.is_empty(), "{out:?}");
    idx.join(&b, &room, member("c3", None), &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(idx.count("r"), count(3, 1));
    assert_eq!(idx.node_count("r", &a), count(1, 1));
    assert_eq!(idx.node_count("r", &b), count(2, 1));
    check(&idx);

    // The local member leaves: the node loses the room and the user, the cluster does not.
    assert!(idx.leave(&a, "r", "c1", &mut out).is_some());
    assert_eq!(
        out,
        vec![
            (Scope::Node, PresenceChange::UserLeft { user: "u1".into() }),
            (Scope::Node, PresenceChange::Vacated),
        ]
    );
    out.clear();
    assert!(idx.leave(&a, "r", "c1", &mut out).is_none());
    assert_eq!(idx.count("r"), count(2, 1));
    check(&idx);

    let mut changes = Vec::new();
    idx.remove_node(&b, |room, t| changes.push((room, t)));
    assert_eq!(
        changes,
        vec![
            (
                room.clone(),
                (
                    Scope::Cluster,
                    PresenceChange::UserLeft { user: "u1".into() }
                )
            ),
            (room.clone(), (Scope::Cluster, PresenceChange::Vacated)),
        ]
    );
    assert_eq!(idx.count("r"), count(0, 0));
    assert_eq!(idx.room_count(), 0);
    assert!(idx.nodes().is_empty());
    check(&idx);
}

#[test]
fn a_rejoin_with_other_information_replaces_the_entry() {
    let mut idx = index("a");
    let a = NodeId::from("a");
    let room = RoomName::from("r");
    let mut out = Vec::new();
    idx.join(&a, &room, member("c1", Some("u1")), &mut out);
    out.clear();
    assert!(!idx.join(&a, &room, member("c1", Some("u1")), &mut out));
    assert!(out.is_empty());
    let mut with_info = member("c1", Some("u1"));
    with_info.info = Some(Arc::from(r#"{"name":"Ann"}"#));
    idx.join(&a, &room, with_info.clone(), &mut out);
    assert_eq!(idx.count("r"), count(1, 1));
    assert_eq!(idx.members("r"), vec![(a.clone(), with_info)]);
    assert_eq!(
        idx.users("r"),
        vec![(UserId::from("u1"), Some(Arc::from(r#"{"name":"Ann"}"#)))]
    );
    check(&idx);
}

#[test]
fn digests_agree_whatever_the_order_and_differ_on_any_field() {
    let mut x = index("x");
    let mut y = index("y");
    let n = NodeId::from("n");
    let mut out = Vec::new();
    let entries = [
        ("r1", "c1", Some("u")),
        ("r1", "c2", None),
        ("r2", "c1", Some("v")),
    ];
    for (room, c, u) in entries {
        x.join(&n, &RoomName::from(room), member(c, u), &mut out);
    }
    for (room, c, u) in entries.iter().rev() {
        y.join(&n, &RoomName::from(*room), member(c, *u), &mut out);
    }
    assert_eq!(x.digest(&n), y.digest(&n));
    assert_eq!(x.node_entries(&n), y.node_entries(&n));
    y.leave(&n, "r2", "c1", &mut out);
    y.join(&n, &RoomName::from("r2"), member("c1", Some("w")), &mut out);
    assert_ne!(x.digest(&n), y.digest(&n));
    let m = member("c", Some("u"));
    assert_ne!(
        member_hash("ab", &m),
        member_hash("a", &member("bc", Some("u")))
    );
    assert_ne!(member_hash("r", &m), member_hash("r", &member("c", None)));
    check(&x);
    check(&y);
}

/// A 100,000-member room: the count is read from counters kept as members joined (how long
/// a count takes is the `core_presence` criterion bench, never timed in a test).
#[test]
fn a_hundred_thousand_member_room_keeps_exact_counts() {
    let mut idx = index("a");
    let nodes = [NodeId::from("a"), NodeId::from("b"), NodeId::from("c")];
    let room = RoomName::from("big");
    let mut out = Vec::new();
    for i in 0..100_000u32 {
        let user = format!("u{}", i / 2);
        let client = format!("c{i}");
        let node = &nodes[(i % 3) as usize];
        idx.join(node, &room, member(&client, Some(&user)), &mut out);
    }
    assert_eq!(idx.count("big"), count(100_000, 50_000));
    assert_eq!(idx.node_count("big", &nodes[0]).clients, 33_334);
    let joined = out
        .iter()
        .filter(|t| matches!(t, (Scope::Cluster, PresenceChange::UserJoined { .. })))
        .count();
    assert_eq!(joined, 50_000);
    check(&idx);
    out.clear();
    idx.remove_node(&nodes[1], |_, _| {});
    assert_eq!(idx.count("big").clients, 66_667);
    check(&idx);
}

#[test]
fn rooms_are_listed_by_prefix_with_their_counts() {
    let mut idx = index("a");
    let (a, b) = (NodeId::from("a"), NodeId::from("b"));
    let mut out = Vec::new();
    idx.join(
        &a,
        &RoomName::from("p:x"),
        member("c1", Some("u")),
        &mut out,
    );
    idx.join(
        &b,
        &RoomName::from("p:x"),
        member("c2", Some("u")),
        &mut out,
    );
    idx.join(&b, &RoomName::from("p:y"), member("c2", None), &mut out);
    idx.join(&a, &RoomName::from("q"), member("c1", None), &mut out);
    assert_eq!(
        idx.rooms_with_prefix("p:"),
        vec![
            (RoomName::from("p:x"), count(2, 1)),
            (RoomName::from("p:y"), count(1, 0)),
        ]
    );
    assert_eq!(idx.rooms_with_prefix("").len(), 3);
    assert!(idx.rooms_with_prefix("z").is_empty());
}
