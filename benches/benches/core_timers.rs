//! Timer churn: 10,000 connections; each iteration moves the clock one ping interval on,
//! fires every ping (queued, transmitted, acknowledged) and answers each with traffic, which
//! cancels its pong timer.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hub_core::shard::Input;
use hubbub_benches::fixtures::{config, Fixture};

const CONNS: usize = 10_000;

fn timers(c: &mut Criterion) {
    let mut group = c.benchmark_group("timers");
    group.sample_size(20);
    group.throughput(Throughput::Elements(CONNS as u64));
    let config = config();
    let interval = config.ping_interval;
    let mut f = Fixture::new(config, CONNS, &[]);
    group.bench_function("ping_round_10k", |b| {
        b.iter(|| {
            f.now += interval;
            f.shard.handle_timeout(f.now);
            let pings = f.drain();
            for i in 0..f.conns.len() {
                let conn = f.conns[i];
                f.input(Input::Activity { conn });
            }
            black_box(pings)
        })
    });
    assert_eq!(
        f.shard.connection_count(),
        CONNS,
        "every connection survived"
    );
    group.finish();
}

criterion_group!(benches, timers);
criterion_main!(benches);
