//! The poll runtime against real WebSocket clients (tungstenite's blocking client): the node
//! runs `serve` in a plain thread, the clients in the test thread. No async anywhere.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hub_serve::{RegistrySpec, Settings};
use hubbub_poll::{serve, Server};
use serde_json::{json, Value};
use tungstenite::protocol::{Role, WebSocket};
use tungstenite::{Error, Message};

mod support;

use support::{close_code, connect, join, recv, send, Ws};

/// A node running `serve` in its own thread.
struct Node {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Node {
    fn start(settings: Settings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || serve(listener, settings, flag));
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) -> std::io::Result<()> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some(thread) => thread.join().expect("the loop panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Proves nothing else is queued for `ws`: the next frame is the answer to a ping.
fn nothing_more(ws: &mut Ws) {
    send(ws, json!({"type": "ping"}));
    assert_eq!(recv(ws), json!({"type": "pong"}));
}

/// One plain HTTP request; the whole answer (the node closes after it).
fn http(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

#[test]
fn welcome_then_pings_are_answered() {
    let node = Node::start(Settings::default());
    let mut ws = connect(node.addr, "/ws?id=alice");
    let welcome = recv(&mut ws);
    let name = format!("node-{}", node.addr.port());
    assert_eq!(
        welcome,
        json!({"type": "welcome", "id": "alice", "node": name})
    );
    nothing_more(&mut ws);
    ws.send(Message::Ping(b"hi".to_vec().into())).expect("ping");
    match ws.read().expect("read") {
        Message::Pong(payload) => assert_eq!(&payload[..], b"hi"),
        other => panic!("expected a pong, got {other:?}"),
    }
}

#[test]
fn room_publishes_reach_every_member_once_in_order() {
    let node = Node::start(Settings::default());
    let mut a = join(node.addr, "/ws?id=a");
    let mut b = join(node.addr, "/ws?id=b");
    let mut c = join(node.addr, "/ws/lobby?id=c");
    for (ws, r) in [(&mut a, 1), (&mut b, 2)] {
        send(ws, json!({"type": "join", "room": "lobby", "ref": r}));
        assert_eq!(recv(ws), json!({"type": "ack", "ref": r}));
    }
    for i in 0..5 {
        send(
            &mut a,
            json!({"type": "publish", "room": "lobby", "data": {"n": i}}),
        );
    }
    for ws in [&mut a, &mut b, &mut c] {
        for i in 0..5 {
            let expected =
                json!({"type": "message", "room": "lobby", "from": "a", "data": {"n": i}});
            assert_eq!(recv(ws), expected);
        }
        nothing_more(ws);
    }
}

#[test]
fn emit_reaches_one_client_by_id() {
    let node = Node::start(Settings::default());
    let mut a = join(node.addr, "/ws?id=a");
    let mut b = join(node.addr, "/ws?id=b");
    let mut c = join(node.addr, "/ws?id=c");
    send(
        &mut a,
        json!({"type": "emit", "to": "b", "data": "hello", "ref": "e1"}),
    );
    assert_eq!(recv(&mut a), json!({"type": "ack", "ref": "e1"}));
    assert_eq!(
        recv(&mut b),
        json!({"type": "message", "from": "a", "data": "hello"})
    );
    nothing_more(&mut a);
    nothing_more(&mut b);
    nothing_more(&mut c);
}

#[test]
fn bad_requests_get_error_frames_and_the_connection_stays() {
    let node = Node::start(Settings::default());
    let mut ws = join(node.addr, "/ws");
    ws.send(Message::text("not json")).expect("send");
    let error = recv(&mut ws);
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("bad_json"))
    );
    send(&mut ws, json!({"type": "join", "ref": 7}));
    let error = recv(&mut ws);
    assert_eq!(error["code"], "bad_request");
    assert_eq!(error["ref"], 7);
    send(&mut ws, json!({"type": "dance", "ref": "x"}));
    let error = recv(&mut ws);
    assert_eq!(
        (error["code"].as_str(), error["ref"].as_str()),
        (Some("unknown_type"), Some("x"))
    );
    nothing_more(&mut ws);
}

#[test]
fn protocol_violations_close_with_their_codes() {
    let node = Node::start(Settings::default());
    let mut ws = join(node.addr, "/ws");
    ws.send(Message::binary(vec![1, 2, 3])).expect("send");
    assert_eq!(close_code(&mut ws), 1003);

    let mut ws = join(node.addr, "/ws");
    let big = "x".repeat(70 * 1024);
    send(
        &mut ws,
        json!({"type": "publish", "room": "r", "data": big}),
    );
    assert_eq!(close_code(&mut ws), 1009);
}

#[test]
fn a_silent_client_is_closed_by_the_heartbeat_and_a_live_one_stays() {
    let node = Node::start(Settings {
        ping_interval: Duration::from_millis(200),
        pong_timeout: Duration::from_millis(200),
        ..Settings::default()
    });
    let mut silent = join(node.addr, "/ws?id=silent");
    let mut live = join(node.addr, "/ws?id=live");
    live.get_ref()
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    // The live client reads (and so answers pings) for a while; the silent one does not.
    let until = Instant::now() + Duration::from_millis(1000);
    let mut pings = 0;
    while Instant::now() < until {
        match live.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("live client dropped: {e}"),
        }
    }
    assert!(pings >= 2, "{pings} pings");
    assert_eq!(close_code(&mut silent), 4001);
    live.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    nothing_more(&mut live);
}

