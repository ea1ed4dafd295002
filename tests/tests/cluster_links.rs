//! Peer links that never stall, and the cluster's loss windows closed: large messages,
//! links cut and restored, nodes met before the membership poll, a registry that lost or
//! gave away this node's entries.

use std::time::Duration;

use hubbub_tests::cluster::{Bus, Cluster, Registry};
use hubbub_tests::{eventually, http, Client, Ended};
use serde_json::{json, Value};

/// Publishes `probe` to `room` from node `from`'s API until `client` receives it (room
/// interest travels asynchronously), then drains what else arrived; whether it arrived.
async fn reaches(cluster: &Cluster, from: usize, room: &str, client: &mut Client) -> bool {
    let body = json!({"room": room, "data": "probe"}).to_string();
    for _ in 0..100 {
        cluster.api(from, "/api/publish", &body).await;
        while let Some(m) = client.try_recv(Duration::from_millis(100)).await {
            if m["data"] == "probe" {
                while client.try_recv(Duration::from_millis(200)).await.is_some() {}
                return true;
            }
        }
    }
    false
}

/// A counter of node `node`'s cluster plumbing (`/stats` → `cluster`).
async fn counter(cluster: &Cluster, node: usize, name: &str) -> u64 {
    cluster.stats(node).await["cluster"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("cluster.{name} in /stats"))
}

/// The next message that is not a probe.
async fn next_data(client: &mut Client) -> Value {
    loop {
        let m = client.recv().await;
        if m["data"] != "probe" {
            return m;
        }
    }
}

/// A client publishes a message above gRPC's customary 4 MiB (the nodes accept it: their
/// send queues hold it); it crosses the link, and normal delivery goes on after it.
#[tokio::test]
async fn four_mib_publish_crosses_and_the_link_keeps_delivering() {
    let limits = ["--max-message-size", "8MiB", "--send-queue-bytes", "16MiB"];
    let cluster = Cluster::start_with(Registry::Redis, Bus::Grpc, 2, &limits).await;
    let (mut a, _) = Client::connect(&cluster.url(0, "/ws/big?id=a")).await;
    let (mut b, _) = Client::connect(&cluster.url(1, "/ws/big?id=b")).await;
    assert!(reaches(&cluster, 0, "big", &mut b).await, "room interest");
    while a.try_recv(Duration::from_millis(200)).await.is_some() {}

    let big = "x".repeat(4 * 1024 * 1024 + 512);
    a.send(json!({"type":"publish","room":"big","data":big}))
        .await;
    let got = next_data(&mut b).await;
    assert_eq!(got["data"].as_str().map(str::len), Some(big.len()));
    for i in 0..20 {
        a.send(json!({"type":"publish","room":"big","data":i}))
            .await;
    }
    for i in 0..20 {
        assert_eq!(
            next_data(&mut b).await["data"],
            i,
            "normal delivery after it"
        );
    }
    assert_eq!(counter(&cluster, 0, "peer_link_resets").await, 0);
    assert_eq!(counter(&cluster, 1, "peer_decode_errors").await, 0);
}

/// A node whose peer cannot decode what it sent (that peer has the default limits) gets its
/// link closed by the peer, makes a new one, and normal delivery resumes: nothing stalls.
#[tokio::test]
async fn a_peer_that_cannot_decode_closes_the_link_and_it_comes_back() {
    let mut cluster = Cluster::start_with(Registry::Redis, Bus::Grpc, 1, &[]).await;
    cluster.add_node(&["--max-message-size", "8MiB", "--send-queue-bytes", "16MiB"]);
    cluster.wait_formed(2).await;
    let (mut a, _) = Client::connect(&cluster.url(1, "/ws/big?id=a")).await;
    let (mut b, _) = Client::connect(&cluster.url(0, "/ws/big?id=b")).await;
    assert!(reaches(&cluster, 1, "big", &mut b).await, "room interest");

    let big = "x".repeat(5 * 1024 * 1024);
    a.send(json!({"type":"publish","room":"big","data":big}))
        .await;
    // Later publishes reach the peer again (the new link may need a moment).
    assert!(
        reaches(&cluster, 1, "big", &mut b).await,
        "delivery resumes"
    );
    a.send(json!({"type":"publish","room":"big","data":"after"}))
        .await;
    assert_eq!(next_data(&mut b).await["data"], "after");
    assert_eq!(
        counter(&cluster, 0, "peer_decode_errors").await,
        1,
        "the receiver counted the envelope it could not decode"
    );
    assert!(
        counter(&cluster, 1, "peer_link_resets").await >= 1,
        "the sender saw the link closed and made it again"
    );
}

