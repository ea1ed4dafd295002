//! Join/leave churn and open/close churn on a shard that already holds 1,000 connections.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hub_core::shard::Input;
use hub_core::{ClientId, OpenParams, RoomName, Target};
use hubbub_benches::fixtures::{config, Fixture};

const BACKGROUND: usize = 1_000;
const ROOMS: usize = 64;

fn join_leave(c: &mut Criterion) {
    let mut group = c.benchmark_group("join_leave");
    group.throughput(Throughput::Elements(2));
    let rooms: Vec<RoomName> = (0..ROOMS)
        .map(|r| RoomName::from(format!("room-{r}")))
        .collect();

    let mut f = Fixture::new(config(), BACKGROUND, &["lobby"]);
    let mut i = 0usize;
    group.bench_function("input_join_then_leave", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let target = Target::Conn(f.conns[i % BACKGROUND]);
            let room = rooms[i % ROOMS].clone();
            f.input(Input::Join {
                target: target.clone(),
                room: room.clone(),
                req: None,
            });
            f.input(Input::Leave {
                target,
                room,
                req: None,
            });
            black_box(f.drain())
        })
    });

    let mut f = Fixture::new(config(), BACKGROUND, &["lobby"]);
    let joins: Vec<Bytes> = (0..ROOMS)
        .map(|r| Bytes::from(format!(r#"{{"type":"join","room":"room-{r}"}}"#)))
        .collect();
    let leaves: Vec<Bytes> = (0..ROOMS)
        .map(|r| Bytes::from(format!(r#"{{"type":"leave","room":"room-{r}"}}"#)))
        .collect();
    let mut i = 0usize;
    group.bench_function("client_json_join_then_leave", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let conn = f.conns[i % BACKGROUND];
            for data in [&joins[i % ROOMS], &leaves[i % ROOMS]] {
                f.input(Input::Message {
                    conn,
                    data: data.clone(),
                    binary: false,
                });
            }
            black_box(f.drain())
        })
    });
    group.finish();
}

fn open_close(c: &mut Criterion) {
    let mut group = c.benchmark_group("open_close");
    group.throughput(Throughput::Elements(2));
    let ids: Vec<ClientId> = (0..4096)
        .map(|i| ClientId::from(format!("churn-{i}")))
        .collect();
    let rooms = vec![RoomName::from("lobby"), RoomName::from("news")];

    for (name, graceful) in [
        ("open_then_socket_closed", false),
        ("open_then_close_1000", true),
    ] {
        let mut f = Fixture::new(config(), BACKGROUND, &["lobby"]);
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let params = OpenParams {
                    client: Some(ids[i % ids.len()].clone()),
                    rooms: rooms.clone(),
                    ..OpenParams::default()
                };
                let now = f.now;
                let conn = f.shard.open(now, params).expect("opens");
                f.drain();
                let input = if graceful {
                    Input::Close {
                        conn,
                        code: 1000,
                        reason: String::new(),
                    }
                } else {
                    Input::Closed { conn }
                };
                f.input(input);
                black_box(f.drain())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, join_leave, open_close);
criterion_main!(benches);