#[test]
fn http_endpoints_answer_and_close() {
    let node = Node::start(Settings::default());
    let health = http(node.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with(r#"{"status":"ok"}"#), "{health}");
    let missing = http(node.addr, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let api = http(
        node.addr,
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n",
    );
    assert!(api.starts_with("HTTP/1.1 404"), "{api}");
    let plain = http(node.addr, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");
    let garbage = http(node.addr, "NOT HTTP AT ALL\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
}

#[test]
fn frames_sent_with_the_head_are_decoded() {
    let node = Node::start(Settings::default());
    let mut stream = TcpStream::connect(node.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut bytes = b"GET /ws?id=eager HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        .to_vec();
    // A masked text frame carrying {"type":"ping"}, in the same write as the head.
    let payload = br#"{"type":"ping"}"#;
    let mask = [1u8, 2, 3, 4];
    bytes.extend([0x81, 0x80 | payload.len() as u8]);
    bytes.extend(mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&bytes).expect("write");
    // The 101 head, byte by byte so that no frame byte is taken.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        stream.read_exact(&mut byte).expect("head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("utf8");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    let mut ws = WebSocket::from_raw_socket(stream, Role::Client, None);
    assert_eq!(recv(&mut ws)["id"], "eager");
    assert_eq!(recv(&mut ws), json!({"type": "pong"}));
}

#[test]
fn a_client_that_never_sends_its_head_is_dropped() {
    let node = Node::start(Settings {
        handshake_timeout: Duration::from_millis(200),
        ..Settings::default()
    });
    let mut stream = TcpStream::connect(node.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let started = Instant::now();
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).expect("eof"), 0);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn connections_per_ip_are_limited() {
    let node = Node::start(Settings {
        max_connections_per_ip: Some(1),
        ..Settings::default()
    });
    let first = join(node.addr, "/ws");
    let stream = TcpStream::connect(node.addr).expect("connect");
    match tungstenite::client::client(format!("ws://{}/ws", node.addr), stream) {
        Err(tungstenite::HandshakeError::Failure(Error::Http(response))) => {
            assert_eq!(response.status(), 429);
        }
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    drop(first);
    // The place is given back when the first connection goes.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stream = TcpStream::connect(node.addr).expect("connect");
        if tungstenite::client::client(format!("ws://{}/ws", node.addr), stream).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never given back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_slow_consumer_is_closed_without_stalling_the_others() {
    let node = Node::start(Settings {
        send_queue_bytes: 256 * 1024,
        ..Settings::default()
    });
    let mut fast = join(node.addr, "/ws/flood?id=fast");
    let mut slow = join(node.addr, "/ws/flood?id=slow");
    let chunk = "y".repeat(32 * 1024);
    for i in 0..600 {
        send(
            &mut fast,
            json!({"type": "publish", "room": "flood", "data": [i, chunk]}),
        );
        assert_eq!(recv(&mut fast)["data"][0], i);
    }
    nothing_more(&mut fast);
    let mut received = 0;
    loop {
        match slow.read().expect("read") {
            Message::Text(_) => received += 1,
            Message::Close(frame) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(4008));
                break;
            }
            _ => {}
        }
    }
    assert!(received < 600, "{received}");
}

#[test]
fn stopping_closes_clients_with_1001_and_the_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = Server::new(listener, Settings::default()).expect("server");
    let addr = server.local_addr();
    let stopper = server.stopper();
    let thread = std::thread::spawn(move || server.run());
    let mut a = join(addr, "/ws/r");
    let mut b = join(addr, "/ws/r");
    let started = Instant::now();
    stopper.stop();
    assert_eq!(close_code(&mut a), 1001);
    assert_eq!(close_code(&mut b), 1001);
    thread.join().expect("no panic").expect("clean stop");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

#[test]
fn the_stop_flag_of_serve_ends_the_loop() {
    let mut node = Node::start(Settings::default());
    let addr = node.addr;
    let mut ws = join(addr, "/ws");
    node.stop.store(true, Ordering::Release);
    assert_eq!(close_code(&mut ws), 1001);
    node.stop().expect("clean stop");
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

#[test]
fn settings_it_cannot_run_are_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let clustered = Settings {
        registry: RegistrySpec::Redis("redis://127.0.0.1:1".into()),
        grpc_listen: Some(SocketAddr::from(([127, 0, 0, 1], 1))),
        ..Settings::default()
    };
    let error = Server::new(listener, clustered).expect_err("standalone only");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let zero = Settings {
        ping_interval: Duration::ZERO,
        ..Settings::default()
    };
    assert!(Server::new(listener, zero).is_err());
}

#[test]
fn the_wire_rules_of_the_server_connection_hold() {
    let node = Node::start(Settings::default());
    let no_key = http(
        node.addr,
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(no_key.starts_with("HTTP/1.1 400"), "{no_key}");
    let chunked = http(
        node.addr,
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert!(chunked.starts_with("HTTP/1.1 411"), "{chunked}");
    for answer in [no_key, chunked] {
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        let parsed: Value = serde_json::from_str(body).expect("a JSON error answer");
        assert!(parsed["error"].is_string(), "{answer}");
    }
}
