//! The client WebSocket protocol of PROTOCOL.md, against the real binary.

use std::time::Duration;

use hubbub_tests::{Client, Ended, TestNode};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn connect_gets_welcome_with_id_and_node() {
    let node = TestNode::start(&["--node-id", "alpha"]);
    let (_c, welcome) = Client::connect(&node.ws_url("/ws?id=c1")).await;
    assert_eq!(welcome, json!({"type":"welcome","id":"c1","node":"alpha"}));
    let (_g, welcome) = Client::connect(&node.ws_url("/ws")).await;
    assert!(
        welcome["id"].as_str().is_some_and(|id| !id.is_empty()),
        "an id is generated: {welcome}"
    );
}

#[tokio::test]
async fn join_publish_leave_with_several_clients() {
    let node = TestNode::start(&["--shards", "2"]);
    let mut clients = Vec::new();
    for i in 0..4 {
        let (mut c, _) = Client::connect(&node.ws_url(&format!("/ws?id=p{i}"))).await;
        if i < 3 {
            c.send(json!({"type":"join","room":"lobby","ref":i})).await;
            assert_eq!(c.recv().await, json!({"type":"ack","ref":i}));
        }
        clients.push(c);
    }
    clients[3]
        .send(json!({"type":"publish","room":"lobby","data":{"text":"hi"},"ref":"x"}))
        .await;
    assert_eq!(clients[3].recv().await, json!({"type":"ack","ref":"x"}));
    for c in clients.iter_mut().take(3) {
        assert_eq!(
            c.recv().await,
            json!({"type":"message","room":"lobby","from":"p3","data":{"text":"hi"}})
        );
    }
    assert!(
        clients[3].silent_for(Duration::from_millis(200)).await,
        "non-member gets nothing"
    );
    clients[0]
        .send(json!({"type":"leave","room":"lobby","ref":9}))
        .await;
    assert_eq!(clients[0].recv().await, json!({"type":"ack","ref":9}));
    clients[1]
        .send(json!({"type":"publish","room":"lobby","data":2}))
        .await;
    assert_eq!(
        clients[1].recv().await["data"],
        2,
        "a member publisher gets its own message"
    );
    assert_eq!(clients[2].recv().await["data"], 2);
    assert!(
        clients[0].silent_for(Duration::from_millis(200)).await,
        "left the room"
    );
}

#[tokio::test]
async fn room_from_path_is_joined() {
    let node = TestNode::start(&[]);
    let (mut a, _) = Client::connect(&node.ws_url("/ws/chat%20room?id=a")).await;
    let (mut b, _) = Client::connect(&node.ws_url("/ws?id=b")).await;
    b.send(json!({"type":"publish","room":"chat room","data":"yo"}))
        .await;
    assert_eq!(a.recv().await["room"], "chat room");
}

#[tokio::test]
async fn emit_by_id_across_shards() {
    let node = TestNode::start(&["--shards", "4"]);
    let (mut a, _) = Client::connect(&node.ws_url("/ws?id=alice")).await;
    let (mut b, _) = Client::connect(&node.ws_url("/ws?id=bob")).await;
    for i in 0..10 {
        a.send(json!({"type":"emit","to":"bob","data":i})).await;
    }
    for i in 0..10 {
        assert_eq!(
            b.recv().await,
            json!({"type":"message","from":"alice","data":i}),
            "in order"
        );
    }
    a.send(json!({"type":"emit","to":"nobody","data":1,"ref":1}))
        .await;
    assert_eq!(a.recv().await, json!({"type":"ack","ref":1}));
}

#[tokio::test]
async fn errors_carry_ref_and_keep_the_connection() {
    let node = TestNode::start(&[]);
    let (mut c, _) = Client::connect(&node.ws_url("/ws?id=e")).await;
    c.send_text("{this is not json").await;
    let e = c.recv().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("bad_json"))
    );
    assert!(e.get("ref").is_none());
    c.send(json!({"type":"fly","ref":"r1"})).await;
    let e = c.recv().await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("unknown_type"), Some("r1"))
    );
    c.send(json!({"type":"join","ref":2})).await;
    assert_eq!(c.recv().await["code"], "bad_request");
    c.send(json!({"type":"broadcast","data":1,"ref":3})).await;
    assert_eq!(c.recv().await["code"], "forbidden");
    c.send(json!({"type":"ping","ref":4})).await;
    assert_eq!(
        c.recv().await,
        json!({"type":"pong","ref":4}),
        "still connected and answering"
    );
}

#[tokio::test]
async fn client_broadcast_when_allowed() {
    let node = TestNode::start(&["--allow-client-broadcast", "--shards", "2"]);
    let (mut a, _) = Client::connect(&node.ws_url("/ws?id=a")).await;
    let (mut b, _) = Client::connect(&node.ws_url("/ws?id=b")).await;
    a.send(json!({"type":"broadcast","data":"all"})).await;
    assert_eq!(
        a.recv().await,
        json!({"type":"message","from":"a","data":"all"})
    );
    assert_eq!(
        b.recv().await,
        json!({"type":"message","from":"a","data":"all"})
    );
}

#[tokio::test]
async fn binary_frame_closes_with_1003() {
    let node = TestNode::start(&[]);
    let (mut c, _) = Client::connect(&node.ws_url("/ws")).await;
    c.send_message(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(c.ended().await, Ended::Close(1003));
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let node = TestNode::start(&["--max-message-size", "1KiB"]);
    let (mut c, _) = Client::connect(&node.ws_url("/ws")).await;
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(2000));
    c.send_text(&big).await;
    assert_eq!(c.ended().await, Ended::Close(1009));
}

