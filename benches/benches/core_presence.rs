//! Presence counts: a room of 100,000 members (over three nodes, two connections per user)
//! against a room of one; a count reads counters kept as members came, so both cost the same.
//! Also one member joining and leaving the big room (its counts and events kept up to date).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hub_core::presence::{Member, PresenceIndex};
use hub_core::{ClientId, NodeId, RoomName, Seed, UserId};

const MEMBERS: u32 = 100_000;

fn member(i: u32) -> Member {
    Member {
        client: ClientId::from(format!("c{i}")),
        user: Some(UserId::from(format!("u{}", i / 2))),
        info: None,
    }
}

fn presence(c: &mut Criterion) {
    let nodes = [NodeId::from("a"), NodeId::from("b"), NodeId::from("c")];
    let mut idx = PresenceIndex::new(nodes[0].clone(), &Seed::from_u64(1));
    let (big, small) = (RoomName::from("big"), RoomName::from("small"));
    let mut out = Vec::new();
    for i in 0..MEMBERS {
        idx.join(&nodes[(i % 3) as usize], &big, member(i), &mut out);
    }
    idx.join(&nodes[0], &small, member(0), &mut out);
    assert_eq!(idx.count("big").clients, u64::from(MEMBERS));

    let mut group = c.benchmark_group("presence");
    group.bench_function("count_100k_members", |b| {
        b.iter(|| black_box(idx.count(black_box("big"))))
    });
    group.bench_function("count_1_member", |b| {
        b.iter(|| black_box(idx.count(black_box("small"))))
    });
    group.bench_function("join_leave_in_100k_room", |b| {
        let joining = member(MEMBERS + 1);
        b.iter(|| {
            out.clear();
            idx.join(&nodes[1], &big, joining.clone(), &mut out);
            idx.leave(&nodes[1], "big", "c100001", &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, presence);
criterion_main!(benches);
