//! Property tests of the core over arbitrary operation sequences.
//!
//! - `shard_matches_its_model`: a `Shard` (small queues and timers, so overflow, heartbeat
//!   and drain paths trigger) is driven beside a reference model (`support::model`); after
//!   every op the outputs, getters, counters, timers and a log of received messages are
//!   compared (see `support`).
//! - `node_replies_once_per_command`: a `Router` under arbitrary commands, shard reports, peer
//!   traffic and cluster events answers every command exactly once.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hub_core::node::{
    ClusterEvent, Command, Input, Output, PeerMessage, RegistryCommand, RemoteOp, Reply,
};
use hub_core::shard::{Input as ShardInput, Report};
use hub_core::{
    BusKind, ClientId, ClusterMode, Config, ConnId, NodeConfig, NodeId, OverflowPolicy, RequestId,
    RoomName, Router, ShardId, Target, UserId,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use support::{ClientMsg, Op, Pair, TargetSel};

/// Failing cases are saved here (relative to the crate root, where `cargo test` runs) and
/// replayed first on every run; commit the file.
const REGRESSIONS: FileFailurePersistence =
    FileFailurePersistence::Direct("proptest-regressions/properties.txt");

// ----- the shard -----

fn shard_config() -> impl Strategy<Value = Config> {
    (
        any::<bool>(),
        prop_oneof![Just(30u64), Just(150)],
        1usize..4,
        prop_oneof![Just(64usize), Just(400)],
        3usize..8,
        400usize..800,
        any::<bool>(),
    )
        .prop_map(
            |(drop, pong, batch_frames, batch_bytes, frames, bytes, bcast)| Config {
                node_id: "n1".into(),
                shard_count: 2,
                ping_interval: Duration::from_millis(100),
                pong_timeout: Duration::from_millis(pong),
                max_message_size: 256,
                send_queue_bytes: bytes,
                send_queue_messages: frames,
                overflow_policy: if drop {
                    OverflowPolicy::DropOldest
                } else {
                    OverflowPolicy::Close
                },
                batch_frames,
                batch_bytes,
                drain_timeout: Duration::from_millis(80),
                max_rooms_per_connection: 2,
                max_name_len: 8,
                allow_client_broadcast: bcast,
                seed: 7.into(),
                ..Config::default()
            },
        )
}

/// A room index: mostly good names, sometimes an empty or too long one.
fn room() -> impl Strategy<Value = u8> {
    prop_oneof![12 => 0u8..4, 1 => 4u8..6]
}

fn target() -> impl Strategy<Value = TargetSel> {
    prop_oneof![
        3 => any::<u8>().prop_map(TargetSel::Conn),
        2 => (0u8..6).prop_map(TargetSel::Client),
        2 => (0u8..3).prop_map(TargetSel::User),
        3 => (0u8..4).prop_map(TargetSel::Room),
        1 => Just(TargetSel::All),
    ]
}

fn client_msg() -> impl Strategy<Value = ClientMsg> {
    let pad = prop_oneof![9 => 0u8..=150, 1 => 150u8..=210];
    prop_oneof![
        4 => (room(), any::<bool>()).prop_map(|(room, reference)| ClientMsg::Join { room, reference }),
        2 => (room(), any::<bool>()).prop_map(|(room, reference)| ClientMsg::Leave { room, reference }),
        5 => (room(), pad.clone(), any::<bool>())
            .prop_map(|(room, pad, reference)| ClientMsg::Publish { room, pad, reference }),
        2 => (0u8..6, pad.clone(), any::<bool>())
            .prop_map(|(to, pad, reference)| ClientMsg::Emit { to, pad, reference }),
        1 => (pad, any::<bool>()).prop_map(|(pad, reference)| ClientMsg::Broadcast { pad, reference }),
        1 => any::<bool>().prop_map(|reference| ClientMsg::Ping { reference }),
        1 => Just(ClientMsg::Garbage),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let conn = any::<u8>;
    prop_oneof![
        28 => (
            option::weighted(0.85, 0u8..6),
            option::of(prop_oneof![9 => 0u8..3, 1 => Just(3u8)]),
            vec(room(), 0..4),
            proptest::bool::weighted(0.7),
        )
            .prop_map(|(client, user, rooms, auto_ack)| Op::Open { client, user, rooms, auto_ack }),
        50 => (conn(), client_msg()).prop_map(|(conn, msg)| Op::Text { conn, msg }),
        2 => conn().prop_map(|conn| Op::Binary { conn }),
        2 => conn().prop_map(|conn| Op::TooBig { conn }),
        10 => (target(), room()).prop_map(|(target, room)| Op::Join { target, room }),
        8 => (target(), room()).prop_map(|(target, room)| Op::Leave { target, room }),
        24 => (target(), 0u8..=250, any::<bool>())
            .prop_map(|(target, pad, req)| Op::Deliver { target, pad, req }),
        2 => target().prop_map(|target| Op::Disconnect { target }),
        2 => (conn(), prop_oneof![Just(1000u16), Just(1002), Just(4003)])
            .prop_map(|(conn, code)| Op::Close { conn, code }),
        3 => conn().prop_map(|conn| Op::Closed { conn }),
        8 => conn().prop_map(|conn| Op::Sent { conn }),
        6 => conn().prop_map(|conn| Op::Activity { conn }),
        4 => (conn(), 0u8..=130).prop_map(|(conn, len)| Op::Ping { conn, len }),
        4 => (0u8..6).prop_map(|client| Op::Lookup { client }),
        12 => prop_oneof![4 => 0u16..60, 1 => 60u16..250].prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Shutdown),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        max_shrink_iters: 4096,
        failure_persistence: Some(Box::new(REGRESSIONS)),
        ..ProptestConfig::default()
    })]

    /// Deliveries, queues, indexes, timers and counters match the model after every op.
    #[test]
    fn shard_matches_its_model(cfg in shard_config(), ops in vec(op(), 1..60)) {
        let mut pair = Pair::new(cfg);
        for op in &ops {
            pair.step(op);
        }
        pair.flush();
    }
}

