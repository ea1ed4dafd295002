//! Bodies of the fuzz targets in `fuzz/fuzz_targets/`, kept here so that ordinary builds
//! compile them and unit tests run them over pseudo-random inputs.
//!
//! - [`shard_ops`]: decodes a sequence of operations with `arbitrary`, drives one shard, and
//!   checks it against a small reference model after every operation;
//! - [`protocol_parse`]: the client protocol parser never panics, and what it accepts (and
//!   requests built from sane strings) survives encoding and parsing again;
//! - [`cluster_ops`]: routing across two or three nodes under takeovers, cut links, crashes
//!   and time, then every live node must agree on where each client is.
//!
//! Both panic on a broken invariant, which is what a fuzzer reports.

pub use crate::fuzz_cluster::cluster_ops;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use hub_core::frame::{self, opcode_of, payload_of, OpCode};
use hub_core::protocol::{self, ClientRequest, ErrorCode, Request};
use hub_core::shard::{Event, Input, Output};
use hub_core::{
    ClientId, Config, ConnId, OpenParams, OverflowPolicy, RoomName, Shard, ShardId, Target, UserId,
};

const ROOMS: [&str; 3] = ["ra", "rb", "rc"];
const USERS: [&str; 2] = ["ua", "ub"];
const CLIENTS: [&str; 5] = ["ca", "cb", "cc", "cd", "ce"];

/// One operation of [`shard_ops`]; connection numbers pick among every id ever opened.
#[derive(Debug, Clone, Arbitrary)]
enum FuzzOp {
    Open {
        client: u8,
        user: Option<u8>,
        room: Option<u8>,
        slow: bool,
    },
    Join {
        conn: u8,
        room: u8,
    },
    Leave {
        conn: u8,
        room: u8,
    },
    InputJoin {
        conn: u8,
        room: u8,
    },
    InputLeave {
        conn: u8,
        room: u8,
    },
    Publish {
        conn: u8,
        room: u8,
    },
    DeliverRoom {
        room: u8,
    },
    DeliverUser {
        user: u8,
    },
    Text {
        conn: u8,
        text: String,
    },
    Sent {
        conn: u8,
    },
    Slow {
        conn: u8,
        slow: bool,
    },
    Close {
        conn: u8,
        code: u16,
    },
    Closed {
        conn: u8,
    },
    Activity {
        conn: u8,
    },
    Advance {
        ms: u8,
    },
}

/// What the model knows of one connection.
#[derive(Debug, Default)]
struct Known {
    client: String,
    user: Option<String>,
    rooms: BTreeSet<String>,
    open: bool,
    slow: bool,
    /// Bytes and frames of the `Transmit` not acknowledged yet.
    in_flight: (usize, usize),
    expected: Vec<u64>,
    received: Vec<u64>,
}

struct Harness {
    shard: Shard,
    now: Instant,
    max_rooms: usize,
    limits: (usize, usize),
    /// Connections still in the shard's table.
    live: BTreeMap<ConnId, Known>,
    /// Every id ever issued.
    issued: Vec<ConnId>,
    seq: u64,
}

/// Drives a shard with operations decoded from `data`, checking it after every one.
pub fn shard_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((drop_oldest, frames, batch, pong)) = <(bool, u8, u8, u8)>::arbitrary(&mut u) else {
        return;
    };
    let config = Config {
        shard_count: 1,
        ping_interval: Duration::from_millis(100),
        pong_timeout: Duration::from_millis(10 + u64::from(pong)),
        max_message_size: 512,
        send_queue_bytes: 2048,
        send_queue_messages: 3 + usize::from(frames % 8),
        overflow_policy: if drop_oldest {
            OverflowPolicy::DropOldest
        } else {
            OverflowPolicy::Close
        },
        batch_frames: 1 + usize::from(batch % 4),
        drain_timeout: Duration::from_millis(50),
        max_rooms_per_connection: 2,
        ..Config::default()
    };
    let Ok(shard) = Shard::new(ShardId(0), config) else {
        return;
    };
    let mut h = Harness {
        shard,
        now: Instant::now(),
        max_rooms: 2,
        limits: (2048, 3 + usize::from(frames % 8)),
        live: BTreeMap::new(),
        issued: Vec::new(),
        seq: 0,
    };
    let mut steps = 0;
    while !u.is_empty() && steps < 200 {
        let Ok(op) = FuzzOp::arbitrary(&mut u) else {
            break;
        };
        h.step(op);
        steps += 1;
    }
    for known in h.live.values_mut() {
        known.slow = false;
    }
    let waiting: Vec<ConnId> = h.live.keys().copied().collect();
    for conn in waiting {
        h.sent(conn);
    }
    h.drain();
    h.check(true);
}

