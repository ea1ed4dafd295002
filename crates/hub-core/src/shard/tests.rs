use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use super::*;
use crate::config::{ClientProtocol, OverflowPolicy};
use crate::frame::{opcode_of, payload_of, OpCode};
use crate::ids::RequestId;
use crate::protocol;

struct Harness {
    shard: Shard,
    now: Instant,
    outputs: Vec<Output>,
}

impl Harness {
    fn new(config: Config) -> Self {
        Self {
            shard: Shard::new(ShardId(0), config).expect("valid"),
            now: Instant::now(),
            outputs: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.shard.poll_output() {
            self.outputs.push(out);
        }
    }

    fn open(&mut self, client: &str) -> ConnId {
        self.open_with(OpenParams {
            client: Some(ClientId::from(client)),
            ..Default::default()
        })
    }

    fn open_with(&mut self, params: OpenParams) -> ConnId {
        let id = self.shard.open(self.now, params).expect("opens");
        self.drain();
        id
    }

    fn input(&mut self, input: Input) {
        self.shard.handle_input(self.now, input);
        self.drain();
    }

    fn text(&mut self, conn: ConnId, json: &str) {
        self.input(Input::Message {
            conn,
            data: Bytes::copy_from_slice(json.as_bytes()),
            binary: false,
        });
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.shard.handle_timeout(self.now);
        self.drain();
    }

    /// Frames transmitted to `conn` so far (acknowledging each batch as written).
    fn frames_to(&mut self, conn: ConnId) -> Vec<Bytes> {
        let mut frames = Vec::new();
        loop {
            let mut sent = false;
            let outputs = std::mem::take(&mut self.outputs);
            for out in outputs {
                match out {
                    Output::Transmit {
                        conn: c,
                        frames: f,
                        close,
                    } if c == conn => {
                        frames.extend(f);
                        if !close {
                            self.shard.handle_input(self.now, Input::Sent { conn });
                            sent = true;
                        }
                    }
                    other => self.outputs.push(other),
                }
            }
            self.drain();
            if !sent {
                return frames;
            }
        }
    }

    fn json_to(&mut self, conn: ConnId) -> Vec<Value> {
        self.frames_to(conn)
            .into_iter()
            .filter(|f| opcode_of(f) == Some(OpCode::Text))
            .map(|f| serde_json::from_slice(&payload_of(&f)).expect("json"))
            .collect()
    }

    fn close_code_to(&mut self, conn: ConnId) -> Option<u16> {
        self.frames_to(conn)
            .into_iter()
            .find(|f| opcode_of(f) == Some(OpCode::Close))
            .map(|f| {
                let p = payload_of(&f);
                u16::from_be_bytes([p[0], p[1]])
            })
    }

    fn reports(&mut self) -> Vec<Report> {
        let mut reports = Vec::new();
        self.outputs.retain(|o| match o {
            Output::Report(r) => {
                reports.push(r.clone());
                false
            }
            _ => true,
        });
        reports
    }
}

fn cfg() -> Config {
    Config {
        node_id: "n1".into(),
        ..Config::default()
    }
}

#[test]
fn open_sends_welcome_and_indexes() {
    let mut h = Harness::new(cfg());
    let a = h.open("a");
    let msgs = h.json_to(a);
    assert_eq!(msgs[0]["type"], "welcome");
    assert_eq!(msgs[0]["id"], "a");
    assert_eq!(msgs[0]["node"], "n1");
    assert_eq!(h.shard.resolve("a"), Some(a));
    assert_eq!(h.shard.connection_count(), 1);
    assert!(h.reports().contains(&Report::ClientUp {
        client: "a".into(),
        user: None,
        conn: a
    }));
}

#[test]
fn generated_ids_are_unique_and_deterministic() {
    let mut h1 = Harness::new(cfg());
    let mut h2 = Harness::new(cfg());
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let a = h1.open_with(OpenParams::default());
        let b = h2.open_with(OpenParams::default());
        let ca = h1.shard.connection(a).expect("open").client;
        assert_eq!(ca, h2.shard.connection(b).expect("open").client);
        assert!(seen.insert(ca));
    }
}

