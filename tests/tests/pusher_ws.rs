//! The Pusher Channels protocol: app flags, and (below) the protocol at `/app/{key}` spoken
//! by a tungstenite client to the real binary.

use std::process::Command;

use hubbub_tests::hubbub_bin;

/// Runs `hubbub serve ARGS` with `env` set; the node must refuse to start with exit 2.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(hubbub_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hubbub");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn bad_pusher_apps_stop_the_node_naming_the_flag() {
    let e = refused(&["--pusher-app", "1:key:short"], &[]);
    assert!(e.contains("--pusher-app") && e.contains("16 bytes"), "{e}");
    assert!(!e.contains("short"), "the secret is not shown: {e}");
    let e = refused(&["--pusher-app", "nocolons"], &[]);
    assert!(
        e.contains("--pusher-app") && e.contains("ID:KEY:SECRET"),
        "{e}"
    );
    let e = refused(
        &[],
        &[(
            "HUBBUB_PUSHER_APP",
            "1:k1:0123456789abcdef,1:k2:0123456789abcdef",
        )],
    );
    assert!(e.contains("--pusher-app") && e.contains("two apps"), "{e}");
}

use std::time::Duration;

use hub_pusher::sign;
use hubbub_tests::cluster::{Bus, Cluster, Registry};
use hubbub_tests::{Client, Ended, TestNode};
use serde_json::{json, Value};

const APP: &str = "app-1:key-1:secret-0123456789abcdef";
const KEY: &str = "key-1";
const SECRET: &str = "secret-0123456789abcdef";
const QUERY: &str = "?protocol=7&client=js&version=8.4.0&flash=false";

/// A Pusher client: the tungstenite client with what Pusher frames need.
struct Pusher {
    ws: Client,
    socket_id: String,
}

/// `data` decoded as pusher-js decodes it (a JSON string holding JSON is parsed).
fn data_of(frame: &Value) -> Value {
    match &frame["data"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        other => other.clone(),
    }
}

impl Pusher {
    async fn connect(url: &str) -> Pusher {
        let mut ws = Client::connect_raw(url, &[]).await.expect("upgrade");
        let first = ws.recv().await;
        assert_eq!(first["event"], "pusher:connection_established", "{first}");
        assert!(first["data"].is_string(), "data is a JSON string: {first}");
        let data = data_of(&first);
        assert_eq!(data["activity_timeout"], 120);
        let socket_id = data["socket_id"].as_str().expect("socket_id").to_owned();
        let (a, b) = socket_id.split_once('.').expect("N.M");
        assert!(
            !a.is_empty()
                && !b.is_empty()
                && (a.to_owned() + b).bytes().all(|c| c.is_ascii_digit()),
            "socket_id {socket_id}"
        );
        Pusher { ws, socket_id }
    }

    /// The next frame that is not a pong.
    async fn recv(&mut self) -> Value {
        loop {
            let v = self.ws.recv().await;
            if v["event"] != "pusher:pong" {
                return v;
            }
        }
    }

    async fn send(&mut self, value: Value) {
        self.ws.send(value).await;
    }

    async fn subscribe(&mut self, channel: &str, channel_data: Option<&str>) -> Value {
        let mut data = json!({ "channel": channel });
        if channel.starts_with("private-") || channel.starts_with("presence-") {
            let message = sign::channel_auth_message(&self.socket_id, channel, channel_data);
            let signature = sign::hmac_hex(SECRET.as_bytes(), message.as_bytes());
            data["auth"] = json!(format!("{KEY}:{signature}"));
        }
        if let Some(cd) = channel_data {
            data["channel_data"] = json!(cd);
        }
        self.send(json!({"event":"pusher:subscribe","data":data}))
            .await;
        self.recv().await
    }
}

fn node() -> TestNode {
    TestNode::start(&["--pusher-app", APP, "--pusher-client-events"])
}

fn url(node: &TestNode) -> String {
    node.ws_url(&format!("/app/{KEY}{QUERY}"))
}

#[tokio::test]
async fn connect_ping_and_subscribe_a_public_channel() {
    let node = node();
    let mut p = Pusher::connect(&url(&node)).await;
    p.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(p.ws.recv().await["event"], "pusher:pong");
    let ok = p.subscribe("news", None).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(ok["channel"], "news");
    let bad = p.subscribe("bad channel", None).await;
    assert_eq!(bad["event"], "pusher:subscription_error");
}