// ----- the node router -----

/// One thing that happens to a node, with its details as small selectors.
#[derive(Debug, Clone)]
enum NodeOp {
    Command {
        kind: u8,
        a: u8,
        b: u8,
    },
    Report {
        shard: u8,
        kind: u8,
        a: u8,
    },
    AnswerShard {
        pick: u8,
        count: u8,
        found: bool,
    },
    AnswerPeer {
        pick: u8,
        count: u8,
        yes: bool,
    },
    FailPeer {
        pick: u8,
    },
    DropPeer {
        pick: u8,
    },
    AnswerRegistry {
        pick: u8,
        node: Option<u8>,
    },
    PeerRequest {
        from: u8,
        reply: bool,
        kind: u8,
        a: u8,
    },
    Interest {
        from: u8,
        room: u8,
        active: bool,
    },
    Bus {
        origin: u8,
        room: Option<u8>,
    },
    Up(u8),
    Down(u8),
    StrayReply {
        id: u8,
    },
    Advance(u16),
}

fn node_op() -> impl Strategy<Value = NodeOp> {
    let s = any::<u8>;
    prop_oneof![
        12 => (0u8..9, s(), s()).prop_map(|(kind, a, b)| NodeOp::Command { kind, a, b }),
        8 => (s(), 0u8..8, s()).prop_map(|(shard, kind, a)| NodeOp::Report { shard, kind, a }),
        14 => (s(), 0u8..4, any::<bool>())
            .prop_map(|(pick, count, found)| NodeOp::AnswerShard { pick, count, found }),
        5 => (s(), 0u8..4, any::<bool>())
            .prop_map(|(pick, count, yes)| NodeOp::AnswerPeer { pick, count, yes }),
        2 => s().prop_map(|pick| NodeOp::FailPeer { pick }),
        2 => s().prop_map(|pick| NodeOp::DropPeer { pick }),
        4 => (s(), option::of(0u8..4)).prop_map(|(pick, node)| NodeOp::AnswerRegistry { pick, node }),
        3 => (0u8..3, any::<bool>(), 0u8..3, s())
            .prop_map(|(from, reply, kind, a)| NodeOp::PeerRequest { from, reply, kind, a }),
        3 => (0u8..3, 0u8..3, any::<bool>())
            .prop_map(|(from, room, active)| NodeOp::Interest { from, room, active }),
        2 => (0u8..4, option::of(0u8..3)).prop_map(|(origin, room)| NodeOp::Bus { origin, room }),
        3 => (0u8..4).prop_map(NodeOp::Up),
        2 => (0u8..4).prop_map(NodeOp::Down),
        1 => s().prop_map(|id| NodeOp::StrayReply { id }),
        5 => (0u16..150).prop_map(NodeOp::Advance),
    ]
}

