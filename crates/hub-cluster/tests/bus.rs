//! The Redis bus against a real Redis server: two nodes, rooms, the global channel,
//! malformed envelopes, and a server restart.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hub_cluster::bus::channel;
use hub_cluster::{BusEvent, RedisBus};
use hub_core::{NodeId, RoomName};
use hubbub_tests::servers::RedisServer;
use tokio::sync::mpsc::UnboundedReceiver;

const OP: Duration = Duration::from_millis(1000);
const WAIT: Duration = Duration::from_secs(5);

async fn bus(server: &RedisServer, node: &str) -> (RedisBus, UnboundedReceiver<BusEvent>) {
    let (bus, mut events) = RedisBus::connect(&server.url(), NodeId::from(node), OP)
        .await
        .expect("connect bus");
    assert_eq!(next(&mut events).await, BusEvent::Up);
    assert!(bus.is_up());
    (bus, events)
}

async fn next(events: &mut UnboundedReceiver<BusEvent>) -> BusEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("an event in time")
        .expect("bus task alive")
}

async fn silent(events: &mut UnboundedReceiver<BusEvent>, wait: Duration) -> bool {
    tokio::time::timeout(wait, events.recv()).await.is_err()
}

fn message(origin: &str, room: Option<&str>, frame: &'static [u8]) -> BusEvent {
    BusEvent::Message {
        origin: NodeId::from(origin),
        room: room.map(RoomName::from),
        frame: Bytes::from_static(frame),
    }
}

