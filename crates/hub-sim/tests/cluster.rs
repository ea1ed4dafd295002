//! Whole-cluster scenarios in virtual time: multi-shard and multi-node delivery, both
//! buses, node crash, silent peer, slow consumer, and replay from a seed.

use std::time::Duration;

use hub_core::frame::close_code;
use hub_core::{BusKind, Config, NodeId, RoomName, Target};
use hub_sim::{ClientKey, Sim, SimConfig};
use serde_json::{json, Value};

fn join(sim: &mut Sim, key: ClientKey, room: &str) {
    sim.send(key, &format!(r#"{{"type":"join","room":"{room}"}}"#));
}

fn room(name: &str) -> Target {
    Target::Room(RoomName::from(name))
}

/// The `n` of every message data `{"n":N}` the client received, in order.
fn numbers(sim: &Sim, key: ClientKey) -> Vec<u64> {
    sim.client(key)
        .messages()
        .iter()
        .map(|d| d["n"].as_u64().expect("numbered message"))
        .collect()
}

#[test]
fn multi_shard_room_publish_reaches_every_member_once() {
    let mut sim = Sim::new(SimConfig::standalone(4)).expect("valid");
    let keys: Vec<ClientKey> = (0..40)
        .map(|i| sim.connect(0, &format!("c{i}")).expect("opens"))
        .collect();
    let members: Vec<ClientKey> = keys.iter().copied().step_by(2).collect();
    for &k in &members {
        join(&mut sim, k, "r");
    }
    let shards_with_members = sim
        .node(0)
        .shards()
        .iter()
        .filter(|s| !s.room_members("r").is_empty())
        .count();
    assert_eq!(shards_with_members, 4, "members on every shard");

    // A non-member publishes, a member publishes, the API publishes.
    sim.send(keys[1], r#"{"type":"publish","room":"r","data":{"n":1}}"#);
    sim.send(
        members[3],
        r#"{"type":"publish","room":"r","data":{"n":2}}"#,
    );
    assert_eq!(sim.deliver(0, room("r"), r#"{"n":3}"#), Some(20));
    sim.settle();

    for (i, &k) in keys.iter().enumerate() {
        let want: Vec<u64> = if i % 2 == 0 { vec![1, 2, 3] } else { vec![] };
        assert_eq!(numbers(&sim, k), want, "client c{i}");
    }
    let first = &sim.client(members[0]).received()[1];
    assert_eq!(first["room"], "r");
    assert_eq!(first["from"], "c1");
}

/// Three nodes of two shards; clients `a{node}-{i}`, members of "r" where `i` is even.
struct Cluster {
    sim: Sim,
    clients: Vec<Vec<ClientKey>>,
}

impl Cluster {
    fn new(bus: BusKind) -> Self {
        let config = SimConfig {
            lease_ttl: Duration::from_secs(5),
            remote_timeout: Duration::from_millis(500),
            seed: 42,
            ..SimConfig::cluster(3, 2, bus)
        };
        let mut sim = Sim::new(config).expect("valid");
        let mut clients = Vec::new();
        for n in 0..3 {
            let mut keys = Vec::new();
            for i in 0..6 {
                let key = sim.connect(n, &format!("a{n}-{i}")).expect("opens");
                if i % 2 == 0 {
                    join(&mut sim, key, "r");
                }
                keys.push(key);
            }
            clients.push(keys);
        }
        sim.settle();
        Self { sim, clients }
    }

    fn members(&self, nodes: &[usize]) -> Vec<ClientKey> {
        nodes
            .iter()
            .flat_map(|n| self.clients[*n].iter().copied().step_by(2))
            .collect()
    }

    fn all(&self) -> Vec<ClientKey> {
        self.clients.iter().flatten().copied().collect()
    }
}

fn emit_by_id_across_nodes(bus: BusKind) {
    let mut c = Cluster::new(bus);
    let target = c.clients[2][1];
    let to = Target::Client("a2-1".into());
    assert_eq!(c.sim.deliver(0, to, r#"{"n":1}"#), Some(1));
    let from = c.clients[0][3];
    c.sim
        .send(from, r#"{"type":"emit","to":"a2-1","data":{"n":2}}"#);
    c.sim.settle();
    assert_eq!(numbers(&c.sim, target), vec![1, 2]);
    let last = c.sim.client(target).received().last().cloned();
    assert_eq!(last.map(|v| v["from"].clone()), Some(json!("a0-3")));
    let nobody = Target::Client("nobody".into());
    assert_eq!(c.sim.deliver(1, nobody, "0"), Some(0));
    for k in c.all().into_iter().filter(|k| *k != target) {
        assert!(numbers(&c.sim, k).is_empty());
    }
}

fn room_publish_across_nodes_exactly_once(bus: BusKind) {
    let mut c = Cluster::new(bus);
    let members = c.members(&[0, 1, 2]);
    c.sim.send(
        c.clients[0][0],
        r#"{"type":"publish","room":"r","data":{"n":1}}"#,
    );
    c.sim.send(
        c.clients[1][1],
        r#"{"type":"publish","room":"r","data":{"n":2}}"#,
    );
    let count = c.sim.deliver(2, room("r"), r#"{"n":3}"#);
    c.sim.settle();
    let want = match bus {
        // The gRPC bus asks the nodes with members and sums their answers.
        BusKind::Grpc => 9,
        // A Redis publish is fire-and-forget: the answer counts this node's members.
        BusKind::Redis => 3,
    };
    assert_eq!(count, Some(want));
    for k in c.all() {
        // Exactly once each; three senders on three nodes, so no order among them.
        let mut got = numbers(&c.sim, k);
        got.sort();
        let want = if members.contains(&k) {
            vec![1, 2, 3]
        } else {
            vec![]
        };
        assert_eq!(got, want, "{:?}", c.sim.client(k).id());
    }
}

fn broadcast_reaches_everyone_once(bus: BusKind) {
    let mut c = Cluster::new(bus);
    let count = c.sim.deliver(1, Target::All, r#"{"n":7}"#);
    c.sim.settle();
    assert_eq!(count, Some(if bus == BusKind::Grpc { 18 } else { 6 }));
    for k in c.all() {
        assert_eq!(numbers(&c.sim, k), vec![7]);
    }
}

fn online_true_and_false(bus: BusKind) {
    let mut c = Cluster::new(bus);
    assert_eq!(c.sim.online(0, "a2-4"), Some(Some(NodeId::from("n2"))));
    assert_eq!(c.sim.online(2, "a2-4"), Some(Some(NodeId::from("n2"))));
    assert_eq!(c.sim.online(1, "nobody"), Some(None));
    c.sim.hang_up(c.clients[2][4]);
    c.sim.settle();
    assert_eq!(c.sim.online(0, "a2-4"), Some(None), "offline once gone");
}

fn disconnect_closes_a_client_on_another_node_with_4003(bus: BusKind) {
    let mut c = Cluster::new(bus);
    let target = c.clients[2][4];
    assert_eq!(c.sim.disconnect(0, "a2-4"), Some(true));
    c.sim.settle();
    assert_eq!(c.sim.client(target).close_code(), Some(4003));
    assert_eq!(c.sim.online(1, "a2-4"), Some(None));
    assert_eq!(
        c.sim.disconnect(1, "a2-4"),
        Some(false),
        "nothing left to close"
    );
}

fn crashed_node_reads_offline_after_lease_ttl(bus: BusKind) {
    let mut c = Cluster::new(bus);
    c.sim.crash(2);
    // The others keep delivering among themselves at once, well within the lease TTL.
    c.sim.send(
        c.clients[0][2],
        r#"{"type":"publish","room":"r","data":{"n":1}}"#,
    );
    c.sim.advance(Duration::from_millis(100));
    for k in c.members(&[0, 1]) {
        assert_eq!(numbers(&c.sim, k), vec![1]);
    }
    assert!(c.clients[2].iter().all(|k| !c.sim.client(*k).is_open()));
    if bus == BusKind::Grpc {
        // The dead peer refuses connections: the answer comes without waiting it out.
        let start = c.sim.now();
        assert_eq!(c.sim.deliver(1, room("r"), r#"{"n":0}"#), Some(6));
        assert!(c.sim.now() - start < Duration::from_millis(100));
        c.sim.advance(Duration::from_millis(100));
        for k in c.members(&[0, 1]) {
            assert_eq!(numbers(&c.sim, k), vec![1, 0]);
        }
    }

    c.sim.advance(Duration::from_secs(6));
    assert_eq!(
        c.sim.online(0, "a2-0"),
        Some(None),
        "offline after the lease TTL"
    );
    assert_eq!(c.sim.online(1, "a2-0"), Some(None));
    assert!(c.sim.node(0).router().peers().all(|p| p.as_str() != "n2"));
    let count = c.sim.deliver(1, room("r"), r#"{"n":2}"#);
    c.sim.settle();
    if bus == BusKind::Grpc {
        assert_eq!(count, Some(6));
    }
    for k in c.members(&[0, 1]) {
        assert_eq!(numbers(&c.sim, k).last(), Some(&2));
    }
    // Heartbeats kept the survivors' clients connected through it all.
    assert!(c.clients[..2]
        .iter()
        .flatten()
        .all(|k| c.sim.client(*k).is_open()));
}

#[test]
fn grpc_emit_by_id_across_nodes() {
    emit_by_id_across_nodes(BusKind::Grpc);
}

#[test]
fn redis_emit_by_id_across_nodes() {
    emit_by_id_across_nodes(BusKind::Redis);
}

#[test]
fn grpc_room_publish_across_nodes_exactly_once() {
    room_publish_across_nodes_exactly_once(BusKind::Grpc);
}

#[test]
fn redis_room_publish_across_nodes_exactly_once() {
    room_publish_across_nodes_exactly_once(BusKind::Redis);
}

#[test]
fn grpc_broadcast_reaches_everyone_once() {
    broadcast_reaches_everyone_once(BusKind::Grpc);
}

#[test]
fn redis_broadcast_reaches_everyone_once() {
    broadcast_reaches_everyone_once(BusKind::Redis);
}

#[test]
fn grpc_online_true_and_false() {
    online_true_and_false(BusKind::Grpc);
}

#[test]
fn redis_online_true_and_false() {
    online_true_and_false(BusKind::Redis);
}

#[test]
fn grpc_disconnect_closes_a_client_on_another_node_with_4003() {
    disconnect_closes_a_client_on_another_node_with_4003(BusKind::Grpc);
}

#[test]
fn redis_disconnect_closes_a_client_on_another_node_with_4003() {
    disconnect_closes_a_client_on_another_node_with_4003(BusKind::Redis);
}

#[test]
fn grpc_crashed_node_reads_offline_after_lease_ttl() {
    crashed_node_reads_offline_after_lease_ttl(BusKind::Grpc);
}

#[test]
fn redis_crashed_node_reads_offline_after_lease_ttl() {
    crashed_node_reads_offline_after_lease_ttl(BusKind::Redis);
}

#[test]
fn silent_peer_gets_a_partial_count_after_remote_timeout() {
    let mut c = Cluster::new(BusKind::Grpc);
    c.sim.isolate(2);
    let start = c.sim.now();
    let count = c.sim.deliver(0, room("r"), r#"{"n":1}"#);
    let waited = c.sim.now() - start;
    assert_eq!(count, Some(6), "members on n0 and n1 only");
    assert!(
        waited >= Duration::from_millis(500),
        "answered after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(600),
        "answered after {waited:?}"
    );
    for k in c.members(&[0, 1]) {
        assert_eq!(numbers(&c.sim, k), vec![1]);
    }
    for k in c.members(&[2]) {
        assert!(numbers(&c.sim, k).is_empty());
    }
}

#[test]
fn slow_consumer_is_closed_and_the_room_keeps_going() {
    let config = SimConfig {
        shard: Config {
            send_queue_messages: 4,
            ..Config::default()
        },
        ..SimConfig::cluster(2, 1, BusKind::Grpc)
    };
    let mut sim = Sim::new(config).expect("valid");
    let slow = sim.connect(1, "slow").expect("opens");
    let fast = sim.connect(1, "fast").expect("opens");
    for k in [slow, fast] {
        join(&mut sim, k, "r");
    }
    sim.settle();
    sim.set_slow(slow, true);
    for n in 0..8 {
        sim.deliver(0, room("r"), &format!(r#"{{"n":{n}}}"#));
    }
    sim.settle();
    assert_eq!(numbers(&sim, fast), (0..8).collect::<Vec<_>>());
    assert_eq!(
        sim.client(slow).close_code(),
        None,
        "close frame not read yet"
    );
    sim.set_slow(slow, false);
    sim.settle();
    assert_eq!(
        sim.client(slow).close_code(),
        Some(close_code::SLOW_CONSUMER)
    );
    assert!(!sim.client(slow).is_open());
    assert_eq!(sim.online(0, "slow"), Some(None));
}

/// Lossy links with jitter: whatever arrives, the same seed gives the same run.
#[test]
fn same_seed_replays_the_same_run() {
    fn run(seed: u64) -> Vec<Vec<Value>> {
        let config = SimConfig {
            loss_per_mille: 200,
            max_delay: Duration::from_millis(30),
            seed,
            ..SimConfig::cluster(3, 2, BusKind::Grpc)
        };
        let mut sim = Sim::new(config).expect("valid");
        let keys: Vec<ClientKey> = (0..12)
            .map(|i| sim.connect(i % 3, &format!("c{i}")).expect("opens"))
            .collect();
        for &k in &keys {
            join(&mut sim, k, "r");
        }
        sim.settle();
        for (i, &k) in keys.iter().enumerate() {
            sim.send(
                k,
                &format!(r#"{{"type":"publish","room":"r","data":{{"n":{i}}}}}"#),
            );
            sim.advance(Duration::from_millis(3));
        }
        sim.advance(Duration::from_secs(3));
        keys.iter()
            .map(|k| sim.client(*k).received().to_vec())
            .collect()
    }
    let a = run(9);
    assert_eq!(a, run(9));
    let received: usize = a.iter().map(Vec::len).sum();
    assert!(received > 12, "something was delivered");
}

/// Jittery links are still FIFO: one sender's publishes reach every member in order.
fn one_senders_publishes_arrive_in_order(bus: BusKind) {
    let config = SimConfig {
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(40),
        seed: 5,
        ..SimConfig::cluster(3, 2, bus)
    };
    let mut sim = Sim::new(config).expect("valid");
    let keys: Vec<ClientKey> = (0..9)
        .map(|i| sim.connect(i % 3, &format!("m{i}")).expect("opens"))
        .collect();
    for &k in &keys {
        join(&mut sim, k, "r");
    }
    sim.settle();
    for n in 0..20 {
        sim.send(
            keys[0],
            &format!(r#"{{"type":"publish","room":"r","data":{{"n":{n}}}}}"#),
        );
        sim.advance(Duration::from_millis(2));
    }
    sim.settle();
    for &k in &keys {
        assert_eq!(numbers(&sim, k), (0..20).collect::<Vec<_>>());
    }
}

#[test]
fn grpc_one_senders_publishes_arrive_in_order() {
    one_senders_publishes_arrive_in_order(BusKind::Grpc);
}

#[test]
fn redis_one_senders_publishes_arrive_in_order() {
    one_senders_publishes_arrive_in_order(BusKind::Redis);
}

#[test]
fn partition_times_out_and_heals() {
    let mut c = Cluster::new(BusKind::Grpc);
    c.sim.partition(0, 1);
    let start = c.sim.now();
    let to = || Target::Client("a1-3".into());
    assert_eq!(
        c.sim.deliver(0, to(), r#"{"n":1}"#),
        Some(0),
        "lost on the way"
    );
    assert!(c.sim.now() - start >= Duration::from_millis(500));
    assert!(numbers(&c.sim, c.clients[1][3]).is_empty());
    // Node 2 still reaches both sides.
    assert_eq!(c.sim.deliver(2, to(), r#"{"n":2}"#), Some(1));
    c.sim.heal();
    assert_eq!(c.sim.deliver(0, to(), r#"{"n":3}"#), Some(1));
    assert_eq!(numbers(&c.sim, c.clients[1][3]), vec![2, 3]);
}
