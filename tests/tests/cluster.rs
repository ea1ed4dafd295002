//! Three-node clusters against a real Redis and a real etcd, for every registry and bus.

use std::time::Duration;

use hubbub_tests::cluster::{Bus, Cluster, Registry};
use hubbub_tests::{eventually, http, post, Client, Ended};
use serde_json::{json, Value};

async fn scenario_routing(registry: Registry, bus: Bus) {
    let cluster = Cluster::start(registry, bus).await;
    // One client per node, plus a second connection of user "ann" on node 2.
    let (mut a, _) = Client::connect(&cluster.url(0, "/ws?id=a&user=ann")).await;
    let (mut b, _) = Client::connect(&cluster.url(1, "/ws?id=b&user=bo")).await;
    let (mut c, _) = Client::connect(&cluster.url(2, "/ws?id=c&user=ann")).await;
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        cluster.wait_online((i + 1) % 3, id, &format!("n{i}")).await;
    }

    // Emit by id across nodes: client a (node 0) to c (node 2), and the API of node 1 to a.
    a.send(json!({"type":"emit","to":"c","data":"hi c"})).await;
    assert_eq!(
        c.recv().await,
        json!({"type":"message","from":"a","data":"hi c"})
    );
    assert_eq!(
        cluster.api(1, "/api/emit", r#"{"to":"a","data":1}"#).await,
        json!({"delivered":1})
    );
    assert_eq!(a.recv().await["data"], 1);

    // emit_user reaches ann on node 0 and node 2.
    assert_eq!(
        cluster
            .api(1, "/api/emit_user", r#"{"user":"ann","data":"u"}"#)
            .await,
        json!({"delivered":2})
    );
    assert_eq!(a.recv().await["data"], "u");
    assert_eq!(c.recv().await["data"], "u");

    // Room publish: members on every node get it exactly once.
    for client in [&mut a, &mut b, &mut c] {
        client.send(json!({"type":"join","room":"r","ref":1})).await;
        assert_eq!(client.recv().await["type"], "ack");
    }
    // Room interest (gRPC bus) or subscriptions (Redis bus) travel asynchronously: probe
    // until every member received one, then drain.
    let mut got = [false; 3];
    for _ in 0..50 {
        cluster
            .api(1, "/api/publish", r#"{"room":"r","data":"probe"}"#)
            .await;
        for (i, client) in [&mut a, &mut b, &mut c].into_iter().enumerate() {
            while let Some(m) = client.try_recv(Duration::from_millis(100)).await {
                got[i] |= m["data"] == "probe";
            }
        }
        if got == [true; 3] {
            break;
        }
    }
    assert_eq!(got, [true; 3], "room membership reached every node");
    for client in [&mut a, &mut b, &mut c] {
        while client.try_recv(Duration::from_millis(300)).await.is_some() {}
    }
    b.send(json!({"type":"publish","room":"r","data":{"n":7}}))
        .await;
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(
            client.recv().await,
            json!({"type":"message","room":"r","from":"b","data":{"n":7}})
        );
        assert!(
            client.silent_for(Duration::from_millis(300)).await,
            "exactly once"
        );
    }

    // Broadcast from the API of any node reaches all three. (Over the Redis bus the count
    // covers the answering node only: pub/sub returns no counts.)
    let expected = match bus {
        Bus::Grpc => 3,
        Bus::Redis => 1,
    };
    assert_eq!(
        cluster.api(2, "/api/broadcast", r#"{"data":"all"}"#).await,
        json!({ "delivered": expected })
    );
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(client.recv().await["data"], "all");
    }

    // Online true/false from any node.
    assert_eq!(
        cluster.online(0, "b").await,
        json!({"online":true,"node":"n1"})
    );
    assert_eq!(cluster.online(2, "nobody").await, json!({"online":false}));

    // Disconnect of a remote client.
    assert_eq!(
        cluster.api(0, "/api/disconnect", r#"{"to":"b"}"#).await,
        json!({"disconnected":true})
    );
    assert_eq!(b.ended().await, Ended::Close(4003));
    let addr2 = cluster.nodes[2].addr;
    assert!(
        eventually(Duration::from_secs(5), || async move {
            http(addr2, "GET", "/api/online/b", None, &[]).await.json() == json!({"online":false})
        })
        .await
    );

    // Duplicate id across nodes: the older connection (node 0) is closed with 4000, and its
    // close does not delete the newer registration (a defect of the model library).
    let (mut newer, _) = Client::connect(&cluster.url(1, "/ws?id=a")).await;
    assert_eq!(a.ended().await, Ended::Close(4000));
    cluster.wait_online(2, "a", "n1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        cluster.online(2, "a").await,
        json!({"online":true,"node":"n1"})
    );
    assert_eq!(
        cluster
            .api(2, "/api/emit", r#"{"to":"a","data":"to newer"}"#)
            .await,
        json!({"delivered":1})
    );
    assert_eq!(newer.recv().await["data"], "to newer");
}

#[tokio::test]
async fn redis_registry_grpc_bus() {
    scenario_routing(Registry::Redis, Bus::Grpc).await;
}

#[tokio::test]
async fn redis_registry_redis_bus() {
    scenario_routing(Registry::Redis, Bus::Redis).await;
}

#[tokio::test]
async fn etcd_registry_grpc_bus() {
    scenario_routing(Registry::Etcd, Bus::Grpc).await;
}

#[tokio::test]
async fn etcd_registry_redis_bus() {
    scenario_routing(Registry::Etcd, Bus::Redis).await;
}

async fn scenario_node_crash(registry: Registry) {
    let mut cluster = Cluster::start(registry, Bus::Grpc).await;
    let (_doomed, _) = Client::connect(&cluster.url(2, "/ws?id=doomed")).await;
    let (mut live, _) = Client::connect(&cluster.url(1, "/ws?id=live")).await;
    cluster.wait_online(0, "doomed", "n2").await;
    cluster.wait_online(0, "live", "n1").await;
    cluster.nodes[2].kill9();
    // Within the lease TTL (2 s) plus a poll, the crashed node's client reads offline:
    // `false`, never an error (a defect of the model library).
    let addr0 = cluster.nodes[0].addr;
    let offline = eventually(Duration::from_secs(6), || async move {
        http(addr0, "GET", "/api/online/doomed", None, &[])
            .await
            .json()
            == json!({"online":false})
    })
    .await;
    assert!(
        offline,
        "a crashed node's client reads offline within the TTL"
    );
    assert_eq!(
        cluster
            .api(0, "/api/emit", r#"{"to":"live","data":"ok"}"#)
            .await,
        json!({"delivered":1})
    );
    assert_eq!(live.recv().await["data"], "ok");
    assert_eq!(
        cluster.api(0, "/api/broadcast", r#"{"data":"b"}"#).await["delivered"],
        1
    );
}

#[tokio::test]
async fn crashed_node_reads_offline_redis() {
    scenario_node_crash(Registry::Redis).await;
}

#[tokio::test]
async fn crashed_node_reads_offline_etcd() {
    scenario_node_crash(Registry::Etcd).await;
}

#[tokio::test]
async fn stopped_peer_times_out_and_others_keep_receiving() {
    let cluster = Cluster::start(Registry::Redis, Bus::Grpc).await;
    let (mut a, _) = Client::connect(&cluster.url(0, "/ws/r?id=a")).await;
    let (_frozen_client, _) = Client::connect(&cluster.url(2, "/ws/r?id=f")).await;
    cluster.wait_online(1, "a", "n0").await;
    cluster.wait_online(1, "f", "n2").await;
    let addr1 = cluster.nodes[1].addr;
    assert!(
        eventually(Duration::from_secs(10), || async move {
            post(addr1, "/api/publish", r#"{"room":"r","data":0}"#)
                .await
                .json()
                == json!({"delivered":2})
        })
        .await
    );
    while a.try_recv(Duration::from_millis(200)).await.is_some() {}
    cluster.nodes[2].signal("STOP");
    let started = std::time::Instant::now();
    let reply = cluster
        .api(1, "/api/publish", r#"{"room":"r","data":"while frozen"}"#)
        .await;
    assert_eq!(reply, json!({"delivered":1}), "answered with what arrived");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the remote timeout"
    );
    assert_eq!(
        a.recv().await["data"],
        "while frozen",
        "the live peer got it"
    );
    cluster.nodes[2].signal("CONT");
}

async fn scenario_backend_restart(registry: Registry, bus: Bus) {
    let mut cluster = Cluster::start(registry, bus).await;
    let (mut a, _) = Client::connect(&cluster.url(0, "/ws/r?id=a")).await;
    let (mut b, _) = Client::connect(&cluster.url(1, "/ws/r?id=b")).await;
    cluster.wait_online(2, "a", "n0").await;
    cluster.wait_online(2, "b", "n1").await;
    match registry {
        Registry::Redis => {
            let redis = cluster.redis.as_mut().expect("redis");
            redis.stop();
        }
        Registry::Etcd => {
            let etcd = cluster.etcd.as_mut().expect("etcd");
            etcd.stop();
            if let Some(redis) = cluster.redis.as_mut() {
                redis.stop();
            }
        }
    }
    let addr0 = cluster.nodes[0].addr;
    assert!(
        eventually(Duration::from_secs(10), || async move {
            http(addr0, "GET", "/healthz", None, &[]).await.status == 503
        })
        .await,
        "health reports degraded while the backend is down"
    );
    // Local delivery goes on.
    assert_eq!(
        cluster
            .api(0, "/api/emit", r#"{"to":"a","data":"local"}"#)
            .await,
        json!({"delivered":1})
    );
    assert_eq!(a.recv().await["data"], "local");
    if let Some(redis) = cluster.redis.as_mut() {
        redis.restart();
    }
    if let Some(etcd) = cluster.etcd.as_mut() {
        etcd.restart();
    }
    for node in &cluster.nodes {
        let addr = node.addr;
        assert!(
            eventually(Duration::from_secs(20), || async move {
                http(addr, "GET", "/healthz", None, &[]).await.status == 200
            })
            .await,
            "health back to ok without help"
        );
    }
    // The registry was restored by the nodes themselves, and delivery resumes.
    cluster.wait_online(2, "a", "n0").await;
    cluster.wait_online(2, "b", "n1").await;
    // Room publishes reach both nodes again (interest or subscriptions restored).
    let mut got = [false; 2];
    for _ in 0..100 {
        cluster
            .api(2, "/api/publish", r#"{"room":"r","data":"back"}"#)
            .await;
        for (i, client) in [&mut a, &mut b].into_iter().enumerate() {
            while let Some(m) = client.try_recv(Duration::from_millis(100)).await {
                got[i] |= m["data"] == "back";
            }
        }
        if got == [true; 2] {
            break;
        }
    }
    assert_eq!(got, [true; 2], "room publishes reach both nodes again");
    // Emit by id across nodes works again (peers re-learn each other within a poll).
    let addr2 = cluster.nodes[2].addr;
    assert!(
        eventually(Duration::from_secs(5), || async move {
            post(addr2, "/api/emit", r#"{"to":"b","data":"x"}"#)
                .await
                .json()
                == json!({"delivered":1})
        })
        .await,
        "emit across nodes resumes"
    );
}

#[tokio::test]
async fn redis_restart_recovers_registry_and_bus() {
    scenario_backend_restart(Registry::Redis, Bus::Redis).await;
}

#[tokio::test]
async fn etcd_restart_recovers_registry() {
    scenario_backend_restart(Registry::Etcd, Bus::Grpc).await;
}

#[tokio::test]
async fn model_library_defects_are_absent() {
    let cluster = Cluster::start(Registry::Redis, Bus::Grpc).await;
    let (mut a, _) = Client::connect(&cluster.url(0, "/ws?id=a")).await;
    let (mut b, _) = Client::connect(&cluster.url(1, "/ws?id=b")).await;
    cluster.wait_online(2, "a", "n0").await;
    cluster.wait_online(2, "b", "n1").await;

    // Cross-node broadcast does not read the registry (O(nodes), not O(connections)).
    let registry_ops = |v: Value| v["cluster"]["registry_ops"].as_u64().unwrap_or(0);
    let before = registry_ops(
        http(cluster.nodes[2].addr, "GET", "/stats", None, &[])
            .await
            .json(),
    );
    for _ in 0..20 {
        cluster.api(2, "/api/broadcast", r#"{"data":0}"#).await;
    }
    let after = registry_ops(
        http(cluster.nodes[2].addr, "GET", "/stats", None, &[])
            .await
            .json(),
    );
    assert_eq!(before, after, "broadcasts issue no registry operations");

    // Messages are separate frames, never joined with newlines; payloads with newlines and
    // binary-looking bytes survive.
    while a.try_recv(Duration::from_millis(200)).await.is_some() {}
    for i in 0..50 {
        let body = json!({"to":"a","data":{"i":i,"text":"line1\nline2\u{0}\u{1}"}}).to_string();
        cluster.api(1, "/api/emit", &body).await;
    }
    for i in 0..50 {
        let m = a.recv().await;
        assert_eq!(m["data"], json!({"i":i,"text":"line1\nline2\u{0}\u{1}"}));
    }

    // A slow consumer during a broadcast is closed alone; live connections stay registered.
    use tokio::io::AsyncWriteExt;
    let mut slow = tokio::net::TcpStream::connect(cluster.nodes[0].addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /ws?id=slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.expect("write");
    cluster.wait_online(2, "slow", "n0").await;
    let big = format!(r#"{{"data":"{}"}}"#, "z".repeat(60_000));
    let addr0 = cluster.nodes[0].addr;
    let mut closed = false;
    for _ in 0..600 {
        cluster.api(2, "/api/broadcast", &big).await;
        a.recv().await;
        b.recv().await;
        if http(addr0, "GET", "/stats", None, &[]).await.json()["slow_consumer_closes"] == 1 {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow client was closed");
    assert_eq!(
        cluster.online(1, "a").await,
        json!({"online":true,"node":"n0"}),
        "a live neighbour stays registered"
    );
    drop(slow);

    // Disconnecting twice and closing while messages flow never crash a node.
    assert_eq!(
        cluster.api(2, "/api/disconnect", r#"{"to":"b"}"#).await,
        json!({"disconnected":true})
    );
    assert_eq!(
        cluster.api(2, "/api/disconnect", r#"{"to":"b"}"#).await["disconnected"],
        false
    );
    a.close().await;
    for node in &cluster.nodes {
        assert_eq!(
            http(node.addr, "GET", "/healthz", None, &[]).await.status,
            200
        );
    }
}

#[tokio::test]
async fn producer_commands_over_grpc() {
    let cluster = Cluster::start(Registry::Redis, Bus::Grpc).await;
    let (mut a, _) = Client::connect(&cluster.url(0, "/ws/room1?id=a&user=u")).await;
    cluster.wait_online(1, "a", "n0").await;
    let bin = hubbub_tests::hubbub_bin();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&bin)
            .args(args)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let server = cluster.grpc[1].clone();
    let s = server.as_str();
    assert_eq!(
        run(&["emit", "--server", s, "a", r#""grpc""#]).1,
        r#"{"delivered":1}"#
    );
    assert_eq!(a.recv().await["data"], "grpc");
    assert_eq!(
        run(&["emit-user", "--server", s, "u", "1"]).1,
        r#"{"delivered":1}"#
    );
    assert_eq!(
        run(&["publish", "--server", s, "room1", "2"]).1,
        r#"{"delivered":1}"#
    );
    assert_eq!(
        run(&["broadcast", "--server", s, "3"]).1,
        r#"{"delivered":1}"#
    );
    assert_eq!(
        run(&["online", "--server", s, "a"]).1,
        r#"{"node":"n0","online":true}"#
    );
    assert_eq!(
        run(&["online", "--server", s, "zz"]).1,
        r#"{"online":false}"#
    );
    for expected in [json!("grpc"), json!(1), json!(2), json!(3)].iter().skip(1) {
        assert_eq!(&a.recv().await["data"], expected);
    }
    let (code, _, stderr) = run(&["emit", "--server", s, "a", "not json"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("JSON"), "{stderr}");
    let (code, _, stderr) = run(&["online", "--server", "127.0.0.1:1", "a"]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
