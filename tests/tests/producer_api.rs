//! The producer HTTP API of PROTOCOL.md on one node.

use hubbub_tests::{http, post, Client, Ended, TestNode};
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
        &[("Authorization", &format!("Bearer {KEY}"))],
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
    let metrics = http(node.addr, "GET", "/metrics", None, &[]).await;
    assert_eq!(metrics.status, 200);
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