/// Encodes a command as a RESP array.
fn resp(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// How many connections are subscribed to `room`'s channel.
fn subscribers(server: &RedisServer, room: &str) -> u64 {
    let name = channel(Some(&RoomName::from(room)));
    let answer = server.raw(&resp(&[b"PUBSUB", b"NUMSUB", name.as_bytes()]));
    // *2\r\n$N\r\n<name>\r\n:<count>\r\n
    let text = String::from_utf8_lossy(&answer);
    let mut lines = text.split("\r\n");
    lines
        .find_map(|line| line.strip_prefix(':'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn wait_subscribers(server: &RedisServer, room: &str, count: u64) {
    let started = Instant::now();
    while subscribers(server, room) != count {
        assert!(
            started.elapsed() < WAIT,
            "{room} never reached {count} subscribers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn room_message_reaches_subscribers_with_origin() {
    let server = RedisServer::start();
    let (a, mut a_events) = bus(&server, "a").await;
    let (b, mut b_events) = bus(&server, "b").await;
    b.subscribe(RoomName::from("lobby"));
    wait_subscribers(&server, "lobby", 1).await;
    a.publish(Some(&RoomName::from("lobby")), Bytes::from_static(b"hello"))
        .await
        .expect("publish");
    assert_eq!(
        next(&mut b_events).await,
        message("a", Some("lobby"), b"hello")
    );
    // a never subscribed the room.
    assert!(silent(&mut a_events, Duration::from_millis(300)).await);
    // Binary frames pass untouched.
    let binary = Bytes::from_static(b"\x00\xff\n\x01");
    b.publish(Some(&RoomName::from("lobby")), binary.clone())
        .await
        .expect("publish");
    assert_eq!(
        next(&mut b_events).await,
        BusEvent::Message {
            origin: NodeId::from("b"),
            room: Some(RoomName::from("lobby")),
            frame: binary,
        }
    );
}

#[tokio::test]
async fn unsubscribed_rooms_do_not_arrive() {
    let server = RedisServer::start();
    let (a, _a_events) = bus(&server, "a").await;
    let (b, mut b_events) = bus(&server, "b").await;
    b.subscribe(RoomName::from("r1"));
    b.subscribe(RoomName::from("r2"));
    wait_subscribers(&server, "r2", 1).await;
    b.unsubscribe(&RoomName::from("r2"));
    wait_subscribers(&server, "r2", 0).await;
    wait_subscribers(&server, "r1", 1).await;
    a.publish(Some(&RoomName::from("r2")), Bytes::from_static(b"no"))
        .await
        .expect("publish r2");
    a.publish(Some(&RoomName::from("never")), Bytes::from_static(b"no"))
        .await
        .expect("publish never");
    a.publish(Some(&RoomName::from("r1")), Bytes::from_static(b"yes"))
        .await
        .expect("publish r1");
    assert_eq!(next(&mut b_events).await, message("a", Some("r1"), b"yes"));
    assert!(silent(&mut b_events, Duration::from_millis(300)).await);
}

#[tokio::test]
async fn all_channel_reaches_every_node() {
    let server = RedisServer::start();
    let (a, mut a_events) = bus(&server, "a").await;
    let (_b, mut b_events) = bus(&server, "b").await;
    a.publish(None, Bytes::from_static(b"everyone"))
        .await
        .expect("publish");
    assert_eq!(next(&mut b_events).await, message("a", None, b"everyone"));
    // The publisher gets its own message too, with its origin: echo prevention is the caller's.
    assert_eq!(next(&mut a_events).await, message("a", None, b"everyone"));
}

#[tokio::test]
async fn malformed_envelopes_are_counted_and_ignored() {
    let server = RedisServer::start();
    let (a, _a_events) = bus(&server, "a").await;
    let (b, mut b_events) = bus(&server, "b").await;
    for junk in [
        &b""[..],
        b"\x02\x00\x00x",
        b"\x01\x00\x09ab",
        b"\x01\x00\x02\xff\xfe",
    ] {
        let answer = server.raw(&resp(&[b"PUBLISH", b"hubbub:bus:all", junk]));
        assert!(answer.starts_with(b":"), "{answer:?}");
    }
    a.publish(None, Bytes::from_static(b"valid"))
        .await
        .expect("publish");
    assert_eq!(next(&mut b_events).await, message("a", None, b"valid"));
    assert_eq!(b.malformed(), 4);
}

#[tokio::test]
async fn redis_restart_reports_down_then_up_and_restores_subscriptions() {
    let mut server = RedisServer::start();
    let (a, _a_events) = bus(&server, "a").await;
    let (b, mut b_events) = bus(&server, "b").await;
    b.subscribe(RoomName::from("kept"));
    wait_subscribers(&server, "kept", 1).await;

    server.stop();
    match next(&mut b_events).await {
        BusEvent::Down(reason) => eprintln!("down: {reason}"),
        other => panic!("expected Down, got {other:?}"),
    }
    assert!(!b.is_up());
    let t = Instant::now();
    assert!(a.publish(None, Bytes::from_static(b"lost")).await.is_err());
    assert!(t.elapsed() < OP + Duration::from_secs(1));
    // Subscribing while down is remembered.
    b.subscribe(RoomName::from("while-down"));

    server.restart();
    let started = Instant::now();
    assert_eq!(next(&mut b_events).await, BusEvent::Up);
    eprintln!("bus up again {:?} after the restart", started.elapsed());
    assert!(b.is_up());
    // Up means subscribed: no waiting needed before publishing.
    assert_eq!(subscribers(&server, "kept"), 1);
    assert_eq!(subscribers(&server, "while-down"), 1);
    a.publish(Some(&RoomName::from("kept")), Bytes::from_static(b"again"))
        .await
        .expect("publish after restart");
    assert_eq!(
        next(&mut b_events).await,
        message("a", Some("kept"), b"again")
    );
    a.publish(None, Bytes::from_static(b"all again"))
        .await
        .expect("publish all");
    assert_eq!(next(&mut b_events).await, message("a", None, b"all again"));
}

#[tokio::test]
async fn hung_redis_is_detected_by_ping() {
    let server = RedisServer::start();
    let (a, _a_events) = bus(&server, "a").await;
    let (b, mut b_events) = bus(&server, "b").await;
    b.subscribe(RoomName::from("r"));
    wait_subscribers(&server, "r", 1).await;
    // A wedged server keeps the socket open but answers nothing: the ping notices.
    server.freeze();
    let frozen = Instant::now();
    match next(&mut b_events).await {
        BusEvent::Down(reason) => eprintln!("down after {:?}: {reason}", frozen.elapsed()),
        other => panic!("expected Down, got {other:?}"),
    }
    assert!(!b.is_up());
    server.thaw();
    let up = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if next(&mut b_events).await == BusEvent::Up {
                break;
            }
        }
    })
    .await;
    assert!(up.is_ok(), "bus did not come back up");
    assert!(b.is_up());
    a.publish(Some(&RoomName::from("r")), Bytes::from_static(b"thawed"))
        .await
        .expect("publish");
    loop {
        match next(&mut b_events).await {
            BusEvent::Message { frame, .. } if &frame[..] == b"thawed" => break,
            BusEvent::Message { .. } | BusEvent::Up | BusEvent::Down(_) => continue,
        }
    }
}

#[tokio::test]
async fn connect_to_a_dead_server_fails_fast() {
    let server = RedisServer::start();
    let url = server.url();
    drop(server);
    let t = Instant::now();
    let result = RedisBus::connect(&url, NodeId::from("a"), OP).await;
    assert!(result.is_err());
    assert!(t.elapsed() < OP + Duration::from_secs(1));
}