/// Node names: index 0 is the node under test.
fn name(i: u8) -> NodeId {
    match i % 4 {
        0 => NodeId::from("me"),
        n => NodeId::from(format!("p{n}")),
    }
}

fn client(a: u8) -> ClientId {
    ClientId::from(format!("c{}", a % 5))
}

fn some_target(a: u8, shards: u16) -> Target {
    match a % 5 {
        0 => Target::Client(client(a / 5)),
        1 => Target::User(UserId::from(format!("u{}", a / 5 % 3))),
        2 => Target::Room(RoomName::from(format!("r{}", a / 5 % 3))),
        3 => Target::All,
        _ => Target::Conn(ConnId {
            shard: ShardId(u16::from(a / 5) % (shards + 1)),
            slot: 0,
            gen: 0,
        }),
    }
}

/// Which reply a command must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Delivered,
    Online,
    Disconnected,
    Presence,
}

struct NodeDriver {
    node: Router,
    now: Instant,
    shards: u16,
    mode: ClusterMode,
    to_shards: Vec<(ShardId, ShardInput)>,
    peer_requests: Vec<(NodeId, u64, RemoteOp)>,
    lookups: Vec<RequestId>,
    commands: BTreeMap<RequestId, Kind>,
    replies: BTreeMap<RequestId, Reply>,
}

impl NodeDriver {
    fn new(mode: ClusterMode, shards: u16) -> Self {
        let config = NodeConfig {
            mode,
            remote_timeout: Duration::from_millis(100),
            ..NodeConfig::standalone("me".into(), shards)
        };
        Self {
            node: Router::new(config),
            now: Instant::now(),
            shards,
            mode,
            to_shards: Vec::new(),
            peer_requests: Vec::new(),
            lookups: Vec::new(),
            commands: BTreeMap::new(),
            replies: BTreeMap::new(),
        }
    }

    fn feed(&mut self, input: Input) {
        let route_from = match &input {
            Input::Shard {
                shard,
                report: Report::Route { .. },
            } => Some(*shard),
            _ => None,
        };
        self.node.handle_input(self.now, input);
        self.drain(route_from);
    }

    fn drain(&mut self, route_from: Option<ShardId>) {
        let clustered = self.mode != ClusterMode::Standalone;
        while let Some(out) = self.node.poll_output() {
            match out {
                Output::ToShard { shard, input } => {
                    assert!(shard.0 < self.shards, "no such shard {shard}");
                    if matches!(input, ShardInput::Deliver { .. }) {
                        assert_ne!(Some(shard), route_from, "sent back to its shard");
                    }
                    let answered = match &input {
                        ShardInput::Deliver { req, .. }
                        | ShardInput::Join { req, .. }
                        | ShardInput::Leave { req, .. }
                        | ShardInput::Disconnect { req, .. } => req.is_some(),
                        ShardInput::Lookup { .. } => true,
                        _ => false,
                    };
                    if answered {
                        self.to_shards.push((shard, input));
                    }
                }
                Output::Reply { req, reply } => {
                    let kind = self.commands.get(&req);
                    let kind = kind.unwrap_or_else(|| panic!("reply to unknown {req:?}"));
                    let got = match reply {
                        Reply::Delivered(_) => Kind::Delivered,
                        Reply::Online(_) => Kind::Online,
                        Reply::Disconnected(_) => Kind::Disconnected,
                        Reply::History(_) | Reply::Position(_) => {
                            panic!("no history command in this model")
                        }
                        Reply::Presence(_) => Kind::Presence,
                    };
                    assert_eq!(got, *kind, "reply kind");
                    let again = self.replies.insert(req, reply);
                    assert!(again.is_none(), "second reply to {req:?}");
                }
                Output::ToPeer { node, message } => {
                    assert!(clustered, "standalone node sent to a peer");
                    assert_ne!(node.as_str(), "me", "sent to itself");
                    if let PeerMessage::Request { id: Some(id), op } = message {
                        self.peer_requests.push((node, id, op));
                    }
                }
                Output::Registry(command) => {
                    assert!(clustered, "standalone node used the registry");
                    if let RegistryCommand::Lookup { req, .. } = command {
                        self.lookups.push(req);
                    }
                }
                Output::Presence(_) => {}
                Output::Bus(command) => {
                    let redis = ClusterMode::Cluster {
                        bus: BusKind::Redis,
                    };
                    assert_eq!(
                        self.mode, redis,
                        "bus command {command:?} without Redis bus"
                    );
                }
                Output::History(command) => panic!("no room keeps history here: {command:?}"),
            }
        }
    }

