//! The registry scenarios, written once and run against real Redis and real etcd servers
//! (each test starts its own on free ports).
//!
//! The 10,000-register test prints its elapsed time and rate; run it alone for a clean
//! figure: `cargo test -p hub-cluster --test registry ten_thousand -- --nocapture`.

use std::time::{Duration, Instant};

use hub_cluster::{ClusterError, NodeInfo, Registry, RegistryConfig};
use hub_core::node::RegistryCommand;
use hub_core::{ClientId, NodeId, RequestId};
use hub_serve::RegistrySpec;
use hubbub_tests::servers::{EtcdServer, RedisServer};

/// Lease TTL of the test nodes (etcd raises shorter TTLs to about 2 s anyway).
const TTL: Duration = Duration::from_secs(2);
/// Bound on every call.
const OP: Duration = Duration::from_millis(1000);

#[derive(Clone, Copy, Debug)]
enum Kind {
    Redis,
    Etcd,
}

enum Server {
    Redis(RedisServer),
    Etcd(EtcdServer),
}

impl Server {
    fn start(kind: Kind) -> Server {
        match kind {
            Kind::Redis => Server::Redis(RedisServer::start()),
            Kind::Etcd => Server::Etcd(EtcdServer::start()),
        }
    }

    fn spec(&self) -> RegistrySpec {
        match self {
            Server::Redis(s) => RegistrySpec::Redis(s.url()),
            Server::Etcd(s) => RegistrySpec::Etcd(vec![s.endpoint()]),
        }
    }

    fn stop(&mut self) {
        match self {
            Server::Redis(s) => s.stop(),
            Server::Etcd(s) => s.stop(),
        }
    }

    fn freeze(&self) {
        match self {
            Server::Redis(s) => s.freeze(),
            Server::Etcd(s) => s.freeze(),
        }
    }

    fn thaw(&self) {
        match self {
            Server::Redis(s) => s.thaw(),
            Server::Etcd(s) => s.thaw(),
        }
    }

    fn restart(&mut self) {
        match self {
            Server::Redis(s) => s.restart(),
            Server::Etcd(s) => s.restart(),
        }
    }
}

fn config(id: &str) -> RegistryConfig {
    RegistryConfig {
        node: NodeId::from(id),
        advertise: format!("{id}.test:50051"),
        lease_ttl: TTL,
        op_timeout: OP,
    }
}

/// A node connected to `server` and joined.
async fn node(server: &Server, id: &str) -> Registry {
    let registry = Registry::connect(&server.spec(), config(id))
        .await
        .expect("connect");
    registry.join().await.expect("join");
    registry
}

fn register(client: &str) -> RegistryCommand {
    RegistryCommand::Register {
        client: ClientId::from(client),
        user: None,
    }
}

fn unregister(client: &str) -> RegistryCommand {
    RegistryCommand::Unregister {
        client: ClientId::from(client),
    }
}

fn lookup_cmd(client: &str, req: u64) -> RegistryCommand {
    RegistryCommand::Lookup {
        client: ClientId::from(client),
        req: RequestId(req),
    }
}

async fn lookup(registry: &Registry, client: &str) -> Option<NodeId> {
    let result = registry
        .apply(&[lookup_cmd(client, 7)])
        .await
        .expect("lookup");
    assert_eq!(result.lookups.len(), 1);
    result.lookups[0].1.clone()
}

fn id(s: &str) -> Option<NodeId> {
    Some(NodeId::from(s))
}

fn ids(nodes: &[NodeInfo]) -> Vec<&str> {
    nodes.iter().map(|n| n.id.as_str()).collect()
}

async fn register_lookup_unregister(kind: Kind) {
    let server = Server::start(kind);
    let a = node(&server, "a").await;
    let b = node(&server, "b").await;
    let result = a.apply(&[register("c1")]).await.expect("register");
    assert!(result.displaced.is_empty() && result.lookups.is_empty());
    assert_eq!(lookup(&a, "c1").await, id("a"));
    assert_eq!(lookup(&b, "c1").await, id("a"));
    assert_eq!(lookup(&b, "nobody").await, None);
    a.apply(&[unregister("c1")]).await.expect("unregister");
    assert_eq!(lookup(&b, "c1").await, None);

    // One batch, several ops on one client id: applied in order.
    let batch = [
        register("c2"),
        lookup_cmd("c2", 1),
        unregister("c2"),
        lookup_cmd("c2", 2),
        register("c2"),
        lookup_cmd("c3", 3),
        lookup_cmd("c2", 4),
    ];
    let result = a.apply(&batch).await.expect("batch");
    assert_eq!(
        result.lookups,
        vec![
            (RequestId(1), id("a")),
            (RequestId(2), None),
            (RequestId(3), None),
            (RequestId(4), id("a")),
        ]
    );
    assert!(result.displaced.is_empty());
}

