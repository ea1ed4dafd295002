//! The sans-IO server connection: every event, every deadline, the strict wire rules and
//! the idle size, driven through its public API with a virtual clock.

mod support;

use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hub_wire::http::Response;
use hub_wire::server::{ConnConfig, ConnEvent, ServerConn, StateError};
use support::{close_payload, frame, raw_frame, BINARY, CLOSE, PING, PONG, TEXT};

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A connection, a virtual clock and everything it wrote so far.
struct Harness {
    conn: ServerConn,
    now: Instant,
    wire: Vec<u8>,
    config: Arc<ConnConfig>,
}

impl Harness {
    fn new() -> Self {
        Self::with(ConnConfig::default())
    }

    fn with(config: ConnConfig) -> Self {
        let config = Arc::new(config);
        let now = Instant::now();
        Harness {
            conn: ServerConn::new(now, config.clone()),
            now,
            wire: Vec::new(),
            config,
        }
    }

    fn recv(&mut self, bytes: &[u8]) -> Vec<ConnEvent> {
        self.conn.recv(self.now, bytes);
        self.events()
    }

    fn events(&mut self) -> Vec<ConnEvent> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    /// Writes everything offered; returns what `written` said, and the events after.
    fn flush(&mut self) -> (bool, Vec<ConnEvent>) {
        let mut sent = false;
        loop {
            let mut slices = [IoSlice::new(&[]); 4];
            let count = self.conn.poll_transmit(&mut slices);
            if count == 0 {
                return (sent, self.events());
            }
            let mut n = 0;
            for slice in &slices[..count] {
                self.wire.extend_from_slice(slice);
                n += slice.len();
            }
            sent |= self.conn.written(n);
        }
    }

    /// Everything written so far, as text, and forgets it.
    fn take_wire(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.wire)).into_owned()
    }

    fn advance(&mut self, by: Duration) -> Vec<ConnEvent> {
        self.now += by;
        self.conn.handle_timeout(self.now);
        if let Some(at) = self.conn.poll_timeout() {
            assert!(at > self.now, "poll_timeout moves past now");
        }
        self.events()
    }

    /// Upgraded, 101 written.
    fn upgraded() -> Self {
        let mut h = Harness::new();
        let events = h.recv(UPGRADE.as_bytes());
        assert!(matches!(events.as_slice(), [ConnEvent::Upgrade(_)]));
        h.conn.accept(h.now).expect("accept");
        let (sent, _) = h.flush();
        assert!(!sent, "the 101 answer is not a batch of `send`");
        assert!(h.take_wire().starts_with("HTTP/1.1 101"));
        h
    }
}

fn json_error(wire: &str) -> serde_json::Value {
    let body = wire.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).expect("the error answer is JSON")
}