    fn answer_shard(&mut self, pick: usize, count: u64, found: bool) {
        if self.to_shards.is_empty() {
            return;
        }
        let (shard, input) = self.to_shards.remove(pick % self.to_shards.len());
        let report = match input {
            ShardInput::Lookup { req, .. } => Report::Found { req, found },
            ShardInput::Deliver { req: Some(req), .. }
            | ShardInput::Join { req: Some(req), .. }
            | ShardInput::Leave { req: Some(req), .. }
            | ShardInput::Disconnect { req: Some(req), .. } => Report::Delivered { req, count },
            _ => return,
        };
        self.feed(Input::Shard { shard, report });
    }

    fn step(&mut self, op: &NodeOp) {
        let frame = Bytes::from_static(b"\x81\x01x");
        match *op {
            NodeOp::Command { kind, a, b } => {
                let req = RequestId(self.commands.len() as u64 + 1);
                let (command, k) = match kind {
                    0..=4 => (
                        Command::Deliver {
                            target: some_target(a.wrapping_mul(5).wrapping_add(kind), self.shards),
                            frame,
                        },
                        Kind::Delivered,
                    ),
                    5 => (Command::Online { client: client(a) }, Kind::Online),
                    6 => (
                        Command::Disconnect { client: client(a) },
                        Kind::Disconnected,
                    ),
                    7 => (
                        Command::Join {
                            client: client(a),
                            room: RoomName::from(format!("r{}", b % 3)),
                        },
                        Kind::Delivered,
                    ),
                    _ => (
                        Command::Leave {
                            client: client(a),
                            room: RoomName::from(format!("r{}", b % 3)),
                        },
                        Kind::Delivered,
                    ),
                };
                self.commands.insert(req, k);
                self.feed(Input::Command { req, command });
            }
            NodeOp::Report { shard, kind, a } => {
                let shard = ShardId(u16::from(shard) % self.shards);
                let room = RoomName::from(format!("r{}", a % 3));
                let user = UserId::from(format!("u{}", a % 3));
                let report = match kind {
                    0 => Report::RoomActive(room),
                    1 => Report::RoomIdle(room),
                    2 => Report::UserActive(user),
                    3 => Report::UserIdle(user),
                    4 => Report::Route {
                        target: some_target(a, self.shards),
                        frame,
                    },
                    5 => Report::ClientUp {
                        client: client(a),
                        user: Some(user),
                        conn: ConnId {
                            shard,
                            slot: 0,
                            gen: 0,
                        },
                    },
                    6 => Report::ClientDown {
                        client: client(a),
                        conn: ConnId {
                            shard,
                            slot: 0,
                            gen: 0,
                        },
                    },
                    _ => Report::Delivered {
                        req: RequestId((1 << 63) | u64::from(a % 8)),
                        count: 1,
                    },
                };
                self.feed(Input::Shard { shard, report });
            }
            NodeOp::AnswerShard { pick, count, found } => {
                self.answer_shard(usize::from(pick), u64::from(count), found)
            }
            NodeOp::AnswerPeer { pick, count, yes } => {
                if self.peer_requests.is_empty() {
                    return;
                }
                let i = usize::from(pick) % self.peer_requests.len();
                let (node, id, op) = self.peer_requests.remove(i);
                let reply = match op {
                    RemoteOp::Deliver { .. } => Reply::Delivered(u64::from(count)),
                    RemoteOp::Online { .. } => Reply::Online(yes.then(|| node.clone())),
                    RemoteOp::Disconnect { .. } => Reply::Disconnected(yes),
                    RemoteOp::DisconnectUser { .. } => Reply::Delivered(u64::from(count)),
                };
                let message = PeerMessage::Reply { id, reply };
                self.feed(Input::Peer {
                    from: node,
                    message,
                });
            }
            NodeOp::FailPeer { pick } => {
                if self.peer_requests.is_empty() {
                    return;
                }
                let i = usize::from(pick) % self.peer_requests.len();
                let (node, id, _) = self.peer_requests.remove(i);
                self.feed(Input::PeerFailed { node, id: Some(id) });
            }
            NodeOp::DropPeer { pick } => {
                if !self.peer_requests.is_empty() {
                    let i = usize::from(pick) % self.peer_requests.len();
                    self.peer_requests.remove(i);
                }
            }
            NodeOp::AnswerRegistry { pick, node } => {
                if self.lookups.is_empty() {
                    return;
                }
                let req = self.lookups.remove(usize::from(pick) % self.lookups.len());
                self.feed(Input::RegistryAnswer {
                    req,
                    node: node.map(name),
                });
            }
            NodeOp::PeerRequest {
                from,
                reply,
                kind,
                a,
            } => {
                let op = match kind {
                    0 => RemoteOp::Deliver {
                        target: some_target(a, self.shards),
                        frame,
                    },
                    1 => RemoteOp::Online { client: client(a) },
                    _ => RemoteOp::Disconnect {
                        client: client(a),
                        code: 4003,
                    },
                };
                let id = reply.then_some(u64::from(a));
                self.feed(Input::Peer {
                    from: name(from + 1),
                    message: PeerMessage::Request { id, op },
                });
            }
            NodeOp::Interest { from, room, active } => self.feed(Input::Peer {
                from: name(from + 1),
                message: PeerMessage::Interest {
                    room: RoomName::from(format!("r{room}")),
                    active,
                },
            }),
            NodeOp::Bus { origin, room } => self.feed(Input::Bus {
                origin: name(origin),
                room: room.map(|r| RoomName::from(format!("r{r}"))),
                frame,
            }),
            NodeOp::Up(n) => self.feed(Input::Cluster(ClusterEvent::NodeUp(name(n)))),
            NodeOp::Down(n) => self.feed(Input::Cluster(ClusterEvent::NodeDown(name(n)))),
            NodeOp::StrayReply { id } => self.feed(Input::Peer {
                from: name(1),
                message: PeerMessage::Reply {
                    id: (1 << 63) | u64::from(id % 16),
                    reply: Reply::Delivered(1),
                },
            }),
            NodeOp::Advance(ms) => self.advance(Duration::from_millis(u64::from(ms))),
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.node.handle_timeout(self.now);
        self.drain(None);
        let next = self.node.poll_timeout();
        assert!(
            next.is_none_or(|t| t > self.now),
            "poll_timeout not past now"
        );
    }

    /// Answers every shard and lookup, lets every deadline pass; then every command must
    /// have exactly one reply and nothing may be pending.
    fn finish(&mut self) {
        for _ in 0..3 {
            for _ in 0..1000 {
                if !self.to_shards.is_empty() {
                    self.answer_shard(0, 1, false);
                } else if let Some(req) = self.lookups.pop() {
                    self.feed(Input::RegistryAnswer { req, node: None });
                } else {
                    break;
                }
            }
            self.peer_requests.clear();
            self.advance(Duration::from_millis(101));
        }
        let asked: Vec<&RequestId> = self.commands.keys().collect();
        let answered: Vec<&RequestId> = self.replies.keys().collect();
        assert_eq!(asked, answered, "every command answered");
        assert_eq!(self.node.pending_requests(), 0, "nothing left pending");
    }
}

fn cluster_mode() -> impl Strategy<Value = ClusterMode> {
    prop_oneof![
        Just(ClusterMode::Standalone),
        Just(ClusterMode::Cluster { bus: BusKind::Grpc }),
        Just(ClusterMode::Cluster {
            bus: BusKind::Redis
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 4096,
        failure_persistence: Some(Box::new(REGRESSIONS)),
        ..ProptestConfig::default()
    })]

    /// Exactly one reply per command, whatever the shards, peers and registry do.
    #[test]
    fn node_replies_once_per_command(
        mode in cluster_mode(),
        shards in 1u16..4,
        ops in vec(node_op(), 1..60),
    ) {
        let mut driver = NodeDriver::new(mode, shards);
        for op in &ops {
            driver.step(op);
        }
        driver.finish();
    }
}
