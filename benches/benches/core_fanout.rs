//! One message to a room of 10,000 members on one shard, outputs drained and acknowledged:
//! the cost per delivery of encode-once fan-out.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hub_core::shard::Input;
use hub_core::{protocol, RoomName, Target};
use hubbub_benches::fixtures::{config, Fixture};

const MEMBERS: usize = 10_000;

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    group.sample_size(20);
    group.throughput(Throughput::Elements(MEMBERS as u64));

    let mut f = Fixture::new(config(), MEMBERS, &["r"]);
    let frame = protocol::message(Some("r"), None, r#"{"text":"hello, room","n":1}"#);
    group.bench_function("deliver_room_10k", |b| {
        b.iter(|| {
            f.input(Input::Deliver {
                target: Target::Room(RoomName::from("r")),
                frame: frame.clone(),
                req: None,
            });
            black_box(f.drain())
        })
    });

    let mut f = Fixture::new(config(), MEMBERS, &["r"]);
    let sender = f.conns[0];
    let text =
        Bytes::from_static(br#"{"type":"publish","room":"r","data":{"text":"hello, room"}}"#);
    group.bench_function("client_publish_room_10k", |b| {
        b.iter(|| {
            f.input(Input::Message {
                conn: sender,
                data: text.clone(),
                binary: false,
            });
            black_box(f.drain())
        })
    });
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