impl Harness {
    /// Mostly an open connection; with the top bits set, any id ever issued (often stale).
    fn conn(&self, i: u8) -> ConnId {
        let open = self.open_members(|_| true);
        if i < 0xc0 && !open.is_empty() {
            return open[usize::from(i) % open.len()];
        }
        match self.issued.len() {
            0 => ConnId {
                shard: ShardId(0),
                slot: u32::from(i),
                gen: 0,
            },
            n => self.issued[usize::from(i) % n],
        }
    }

    fn open_members(&self, pick: impl Fn(&Known) -> bool) -> Vec<ConnId> {
        let open = self.live.iter().filter(|(_, k)| k.open && pick(k));
        open.map(|(id, _)| *id).collect()
    }

    fn expect(&mut self, recipients: &[ConnId]) -> u64 {
        self.seq += 1;
        for id in recipients {
            if let Some(k) = self.live.get_mut(id) {
                k.expected.push(self.seq);
            }
        }
        self.seq
    }

    /// Applies the membership change of a join/leave the shard will accept.
    fn join(&mut self, conn: ConnId, room: &str, join: bool) {
        let max = self.max_rooms;
        if let Some(k) = self.live.get_mut(&conn).filter(|k| k.open) {
            if !join {
                k.rooms.remove(room);
            } else if k.rooms.len() < max {
                k.rooms.insert(room.to_owned());
            }
        }
    }

    fn step(&mut self, op: FuzzOp) {
        let now = self.now;
        let room = |i: u8| ROOMS[usize::from(i) % ROOMS.len()];
        match op {
            FuzzOp::Open {
                client,
                user,
                room: first,
                slow,
            } => {
                let client = CLIENTS[usize::from(client) % CLIENTS.len()];
                let user = user.map(|u| USERS[usize::from(u) % USERS.len()]);
                let params = OpenParams {
                    client: Some(ClientId::from(client)),
                    user: user.map(UserId::from),
                    peer: None,
                    rooms: first.map(|r| RoomName::from(room(r))).into_iter().collect(),
                    allowed_rooms: None,
                    protocol: None,
                    app: None,
                };
                let Ok(id) = self.shard.open(now, params) else {
                    panic!("a good open was refused");
                };
                assert!(!self.issued.contains(&id), "id {id} issued twice");
                self.issued.push(id);
                let mut known = Known {
                    client: client.to_owned(),
                    user: user.map(str::to_owned),
                    open: true,
                    slow,
                    ..Known::default()
                };
                known.rooms.extend(first.map(|r| room(r).to_owned()));
                self.live.insert(id, known);
            }
            FuzzOp::Join { conn, room: r } | FuzzOp::Leave { conn, room: r } => {
                let join = matches!(op, FuzzOp::Join { .. });
                let conn = self.conn(conn);
                let kind = if join { "join" } else { "leave" };
                let text = format!(r#"{{"type":"{kind}","room":"{}"}}"#, room(r));
                let known = self.live.get(&conn).filter(|k| k.open);
                let full = known.is_some_and(|k| k.rooms.len() >= self.max_rooms);
                if join && full && !known.is_some_and(|k| k.rooms.contains(room(r))) {
                    // Refused with an error frame; membership unchanged.
                } else {
                    self.join(conn, room(r), join);
                }
                self.message(conn, text);
            }
            FuzzOp::InputJoin { conn, room: r } | FuzzOp::InputLeave { conn, room: r } => {
                let join = matches!(op, FuzzOp::InputJoin { .. });
                let conn = self.conn(conn);
                self.join(conn, room(r), join);
                let (target, room) = (Target::Conn(conn), RoomName::from(room(r)));
                let input = if join {
                    Input::Join {
                        target,
                        room,
                        req: None,
                    }
                } else {
                    Input::Leave {
                        target,
                        room,
                        req: None,
                    }
                };
                self.shard.handle_input(now, input);
            }
            FuzzOp::Publish { conn, room: r } => {
                let conn = self.conn(conn);
                let members = if self.live.get(&conn).is_some_and(|k| k.open) {
                    self.open_members(|k| k.rooms.contains(room(r)))
                } else {
                    Vec::new()
                };
                let n = self.expect(&members);
                let text = format!(r#"{{"type":"publish","room":"{}","data":{n}}}"#, room(r));
                self.message(conn, text);
            }
            FuzzOp::DeliverRoom { room: r } => {
                let members = self.open_members(|k| k.rooms.contains(room(r)));
                let n = self.expect(&members);
                let frame = protocol::message(Some(room(r)), None, &n.to_string());
                let target = Target::Room(RoomName::from(room(r)));
                self.deliver(target, frame);
            }
            FuzzOp::DeliverUser { user } => {
                let user = USERS[usize::from(user) % USERS.len()];
                let conns = self.open_members(|k| k.user.as_deref() == Some(user));
                let n = self.expect(&conns);
                let frame = protocol::message(None, None, &n.to_string());
                self.deliver(Target::User(UserId::from(user)), frame);
            }
            FuzzOp::Text { conn, text } => {
                // Only requests that change nothing the model tracks: garbage, pings, errors.
                let harmless = match protocol::parse_request(text.as_bytes()) {
                    Ok(Request { kind, .. }) => kind == ClientRequest::Ping,
                    Err(_) => true,
                };
                if harmless {
                    self.message(self.conn(conn), text);
                }
            }
            FuzzOp::Sent { conn } => self.sent(self.conn(conn)),
            FuzzOp::Slow { conn, slow } => {
                let conn = self.conn(conn);
                if let Some(k) = self.live.get_mut(&conn) {
                    k.slow = slow;
                    if !slow {
                        self.sent(conn);
                    }
                }
            }
            FuzzOp::Close { conn, code } => {
                let conn = self.conn(conn);
                let reason = String::from("bye");
                self.shard
                    .handle_input(now, Input::Close { conn, code, reason });
            }
            FuzzOp::Closed { conn } => {
                let conn = self.conn(conn);
                self.shard.handle_input(now, Input::Closed { conn });
                self.live.remove(&conn);
            }
            FuzzOp::Activity { conn } => {
                let conn = self.conn(conn);
                self.shard.handle_input(now, Input::Activity { conn });
            }
            FuzzOp::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(ms));
                self.shard.handle_timeout(self.now);
            }
        }
        self.drain();
        self.check(false);
    }

