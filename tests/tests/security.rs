//! Origin checks, client JWTs and per-IP limits.

use std::time::{SystemTime, UNIX_EPOCH};

use hub_edge::auth::sign_hs256;
use hubbub_tests::{Client, TestNode};
use serde_json::json;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A JWT secret of the minimum length (32 bytes).
const SECRET: &str = "s3cret-s3cret-s3cret-s3cret-s3cr";

#[tokio::test]
async fn origin_is_checked() {
    let node = TestNode::start(&["--allowed-origins", "https://app.example.com"]);
    let url = node.ws_url("/ws");
    assert_eq!(
        Client::connect_raw(&url, &[("Origin", "https://evil.example.com")])
            .await
            .err()
            .as_deref(),
        Some("HTTP 403")
    );
    assert!(
        Client::connect_raw(&url, &[("Origin", "https://app.example.com")])
            .await
            .is_ok()
    );
    let same = format!("http://{}", node.addr);
    assert!(
        Client::connect_raw(&url, &[("Origin", same.as_str())])
            .await
            .is_ok(),
        "same origin"
    );
    assert!(
        Client::connect_raw(&url, &[]).await.is_ok(),
        "non-browser client"
    );
}

#[tokio::test]
async fn jwt_is_required_and_checked() {
    let node = TestNode::start(&["--jwt-secret", SECRET]);
    let url = node.ws_url("/ws");
    assert_eq!(
        Client::connect_raw(&url, &[]).await.err().as_deref(),
        Some("HTTP 401"),
        "missing"
    );
    let expired = sign_hs256(
        SECRET.as_bytes(),
        &json!({"sub":"u1","exp": now() - 120}).to_string(),
    );
    assert_eq!(
        Client::connect_raw(&format!("{url}?token={expired}"), &[])
            .await
            .err()
            .as_deref(),
        Some("HTTP 401"),
        "expired"
    );
    let forged = sign_hs256(b"other", &json!({"sub":"u1","exp": now() + 60}).to_string());
    assert_eq!(
        Client::connect_raw(&format!("{url}?token={forged}"), &[])
            .await
            .err()
            .as_deref(),
        Some("HTTP 401"),
        "bad signature"
    );
    let good = sign_hs256(
        SECRET.as_bytes(),
        &json!({"sub":"u1","exp": now() + 60}).to_string(),
    );
    let (_c, _) = Client::connect(&format!("{url}?token={good}")).await;
    let bearer = format!("Bearer {good}");
    let mut c2 = Client::connect_raw(&url, &[("Authorization", bearer.as_str())])
        .await
        .expect("bearer accepted");
    assert_eq!(c2.recv().await["type"], "welcome");
    // The token's sub is the user: emit_user reaches both.
    let r = hubbub_tests::post(node.addr, "/api/emit_user", r#"{"user":"u1","data":1}"#).await;
    assert_eq!(r.json(), json!({"delivered":2}));
}

#[tokio::test]
async fn connections_per_ip_are_limited() {
    let node = TestNode::start(&["--max-connections-per-ip", "2"]);
    let url = node.ws_url("/ws");
    let (_a, _) = Client::connect(&url).await;
    let (b, _) = Client::connect(&url).await;
    assert_eq!(
        Client::connect_raw(&url, &[]).await.err().as_deref(),
        Some("HTTP 429")
    );
    b.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        Client::connect_raw(&url, &[]).await.is_ok(),
        "a place is free again"
    );
}
