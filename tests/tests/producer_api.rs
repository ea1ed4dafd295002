//! The producer HTTP API of PROTOCOL.md on one node.

use std::time::Duration;

use hubbub_tests::{eventually, http, post, Client, Ended, TestNode};
use serde_json::json;

#[tokio::test]
async fn emit_emit_user_publish_broadcast_online_disconnect() {
    let node = TestNode::start(&["--shards", "3", "--node-id", "n1"]);
    let (mut a1, _) = Client::connect(&node.ws_url("/ws?id=a1&user=ann")).await;
    let (mut a2, _) = Client::connect(&node.ws_url("/ws?id=a2&user=ann")).await;
    let (mut b, _) = Client::connect(&node.ws_url("/ws/news?id=b&user=bo")).await;

    assert_eq!(
        post(node.addr, "/api/emit", r#"{"to":"a1","data":{"k":1}}"#)
            .await
            .json(),
        json!({"delivered":1})
    );
    assert_eq!(a1.recv().await, json!({"type":"message","data":{"k":1}}));
    assert_eq!(
        post(node.addr, "/api/emit", r#"{"to":"ghost","data":1}"#)
            .await
            .json(),
        json!({"delivered":0})
    );

    assert_eq!(
        post(node.addr, "/api/emit_user", r#"{"user":"ann","data":"u"}"#)
            .await
            .json(),
        json!({"delivered":2})
    );
    assert_eq!(a1.recv().await["data"], "u");
    assert_eq!(a2.recv().await["data"], "u");

    assert_eq!(
        post(node.addr, "/api/publish", r#"{"room":"news","data":null}"#)
            .await
            .json(),
        json!({"delivered":1})
    );
    assert_eq!(
        b.recv().await,
        json!({"type":"message","room":"news","data":null})
    );

    assert_eq!(
        post(node.addr, "/api/broadcast", r#"{"data":[1,2]}"#)
            .await
            .json(),
        json!({"delivered":3})
    );
    for c in [&mut a1, &mut a2, &mut b] {
        assert_eq!(c.recv().await["data"], json!([1, 2]));
    }

    assert_eq!(
        http(node.addr, "GET", "/api/online/b", None, &[])
            .await
            .json(),
        json!({"online":true,"node":"n1"})
    );
    assert_eq!(
        http(node.addr, "GET", "/api/online/zed", None, &[])
            .await
            .json(),
        json!({"online":false})
    );

    assert_eq!(
        post(node.addr, "/api/disconnect", r#"{"to":"b"}"#)
            .await
            .json(),
        json!({"disconnected":true})
    );
    assert_eq!(b.ended().await, Ended::Close(4003));
    assert_eq!(
        post(node.addr, "/api/disconnect", r#"{"to":"b"}"#)
            .await
            .json(),
        json!({"disconnected":false})
    );
    assert_eq!(
        http(node.addr, "GET", "/api/online/b", None, &[])
            .await
            .json(),
        json!({"online":false})
    );
}

#[tokio::test]
async fn bad_bodies_get_400_and_the_node_keeps_serving() {
    let node = TestNode::start(&[]);
    for (path, body) in [
        ("/api/emit", "not json"),
        ("/api/emit", r#"{"data":1}"#),
        ("/api/emit", r#"{"to":5,"data":1}"#),
        ("/api/emit", r#"{"to":"x"}"#),
        ("/api/publish", r#"{"data":1}"#),
        ("/api/emit_user", "[]"),
        ("/api/disconnect", "{}"),
    ] {
        let r = post(node.addr, path, body).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.body);
        assert!(r.json()["error"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(post(node.addr, "/api/nope", "{}").await.status, 404);
    assert_eq!(
        http(node.addr, "GET", "/api/emit", None, &[]).await.status,
        405
    );
    assert_eq!(
        http(node.addr, "GET", "/healthz", None, &[]).await.json(),
        json!({"status":"ok"})
    );
}

/// An API key of the minimum length (32 bytes).
const KEY: &str = "k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y-";

#[tokio::test]
async fn api_key_is_enforced_when_set() {
    let node = TestNode::start(&["--api-key", KEY]);
    let r = post(node.addr, "/api/broadcast", r#"{"data":1}"#).await;
    assert_eq!(r.status, 401);
    let wrong = http(
        node.addr,
        "POST",
        "/api/broadcast",
        Some(r#"{"data":1}"#),
        &[("Authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(wrong.status, 401);
    let ok = http(
        node.addr,
        "POST",
        "/api/broadcast",
        Some(r#"{"data":1}"#),
        &[
            ("Authorization", &format!("Bearer {KEY}")),
            ("Content-Type", "application/json"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json(), json!({"delivered":0}));
    assert_eq!(
        http(node.addr, "GET", "/healthz", None, &[]).await.status,
        200,
        "endpoints need no key"
    );
}

#[tokio::test]
async fn stats_metrics_and_demo_page() {
    let node = TestNode::start(&["--shards", "2", "--node-id", "st"]);
    let (mut c, _) = Client::connect(&node.ws_url("/ws/r1?id=s")).await;
    c.send(json!({"type":"publish","room":"r1","data":1})).await;
    c.recv().await;
    let stats = http(node.addr, "GET", "/stats", None, &[]).await.json();
    assert_eq!(stats["node"], "st");
    assert_eq!(stats["connections"], 1);
    assert_eq!(stats["rooms"], 1);
    assert_eq!(stats["shards"].as_array().map(Vec::len), Some(2));
    assert!(stats["messages_in"].as_u64() >= Some(1));
    assert!(stats["messages_out"].as_u64() >= Some(1));
    assert_eq!(stats["slow_consumer_closes"], 0);
    assert!(stats["peers"].is_array());
    // One API call, so that its latency shows in the histogram.
    let online = http(node.addr, "GET", "/api/online/s", None, &[]).await;
    assert_eq!(online.status, 200);
    let metrics = http(node.addr, "GET", "/metrics", None, &[]).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("hubbub_api_command_duration_seconds_count{command=\"online\"} 1"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.ends_with("# EOF\n"), "{}", metrics.body);
    assert!(
        metrics.body.contains("hubbub_connections 1"),
        "{}",
        metrics.body
    );
    assert!(metrics
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .all(|l| l.starts_with("hubbub_")));
    let page = http(node.addr, "GET", "/", None, &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<html") && page.body.contains("/ws"));
    assert!(page.body.contains(r#"from "/hubbub.js""#));
    let script = http(node.addr, "GET", "/hubbub.js", None, &[]).await;
    assert_eq!(script.status, 200);
    assert!(script.body.contains("export function connect("));
    assert_eq!(
        http(node.addr, "GET", "/nothing-here", None, &[])
            .await
            .status,
        404
    );
}

/// `/stats` of `node`: (connections, rooms, queued bytes, opened, closed), with the
/// per-shard figures checked against the totals.
async fn gauges(node: &TestNode) -> (u64, u64, u64, u64, u64) {
    let stats = http(node.addr, "GET", "/stats", None, &[]).await.json();
    let shards = stats["shards"].as_array().cloned().unwrap_or_default();
    let sum = |key: &str| shards.iter().filter_map(|s| s[key].as_u64()).sum::<u64>();
    assert_eq!(stats["connections"].as_u64(), Some(sum("connections")));
    assert_eq!(stats["queued_bytes"].as_u64(), Some(sum("queued_bytes")));
    let get = |key: &str| stats[key].as_u64().unwrap_or(u64::MAX);
    (
        get("connections"),
        get("rooms"),
        get("queued_bytes"),
        get("opened"),
        get("closed"),
    )
}

/// Waits until the gauges read `expected`. A connection that runs as a task of its own (a
/// TLS one) reports a batch written after the client may have read it, so `queued_bytes`
/// can lag the client's view for a moment.
async fn settles(node: &TestNode, expected: (u64, u64, u64, u64, u64)) {
    let settled = eventually(Duration::from_secs(5), || async {
        gauges(node).await == expected
    })
    .await;
    assert!(settled, "{:?} is not {expected:?}", gauges(node).await);
}

#[tokio::test]
async fn stats_follow_opens_joins_leaves_and_closes() {
    let node = TestNode::start(&["--shards", "3"]);
    let mut clients = Vec::new();
    for i in 0..6 {
        let (c, _) = Client::connect(&node.ws_url(&format!("/ws?id=g{i}"))).await;
        clients.push(c);
    }
    settles(&node, (6, 0, 0, 6, 0)).await;
    for (i, c) in clients.iter_mut().enumerate() {
        for room in ["all", if i % 2 == 0 { "even" } else { "odd" }] {
            c.send(json!({"type":"join","room":room,"ref":i})).await;
            assert_eq!(c.recv().await, json!({"type":"ack","ref":i}));
        }
    }
    settles(&node, (6, 3, 0, 6, 0)).await;
    for (i, c) in clients.iter_mut().enumerate().filter(|(i, _)| i % 2 == 1) {
        c.send(json!({"type":"leave","room":"odd","ref":i})).await;
        assert_eq!(c.recv().await, json!({"type":"ack","ref":i}));
    }
    settles(&node, (6, 2, 0, 6, 0)).await;
    for c in clients.drain(..3) {
        c.close().await;
    }
    let settled = eventually(Duration::from_secs(5), || async {
        gauges(&node).await == (3, 2, 0, 6, 3)
    })
    .await;
    assert!(settled, "{:?}", gauges(&node).await);
    for c in clients.drain(..) {
        c.close().await;
    }
    let settled = eventually(Duration::from_secs(5), || async {
        gauges(&node).await == (0, 0, 0, 6, 6)
    })
    .await;
    assert!(settled, "{:?}", gauges(&node).await);
}