    fn message(&mut self, conn: ConnId, text: String) {
        let input = Input::Message {
            conn,
            data: Bytes::from(text),
            binary: false,
        };
        self.shard.handle_input(self.now, input);
    }

    fn deliver(&mut self, target: Target, frame: Bytes) {
        let input = Input::Deliver {
            target,
            frame,
            req: None,
        };
        self.shard.handle_input(self.now, input);
    }

    fn sent(&mut self, conn: ConnId) {
        self.shard.handle_input(self.now, Input::Sent { conn });
        if let Some(k) = self.live.get_mut(&conn) {
            k.in_flight = (0, 0);
        }
    }

    /// Drains the shard, learning closes from its outputs; acknowledges for fast clients.
    fn drain(&mut self) {
        loop {
            let Some(output) = self.shard.poll_output() else {
                return;
            };
            match output {
                Output::Transmit {
                    conn,
                    frames,
                    close,
                } => {
                    let Some(k) = self.live.get_mut(&conn) else {
                        panic!("Transmit to {conn}, which is not in the table");
                    };
                    assert_eq!(k.in_flight, (0, 0), "Transmit to {conn} before Sent");
                    assert!(!frames.is_empty(), "empty Transmit");
                    let bytes = frames.iter().map(Bytes::len).sum();
                    k.in_flight = (bytes, frames.len());
                    for f in &frames {
                        if let Some(n) = message_number(f) {
                            k.received.push(n);
                        }
                    }
                    if close {
                        assert!(!k.open, "close on an open connection");
                        assert_eq!(
                            frames.last().and_then(|f| opcode_of(f)),
                            Some(OpCode::Close)
                        );
                        self.live.remove(&conn);
                    } else if !k.slow {
                        self.sent(conn);
                    }
                }
                Output::Abort { conn } => {
                    let k = self.live.remove(&conn);
                    assert!(k.is_some_and(|k| !k.open), "Abort of an open connection");
                }
                Output::Event(Event::Disconnected { conn, .. }) => {
                    if let Some(k) = self.live.get_mut(&conn) {
                        assert!(k.open, "{conn} disconnected twice");
                        k.open = false;
                        k.rooms.clear();
                    }
                }
                Output::Event(_) | Output::Report(_) => {}
            }
        }
    }