#[tokio::test]
async fn the_default_app_serves_loopback_nodes_without_configuration() {
    let node = TestNode::start(&[]);
    let p = Pusher::connect(&node.ws_url(&format!("/app/app-key{QUERY}"))).await;
    assert!(!p.socket_id.is_empty());
}

#[tokio::test]
async fn unknown_keys_and_old_protocols_are_refused_after_the_upgrade() {
    let node = node();
    for (path, code) in [
        (format!("/app/nope{QUERY}"), 4001),
        (format!("/app/{KEY}?client=js"), 4007),
        (format!("/app/{KEY}?protocol=6"), 4007),
    ] {
        let mut ws = Client::connect_raw(&node.ws_url(&path), &[])
            .await
            .expect("upgrade");
        let error = ws.recv().await;
        assert_eq!(error["event"], "pusher:error", "{path}");
        assert_eq!(error["data"]["code"], code, "{path}");
        assert_eq!(ws.ended().await, Ended::Close(code), "{path}");
    }
}

#[tokio::test]
async fn private_channels_check_the_signature() {
    let node = node();
    let mut p = Pusher::connect(&url(&node)).await;
    let forged = json!({"event":"pusher:subscribe","data":{"channel":"private-a","auth":format!("{KEY}:{}", "0".repeat(64))}});
    p.send(forged).await;
    let refused = p.recv().await;
    assert_eq!(refused["event"], "pusher:subscription_error");
    assert_eq!(refused["channel"], "private-a");
    assert_eq!(refused["data"]["type"], "AuthError");
    assert_eq!(refused["data"]["status"], 401);
    let ok = p.subscribe("private-a", None).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
}

#[tokio::test]
async fn client_events_reach_the_others_and_never_the_sender() {
    let node = node();
    let mut a = Pusher::connect(&url(&node)).await;
    let mut b = Pusher::connect(&url(&node)).await;
    for p in [&mut a, &mut b] {
        let ok = p.subscribe("private-chat", None).await;
        assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    }
    a.send(json!({"event":"client-typing","channel":"private-chat","data":{"who":"a"}}))
        .await;
    let got = b.recv().await;
    assert_eq!(got["event"], "client-typing");
    assert_eq!(got["channel"], "private-chat");
    assert_eq!(data_of(&got)["who"], "a");
    assert!(
        a.ws.silent_for(Duration::from_millis(300)).await,
        "not echoed"
    );
    // A public channel takes no client events.
    a.subscribe("news", None).await;
    a.send(json!({"event":"client-x","channel":"news","data":{}}))
        .await;
    let refused = a.recv().await;
    assert_eq!(refused["event"], "pusher:error");
    assert_eq!(refused["data"]["code"], 4301);
}

#[tokio::test]
async fn client_events_are_refused_unless_enabled() {
    let node = TestNode::start(&["--pusher-app", APP]);
    let mut a = Pusher::connect(&url(&node)).await;
    a.subscribe("private-chat", None).await;
    a.send(json!({"event":"client-typing","channel":"private-chat","data":{}}))
        .await;
    assert_eq!(a.recv().await["data"]["code"], 4301);
}

#[tokio::test]
async fn presence_lists_members_once_per_user_and_announces_changes() {
    let node = node();
    let alice = r#"{"user_id":"alice","user_info":{"name":"Alice"}}"#;
    let bob = r#"{"user_id":"bob","user_info":{"name":"Bob"}}"#;
    let mut a = Pusher::connect(&url(&node)).await;
    let ok = a.subscribe("presence-room", Some(alice)).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(data_of(&ok)["presence"]["count"], 1);
    let mut b1 = Pusher::connect(&url(&node)).await;
    let ok = b1.subscribe("presence-room", Some(bob)).await;
    let presence = &data_of(&ok)["presence"];
    assert_eq!(presence["count"], 2);
    assert_eq!(presence["hash"]["alice"]["name"], "Alice");
    let added = a.recv().await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    assert_eq!(data_of(&added)["user_id"], "bob");
    assert_eq!(data_of(&added)["user_info"]["name"], "Bob");
    // Bob's second connection is the same member: nobody hears of it.
    let mut b2 = Pusher::connect(&url(&node)).await;
    let ok = b2.subscribe("presence-room", Some(bob)).await;
    assert_eq!(data_of(&ok)["presence"]["count"], 2);
    assert!(a.ws.silent_for(Duration::from_millis(300)).await);
    b1.ws.close().await;
    assert!(
        a.ws.silent_for(Duration::from_millis(300)).await,
        "bob is still here"
    );
    b2.ws.close().await;
    let removed = a.recv().await;
    assert_eq!(removed["event"], "pusher_internal:member_removed");
    assert_eq!(data_of(&removed)["user_id"], "bob");
    // A forged channel_data is refused.
    let mut c = Pusher::connect(&url(&node)).await;
    let signed_for = sign::channel_auth_message(&c.socket_id, "presence-room", Some(alice));
    let signature = sign::hmac_hex(SECRET.as_bytes(), signed_for.as_bytes());
    c.send(json!({"event":"pusher:subscribe","data":{"channel":"presence-room","auth":format!("{KEY}:{signature}"),"channel_data":bob}})).await;
    assert_eq!(c.recv().await["event"], "pusher:subscription_error");
}