async fn unregister_is_compare_and_delete(kind: Kind) {
    let server = Server::start(kind);
    let a = node(&server, "a").await;
    let b = node(&server, "b").await;
    a.apply(&[register("dup")]).await.expect("register on a");
    // Registering again on the same node displaces nobody.
    let again = a.apply(&[register("dup")]).await.expect("register again");
    assert!(again.displaced.is_empty());
    // A newer connection with the same id on b displaces a's.
    let result = b.apply(&[register("dup")]).await.expect("register on b");
    assert_eq!(
        result.displaced,
        vec![(ClientId::from("dup"), NodeId::from("a"))]
    );
    // The old connection's disconnect on a must not delete b's entry.
    a.apply(&[unregister("dup")])
        .await
        .expect("stale unregister");
    assert_eq!(lookup(&a, "dup").await, id("b"));
    b.apply(&[unregister("dup")]).await.expect("unregister");
    assert_eq!(lookup(&a, "dup").await, None);
}

async fn dead_node_reads_offline_within_ttl(kind: Kind) {
    let server = Server::start(kind);
    let a = node(&server, "a").await;
    let b = node(&server, "b").await;
    a.apply(&[register("x")]).await.expect("register");
    assert_eq!(lookup(&b, "x").await, id("a"));
    // a stalls (or crashes): no renewals, no leave.
    let died = Instant::now();
    loop {
        b.renew().await.expect("b renews");
        if lookup(&b, "x").await.is_none() {
            break;
        }
        assert!(
            died.elapsed() < TTL + Duration::from_secs(2),
            "a's entry still online {:?} after it died",
            died.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{kind:?}: dead node's client offline after {:?}",
        died.elapsed()
    );
    assert_eq!(ids(&b.nodes().await.expect("nodes")), ["b"]);
    // Taking over the id of a dead node's client displaces nobody.
    let result = b.apply(&[register("x")]).await.expect("register on b");
    assert!(result.displaced.is_empty(), "{result:?}");
    assert_eq!(lookup(&b, "x").await, id("b"));
    // The stalled node learns that its lease is gone, and cannot register until it rejoins.
    assert_eq!(a.renew().await, Err(ClusterError::LeaseExpired));
    assert_eq!(
        a.apply(&[register("y")]).await,
        Err(ClusterError::LeaseExpired)
    );
    a.join().await.expect("rejoin");
    a.apply(&[register("y")])
        .await
        .expect("register after rejoin");
    assert_eq!(lookup(&b, "y").await, id("a"));
}

async fn rejoin_clears_previous_instance(kind: Kind) {
    let server = Server::start(kind);
    let b = node(&server, "b").await;
    let a1 = node(&server, "a").await;
    a1.apply(&[register("p1"), register("p2"), register("p3")])
        .await
        .expect("register");
    b.apply(&[register("kept")]).await.expect("register on b");
    // p3 moved to b meanwhile: a's restart must not touch it.
    b.apply(&[register("p3")]).await.expect("p3 to b");
    drop(a1); // crash
    let a2 = node(&server, "a").await; // restart with the same id, well within the TTL
    for client in ["p1", "p2"] {
        assert_eq!(
            lookup(&b, client).await,
            None,
            "{client} survived a restart"
        );
    }
    assert_eq!(lookup(&b, "p3").await, id("b"));
    assert_eq!(lookup(&b, "kept").await, id("b"));
    assert_eq!(ids(&b.nodes().await.expect("nodes")), ["a", "b"]);
    // The new instance works as usual.
    a2.apply(&[register("p1")]).await.expect("register");
    assert_eq!(lookup(&b, "p1").await, id("a"));
    // restore() re-registers without taking back a client another node holds now.
    let taken = a2
        .restore(&[ClientId::from("p2"), ClientId::from("p3")])
        .await
        .expect("restore");
    assert_eq!(taken, vec![(ClientId::from("p3"), NodeId::from("b"))]);
    assert_eq!(lookup(&b, "p2").await, id("a"));
    assert_eq!(lookup(&b, "p3").await, id("b"));
}

async fn leave_deletes_at_once(kind: Kind) {
    let server = Server::start(kind);
    let a = node(&server, "a").await;
    let b = node(&server, "b").await;
    a.apply(&[register("l1"), register("l2")])
        .await
        .expect("register");
    assert_eq!(lookup(&b, "l1").await, id("a"));
    a.leave().await.expect("leave");
    assert_eq!(lookup(&b, "l1").await, None);
    assert_eq!(lookup(&b, "l2").await, None);
    assert_eq!(ids(&b.nodes().await.expect("nodes")), ["b"]);
    // After leaving, the lease is gone: renewing or registering says so.
    assert_eq!(a.renew().await, Err(ClusterError::LeaseExpired));
    assert_eq!(
        a.apply(&[register("l3")]).await,
        Err(ClusterError::LeaseExpired)
    );
    assert_eq!(lookup(&b, "l3").await, None);
    // Joining again makes the node usable.
    a.join().await.expect("join again");
    a.apply(&[register("l3")])
        .await
        .expect("register after rejoin");
    assert_eq!(lookup(&b, "l3").await, id("a"));
}

async fn nodes_lists_live_nodes_only(kind: Kind) {
    let server = Server::start(kind);
    let a = node(&server, "a").await;
    let b = node(&server, "b").await;
    let c = node(&server, "c").await;
    let nodes = a.nodes().await.expect("nodes");
    assert_eq!(ids(&nodes), ["a", "b", "c"]);
    assert_eq!(nodes[1].addr, "b.test:50051");
    c.leave().await.expect("leave");
    assert_eq!(ids(&a.nodes().await.expect("nodes")), ["a", "b"]);
    // b stops renewing; a keeps renewing.
    drop(b);
    let stopped = Instant::now();
    loop {
        a.renew().await.expect("renew");
        if ids(&a.nodes().await.expect("nodes")) == ["a"] {
            break;
        }
        assert!(
            stopped.elapsed() < TTL + Duration::from_secs(2),
            "b still listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Renewing keeps a node alive past its TTL.
    assert_eq!(ids(&a.nodes().await.expect("nodes")), ["a"]);
}

async fn renew_keeps_a_node_alive(kind: Kind) {
    let server = Server::start(kind);
    let a = node(&server, "a").await;
    let b = node(&server, "b").await;
    a.apply(&[register("steady")]).await.expect("register");
    // Renew as a runtime does, every third of the TTL, for twice the TTL (b renews too).
    let started = Instant::now();
    while started.elapsed() < 2 * TTL {
        tokio::time::sleep(TTL / 3).await;
        a.renew().await.expect("a renews");
        b.renew().await.expect("b renews");
    }
    assert_eq!(lookup(&b, "steady").await, id("a"));
    assert_eq!(ids(&b.nodes().await.expect("nodes")), ["a", "b"]);
    // Renewal counts the node's entries where the backend keeps that count (Redis); b taking
    // one of a's clients takes it out of a's count.
    a.apply(&[register("moved")]).await.expect("register");
    b.apply(&[register("moved")]).await.expect("b takes it");
    let expected = match kind {
        Kind::Redis => Some(1),
        Kind::Etcd => None,
    };
    assert_eq!(a.renew().await.expect("renew").clients, expected);
}

async fn ten_thousand_registers(kind: Kind) {
    let server = Server::start(kind);
    let a = node(&server, "a").await;
    let b = node(&server, "b").await;
    let batch: Vec<RegistryCommand> = (0..10_000)
        .map(|i| register(&format!("client-{i}")))
        .collect();
    let started = Instant::now();
    let result = a.apply(&batch).await.expect("10k registers");
    let elapsed = started.elapsed();
    eprintln!(
        "{kind:?}: 10,000 registers in one apply() took {elapsed:?} ({:.0}/s)",
        10_000.0 / elapsed.as_secs_f64()
    );
    assert!(result.displaced.is_empty());
    let checks: Vec<RegistryCommand> = [0u64, 1, 4_999, 9_999]
        .iter()
        .map(|&i| lookup_cmd(&format!("client-{i}"), i))
        .collect();
    let found = b.apply(&checks).await.expect("lookups");
    assert!(
        found.lookups.iter().all(|(_, n)| n == &id("a")),
        "{found:?}"
    );
    // A burst of disconnects in one batch (etcd counts each nested compare-and-delete
    // against its per-transaction limit).
    let gone: Vec<RegistryCommand> = (0..1_000)
        .map(|i| RegistryCommand::Unregister {
            client: format!("client-{i}").into(),
        })
        .collect();
    a.apply(&gone)
        .await
        .expect("1,000 unregisters in one batch");
    let found = b.apply(&checks[..1]).await.expect("lookups");
    assert!(found.lookups.iter().all(|(_, n)| n.is_none()), "{found:?}");
    // Leaving clears the rest.
    a.leave().await.expect("leave");
    let found = b.apply(&checks).await.expect("lookups");
    assert!(found.lookups.iter().all(|(_, n)| n.is_none()), "{found:?}");
}

/// Asserts `call` failed with a cluster error within the op timeout (plus scheduling slack).
fn assert_fast_failure<T: std::fmt::Debug>(
    what: &str,
    started: Instant,
    result: Result<T, ClusterError>,
) {
    let elapsed = started.elapsed();
    if let Err(e) = &result {
        eprintln!("{what} failed after {elapsed:?}: {e}");
    }
    assert!(
        result.is_err(),
        "{what} succeeded with the server down: {result:?}"
    );
    assert!(
        elapsed < OP + Duration::from_secs(1),
        "{what} took {elapsed:?} to fail"
    );
}

async fn server_down_fails_fast_then_recovers(kind: Kind) {
    let mut server = Server::start(kind);
    let a = node(&server, "a").await;
    a.apply(&[register("r1")]).await.expect("register");
    server.stop();

    let t = Instant::now();
    assert_fast_failure(
        "apply",
        t,
        a.apply(&[register("r2"), lookup_cmd("r1", 1)]).await,
    );
    let t = Instant::now();
    assert_fast_failure("renew", t, a.renew().await);
    let t = Instant::now();
    assert_fast_failure("nodes", t, a.nodes().await);
    let t = Instant::now();
    assert_fast_failure("join", t, a.join().await);
    let t = Instant::now();
    assert_fast_failure(
        "connect",
        t,
        Registry::connect(&server.spec(), config("z"))
            .await
            .map(|_| ()),
    );

    server.restart();
    // The caller re-joins once calls succeed again, then re-registers its clients.
    let restarted = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match a.join().await {
            Ok(()) => break,
            Err(e) => {
                assert!(
                    restarted.elapsed() < Duration::from_secs(10),
                    "join keeps failing: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    eprintln!(
        "{kind:?}: join after restart succeeded after {attempts} attempt(s), {:?}",
        restarted.elapsed()
    );
    a.apply(&[register("r1"), register("r2")])
        .await
        .expect("re-register");
    let b = node(&server, "b").await;
    assert_eq!(lookup(&b, "r1").await, id("a"));
    assert_eq!(lookup(&b, "r2").await, id("a"));
    a.renew().await.expect("renew after recovery");
}

async fn hung_server_times_out_then_recovers(kind: Kind) {
    let server = Server::start(kind);
    let a = node(&server, "a").await;
    a.apply(&[register("h1")]).await.expect("register");
    server.freeze();
    let t = Instant::now();
    let result = a.apply(&[register("h2"), lookup_cmd("h1", 1)]).await;
    assert_fast_failure("apply", t, result);
    let t = Instant::now();
    assert_fast_failure("renew", t, a.renew().await);
    server.thaw();
    // The lease may have run out meanwhile: the caller joins again and re-registers.
    let thawed = Instant::now();
    while let Err(e) = a.join().await {
        assert!(
            thawed.elapsed() < Duration::from_secs(10),
            "join keeps failing: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.apply(&[register("h1"), register("h2")])
        .await
        .expect("re-register");
    assert_eq!(lookup(&a, "h2").await, id("a"));
}

async fn memory_spec_has_no_backend(_kind: Kind) {
    let err = Registry::connect(&RegistrySpec::Memory, config("m"))
        .await
        .err();
    assert_eq!(
        err,
        Some(ClusterError::Protocol(
            "memory registry has no backend".into()
        ))
    );
}

macro_rules! for_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Kind::Redis).await
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Kind::Etcd).await
                }
            )*
        }
    };
}

for_both_backends!(
    register_lookup_unregister,
    unregister_is_compare_and_delete,
    dead_node_reads_offline_within_ttl,
    rejoin_clears_previous_instance,
    leave_deletes_at_once,
    nodes_lists_live_nodes_only,
    renew_keeps_a_node_alive,
    ten_thousand_registers,
    server_down_fails_fast_then_recovers,
    hung_server_times_out_then_recovers,
);

#[tokio::test]
async fn memory_spec_is_refused() {
    memory_spec_has_no_backend(Kind::Redis).await;
}

#[tokio::test]
async fn redis_errors_never_show_the_password() {
    // Nothing listens on port 1: the error must not echo the URL's credentials.
    let spec = RegistrySpec::Redis("redis://admin:hunter2@127.0.0.1:1".into());
    let err = Registry::connect(&spec, config("p"))
        .await
        .err()
        .expect("no server on port 1");
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("hunter2") && !text.contains("admin"),
        "{text}"
    );
}