fn status(wire: &str) -> u16 {
    wire.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn a_plain_request_is_answered_and_kept_alive() {
    let mut h = Harness::new();
    let events = h.recv(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let [ConnEvent::Request(head)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(head.path, "/healthz");
    assert!(!h.conn.wants_read());
    h.conn
        .respond(h.now, &Response::json(200, "{}"))
        .expect("answer");
    let (_, events) = h.flush();
    assert!(events.is_empty());
    let wire = h.take_wire();
    assert_eq!(status(&wire), 200);
    assert!(wire.contains("Connection: keep-alive"));
    assert!(h.conn.wants_read());
    // The next request on the same connection.
    let events = h.recv(b"GET /stats HTTP/1.1\r\n\r\n");
    assert!(matches!(events.as_slice(), [ConnEvent::Request(head)] if head.path == "/stats"));
}

#[test]
fn without_keep_alive_every_answer_closes() {
    let mut h = Harness::with(ConnConfig {
        keep_alive: false,
        ..ConnConfig::default()
    });
    h.recv(b"GET / HTTP/1.1\r\n\r\n");
    h.conn
        .respond(h.now, &Response::text(200, "x"))
        .expect("answer");
    let (_, events) = h.flush();
    assert_eq!(events, vec![ConnEvent::ShutdownWrite]);
    assert!(h.take_wire().contains("Connection: close"));
}

#[test]
fn a_pipelined_request_waits_until_the_answer_before_it_is_written() {
    let mut h = Harness::new();
    let events = h.recv(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    assert_eq!(events.len(), 1, "one request at a time: {events:?}");
    h.conn
        .respond(h.now, &Response::text(200, "a"))
        .expect("answer");
    assert!(h.events().is_empty(), "the answer is not written yet");
    let (_, events) = h.flush();
    assert!(matches!(events.as_slice(), [ConnEvent::Request(head)] if head.path == "/b"));
}

#[test]
fn a_head_request_gets_the_head_of_the_answer_only() {
    let mut h = Harness::new();
    h.recv(b"HEAD / HTTP/1.1\r\n\r\n");
    h.conn
        .respond(h.now, &Response::html(200, "<p>page</p>"))
        .expect("answer");
    h.flush();
    let wire = h.take_wire();
    assert!(wire.contains("Content-Length: 11"));
    assert!(wire.ends_with("\r\n\r\n"), "{wire}");
}

#[test]
fn a_body_is_read_only_when_asked_for() {
    let mut h = Harness::new();
    let events = h.recv(b"POST /api/x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel");
    assert!(matches!(events.as_slice(), [ConnEvent::Request(_)]));
    h.conn.read_body(h.now).expect("read the body");
    assert!(h.events().is_empty(), "the body is not complete yet");
    let events = h.recv(b"lo");
    assert_eq!(events, vec![ConnEvent::Body(Bytes::from_static(b"hello"))]);
    assert_eq!(
        h.conn.read_body(h.now),
        Err(StateError("no request with an unread body is waiting"))
    );
    h.conn
        .respond(h.now, &Response::json(200, "{}"))
        .expect("answer");
    h.flush();
    assert!(h.take_wire().contains("keep-alive"));
}

#[test]
fn an_unread_body_closes_the_connection_after_the_answer() {
    let mut h = Harness::new();
    h.recv(b"POST /nowhere HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody");
    h.conn
        .respond(h.now, &Response::json(404, r#"{"error":"no"}"#))
        .expect("answer");
    let (_, events) = h.flush();
    assert_eq!(events, vec![ConnEvent::ShutdownWrite]);
    assert!(h.take_wire().contains("Connection: close"));
    // Lingering: what the client sends is discarded; its end of stream ends the connection.
    assert!(h.recv(b"GET / HTTP/1.1\r\n\r\n").is_empty());
    h.conn.recv_eof(h.now);
    assert_eq!(h.events(), vec![ConnEvent::Closed]);
    assert!(h.conn.is_closed());
}

#[test]
fn expect_continue_is_answered_when_the_body_is_asked_for() {
    let mut h = Harness::new();
    h.recv(b"POST /api/x HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
    h.conn.read_body(h.now).expect("read");
    h.flush();
    assert_eq!(h.take_wire(), "HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(
        h.recv(b"ok"),
        vec![ConnEvent::Body(Bytes::from_static(b"ok"))]
    );
}

#[test]
fn a_body_over_the_limit_is_answered_413() {
    let mut h = Harness::with(ConnConfig {
        max_body: 10,
        ..ConnConfig::default()
    });
    h.recv(b"POST /api/x HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
    h.conn.read_body(h.now).expect("asked");
    let (_, events) = h.flush();
    assert_eq!(events, vec![ConnEvent::ShutdownWrite]);
    let wire = h.take_wire();
    assert_eq!(status(&wire), 413);
    assert!(json_error(&wire)["error"].is_string());
}

#[test]
fn chunked_bodies_are_answered_411_and_bad_lengths_400_in_json() {
    for (request, expected) in [
        (
            "POST /api/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            411,
        ),
        (
            "POST /api/x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            411,
        ),
        ("POST /api/x HTTP/1.1\r\nContent-Length: \"5\"\r\n\r\n", 400),
        ("POST /api/x HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", 400),
        ("GARBAGE\r\n\r\n", 400),
    ] {
        let mut h = Harness::new();
        assert!(
            h.recv(request.as_bytes()).is_empty(),
            "{request:?} reaches nobody"
        );
        let (_, events) = h.flush();
        assert_eq!(events, vec![ConnEvent::ShutdownWrite], "{request:?}");
        let wire = h.take_wire();
        assert_eq!(status(&wire), expected, "{request:?}");
        assert!(json_error(&wire)["error"].is_string());
    }
}

#[test]
fn a_head_too_large_is_answered_431() {
    let mut h = Harness::with(ConnConfig {
        max_head: 64,
        ..ConnConfig::default()
    });
    let mut request = b"GET / HTTP/1.1\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'a', 100));
    assert!(h.recv(&request).is_empty());
    h.flush();
    assert_eq!(status(&h.take_wire()), 431);
}

#[test]
fn malformed_upgrades_are_refused_by_the_connection() {
    let cases = [
        (
            UPGRADE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
            400,
        ),
        (UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "abc"), 400),
        (UPGRADE.replace("GET", "POST"), 400),
        (UPGRADE.replace("HTTP/1.1", "HTTP/1.0"), 400),
        (
            UPGRADE.replace("Connection: Upgrade", "Connection: close"),
            400,
        ),
        (UPGRADE.replace("Version: 13", "Version: 8"), 426),
    ];
    for (request, expected) in cases {
        let mut h = Harness::new();
        assert!(h.recv(request.as_bytes()).is_empty(), "{request}");
        h.flush();
        let wire = h.take_wire();
        assert_eq!(status(&wire), expected, "{request}");
        assert!(json_error(&wire)["error"].is_string());
        if expected == 426 {
            assert!(wire.contains("Sec-WebSocket-Version: 13"));
        }
    }
}

#[test]
fn a_refused_upgrade_closes_after_the_answer() {
    let mut h = Harness::new();
    h.recv(UPGRADE.as_bytes());
    h.conn
        .respond(h.now, &Response::json(403, r#"{"error":"origin"}"#))
        .expect("refuse");
    let (_, events) = h.flush();
    assert_eq!(events, vec![ConnEvent::ShutdownWrite]);
    assert!(h.take_wire().contains("Connection: close"));
    assert!(!h.conn.is_websocket());
}

#[test]
fn frames_sent_with_the_upgrade_request_are_decoded_after_the_accept() {
    let mut h = Harness::new();
    let mut bytes = UPGRADE.as_bytes().to_vec();
    bytes.extend(frame(TEXT, b"early"));
    let events = h.recv(&bytes);
    assert!(matches!(events.as_slice(), [ConnEvent::Upgrade(_)]));
    h.conn.accept(h.now).expect("accept");
    assert_eq!(
        h.events(),
        vec![ConnEvent::Message {
            data: Bytes::from_static(b"early"),
            binary: false
        }]
    );
}

#[test]
fn messages_pings_and_pongs_become_events() {
    let mut h = Harness::upgraded();
    let mut bytes = frame(TEXT, b"hi");
    bytes.extend(frame(BINARY, &[1, 2]));
    bytes.extend(frame(PING, b"p"));
    bytes.extend(frame(PONG, b"q"));
    bytes.extend(support::client_frame(false, TEXT, [1, 2, 3, 4], b"frag"));
    bytes.extend(support::client_frame(true, 0, [4, 3, 2, 1], b"ment"));
    assert_eq!(
        h.recv(&bytes),
        vec![
            ConnEvent::Message {
                data: Bytes::from_static(b"hi"),
                binary: false
            },
            ConnEvent::Message {
                data: Bytes::from_static(&[1, 2]),
                binary: true
            },
            ConnEvent::Ping(Bytes::from_static(b"p")),
            ConnEvent::Pong(Bytes::from_static(b"q")),
            ConnEvent::Message {
                data: Bytes::from_static(b"fragment"),
                binary: false
            },
        ]
    );
    assert!(h.conn.is_idle(), "nothing left over");
}

#[test]
fn nothing_after_the_clients_close_frame_is_handed_on() {
    let mut h = Harness::upgraded();
    let mut bytes = frame(CLOSE, &close_payload(4001, b"bye"));
    bytes.extend(frame(TEXT, b"late"));
    assert_eq!(h.recv(&bytes), vec![ConnEvent::PeerClose { code: 4001 }]);
    assert!(h.recv(&frame(TEXT, b"later")).is_empty());
    // An empty close frame is answered with 1000.
    let mut h = Harness::upgraded();
    assert_eq!(
        h.recv(&frame(CLOSE, b"")),
        vec![ConnEvent::PeerClose { code: 1000 }]
    );
}

#[test]
fn nothing_after_a_protocol_error_is_handed_on_not_even_in_the_same_read() {
    let mut h = Harness::upgraded();
    let mut bytes = frame(TEXT, b"before");
    bytes.extend(raw_frame(0xC1, Some([1, 2, 3, 4]), b"rsv")); // RSV1 set
    bytes.extend(frame(PING, b"after"));
    let events = h.recv(&bytes);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(&events[0], ConnEvent::Message { data, .. } if data == "before"));
    assert!(matches!(&events[1], ConnEvent::ProtocolError(e) if e.code == 1002));
    assert!(h.recv(&frame(TEXT, b"later")).is_empty());
}

#[test]
fn invalid_utf8_fails_fast_in_the_middle_of_a_frame() {
    let mut h = Harness::upgraded();
    let whole = frame(TEXT, b"ok \xff and more to come");
    // The header and the first bytes, up to and including the invalid one.
    let events = h.recv(&whole[..6 + 4]);
    assert!(
        matches!(events.as_slice(), [ConnEvent::ProtocolError(e)] if e.code == 1007),
        "{events:?}"
    );
}

#[test]
fn written_reports_a_batch_out_once() {
    let mut h = Harness::upgraded();
    h.conn
        .send(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")])
        .expect("send");
    assert!(h.conn.wants_write());
    let mut slices = [IoSlice::new(&[]); 4];
    assert_eq!(h.conn.poll_transmit(&mut slices), 2);
    assert!(!h.conn.written(3), "one byte is left");
    assert!(h.conn.written(1));
    assert!(!h.conn.wants_write());
    assert!(h.conn.is_idle());
}

#[test]
fn a_close_writes_what_is_queued_then_shuts_and_lingers_until_the_clients_close() {
    let mut h = Harness::upgraded();
    h.conn
        .send(vec![Bytes::from_static(b"\x88\x02\x03\xe8")])
        .expect("close frame");
    h.conn.close(h.now).expect("close");
    assert!(h.conn.send(vec![Bytes::from_static(b"x")]).is_err());
    let (_, events) = h.flush();
    assert_eq!(events, vec![ConnEvent::ShutdownWrite]);
    assert_eq!(std::mem::take(&mut h.wire), b"\x88\x02\x03\xe8");
    // Messages while lingering are discarded; the client's close frame ends it.
    assert!(h.recv(&frame(TEXT, b"ignored")).is_empty());
    assert_eq!(
        h.recv(&frame(CLOSE, &close_payload(1000, b""))),
        vec![ConnEvent::Closed]
    );
}

#[test]
fn linger_ends_at_its_deadline() {
    let mut h = Harness::upgraded();
    h.conn.close(h.now).expect("close");
    assert_eq!(h.events(), vec![ConnEvent::ShutdownWrite]);
    let linger = h.config.linger;
    assert!(h.advance(linger - Duration::from_millis(1)).is_empty());
    assert_eq!(h.advance(Duration::from_millis(1)), vec![ConnEvent::Closed]);
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn the_drain_deadline_ends_a_close_the_client_does_not_read() {
    let mut h = Harness::upgraded();
    h.conn
        .send(vec![Bytes::from_static(b"never read")])
        .expect("send");
    h.conn.close(h.now).expect("close");
    let drain = h.config.drain_timeout;
    assert!(h.advance(drain - Duration::from_millis(1)).is_empty());
    assert_eq!(h.advance(Duration::from_millis(1)), vec![ConnEvent::Closed]);
    assert!(!h.conn.wants_write(), "nothing is offered once closed");
}

#[test]
fn one_deadline_covers_the_whole_request_head_however_slowly_it_comes() {
    let mut h = Harness::new();
    let timeout = h.config.request_timeout;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let step = timeout / 4;
    for byte in &request[..4] {
        assert!(h.recv(std::slice::from_ref(byte)).is_empty());
        h.advance(step - Duration::from_millis(1));
    }
    // Four reads, each well inside the timeout, yet the request is late as a whole.
    h.recv(b"x");
    let events = h.advance(Duration::from_millis(10));
    assert!(events.is_empty(), "{events:?}");
    let (_, events) = h.flush();
    assert_eq!(events, vec![ConnEvent::ShutdownWrite]);
    let wire = h.take_wire();
    assert_eq!(status(&wire), 408);
    assert!(json_error(&wire)["error"].is_string());
}

#[test]
fn the_body_shares_the_deadline_of_its_head() {
    let mut h = Harness::new();
    let timeout = h.config.request_timeout;
    h.advance(timeout / 2);
    h.recv(b"POST /api/x HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345");
    assert_eq!(
        h.conn.poll_timeout(),
        None,
        "no deadline while the caller decides"
    );
    h.advance(timeout);
    h.conn.read_body(h.now).expect("read");
    // The request's deadline passed while the caller decided: the body is late.
    h.advance(Duration::ZERO);
    h.flush();
    assert_eq!(status(&h.take_wire()), 408);
}

#[test]
fn a_silent_connection_is_closed_quietly_at_the_request_deadline() {
    let mut h = Harness::new();
    let timeout = h.config.request_timeout;
    assert_eq!(h.advance(timeout), vec![ConnEvent::Closed]);
    assert!(h.take_wire().is_empty());
}

#[test]
fn a_kept_alive_connection_gets_the_keep_alive_deadline_for_its_next_request() {
    let mut h = Harness::new();
    h.recv(b"GET / HTTP/1.1\r\n\r\n");
    h.conn
        .respond(h.now, &Response::text(200, "x"))
        .expect("answer");
    h.flush();
    let keep_alive = h.config.keep_alive_timeout;
    assert_eq!(h.conn.poll_timeout(), Some(h.now + keep_alive));
    assert_eq!(h.advance(keep_alive), vec![ConnEvent::Closed]);
}

#[test]
fn an_answer_the_client_does_not_read_ends_at_the_keep_alive_deadline() {
    let mut h = Harness::new();
    h.recv(b"GET / HTTP/1.1\r\n\r\n");
    h.conn
        .respond(h.now, &Response::text(200, "x"))
        .expect("answer");
    let keep_alive = h.config.keep_alive_timeout;
    assert_eq!(h.advance(keep_alive), vec![ConnEvent::Closed]);
}

#[test]
fn end_of_stream_closes_an_open_websocket() {
    let mut h = Harness::upgraded();
    h.recv(&frame(TEXT, b"x"));
    h.conn.recv_eof(h.now);
    assert_eq!(h.events(), vec![ConnEvent::Closed]);
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    let mut h = Harness::new();
    h.recv(b"GET / HTTP/1.0\r\n\r\n");
    h.conn.recv_eof(h.now);
    assert!(h.events().is_empty());
    h.conn
        .respond(h.now, &Response::text(200, "x"))
        .expect("answer");
    let (_, events) = h.flush();
    assert_eq!(events, vec![ConnEvent::Closed]);
    assert_eq!(status(&h.take_wire()), 200);
}

#[test]
fn a_body_cut_short_by_the_end_of_the_stream_ends_the_connection() {
    let mut h = Harness::new();
    h.recv(b"POST /api/x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    h.conn.recv_eof(h.now);
    assert!(h.events().is_empty(), "an answer is still owed");
    h.conn.read_body(h.now).expect("read");
    assert_eq!(h.events(), vec![ConnEvent::Closed]);
    // A complete body is still handed on after the end of the stream.
    let mut h = Harness::new();
    h.recv(b"POST /api/x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    h.conn.recv_eof(h.now);
    h.conn.read_body(h.now).expect("read");
    assert_eq!(
        h.events(),
        vec![ConnEvent::Body(Bytes::from_static(b"abc"))]
    );
}

#[test]
fn a_flood_while_an_answer_is_owed_closes_the_connection() {
    let mut h = Harness::with(ConnConfig {
        max_head: 100,
        max_body: 100,
        ..ConnConfig::default()
    });
    h.recv(b"GET / HTTP/1.1\r\n\r\n");
    assert!(h.recv(&[b'a'; 150]).is_empty());
    assert_eq!(h.recv(&[b'a'; 100]), vec![ConnEvent::Closed]);
}

#[test]
fn calls_in_the_wrong_state_are_refused_and_change_nothing() {
    let mut h = Harness::new();
    assert!(h.conn.accept(h.now).is_err());
    assert!(h.conn.read_body(h.now).is_err());
    assert!(h.conn.respond(h.now, &Response::text(200, "")).is_err());
    assert!(h.conn.send(vec![Bytes::from_static(b"x")]).is_err());
    assert!(h.conn.close(h.now).is_err());
    assert!(!h.conn.wants_write());
    let mut h = Harness::upgraded();
    assert!(h.conn.respond(h.now, &Response::text(200, "")).is_err());
    assert!(h.conn.accept(h.now).is_err());
}

#[test]
fn an_idle_websocket_is_40_bytes_and_owns_no_heap() {
    assert_eq!(std::mem::size_of::<ServerConn>(), 40);
    let mut h = Harness::upgraded();
    assert!(h.conn.is_idle());
    h.recv(&frame(TEXT, b"hello"));
    h.conn
        .send(vec![Bytes::from_static(b"answer")])
        .expect("send");
    assert!(!h.conn.is_idle());
    h.flush();
    assert!(
        h.conn.is_idle(),
        "back to idle once everything is taken and written"
    );
    // A partial frame keeps state; its end releases it.
    let bytes = frame(BINARY, &[7; 50]);
    h.recv(&bytes[..20]);
    assert!(!h.conn.is_idle());
    h.recv(&bytes[20..]);
    assert!(h.conn.is_idle());
    assert!(ServerConn::upgraded(h.config.clone()).is_idle());
}

#[test]
fn the_deadline_always_moves_past_now() {
    let mut h = Harness::new();
    for step in 0..200 {
        match step % 7 {
            0 => {
                h.recv(b"GET / HTTP/1.1\r\n");
            }
            1 => {
                let _ = h.conn.respond(h.now, &Response::text(200, "x"));
            }
            2 => {
                h.flush();
            }
            _ => {}
        }
        let by = Duration::from_millis(1 << (step % 14));
        h.advance(by);
        if h.conn.is_closed() {
            h = Harness::new();
        }
    }
}