#[test]
fn wrong_shard_and_bad_names_are_refused() {
    let config = Config {
        shard_count: 4,
        ..cfg()
    };
    let mut shard = Shard::new(ShardId(1), config).expect("valid");
    let foreign = (0..100)
        .map(|i| format!("c{i}"))
        .find(|c| shard_for(c, 4) != ShardId(1))
        .expect("some id");
    let err = shard.open(
        Instant::now(),
        OpenParams {
            client: Some(foreign.as_str().into()),
            ..Default::default()
        },
    );
    assert!(matches!(err, Err(OpenError::WrongShard(_))));
    let long = "x".repeat(300);
    let err = shard.open(
        Instant::now(),
        OpenParams {
            user: Some(long.as_str().into()),
            ..Default::default()
        },
    );
    assert!(matches!(
        err,
        Err(OpenError::BadName {
            what: "user id",
            ..
        })
    ));
    // A generated id always belongs to this shard.
    let id = shard
        .open(Instant::now(), OpenParams::default())
        .expect("opens");
    let client = shard.connection(id).expect("open").client;
    assert_eq!(shard_for(client.as_str(), 4), ShardId(1));
}

#[test]
fn room_publish_reaches_members_once_and_acks() {
    let mut h = Harness::new(cfg());
    let a = h.open("a");
    let b = h.open("b");
    let c = h.open("c");
    for conn in [a, b, c] {
        h.json_to(conn);
    }
    h.text(a, r#"{"type":"join","room":"r","ref":1}"#);
    h.text(b, r#"{"type":"join","room":"r"}"#);
    assert_eq!(
        h.json_to(a),
        vec![serde_json::json!({"type":"ack","ref":1})]
    );
    h.text(
        c,
        r#"{"type":"publish","room":"r","data":{"n":1},"ref":"p"}"#,
    );
    let got_a = h.json_to(a);
    let got_b = h.json_to(b);
    assert_eq!(
        got_a,
        vec![serde_json::json!({"type":"message","room":"r","from":"c","data":{"n":1}})]
    );
    assert_eq!(got_a, got_b);
    assert_eq!(
        h.json_to(c),
        vec![serde_json::json!({"type":"ack","ref":"p"})]
    );
    let routes: Vec<Report> = h
        .reports()
        .into_iter()
        .filter(|r| matches!(r, Report::Route { .. }))
        .collect();
    assert_eq!(
        routes.len(),
        1,
        "the publish is routed on to other shards and nodes"
    );
    h.text(a, r#"{"type":"leave","room":"r"}"#);
    h.text(c, r#"{"type":"publish","room":"r","data":2}"#);
    assert!(h.json_to(a).is_empty());
    assert_eq!(h.json_to(b).len(), 1);
}

#[test]
fn fan_out_shares_one_buffer() {
    let mut h = Harness::new(cfg());
    let conns: Vec<ConnId> = (0..5).map(|i| h.open(&format!("c{i}"))).collect();
    for &c in &conns {
        h.json_to(c);
        h.input(Input::Join {
            target: Target::Conn(c),
            room: "r".into(),
            req: None,
        });
    }
    let frame = protocol::message(Some("r"), None, "\"hello\"");
    h.input(Input::Deliver {
        target: Target::Room("r".into()),
        frame: frame.clone(),
        req: Some(RequestId(7)),
    });
    assert!(h.reports().contains(&Report::Delivered {
        req: RequestId(7),
        count: 5
    }));
    for &c in &conns {
        let frames = h.frames_to(c);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            frames[0].as_ptr(),
            frame.as_ptr(),
            "every queue holds the same buffer"
        );
    }
}

#[test]
fn malformed_json_gets_error_frame_and_connection_stays() {
    let mut h = Harness::new(cfg());
    let a = h.open("a");
    h.json_to(a);
    h.text(a, "{not json");
    h.text(a, r#"{"type":"nope","ref":5}"#);
    h.text(a, r#"{"type":"join"}"#);
    h.text(a, r#"{"type":"broadcast","data":1,"ref":"b"}"#);
    let msgs = h.json_to(a);
    let codes: Vec<&str> = msgs
        .iter()
        .map(|m| m["code"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        codes,
        vec!["bad_json", "unknown_type", "bad_request", "forbidden"]
    );
    assert_eq!(msgs[1]["ref"], 5);
    assert_eq!(msgs[3]["ref"], "b");
    assert!(msgs[0].get("ref").is_none());
    assert_eq!(h.shard.resolve("a"), Some(a));
    assert_eq!(h.shard.stats().request_errors, 4);
}

#[test]
fn json_clients_cannot_name_reserved_rooms() {
    let mut h = Harness::new(cfg());
    let a = h.open("a");
    h.json_to(a);
    for kind in ["join", "leave"] {
        h.text(
            a,
            &format!(r#"{{"type":"{kind}","room":"\u001fpusher:1:news","ref":1}}"#),
        );
    }
    h.text(a, r#"{"type":"publish","room":"\u001fx","data":1,"ref":2}"#);
    let msgs = h.json_to(a);
    let codes: Vec<&str> = msgs
        .iter()
        .map(|m| m["code"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(codes, vec!["forbidden"; 3]);
    assert!(h.shard.room_names().is_empty());
}

#[test]
fn binary_and_oversized_messages_close_with_codes() {
    let mut h = Harness::new(Config {
        max_message_size: 128,
        ..cfg()
    });
    let a = h.open("a");
    let b = h.open("b");
    h.input(Input::Message {
        conn: a,
        data: Bytes::from_static(b"\x00\x01"),
        binary: true,
    });
    assert_eq!(h.close_code_to(a), Some(1003));
    h.input(Input::Message {
        conn: b,
        data: Bytes::from(vec![b' '; 200]),
        binary: false,
    });
    assert_eq!(h.close_code_to(b), Some(1009));
    assert_eq!(h.shard.connection_count(), 0);
    assert_eq!(
        h.shard.table_len(),
        0,
        "closed and flushed connections free their slots"
    );
}

#[test]
fn duplicate_client_id_replaces_with_4000_and_keeps_registry_entry() {
    let mut h = Harness::new(cfg());
    let old = h.open("same");
    h.json_to(old);
    h.reports();
    let new = h.open("same");
    assert_ne!(old, new);
    assert_eq!(h.close_code_to(old), Some(4000));
    assert_eq!(h.shard.resolve("same"), Some(new));
    let reports = h.reports();
    assert!(
        !reports
            .iter()
            .any(|r| matches!(r, Report::ClientDown { .. })),
        "the newer connection keeps the id: {reports:?}"
    );
    assert_eq!(h.shard.stats().replaced, 1);
}

#[test]
fn slow_consumer_is_closed_with_4008_others_keep_receiving() {
    let mut h = Harness::new(Config {
        send_queue_bytes: 64 * 1024,
        send_queue_messages: 8,
        ..cfg()
    });
    let slow = h.open("slow");
    let fast = h.open("fast");
    h.json_to(fast);
    for conn in [slow, fast] {
        h.input(Input::Join {
            target: Target::Conn(conn),
            room: "r".into(),
            req: None,
        });
    }
    // `slow` never reports Sent: its first batch stays in flight and the queue fills.
    for i in 0..20 {
        let frame = protocol::message(Some("r"), None, &i.to_string());
        h.input(Input::Deliver {
            target: Target::Room("r".into()),
            frame,
            req: None,
        });
        assert_eq!(h.json_to(fast).len(), 1, "fast gets message {i}");
    }
    assert_eq!(h.shard.stats().slow_consumer_closes, 1);
    assert!(h.shard.resolve("slow").is_none());
    // Once the stuck batch is written, the close frame follows.
    h.input(Input::Sent { conn: slow });
    assert_eq!(h.close_code_to(slow), Some(4008));
}

#[test]
fn drop_oldest_policy_counts_drops() {
    let mut h = Harness::new(Config {
        send_queue_bytes: 64 * 1024,
        send_queue_messages: 4,
        overflow_policy: OverflowPolicy::DropOldest,
        ..cfg()
    });
    let a = h.open("a");
    for i in 0..10 {
        let frame = protocol::message(None, None, &i.to_string());
        h.input(Input::Deliver {
            target: Target::Conn(a),
            frame,
            req: None,
        });
    }
    assert!(h.shard.stats().dropped_frames > 0);
    assert_eq!(h.shard.resolve("a"), Some(a));
    let info = h.shard.connection(a).expect("open");
    assert!(info.queued_frames <= 4);
}

#[test]
fn heartbeat_pings_then_closes_silent_client() {
    let mut h = Harness::new(Config {
        ping_interval: Duration::from_secs(25),
        pong_timeout: Duration::from_secs(10),
        ..cfg()
    });
    let live = h.open("live");
    let silent = h.open("silent");
    h.json_to(live);
    h.json_to(silent);
    h.advance(Duration::from_secs(25));
    for conn in [live, silent] {
        let frames = h.frames_to(conn);
        assert_eq!(frames.len(), 1);
        assert_eq!(opcode_of(&frames[0]), Some(OpCode::Ping));
    }
    h.input(Input::Activity { conn: live });
    h.advance(Duration::from_secs(10));
    assert_eq!(h.close_code_to(silent), Some(4001));
    assert_eq!(h.shard.resolve("live"), Some(live));
    assert_eq!(h.shard.stats().heartbeat_closes, 1);
    assert!(h.shard.poll_timeout().expect("live has a timer") > h.now);
}

#[test]
fn poll_timeout_moves_past_now_after_handle_timeout() {
    let mut h = Harness::new(Config {
        ping_interval: Duration::from_millis(10),
        pong_timeout: Duration::from_millis(10),
        ..cfg()
    });
    for i in 0..10 {
        h.open(&format!("c{i}"));
        h.now += Duration::from_millis(3);
    }
    for _ in 0..50 {
        let next = h.shard.poll_timeout();
        let Some(next) = next else { break };
        h.now = h.now.max(next);
        h.shard.handle_timeout(h.now);
        h.drain();
        if let Some(after) = h.shard.poll_timeout() {
            assert!(after > h.now);
        }
    }
}

#[test]
fn client_ping_and_websocket_ping_are_answered() {
    let mut h = Harness::new(cfg());
    let a = h.open("a");
    h.json_to(a);
    h.text(a, r#"{"type":"ping","ref":3}"#);
    assert_eq!(
        h.json_to(a),
        vec![serde_json::json!({"type":"pong","ref":3})]
    );
    h.input(Input::Ping {
        conn: a,
        payload: Bytes::from_static(b"xy"),
    });
    let frames = h.frames_to(a);
    assert_eq!(opcode_of(&frames[0]), Some(OpCode::Pong));
    assert_eq!(&payload_of(&frames[0])[..], b"xy");
}

#[test]
fn stale_ids_never_resolve_after_slot_reuse() {
    let mut h = Harness::new(cfg());
    let a = h.open("a");
    h.input(Input::Closed { conn: a });
    let b = h.open("b");
    assert_eq!(a.slot, b.slot, "slot reused");
    assert_ne!(a.gen, b.gen);
    assert!(h.shard.connection(a).is_none());
    h.input(Input::Message {
        conn: a,
        data: Bytes::from_static(b"{}"),
        binary: false,
    });
    h.input(Input::Close {
        conn: a,
        code: 1000,
        reason: String::new(),
    });
    assert_eq!(h.shard.resolve("b"), Some(b));
    assert!(!h.shard.connection(b).expect("open").closing);
}

#[test]
fn close_frees_indexes_rooms_and_timers() {
    let mut h = Harness::new(cfg());
    let a = h.open_with(OpenParams {
        client: Some("a".into()),
        user: Some("u".into()),
        rooms: vec!["r1".into(), "r2".into()],
        ..Default::default()
    });
    assert_eq!(h.shard.room_count(), 2);
    assert_eq!(h.shard.user_connections("u"), vec![a]);
    h.reports();
    h.input(Input::Closed { conn: a });
    assert_eq!(h.shard.room_count(), 0);
    assert!(h.shard.user_connections("u").is_empty());
    assert_eq!(h.shard.timer_count(), 0);
    assert_eq!(h.shard.table_len(), 0);
    let reports = h.reports();
    for expected in [
        Report::RoomIdle("r1".into()),
        Report::RoomIdle("r2".into()),
        Report::UserIdle("u".into()),
    ] {
        assert!(reports.contains(&expected), "{expected:?} in {reports:?}");
    }
}

#[test]
fn shutdown_flushes_queued_then_closes_1001() {
    let mut h = Harness::new(cfg());
    let a = h.open("a");
    h.shard.handle_input(h.now, Input::Shutdown);
    h.drain();
    let frames = h.frames_to(a);
    assert_eq!(
        opcode_of(&frames[0]),
        Some(OpCode::Text),
        "welcome still goes out first"
    );
    let last = frames.last().expect("close");
    assert_eq!(opcode_of(last), Some(OpCode::Close));
    assert_eq!(&payload_of(last)[..2], &1001u16.to_be_bytes());
    assert!(matches!(
        h.shard.open(h.now, OpenParams::default()),
        Err(OpenError::ShuttingDown)
    ));
}

#[test]
fn stuck_close_is_aborted_after_drain_timeout() {
    let mut h = Harness::new(cfg());
    let a = h.open("a");
    // The welcome batch is in flight and never completes.
    let _ = h.outputs.drain(..).count();
    h.input(Input::Close {
        conn: a,
        code: 1000,
        reason: String::new(),
    });
    h.advance(Duration::from_secs(5));
    assert!(h.outputs.iter().any(|o| *o == Output::Abort { conn: a }));
    assert_eq!(h.shard.table_len(), 0);
    assert_eq!(h.shard.timer_count(), 0);
}

#[test]
fn raw_protocol_passes_messages_to_the_application() {
    let mut h = Harness::new(Config {
        client_protocol: ClientProtocol::Raw,
        ..cfg()
    });
    let a = h.open("a");
    assert!(h.frames_to(a).is_empty(), "no welcome in raw mode");
    h.input(Input::Message {
        conn: a,
        data: Bytes::from_static(b"\x01\x02"),
        binary: true,
    });
    assert!(h
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Event(Event::Message { binary: true, .. }))));
}

#[test]
fn pusher_connections_sit_beside_json_ones() {
    let mut h = Harness::new(cfg());
    let json = h.open("j");
    let p = h.open_with(OpenParams {
        protocol: Some(ClientProtocol::Pusher),
        ..Default::default()
    });
    let socket = h.shard.connection(p).expect("open").client;
    let (a, b) = socket.as_str().split_once('.').expect("N.M");
    assert!(!a.is_empty() && !b.is_empty());
    assert!(
        a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()),
        "{socket}"
    );
    assert!(h.frames_to(p).is_empty(), "no welcome for Pusher clients");
    assert_eq!(h.json_to(json)[0]["type"], "welcome");
    h.text(p, r#"{"event":"pusher:ping"}"#);
    assert!(h.outputs.iter().any(
        |o| matches!(o, Output::Event(Event::Message { conn, binary: false, .. }) if *conn == p)
    ));
    h.input(Input::Message {
        conn: p,
        data: Bytes::from_static(b"\x01"),
        binary: true,
    });
    assert_eq!(h.close_code_to(p), Some(1003));
}

#[test]
fn pusher_heartbeat_timeout_closes_with_4201() {
    let mut h = Harness::new(cfg());
    let p = h.open_with(OpenParams {
        protocol: Some(ClientProtocol::Pusher),
        ..Default::default()
    });
    let ping = h.shard.config().ping_interval;
    let pong = h.shard.config().pong_timeout;
    h.advance(ping);
    h.advance(pong);
    assert_eq!(h.close_code_to(p), Some(4201));
}

#[test]
fn publish_except_skips_one_client_and_is_routed_with_the_exclusion() {
    let mut h = Harness::new(cfg());
    let (a, b) = (h.open("a"), h.open("b"));
    let room = RoomName::from("r");
    for conn in [a, b] {
        h.input(Input::Join {
            target: Target::Conn(conn),
            room: room.clone(),
            req: None,
        });
    }
    h.json_to(a);
    h.json_to(b);
    h.reports();
    let target = Target::RoomExcept {
        room,
        except: ClientId::from("a"),
    };
    let frame = crate::frame::text(b"{}");
    h.input(Input::Publish {
        target: target.clone(),
        frame: frame.clone(),
    });
    assert!(h.json_to(a).is_empty(), "the excluded client gets nothing");
    assert_eq!(h.json_to(b), vec![serde_json::json!({})]);
    assert_eq!(h.reports(), vec![Report::Route { target, frame }]);
}

#[test]
fn emit_to_local_client_is_delivered_and_remote_is_routed() {
    let mut h = Harness::new(cfg());
    let a = h.open("a");
    let b = h.open("b");
    h.json_to(a);
    h.json_to(b);
    h.reports();
    h.text(a, r#"{"type":"emit","to":"b","data":"hi"}"#);
    assert_eq!(
        h.json_to(b),
        vec![serde_json::json!({"type":"message","from":"a","data":"hi"})]
    );
    h.text(a, r#"{"type":"emit","to":"elsewhere","data":1}"#);
    let reports = h.reports();
    assert!(
        matches!(&reports[..], [Report::Route { target: Target::Client(c), .. }] if c.as_str() == "elsewhere")
    );
}

#[test]
fn too_many_rooms_is_refused() {
    let mut h = Harness::new(Config {
        max_rooms_per_connection: 2,
        ..cfg()
    });
    let a = h.open("a");
    h.json_to(a);
    h.text(a, r#"{"type":"join","room":"1"}"#);
    h.text(a, r#"{"type":"join","room":"2"}"#);
    h.text(a, r#"{"type":"join","room":"2","ref":1}"#);
    h.text(a, r#"{"type":"join","room":"3","ref":2}"#);
    let msgs = h.json_to(a);
    assert_eq!(msgs[0]["type"], "ack");
    assert_eq!(msgs[1]["code"], "too_many_rooms");
}

#[test]
fn token_rooms_are_the_only_rooms_a_client_may_join_and_publish_to() {
    let mut h = Harness::new(cfg());
    let a = h.open_with(OpenParams {
        client: Some(ClientId::from("a")),
        rooms: vec![RoomName::from("lobby")],
        allowed_rooms: Some(vec![RoomName::from("lobby"), RoomName::from("news")]),
        ..Default::default()
    });
    let free = h.open("free");
    h.json_to(a);
    h.json_to(free);
    h.text(a, r#"{"type":"join","room":"secret","ref":1}"#);
    h.text(a, r#"{"type":"publish","room":"secret","data":1,"ref":2}"#);
    h.text(a, r#"{"type":"join","room":"news","ref":3}"#);
    h.text(a, r#"{"type":"publish","room":"lobby","data":4,"ref":4}"#);
    let msgs = h.json_to(a);
    assert_eq!(msgs[0]["code"], "forbidden");
    assert_eq!(msgs[0]["ref"], 1);
    assert_eq!(msgs[1]["code"], "forbidden");
    assert_eq!(msgs[1]["ref"], 2);
    assert_eq!(msgs[2], serde_json::json!({"type":"ack","ref":3}));
    assert_eq!(msgs[3]["type"], "message", "{msgs:?}");
    assert_eq!(msgs[4], serde_json::json!({"type":"ack","ref":4}));
    // A connection without an allow-list may join any room.
    h.text(free, r#"{"type":"join","room":"secret","ref":1}"#);
    assert_eq!(
        h.json_to(free),
        vec![serde_json::json!({"type":"ack","ref":1})]
    );
}

#[test]
fn generated_ids_carry_144_random_bits() {
    let mut h = Harness::new(Config {
        shard_count: 4,
        ..cfg()
    });
    let a = h.open_with(OpenParams::default());
    let id = h.shard.connection(a).expect("open").client;
    assert_eq!(id.as_str().len(), 36, "{id}");
    assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
    let mut other = Harness::new(Config {
        shard_count: 4,
        seed: crate::Seed::from_u64(99),
        ..cfg()
    });
    let b = other.open_with(OpenParams::default());
    assert_ne!(other.shard.connection(b).expect("open").client, id);
}

#[test]
fn a_recovering_join_gets_joined_the_replay_then_what_was_held_once_each() {
    use crate::history::{HistoryRule, HistoryRules, Position, Recovery};
    let rule = HistoryRule::new("h:*", 10, Duration::from_secs(60)).expect("rule");
    let mut h = Harness::new(Config {
        history: HistoryRules::new(vec![rule]),
        ..Config::default()
    });
    let a = h.open("a");
    let b = h.open("b");
    h.json_to(a);
    h.json_to(b);
    let numbered = |offset: u64| protocol::sequenced_message("h:1", None, offset, "e", "0");
    // A publish to a history room is not delivered by the shard: the router numbers it.
    h.text(a, r#"{"type":"join","room":"h:1"}"#);
    h.text(a, r#"{"type":"publish","room":"h:1","data":1}"#);
    assert!(h.json_to(a).is_empty(), "nothing before the router answers");
    let reports = h.reports();
    assert!(reports.iter().any(|r| matches!(r, Report::Route { .. })));
    let recover = |since| Report::Recover {
        conn: a,
        room: RoomName::from("h:1"),
        since,
    };
    assert!(reports.contains(&recover(None)), "{reports:?}");
    // b rejoins with since 1 while 2..=4 go out live: 2 and 3 come before the answer.
    h.text(
        b,
        r#"{"type":"join","room":"h:1","since":{"offset":1,"epoch":"e"},"ref":9}"#,
    );
    for offset in 2..=4 {
        if offset == 4 {
            let recovery = Recovery {
                position: Position {
                    offset: 3,
                    epoch: "e".into(),
                },
                recovered: Some(true),
                frames: vec![numbered(2), numbered(3)],
            };
            let room = RoomName::from("h:1");
            h.input(Input::Recovered {
                conn: b,
                room,
                recovery,
            });
        }
        h.input(Input::Sequenced {
            room: RoomName::from("h:1"),
            offset,
            frame: numbered(offset),
            req: None,
        });
    }
    let got = h.json_to(b);
    let kinds: Vec<String> = got
        .iter()
        .map(|v| format!("{}{}", v["type"].as_str().unwrap_or(""), v["offset"]))
        .collect();
    assert_eq!(
        kinds,
        ["joined3", "acknull", "message2", "message3", "message4"]
    );
    assert_eq!(got[0]["recovered"], true);
    assert_eq!(got[0]["ref"], 9);
    // a's plain join was never answered here: its messages wait, then only 4 (after 3) goes.
    let recovery = Recovery {
        position: Position {
            offset: 3,
            epoch: "e".into(),
        },
        recovered: None,
        frames: Vec::new(),
    };
    let room = RoomName::from("h:1");
    h.input(Input::Recovered {
        conn: a,
        room,
        recovery,
    });
    let got = h.json_to(a);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].get("recovered").is_none());
    assert_eq!(
        (got[0]["type"].as_str(), got[1]["offset"].as_u64()),
        (Some("joined"), Some(4))
    );
    // A second join while one is being answered is refused; bad `since` too.
    h.text(b, r#"{"type":"leave","room":"h:1"}"#);
    h.text(
        b,
        r#"{"type":"join","room":"h:1","since":{"offset":1,"epoch":"e"}}"#,
    );
    h.text(b, r#"{"type":"join","room":"h:1","ref":1}"#);
    h.text(
        b,
        r#"{"type":"join","room":"h:1","since":{"offset":"x"},"ref":2}"#,
    );
    let got = h.json_to(b);
    let codes: Vec<&str> = got.iter().filter_map(|v| v["code"].as_str()).collect();
    assert_eq!(codes, ["bad_request", "bad_request"], "{got:?}");
}