/// Loss window 1: a lookup naming a node this node has not met yet (it joined after the
/// last membership poll) resolves that node at once; the first emit reaches its client.
async fn scenario_emit_to_a_node_just_joined(registry: Registry) {
    let mut cluster = Cluster::start_with(registry, Bus::Grpc, 2, &["--lease-ttl", "10s"]).await;
    let fresh = cluster.add_node(&["--lease-ttl", "10s"]);
    // n2 joined the registry (its health is ok once it did), so carol's registration goes
    // out as a batch of its own that n2's registry_ops counts.
    assert!(
        eventually(Duration::from_secs(10), || async {
            cluster.stats(fresh).await["status"] == "ok"
        })
        .await,
        "n2 joined"
    );
    let joins = counter(&cluster, fresh, "registry_joins").await;
    let ops = counter(&cluster, fresh, "registry_ops").await;
    let (mut carol, _) = Client::connect(&cluster.url(fresh, "/ws?id=carol")).await;
    // Carol's registration reached the registry (asked of her own node, which answers
    // from the registry's batch count: asking another node would make it meet n2). On a
    // loaded machine n2 may have lost and rejoined the registry meanwhile, which writes
    // carol's entry as part of the rejoin (counted in registry_joins, not registry_ops).
    assert!(
        eventually(Duration::from_secs(30), || async {
            counter(&cluster, fresh, "registry_ops").await > ops
                || counter(&cluster, fresh, "registry_joins").await > joins
        })
        .await,
        "carol registered"
    );
    assert_eq!(
        cluster
            .api(0, "/api/emit", r#"{"to":"carol","data":"first"}"#)
            .await,
        json!({"delivered":1}),
        "the first emit to a client of a node that just joined is delivered"
    );
    assert_eq!(carol.recv().await["data"], "first");
}

#[tokio::test]
async fn emit_to_a_node_just_joined_redis() {
    scenario_emit_to_a_node_just_joined(Registry::Redis).await;
}

#[tokio::test]
async fn emit_to_a_node_just_joined_etcd() {
    scenario_emit_to_a_node_just_joined(Registry::Etcd).await;
}

/// A TCP proxy written for the test: forwards every connection on its port to `target`.
/// [`Proxy::cut`] closes the forwarded connections and stops listening (the port refuses
/// connections); [`Proxy::restore`] listens again on the same port.
struct Proxy {
    port: u16,
    target: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(port: u16, target: &str) -> Proxy {
        let proxy = Proxy {
            port,
            target: target.to_owned(),
            tasks: Default::default(),
        };
        proxy.restore().await;
        proxy
    }

    async fn restore(&self) {
        let mut listener = None;
        for _ in 0..100 {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let listener = listener.expect("the proxy port can be bound again");
        let target = self.target.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let forward = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut tasks) = tasks.lock() {
                    tasks.push(forward);
                }
            }
        });
        self.tasks.lock().expect("tasks").push(accept);
    }

    fn cut(&self) {
        for task in self.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Loss window 2: room interest lost while a link was cut heals when the link is back
/// (and by the periodic digest): the room's publishes reach the node that joined it.
#[tokio::test]
async fn interest_lost_during_a_link_cut_heals() {
    let mut cluster = Cluster::start_with(Registry::Redis, Bus::Grpc, 0, &[]).await;
    let port = hubbub_tests::free_port();
    let advertise = format!("127.0.0.1:{port}");
    cluster.add_node(&["--advertise", &advertise]);
    let proxy = Proxy::start(port, &cluster.grpc[0]).await;
    cluster.add_node(&[]);
    cluster.wait_formed(2).await;

    let (mut b, _) = Client::connect(&cluster.url(1, "/ws/early?id=b")).await;
    assert!(reaches(&cluster, 0, "early", &mut b).await, "room interest");

    // Node 1 reaches node 0 only through the proxy: cut it while b joins a room.
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.send(json!({"type":"join","room":"late","ref":1})).await;
    assert_eq!(b.recv().await["type"], "ack");
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore().await;

    assert!(
        reaches(&cluster, 0, "late", &mut b).await,
        "after the link is back, publishes to the room joined during the cut arrive"
    );
    assert!(
        reaches(&cluster, 0, "early", &mut b).await,
        "and the room joined before"
    );
    assert!(counter(&cluster, 1, "peer_link_resets").await >= 1);
}

/// Loss window 3, Redis: renewal notices that the registry lost this node's client entries
/// (a server restored from an older snapshot, entries deleted behind its back, a flush) and
/// writes them again within a renewal period.
#[tokio::test]
async fn entries_the_registry_lost_are_written_again() {
    let cluster = Cluster::start_with(Registry::Redis, Bus::Grpc, 2, &[]).await;
    let (_c1, _) = Client::connect(&cluster.url(0, "/ws?id=c1")).await;
    let (mut c2, _) = Client::connect(&cluster.url(0, "/ws?id=c2")).await;
    cluster.wait_online(1, "c1", "n0").await;
    cluster.wait_online(1, "c2", "n0").await;
    let redis = cluster.redis.as_ref().expect("redis");
    // What a restore from an older snapshot leaves behind: c2's entry and its place in
    // n0's client set are gone, n0's lease is not.
    assert_eq!(redis.raw(b"DEL hubbub:client:c2\r\n"), b":1\r\n");
    assert_eq!(redis.raw(b"SREM hubbub:node-clients:n0 c2\r\n"), b":1\r\n");
    cluster.wait_online(1, "c2", "n0").await;
    assert!(counter(&cluster, 0, "registry_rewrites").await >= 1);
    assert_eq!(
        cluster
            .api(1, "/api/emit", r#"{"to":"c2","data":"back"}"#)
            .await,
        json!({"delivered":1})
    );
    assert_eq!(c2.recv().await["data"], "back");

    // A flush takes the lease too: the node joins again and restores both.
    assert_eq!(redis.raw(b"FLUSHALL\r\n"), b"+OK\r\n");
    cluster.wait_online(1, "c1", "n0").await;
    cluster.wait_online(1, "c2", "n0").await;
}

/// Loss window 3: a node paused past its lease (a GC pause, a VM migration) comes back with
/// restore semantics: a client that reconnected elsewhere meanwhile stays there, and the
/// paused node closes its own, older connection with 4000.
async fn scenario_paused_past_the_lease(registry: Registry) {
    let cluster = Cluster::start(registry, Bus::Grpc).await;
    let (mut older, _) = Client::connect(&cluster.url(0, "/ws?id=x")).await;
    cluster.wait_online(2, "x", "n0").await;
    cluster.nodes[0].signal("STOP");
    assert!(
        eventually(Duration::from_secs(15), || async {
            cluster.online(2, "x").await == json!({"online":false})
        })
        .await,
        "the paused node's lease expired"
    );
    let (mut newer, _) = Client::connect(&cluster.url(1, "/ws?id=x")).await;
    cluster.wait_online(2, "x", "n1").await;
    cluster.nodes[0].signal("CONT");

    assert_eq!(
        older.ended().await,
        Ended::Close(4000),
        "the paused node closes its older connection as replaced"
    );
    let addr0 = cluster.nodes[0].addr;
    assert!(
        eventually(Duration::from_secs(15), || async move {
            http(addr0, "GET", "/healthz", None, &[]).await.status == 200
        })
        .await,
        "the paused node joined again"
    );
    assert_eq!(
        cluster.online(2, "x").await,
        json!({"online":true,"node":"n1"}),
        "the registry still points at the newer connection"
    );
    assert_eq!(
        cluster
            .api(2, "/api/emit", r#"{"to":"x","data":"still here"}"#)
            .await,
        json!({"delivered":1})
    );
    assert_eq!(newer.recv().await["data"], "still here");
}

#[tokio::test]
async fn paused_past_the_lease_redis() {
    scenario_paused_past_the_lease(Registry::Redis).await;
}

#[tokio::test]
async fn paused_past_the_lease_etcd() {
    scenario_paused_past_the_lease(Registry::Etcd).await;
}

/// Loss window 3, etcd: an etcd restored from an older snapshot while the node's lease
/// lived (simulated: a client entry and the node's write generation deleted, as a snapshot
/// taken before they were written would leave it) is noticed at the next renewal, and the
/// node writes its entries again.
#[tokio::test]
async fn entries_an_etcd_rollback_lost_are_written_again() {
    use base64::Engine as _;
    let cluster = Cluster::start_with(Registry::Etcd, Bus::Grpc, 2, &[]).await;
    let (mut c1, _) = Client::connect(&cluster.url(0, "/ws?id=c1")).await;
    cluster.wait_online(1, "c1", "n0").await;
    let etcd = cluster.etcd.as_ref().expect("etcd");
    let addr: std::net::SocketAddr = etcd.endpoint().parse().expect("etcd address");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut deleted = Vec::new();
    for key in ["/hubbub/clients/c1", "/hubbub/generation/n0"] {
        let body = json!({ "key": b64(key) }).to_string();
        let reply = http(addr, "POST", "/v3/kv/deleterange", Some(&body), &[]).await;
        deleted.push(reply.json()["deleted"] == "1");
    }
    assert!(deleted[0], "c1's entry was there and is gone");
    cluster.wait_online(1, "c1", "n0").await;
    assert!(counter(&cluster, 0, "registry_rewrites").await >= 1);
    assert_eq!(
        cluster
            .api(1, "/api/emit", r#"{"to":"c1","data":"back"}"#)
            .await,
        json!({"delivered":1})
    );
    assert_eq!(c1.recv().await["data"], "back");
}