#[tokio::test]
async fn duplicate_id_closes_the_older_with_4000() {
    let node = TestNode::start(&["--shards", "2"]);
    let (mut old, _) = Client::connect(&node.ws_url("/ws?id=dup")).await;
    let (mut new, _) = Client::connect(&node.ws_url("/ws?id=dup")).await;
    assert_eq!(old.ended().await, Ended::Close(4000));
    let api = hubbub_tests::post(
        node.addr,
        "/api/emit",
        r#"{"to":"dup","data":"still here"}"#,
    )
    .await;
    assert_eq!(api.json(), json!({"delivered":1}));
    assert_eq!(new.recv().await["data"], "still here");
}

#[tokio::test]
async fn silent_client_is_closed_by_the_heartbeat() {
    let node = TestNode::start(&["--ping-interval", "200ms", "--pong-timeout", "200ms"]);
    // A raw TCP client that upgrades and then never answers pings.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = hubbub_tests::connect_stream(node.addr)
        .await
        .expect("connect");
    s.write_all(b"GET /ws?id=mute HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.expect("write");
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let started = std::time::Instant::now();
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("closed in time")
            .expect("read");
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    // The stream ends with a close frame carrying 4001 (0x0fa1).
    let close = all
        .windows(4)
        .rposition(|w| w[0] == 0x88 && w[2] == 0x0f && w[3] == 0xa1);
    assert!(
        close.is_some(),
        "close 4001 in {:?}",
        &all[all.len().saturating_sub(40)..]
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    // A client that answers pings (tungstenite does) stays.
    let (mut live, _) = Client::connect(&node.ws_url("/ws?id=live")).await;
    assert!(live.silent_for(std::time::Duration::from_millis(900)).await);
    live.send(json!({"type":"ping"})).await;
    assert_eq!(live.recv().await["type"], "pong");
}

#[tokio::test]
async fn slow_consumer_is_closed_with_4008_and_others_keep_receiving() {
    let node = TestNode::start(&["--send-queue-bytes", "64KiB"]);
    // The slow client joins, then stops reading: its socket buffers fill, then its queue.
    use tokio::io::AsyncWriteExt;
    let mut slow = hubbub_tests::connect_stream(node.addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /ws/feed?id=slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.expect("write");
    let (mut fast, _) = Client::connect(&node.ws_url("/ws/feed?id=fast")).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let payload = "y".repeat(30_000);
    let body = format!(r#"{{"room":"feed","data":"{payload}"}}"#);
    let mut slow_closed = false;
    for i in 0..2000 {
        hubbub_tests::post(node.addr, "/api/publish", &body).await;
        let m = fast.recv().await;
        assert_eq!(m["room"], "feed", "fast client gets message {i}");
        let stats = hubbub_tests::http(node.addr, "GET", "/stats", None, &[])
            .await
            .json();
        if stats["slow_consumer_closes"] == 1 {
            slow_closed = true;
            break;
        }
    }
    assert!(slow_closed, "the slow client was closed as a slow consumer");
    let online = hubbub_tests::http(node.addr, "GET", "/api/online/slow", None, &[])
        .await
        .json();
    assert_eq!(online["online"], false);
    hubbub_tests::post(
        node.addr,
        "/api/publish",
        r#"{"room":"feed","data":"after"}"#,
    )
    .await;
    assert_eq!(fast.recv().await["data"], "after");
    drop(slow);
}

#[tokio::test]
async fn a_client_that_reads_late_gets_every_message_whole_and_in_order() {
    const COUNT: usize = 1000;
    // 20 MB in 20 kB messages to a client that does not read while they are sent: the socket
    // takes part of a batch, the rest waits for it to drain (the node writes through, then
    // hands the remainder to the connection's task), and nothing is lost, cut or reordered.
    let node = TestNode::start(&["--send-queue-bytes", "64MiB"]);
    let (mut late, _) = Client::connect(&node.ws_url("/ws/feed?id=late")).await;
    let pad = "z".repeat(20_000);
    for i in 0..COUNT {
        let body = format!(r#"{{"room":"feed","data":"{i:05}{pad}"}}"#);
        let reply = hubbub_tests::post(node.addr, "/api/publish", &body).await;
        assert_eq!(reply.json()["delivered"], 1, "message {i} was queued");
    }
    let stats = hubbub_tests::http(node.addr, "GET", "/stats", None, &[])
        .await
        .json();
    let queued = stats["shards"].as_array().map_or(0, |shards| {
        shards
            .iter()
            .filter_map(|s| s["queued_bytes"].as_u64())
            .sum::<u64>()
    });
    assert!(queued > 0, "the socket filled up and frames wait: {stats}");
    for i in 0..COUNT {
        let m = late.recv().await;
        let data = m["data"].as_str().unwrap_or_default();
        assert_eq!(data.len(), 20_005, "message {i} is whole");
        assert_eq!(&data[..5], format!("{i:05}"), "message {i} comes in order");
    }
}

#[tokio::test]
async fn websocket_ping_gets_pong_and_close_is_answered() {
    let node = TestNode::start(&[]);
    let (mut c, _) = Client::connect(&node.ws_url("/ws")).await;
    c.send_message(Message::Ping(b"hi".to_vec().into())).await;
    c.send(json!({"type":"ping","ref":1})).await;
    assert_eq!(c.recv().await["ref"], 1);
    c.close().await;
}