    fn check(&self, settled: bool) {
        let (max_b, max_f) = self.limits;
        for (id, k) in &self.live {
            let Some(info) = self.shard.connection(*id) else {
                panic!("{id} vanished from the table without a close or abort");
            };
            assert_eq!(info.closing, !k.open, "closing flag of {id}");
            let rooms: BTreeSet<String> = info.rooms.iter().map(|r| r.to_string()).collect();
            assert_eq!(rooms, k.rooms, "rooms of {id}");
            assert!(info.queued_bytes >= k.in_flight.0 && info.queued_frames >= k.in_flight.1);
            if k.open {
                assert!(
                    info.queued_bytes <= max_b && info.queued_frames <= max_f,
                    "{id} over"
                );
                if !k.slow {
                    assert_eq!(
                        (info.queued_bytes, info.queued_frames),
                        (0, 0),
                        "{id} unflushed"
                    );
                }
            } else {
                assert!(info.queued_bytes <= max_b + 127 && info.queued_frames <= max_f + 1);
            }
            assert!(
                k.received.windows(2).all(|w| w[0] < w[1]),
                "{id} got a message twice or out of order"
            );
            let mut rest = k.expected.iter();
            for n in &k.received {
                assert!(rest.any(|e| e == n), "{id} got {n}, not sent to it");
            }
            if k.open && (settled || !k.slow) && self.shard.stats().dropped_frames == 0 {
                assert_eq!(k.received, k.expected, "{id} missed messages");
            }
        }
        for id in &self.issued {
            if !self.live.contains_key(id) {
                assert!(self.shard.connection(*id).is_none(), "stale {id} resolves");
            }
        }
        for client in CLIENTS {
            let open = self.open_members(|k| k.client == client);
            assert!(open.len() <= 1, "client id {client} open twice");
            assert_eq!(self.shard.resolve(client), open.first().copied());
        }
        for room in ROOMS {
            let mut got = self.shard.room_members(room);
            got.sort();
            assert_eq!(got, self.open_members(|k| k.rooms.contains(room)), "{room}");
        }
        for user in USERS {
            let mut got = self.shard.user_connections(user);
            got.sort();
            let want = self.open_members(|k| k.user.as_deref() == Some(user));
            assert_eq!(got, want, "{user}");
        }
        let open = self.open_members(|_| true).len();
        assert_eq!(self.shard.connection_count(), open);
        assert_eq!(self.shard.table_len(), self.live.len());
        assert!(self.shard.timer_count() >= open);
        if self.live.is_empty() {
            assert_eq!(self.shard.timer_count(), 0, "timers without connections");
        }
        assert!(self.shard.poll_timeout().is_none_or(|t| t > self.now));
    }
}

/// The number in a `{"type":"message","data":N}` frame.
fn message_number(frame: &Bytes) -> Option<u64> {
    if opcode_of(frame) != Some(OpCode::Text) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(&payload_of(frame)).ok()?;
    if value["type"] != "message" {
        return None;
    }
    value["data"].as_u64()
}

