//! Presence with the real binary: who is in a room and how many, over HTTP, gRPC and the
//! CLI, member notifications, on one node and on three nodes (Redis and etcd registries,
//! both buses), and a node killed with SIGKILL whose members leave presence.

use std::process::Command;
use std::time::Duration;

use hubbub_tests::cluster::{Bus, Cluster, Registry};
use hubbub_tests::{eventually, http, hubbub_bin, Client, TestNode};
use serde_json::{json, Value};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let reply = http(addr, "GET", path, None, &[]).await;
    (reply.status, reply.json())
}

async fn join(client: &mut Client, room: &str) {
    client
        .send(json!({"type":"join","room":room,"ref":"j"}))
        .await;
    let ack = client.recv().await;
    assert_eq!(ack, json!({"type":"ack","ref":"j"}), "join of {room}");
}

/// Reads and drops whatever arrives until the client is quiet for a moment.
async fn drain(client: &mut Client) {
    while client.try_recv(Duration::from_millis(300)).await.is_some() {}
}

/// The next frame, which must be a presence notification.
async fn presence_frame(client: &mut Client) -> Value {
    let frame = client.recv().await;
    assert_eq!(frame["type"], "presence", "{frame}");
    frame
}

#[tokio::test]
async fn one_node_lists_counts_and_notifies() {
    let node = TestNode::start(&["--presence-notify", "chat:*,lobby"]);
    let (mut a, _) = Client::connect(&node.ws_url("/ws?id=a&user=ann")).await;
    let (mut b, _) = Client::connect(&node.ws_url("/ws?id=b&user=ann")).await;
    let (mut c, _) = Client::connect(&node.ws_url("/ws?id=c&user=bo")).await;
    let (mut d, _) = Client::connect(&node.ws_url("/ws?id=d")).await;

    // a joins first: it hears of its own join, then of everyone else's.
    join(&mut a, "chat:1").await;
    assert_eq!(
        presence_frame(&mut a).await,
        json!({"type":"presence","room":"chat:1","join":{"id":"a","user":"ann"}})
    );
    for (client, id) in [(&mut b, "b"), (&mut c, "c"), (&mut d, "d")] {
        join(client, "chat:1").await;
        let seen = presence_frame(&mut a).await;
        assert_eq!(seen["join"]["id"], id, "{seen}");
    }
    assert_eq!(
        presence_frame(&mut b).await,
        json!({"type":"presence","room":"chat:1","join":{"id":"b","user":"ann"}})
    );

    let (status, count) = get(node.addr, "/api/presence/chat:1/count").await;
    assert_eq!(status, 200);
    assert_eq!(count, json!({"clients":4,"users":2}));
    let (_, list) = get(node.addr, "/api/presence/chat%3A1").await;
    assert_eq!(
        list,
        json!({"clients":[
            {"id":"a","user":"ann"},{"id":"b","user":"ann"},
            {"id":"c","user":"bo"},{"id":"d","user":null}
        ]})
    );

    // d goes away (its socket closes): the room hears it leave, the counts follow.
    d.close().await;
    assert_eq!(
        presence_frame(&mut a).await,
        json!({"type":"presence","room":"chat:1","leave":{"id":"d"}})
    );
    assert_eq!(
        get(node.addr, "/api/presence/chat:1/count").await.1,
        json!({"clients":3,"users":2})
    );
    // One of ann's two connections leaves: still two users.
    b.send(json!({"type":"leave","room":"chat:1"})).await;
    assert_eq!(presence_frame(&mut a).await["leave"]["id"], "b");
    assert_eq!(
        get(node.addr, "/api/presence/chat:1/count").await.1,
        json!({"clients":2,"users":2})
    );

    // A room without notifications: members hear nothing, presence still counts.
    drain(&mut c).await;
    join(&mut a, "quiet").await;
    join(&mut c, "quiet").await;
    assert!(a.silent_for(Duration::from_millis(300)).await);
    assert_eq!(
        get(node.addr, "/api/presence/quiet/count").await.1,
        json!({"clients":2,"users":2})
    );
    // An empty room, and bad requests.
    assert_eq!(
        get(node.addr, "/api/presence/nobody").await,
        (200, json!({"clients":[]}))
    );
    assert_eq!(
        get(node.addr, "/api/presence/nobody/count").await.1,
        json!({"clients":0,"users":0})
    );
    assert_eq!(get(node.addr, "/api/presence/").await.0, 400);
    assert_eq!(get(node.addr, "/api/presence/a/b/count").await.0, 404);
    assert_eq!(get(node.addr, "/api/presence/%FF").await.0, 400);
    let post = http(node.addr, "POST", "/api/presence/quiet", Some("{}"), &[]).await;
    assert_eq!(post.status, 405);
}

#[test]
fn a_bad_presence_pattern_stops_the_node_naming_the_flag() {
    let out = Command::new(hubbub_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--presence-notify",
            "a*b",
        ])
        .output()
        .expect("run hubbub");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--presence-notify"), "{err}");
    let out = Command::new(hubbub_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("HUBBUB_PRESENCE_NOTIFY", ",*x")
        .output()
        .expect("run hubbub");
    assert_eq!(out.status.code(), Some(2));
}