#[tokio::test]
async fn bad_json_is_answered_and_oversize_closes() {
    let node = node();
    let mut p = Pusher::connect(&url(&node)).await;
    p.ws.send_text("{not json").await;
    assert_eq!(p.recv().await["event"], "pusher:error");
    p.ws.send_text(r#"{"event":"pusher:dance"}"#).await;
    assert_eq!(p.recv().await["event"], "pusher:error");
    p.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(p.ws.recv().await["event"], "pusher:pong", "still served");
    let big = "x".repeat(70 * 1024);
    p.send(json!({"event":"client-big","channel":"private-a","data":big}))
        .await;
    assert_eq!(p.ws.ended().await, Ended::Close(1009));
}

#[tokio::test]
async fn json_clients_cannot_reach_pusher_channels() {
    let node = node();
    let (mut j, _) = Client::connect(&node.ws_url("/ws")).await;
    j.send(json!({"type":"join","room":"\u{1f}pusher:app-1:news","ref":1}))
        .await;
    assert_eq!(j.recv().await["code"], "forbidden");
}

async fn across_two_nodes(bus: Bus) {
    let cluster = Cluster::start_with(
        Registry::Redis,
        bus,
        2,
        &["--pusher-app", APP, "--pusher-client-events"],
    )
    .await;
    let url = |n: usize| cluster.url(n, &format!("/app/{KEY}{QUERY}"));
    let mut a = Pusher::connect(&url(0)).await;
    let mut b = Pusher::connect(&url(1)).await;
    let alice = r#"{"user_id":"alice"}"#;
    let bob = r#"{"user_id":"bob"}"#;
    a.subscribe("presence-x", Some(alice)).await;
    b.subscribe("presence-x", Some(bob)).await;
    // Node 1 learns that node 0 has members of the room within the interest exchange.
    let mut added = None;
    for _ in 0..50 {
        if let Some(v) = a.ws.try_recv(Duration::from_millis(100)).await {
            added = Some(v);
            break;
        }
    }
    // The member_added of bob may have left node 1 before node 0's interest reached it;
    // client events are retried until one crosses.
    let mut got = None;
    for round in 0..50 {
        a.send(json!({"event":"client-hi","channel":"presence-x","data":{"round":round}}))
            .await;
        // An announcement of alice published before bob subscribed may still reach bob
        // through an asynchronous bus: member events are skipped here.
        while let Some(v) = b.ws.try_recv(Duration::from_millis(100)).await {
            if v["event"] == "client-hi" {
                got = Some(v);
                break;
            }
        }
        if got.is_some() {
            break;
        }
    }
    let got = got.expect("a client event crossed nodes");
    assert_eq!(got["event"], "client-hi");
    assert_eq!(got["user_id"], "alice");
    assert_eq!(got["channel"], "presence-x");
    if let Some(added) = added {
        assert_eq!(added["event"], "pusher_internal:member_added");
    }
    assert!(
        a.ws.silent_for(Duration::from_millis(300)).await,
        "not echoed"
    );
    b.ws.close().await;
    let removed = loop {
        let v = a.recv().await;
        if v["event"] == "pusher_internal:member_removed" {
            break v;
        }
    };
    assert_eq!(data_of(&removed)["user_id"], "bob");
}

#[tokio::test]
async fn presence_and_client_events_cross_nodes_over_grpc() {
    across_two_nodes(Bus::Grpc).await;
}

#[tokio::test]
async fn presence_and_client_events_cross_nodes_over_the_redis_bus() {
    across_two_nodes(Bus::Redis).await;
}
