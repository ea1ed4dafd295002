//! Room history in a cluster (Redis registry, Redis or gRPC bus, history in Redis): a client that
//! reconnects to another node recovers exactly what it missed; epochs follow Redis; and a
//! node killed with SIGKILL during a sequenced publish loses its subscribers nothing once
//! they rejoin elsewhere with `since`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hubbub_tests::cluster::{Bus, Cluster, Registry};
use hubbub_tests::{http, post, Client};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const FLAGS: &[&str] = &["--history", "h:*=1000/10m,g:*=3/10m"];

async fn position(cluster: &Cluster, node: usize, room: &str) -> (u64, String) {
    let reply = http(
        cluster.nodes[node].addr,
        "GET",
        &format!("/api/position/{room}"),
        None,
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v = reply.json();
    let epoch = v["epoch"].as_str().expect("epoch").to_owned();
    (v["offset"].as_u64().expect("offset"), epoch)
}

async fn publish(cluster: &Cluster, node: usize, room: &str, data: Value) {
    let body = json!({"room": room, "data": data}).to_string();
    let reply = post(cluster.nodes[node].addr, "/api/publish", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

async fn join(c: &mut Client, room: &str, since: Option<(u64, &str)>) -> Value {
    let mut request = json!({"type":"join","room":room});
    if let Some((offset, epoch)) = since {
        request["since"] = json!({"offset": offset, "epoch": epoch});
    }
    c.send(request).await;
    let joined = c.recv().await;
    assert_eq!(joined["type"], "joined", "{joined}");
    joined
}

#[tokio::test]
async fn a_client_recovers_on_another_node_and_epochs_follow_redis_bus() {
    recovery_on_another_node(Bus::Redis).await;
}

/// With the gRPC bus, history rooms still travel through the registry's Redis.
#[tokio::test]
async fn a_client_recovers_on_another_node_and_epochs_follow_redis_grpc_bus() {
    recovery_on_another_node(Bus::Grpc).await;
}

async fn recovery_on_another_node(bus: Bus) {
    let cluster = Cluster::start_with(Registry::Redis, bus, 3, FLAGS).await;
    let (mut a, _) = Client::connect(&cluster.url(0, "/ws?id=a")).await;
    let (mut b, _) = Client::connect(&cluster.url(2, "/ws?id=b")).await;
    let start = join(&mut a, "h:c", None).await;
    let epoch = start["epoch"].as_str().expect("epoch").to_owned();
    let p0 = start["offset"].as_u64().expect("offset");
    let jb = join(&mut b, "h:c", None).await;
    assert_eq!(
        jb["epoch"],
        epoch.as_str(),
        "one epoch for the whole cluster"
    );
    let p0 = p0.max(jb["offset"].as_u64().expect("offset"));
    for i in 1..=3 {
        publish(&cluster, 1, "h:c", json!(i)).await;
    }
    // Every node agrees on the position.
    for node in 0..3 {
        assert_eq!(
            position(&cluster, node, "h:c").await,
            (p0 + 3, epoch.clone())
        );
    }
    let mut last = p0;
    for _ in 0..3 {
        let m = a.recv().await;
        assert_eq!(m["offset"], last + 1, "{m}");
        assert_eq!(m["epoch"], epoch.as_str());
        last += 1;
    }
    a.close().await;
    for i in 4..=6 {
        publish(&cluster, 2, "h:c", json!(i)).await;
    }
    // Back on another node, from the last offset seen: 4..=6 replayed, then live 7.
    let (mut a, _) = Client::connect(&cluster.url(1, "/ws?id=a")).await;
    let joined = join(&mut a, "h:c", Some((last, &epoch))).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(joined["offset"], p0 + 6);
    let mut data = Vec::new();
    for _ in 0..3 {
        let m = a.recv().await;
        data.push(m["data"].clone());
    }
    assert_eq!(data, [json!(4), json!(5), json!(6)]);
    publish(&cluster, 0, "h:c", json!(7)).await;
    assert_eq!(a.recv().await["data"], 7);
    assert!(
        a.silent_for(Duration::from_millis(300)).await,
        "nothing twice"
    );
    // b, on the third node all along, got all seven once, in order.
    let mut seen = Vec::new();
    while let Some(m) = b.try_recv(Duration::from_millis(500)).await {
        seen.push(m["data"].as_u64().expect("data"));
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7]);

    // The history API reads Redis from any node.
    let reply = http(
        cluster.nodes[2].addr,
        "GET",
        &format!("/api/history/h:c?since={}&epoch={epoch}&limit=2", p0 + 4),
        None,
        &[],
    )
    .await;
    let page = reply.json();
    assert_eq!(page["recovered"], true, "{page}");
    assert_eq!(page["messages"][0]["data"], 5);
    assert_eq!(page["messages"][1]["data"], 6);

    // A gap beyond what is kept (g:* keeps 3) is not recovered.
    for i in 1..=6 {
        publish(&cluster, 0, "g:x", json!(i)).await;
    }
    let (gp, ge) = position(&cluster, 1, "g:x").await;
    let (mut g, _) = Client::connect(&cluster.url(1, "/ws?id=g")).await;
    let joined = join(&mut g, "g:x", Some((gp - 4, &ge))).await;
    assert_eq!(joined["recovered"], false, "{joined}");
    let joined = join(&mut g, "g:y", Some((0, &ge))).await;
    assert_eq!(joined["recovered"], false, "another room's epoch");

    // Redis loses everything: a new epoch, and the old position does not recover.
    let redis = cluster.redis.as_ref().expect("redis");
    redis.raw(b"FLUSHALL\r\n");
    publish(&cluster, 0, "h:c", json!(8)).await;
    let (offset, new_epoch) = position(&cluster, 2, "h:c").await;
    assert_ne!(new_epoch, epoch);
    assert_eq!(offset, 1);
    let (mut late, _) = Client::connect(&cluster.url(2, "/ws?id=late")).await;
    let joined = join(&mut late, "h:c", Some((last, &epoch))).await;
    assert_eq!(joined["recovered"], false, "{joined}");
    // A Redis that came back from an older snapshot (its run id differs from the one the
    // epoch was made under) does not reuse offsets under the old epoch.
    let (_, before) = position(&cluster, 0, "h:c").await;
    let stale = b"HSET hubbub:history:h:c:meta r 0000\r\n";
    assert!(
        redis.raw(stale).starts_with(b":0"),
        "the run id is kept beside the epoch"
    );
    publish(&cluster, 0, "h:c", json!(9)).await;
    let (offset, after) = position(&cluster, 1, "h:c").await;
    assert_ne!(after, before);
    assert_eq!(offset, 1);
    // A room without history carries no offsets in a cluster either.
    let (mut p, _) = Client::connect(&cluster.url(0, "/ws?id=p")).await;
    p.send(json!({"type":"join","room":"plain","ref":1})).await;
    assert_eq!(p.recv().await, json!({"type":"ack","ref":1}));
    let mut plain = None;
    for _ in 0..50 {
        publish(&cluster, 1, "plain", json!("x")).await;
        if let Some(m) = p.try_recv(Duration::from_millis(100)).await {
            plain = Some(m);
            break;
        }
    }
    let plain = plain.expect("a plain room message");
    assert!(
        plain.get("offset").is_none() && plain.get("epoch").is_none(),
        "{plain}"
    );
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A subscriber that follows `room` on `nodes[0]`, and after losing its connection rejoins
/// on `nodes[1]` with `since`; returns the `data` of every message it got, in order.
async fn subscriber(urls: Vec<String>, room: &'static str, total: u64) -> (Vec<u64>, u32) {
    let mut seen: Vec<u64> = Vec::new();
    let mut position: Option<(u64, String)> = None;
    let mut rejoins = 0;
    for url in urls.iter().cycle().take(4) {
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            continue;
        };
        let mut join = json!({"type":"join","room":room});
        if let Some((offset, epoch)) = &position {
            join["since"] = json!({"offset": offset, "epoch": epoch});
            rejoins += 1;
        }
        if ws.send(Message::text(join.to_string())).await.is_err() {
            continue;
        }
        if follow(&mut ws, &mut seen, &mut position, total).await {
            return (seen, rejoins);
        }
    }
    (seen, rejoins)
}

/// Reads until `total` messages are seen (true) or the connection ends (false).
async fn follow(
    ws: &mut Ws,
    seen: &mut Vec<u64>,
    position: &mut Option<(u64, String)>,
    total: u64,
) -> bool {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(20), ws.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else {
            match next {
                Ok(Some(Ok(_))) => continue,
                _ => return false,
            }
        };
        let v: Value = serde_json::from_str(&text).expect("JSON");
        match v["type"].as_str() {
            Some("joined") => {
                if position.is_none() {
                    let epoch = v["epoch"].as_str().unwrap_or("").to_owned();
                    *position = Some((v["offset"].as_u64().unwrap_or(0), epoch));
                } else {
                    assert_eq!(v["recovered"], true, "rejoin recovers: {v}");
                }
            }
            Some("message") => {
                seen.push(v["data"].as_u64().expect("data"));
                let epoch = v["epoch"].as_str().unwrap_or("").to_owned();
                *position = Some((v["offset"].as_u64().expect("offset"), epoch));
                if seen.len() as u64 >= total {
                    return true;
                }
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn subscribers_of_a_node_killed_mid_run_rejoin_elsewhere_and_miss_nothing() {
    let mut cluster = Cluster::start_with(Registry::Redis, Bus::Redis, 3, FLAGS).await;
    const TOTAL: u64 = 300;
    let room = "h:fault";
    // Two subscribers per node; those of node 2 move to node 1 when it dies, the others
    // would move to the next node if theirs did.
    let mut tasks = Vec::new();
    for node in 0..3 {
        for k in 0..2 {
            let urls = vec![
                cluster.url(node, &format!("/ws?id=s{node}{k}")),
                cluster.url((node + 2) % 3, &format!("/ws?id=s{node}{k}")),
            ];
            tasks.push(tokio::spawn(subscriber(urls, room, TOTAL)));
        }
    }
    // Every subscriber is in before the run: the room's position is theirs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 1..=TOTAL {
        publish(&cluster, 0, room, json!(i)).await;
        if i == TOTAL / 3 {
            cluster.nodes[2].kill9();
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let want: Vec<u64> = (1..=TOTAL).collect();
    let mut moved = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        let (seen, rejoins) = task.await.expect("subscriber");
        let missing = want.iter().filter(|n| !seen.contains(n)).count();
        let duplicated = seen.len() - {
            let mut unique = seen.clone();
            unique.dedup();
            unique.len()
        };
        assert_eq!((missing, duplicated), (0, 0), "subscriber {i}: {seen:?}");
        assert_eq!(seen, want, "subscriber {i} in order");
        moved += rejoins;
    }
    assert!(
        moved >= 2,
        "node 2's subscribers rejoined elsewhere ({moved})"
    );
}