/// What node `node` answers for `room`'s count.
async fn count(cluster: &Cluster, node: usize, room: &str) -> Value {
    get(
        cluster.nodes[node].addr,
        &format!("/api/presence/{room}/count"),
    )
    .await
    .1
}

/// Waits until every live node in `nodes` answers `want` for `room`'s count.
async fn wait_count(cluster: &Cluster, nodes: &[usize], room: &str, want: Value) {
    for &node in nodes {
        let agreed = eventually(Duration::from_secs(15), || {
            let want = want.clone();
            async move { count(cluster, node, room).await == want }
        })
        .await;
        assert!(
            agreed,
            "node {node} counts {} in {room}, not {want}",
            count(cluster, node, room).await
        );
    }
}

async fn scenario_cluster(registry: Registry, bus: Bus) {
    let cluster = Cluster::start_with(registry, bus, 3, &["--presence-notify", "*"]).await;
    let (mut a, _) = Client::connect(&cluster.url(0, "/ws?id=a&user=ann")).await;
    let (mut b, _) = Client::connect(&cluster.url(1, "/ws?id=b&user=bo")).await;
    let (mut c, _) = Client::connect(&cluster.url(2, "/ws?id=c&user=ann")).await;
    let (mut e, _) = Client::connect(&cluster.url(2, "/ws?id=e&user=eve")).await;
    join(&mut a, "r").await;
    assert_eq!(presence_frame(&mut a).await["join"]["id"], "a");
    for client in [&mut b, &mut c, &mut e] {
        join(client, "r").await;
    }
    // Every node counts every node's members: 4 connections, ann twice.
    wait_count(&cluster, &[0, 1, 2], "r", json!({"clients":4,"users":3})).await;
    let (_, list) = get(cluster.nodes[1].addr, "/api/presence/r").await;
    let ids: Vec<&str> = list["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "e"]);
    // a (node 0) heard of the joins on nodes 1 and 2.
    let mut joined = Vec::new();
    while joined.len() < 3 {
        let frame = presence_frame(&mut a).await;
        joined.push(frame["join"]["id"].as_str().unwrap_or("?").to_owned());
    }
    joined.sort();
    assert_eq!(joined, ["b", "c", "e"]);

    // The producer API over gRPC and the CLI answer the same, from any node.
    let cli = |args: &[&str]| {
        let out = Command::new(hubbub_bin())
            .arg("presence")
            .args(["--server", &cluster.grpc[2]])
            .args(args)
            .output()
            .expect("run hubbub");
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
    };
    assert_eq!(cli(&["r", "--count"]), json!({"clients":4,"users":3}));
    assert_eq!(cli(&["r"]), list);

    // Node 2 dies with SIGKILL: its members (c, e) leave presence everywhere once its lease
    // ends, and the members elsewhere hear them leave.
    let mut cluster = cluster;
    cluster.nodes[2].kill9();
    wait_count(&cluster, &[0, 1], "r", json!({"clients":2,"users":2})).await;
    let mut left = Vec::new();
    while left.len() < 2 {
        let frame = presence_frame(&mut a).await;
        left.push(frame["leave"]["id"].as_str().unwrap_or("?").to_owned());
    }
    left.sort();
    assert_eq!(left, ["c", "e"]);
    // A normal leave still travels.
    b.close().await;
    wait_count(&cluster, &[0, 1], "r", json!({"clients":1,"users":1})).await;
    assert_eq!(presence_frame(&mut a).await["leave"]["id"], "b");
}

#[tokio::test]
async fn three_nodes_redis_registry_grpc_bus() {
    scenario_cluster(Registry::Redis, Bus::Grpc).await;
}

#[tokio::test]
async fn three_nodes_redis_registry_redis_bus() {
    scenario_cluster(Registry::Redis, Bus::Redis).await;
}

#[tokio::test]
async fn three_nodes_etcd_registry() {
    scenario_cluster(Registry::Etcd, Bus::Grpc).await;
}

/// A node that joins later learns who is already there (a snapshot from each peer).
#[tokio::test]
async fn a_node_that_joins_later_learns_the_members() {
    let mut cluster = Cluster::start_with(Registry::Redis, Bus::Grpc, 2, &[]).await;
    let (mut a, _) = Client::connect(&cluster.url(0, "/ws?id=a&user=ann")).await;
    let (mut b, _) = Client::connect(&cluster.url(1, "/ws?id=b&user=bo")).await;
    join(&mut a, "late").await;
    join(&mut b, "late").await;
    wait_count(&cluster, &[0, 1], "late", json!({"clients":2,"users":2})).await;
    cluster.add_node(&[]);
    cluster.wait_formed(3).await;
    wait_count(&cluster, &[2], "late", json!({"clients":2,"users":2})).await;
}