/// Parses `data` as a client request: never panics; what parses re-encodes to the same
/// request; requests and server messages built from a sane (UTF-8) input round-trip.
pub fn protocol_parse(data: &[u8]) {
    if let Ok(request) = protocol::parse_request(data) {
        let again = protocol::parse_request(encode(&request).as_bytes());
        assert_eq!(again.as_ref(), Ok(&request), "re-encoded request");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(quoted) = serde_json::to_string(text) else {
        return;
    };
    let kind = |json: String| protocol::parse_request(json.as_bytes()).map(|r| r.kind);
    let join = format!(r#"{{"type":"join","room":{quoted},"ref":{quoted}}}"#);
    let parsed = protocol::parse_request(join.as_bytes());
    let want = Request {
        kind: ClientRequest::Join {
            room: text.to_owned(),
            since: None,
        },
        reference: Some(quoted.clone()),
    };
    assert_eq!(parsed, Ok(want), "join round trip");
    let publish = format!(r#"{{"type":"publish","room":{quoted},"data":{quoted}}}"#);
    let want = ClientRequest::Publish {
        room: text.to_owned(),
        data: quoted.clone(),
    };
    assert_eq!(kind(publish), Ok(want), "publish round trip");
    let emit = format!(r#"{{"data":[{quoted}],"to":{quoted},"type":"emit"}}"#);
    let want = ClientRequest::Emit {
        to: text.to_owned(),
        data: format!("[{quoted}]"),
    };
    assert_eq!(kind(emit), Ok(want), "emit round trip");

    let message = protocol::message(Some(text), Some(text), &quoted);
    let v: serde_json::Value =
        serde_json::from_slice(&payload_of(&message)).expect("message is JSON");
    assert_eq!(
        (&v["room"], &v["from"], &v["data"]),
        (&v["data"], &v["data"], &v["room"])
    );
    assert_eq!(v["data"].as_str(), Some(text));
    let error = protocol::error(Some(&quoted), ErrorCode::BadRequest, text);
    let v: serde_json::Value = serde_json::from_slice(&payload_of(&error)).expect("error is JSON");
    assert_eq!(v["message"].as_str(), Some(text));
    assert_eq!(v["ref"].as_str(), Some(text));
    let welcome = protocol::welcome(text, text);
    let v: serde_json::Value = serde_json::from_slice(&payload_of(&welcome)).expect("JSON");
    assert_eq!(v["id"].as_str(), Some(text));
    let framed = frame::text(data);
    assert_eq!(&payload_of(&framed)[..], data, "text frame round trip");
}

/// A request as JSON text again (raw `data` and `ref` kept as they were).
fn encode(request: &Request) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = match &request.kind {
        ClientRequest::Join { room, since: None } => {
            format!(r#"{{"type":"join","room":{}"#, q(room))
        }
        ClientRequest::Join {
            room,
            since: Some(since),
        } => format!(
            r#"{{"type":"join","room":{},"since":{{"offset":{},"epoch":{}}}"#,
            q(room),
            since.offset,
            q(&since.epoch)
        ),
        ClientRequest::Leave { room } => format!(r#"{{"type":"leave","room":{}"#, q(room)),
        ClientRequest::Publish { room, data } => {
            format!(r#"{{"type":"publish","room":{},"data":{data}"#, q(room))
        }
        ClientRequest::Emit { to, data } => {
            format!(r#"{{"type":"emit","to":{},"data":{data}"#, q(to))
        }
        ClientRequest::Broadcast { data } => format!(r#"{{"type":"broadcast","data":{data}"#),
        ClientRequest::Ping => r#"{"type":"ping""#.to_owned(),
    };
    if let Some(r) = &request.reference {
        out.push_str(&format!(r#","ref":{r}"#));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SimRng;

    /// Random bytes, and JSON-ish texts spliced from protocol fragments.
    fn inputs(seed: u64, count: usize) -> Vec<Vec<u8>> {
        const PIECES: [&str; 16] = [
            r#"{"type":"join","room":"a"}"#,
            r#"{"type":"publish","room":"a","data":{"x":[1,2]},"ref":3}"#,
            r#"{"type":"emit","to":"b","data":"é\u0041"}"#,
            r#"{"type":"ping","ref":"q"}"#,
            r#"{"type":"broadcast","data":null}"#,
            "{",
            "}",
            "\"",
            ",",
            ":",
            "[",
            "\\u00e9",
            "\\ud800",
            " ",
            "ref",
            "-1e400",
        ];
        let mut rng = SimRng::new(seed);
        (0..count)
            .map(|i| {
                let mut out = Vec::new();
                if i % 2 == 0 {
                    out.resize(rng.below(300) as usize, 0);
                    rng.fill(&mut out);
                } else {
                    for _ in 0..rng.below(8) {
                        let piece = PIECES[rng.below(PIECES.len() as u64) as usize];
                        out.extend_from_slice(piece.as_bytes());
                    }
                }
                out
            })
            .collect()
    }

    #[test]
    fn shard_ops_survives_random_inputs() {
        for data in inputs(1, 300) {
            shard_ops(&data);
        }
    }

    #[test]
    fn protocol_parse_survives_random_inputs() {
        for data in inputs(2, 500) {
            protocol_parse(&data);
        }
        for piece in ["", "a", "é", "\u{1F600}", "\"\\", "{\"type\":\"ping\"}"] {
            protocol_parse(piece.as_bytes());
        }
    }
}
