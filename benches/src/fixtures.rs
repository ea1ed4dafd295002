//! Shards filled with connections, driven the way a runtime drives them: every output
//! drained, every `Transmit` acknowledged at once (an infinitely fast socket), so what is
//! measured is the core alone.
//!
//! Fixture construction panics on a bad configuration: it is benchmark set-up, not library
//! code.

use std::time::Instant;

use hub_core::shard::{Input, Output};
use hub_core::{ClientId, Config, ConnId, OpenParams, RoomName, Shard, ShardId};

/// A shard, its open connections, and the virtual time it is driven at.
#[derive(Debug)]
pub struct Fixture {
    /// The shard under measurement.
    pub shard: Shard,
    /// Its connections, in the order they were opened.
    pub conns: Vec<ConnId>,
    /// The time fed to the shard.
    pub now: Instant,
}

/// Settings for benches: the defaults, a node name, and room for many rooms per connection.
pub fn config() -> Config {
    Config {
        node_id: "bench".into(),
        max_rooms_per_connection: 1024,
        ..Config::default()
    }
}

impl Fixture {
    /// A shard with `clients` connections (`c0`, `c1`, …), each in `rooms`; welcomes drained.
    pub fn new(config: Config, clients: usize, rooms: &[&str]) -> Self {
        let mut shard = Shard::new(ShardId(0), config).expect("bench config is valid");
        let now = Instant::now();
        let rooms: Vec<RoomName> = rooms.iter().map(|r| RoomName::from(*r)).collect();
        let conns = (0..clients)
            .map(|i| {
                let params = OpenParams {
                    client: Some(ClientId::from(format!("c{i}"))),
                    rooms: rooms.clone(),
                    ..OpenParams::default()
                };
                shard.open(now, params).expect("opens")
            })
            .collect();
        let mut fixture = Self { shard, conns, now };
        fixture.drain();
        fixture
    }

    /// Feeds one input at the fixture's time.
    pub fn input(&mut self, input: Input) {
        self.shard.handle_input(self.now, input);
    }

    /// Drains every output, acknowledging each `Transmit` at once; returns the frames sent.
    pub fn drain(&mut self) -> usize {
        let mut frames = 0;
        while let Some(output) = self.shard.poll_output() {
            if let Output::Transmit {
                conn,
                frames: sent,
                close,
            } = output
            {
                frames += sent.len();
                if !close {
                    self.shard.handle_input(self.now, Input::Sent { conn });
                }
            }
        }
        frames
    }
}
