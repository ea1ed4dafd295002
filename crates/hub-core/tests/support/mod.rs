//! Drives a real `Shard` and the reference model side by side and compares them after every
//! step: outputs (transmitted frames batch by batch, events, reports, aborts), every getter,
//! the counters, the timers, and an independent log of which connection received which
//! message.

mod check;
pub(crate) mod model;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hub_core::frame::close_code;
use hub_core::protocol;
use hub_core::shard::{Event, Input, Output};
use hub_core::{
    shard_for, ClientId, Config, ConnId, OpenParams, RequestId, RoomName, Shard, ShardId, Target,
    UserId,
};

use model::{Expect, Model};

/// Room names the ops pick from: four good ones, an empty one and one too long.
pub(crate) const ROOMS: [&str; 6] = ["r0", "r1", "r2", "r3", "", "roomname9"];
/// User ids the ops pick from (the last is invalid).
pub(crate) const USERS: [&str; 4] = ["u0", "u1", "u2", ""];
/// Largest close frame: 2 header bytes, the code, 123 bytes of reason.
const MAX_CLOSE_FRAME: usize = 127;

/// Who an op is for, by index into the pools.
#[derive(Debug, Clone)]
pub(crate) enum TargetSel {
    Conn(u8),
    Client(u8),
    User(u8),
    Room(u8),
    All,
}

/// A client request in the JSON protocol.
#[derive(Debug, Clone)]
pub(crate) enum ClientMsg {
    Join { room: u8, reference: bool },
    Leave { room: u8, reference: bool },
    Publish { room: u8, pad: u8, reference: bool },
    Emit { to: u8, pad: u8, reference: bool },
    Broadcast { pad: u8, reference: bool },
    Ping { reference: bool },
    Garbage,
}

/// One operation on the shard. Connection indexes pick among every id ever issued (so
/// closed, stale ids are picked too).
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Open {
        client: Option<u8>,
        user: Option<u8>,
        rooms: Vec<u8>,
        auto_ack: bool,
    },
    Text {
        conn: u8,
        msg: ClientMsg,
    },
    Binary {
        conn: u8,
    },
    TooBig {
        conn: u8,
    },
    Join {
        target: TargetSel,
        room: u8,
    },
    Leave {
        target: TargetSel,
        room: u8,
    },
    Deliver {
        target: TargetSel,
        pad: u8,
        req: bool,
    },
    Disconnect {
        target: TargetSel,
    },
    Close {
        conn: u8,
        code: u16,
    },
    Closed {
        conn: u8,
    },
    Sent {
        conn: u8,
    },
    Activity {
        conn: u8,
    },
    Ping {
        conn: u8,
        len: u8,
    },
    Lookup {
        client: u8,
    },
    Advance {
        ms: u16,
    },
    Shutdown,
}

/// An op with its pool indexes resolved.
#[derive(Debug, Clone)]
enum Step {
    Open(OpenParams, bool),
    Text {
        conn: ConnId,
        text: String,
        msg: ClientMsg,
        seq: u64,
        reference: Option<String>,
    },
    Binary(ConnId),
    Join(Target, String, RequestId),
    Leave(Target, String, RequestId),
    Deliver(Target, Bytes, u64, Option<RequestId>),
    Disconnect(Target, RequestId),
    Close(ConnId, u16),
    Closed(ConnId),
    Sent(ConnId),
    Activity(ConnId),
    Ping(ConnId, Bytes),
    Lookup(String, RequestId),
    Advance(Duration),
    Shutdown,
}

/// The system under test, its model, and what the test has observed.
pub(crate) struct Pair {
    pub(crate) shard: Shard,
    pub(crate) model: Model,
    pub(crate) now: Instant,
    /// Client ids the ops pick from: the last belongs to another shard.
    clients: Vec<String>,
    /// Every client id ever opened (generated ones included).
    seen_clients: BTreeSet<String>,
    /// Every id `open` ever returned.
    issued: Vec<ConnId>,
    next_seq: u64,
    next_req: u64,
    /// Message sequence numbers each connection received, in order.
    received: BTreeMap<ConnId, Vec<u64>>,
    /// Message sequence numbers each connection was a recipient of when sent.
    expected: BTreeMap<ConnId, Vec<u64>>,
    /// Connections that may have lost frames (closed at once, aborted, dropped frames).
    lossy: BTreeSet<ConnId>,
    active_rooms: BTreeSet<String>,
    active_users: BTreeSet<String>,
    /// (room, client) presence members as the MemberJoined/MemberLeft reports say.
    members: BTreeSet<(String, String)>,
    registry: BTreeMap<String, ConnId>,
}

impl Pair {
    pub(crate) fn new(cfg: Config) -> Self {
        let me = ShardId(0);
        let shards = cfg.shard_count;
        let mut clients: Vec<String> = (0..)
            .map(|i| format!("c{i}"))
            .filter(|c| shard_for(c, shards) == me)
            .take(5)
            .collect();
        clients.extend(
            (0..)
                .map(|i| format!("c{i}"))
                .find(|c| shard_for(c, shards) != me),
        );
        Self {
            shard: Shard::new(me, cfg.clone()).expect("valid config"),
            model: Model::new(cfg, me),
            now: Instant::now(),
            clients,
            seen_clients: BTreeSet::new(),
            issued: Vec::new(),
            next_seq: 0,
            next_req: 0,
            received: BTreeMap::new(),
            expected: BTreeMap::new(),
            lossy: BTreeSet::new(),
            active_rooms: BTreeSet::new(),
            active_users: BTreeSet::new(),
            members: BTreeSet::new(),
            registry: BTreeMap::new(),
        }
    }

    /// Mostly an open connection; with the high bit set, any id ever issued (often stale).
    fn conn(&self, i: u8) -> ConnId {
        let open: Vec<ConnId> = self.model.open_ids().collect();
        if i < 0xc0 && !open.is_empty() {
            return open[usize::from(i) % open.len()];
        }
        if self.issued.is_empty() {
            return ConnId {
                shard: ShardId(0),
                slot: u32::from(i % 4),
                gen: 7,
            };
        }
        self.issued[usize::from(i) % self.issued.len()]
    }

    fn client(&self, i: u8) -> String {
        self.clients[usize::from(i) % self.clients.len()].clone()
    }

    fn target(&self, t: &TargetSel) -> Target {
        match t {
            TargetSel::Conn(i) => Target::Conn(self.conn(*i)),
            TargetSel::Client(i) => Target::Client(ClientId::from(self.client(*i))),
            TargetSel::User(i) => Target::User(UserId::from(USERS[usize::from(*i) % 3])),
            TargetSel::Room(i) => Target::Room(RoomName::from(ROOMS[usize::from(*i) % 4])),
            TargetSel::All => Target::All,
        }
    }

    fn req(&mut self) -> RequestId {
        self.next_req += 1;
        RequestId(self.next_req)
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn data(seq: u64, pad: u8) -> String {
        format!(r#"{{"n":{seq},"p":"{}"}}"#, "x".repeat(usize::from(pad)))
    }

    fn resolve(&mut self, op: &Op) -> Step {
        let room = |i: u8| ROOMS[usize::from(i) % ROOMS.len()].to_owned();
        match op {
            Op::Open {
                client,
                user,
                rooms,
                auto_ack,
            } => Step::Open(
                OpenParams {
                    client: client.map(|i| ClientId::from(self.client(i))),
                    user: user.map(|i| UserId::from(USERS[usize::from(i) % USERS.len()])),
                    peer: None,
                    rooms: rooms.iter().map(|i| RoomName::from(room(*i))).collect(),
                    allowed_rooms: None,
                    protocol: None,
                    app: None,
                },
                *auto_ack,
            ),
            Op::Text { conn, msg } => {
                let conn = self.conn(*conn);
                let seq = self.seq();
                let has_ref = match msg {
                    ClientMsg::Join { reference, .. }
                    | ClientMsg::Leave { reference, .. }
                    | ClientMsg::Publish { reference, .. }
                    | ClientMsg::Emit { reference, .. }
                    | ClientMsg::Broadcast { reference, .. }
                    | ClientMsg::Ping { reference } => *reference,
                    ClientMsg::Garbage => false,
                };
                let reference = has_ref.then(|| self.req().0.to_string());
                let tail = reference
                    .as_ref()
                    .map(|r| format!(r#","ref":{r}"#))
                    .unwrap_or_default();
                let q = |s: &str| serde_json::to_string(s).expect("string");
                let text = match msg {
                    ClientMsg::Join { room: r, .. } => {
                        format!(r#"{{"type":"join","room":{}{tail}}}"#, q(&room(*r)))
                    }
                    ClientMsg::Leave { room: r, .. } => {
                        format!(r#"{{"type":"leave","room":{}{tail}}}"#, q(&room(*r)))
                    }
                    ClientMsg::Publish { room: r, pad, .. } => format!(
                        r#"{{"type":"publish","room":{},"data":{}{tail}}}"#,
                        q(&room(*r)),
                        Self::data(seq, *pad)
                    ),
                    ClientMsg::Emit { to, pad, .. } => format!(
                        r#"{{"type":"emit","to":{},"data":{}{tail}}}"#,
                        q(&self.client(*to)),
                        Self::data(seq, *pad)
                    ),
                    ClientMsg::Broadcast { pad, .. } => format!(
                        r#"{{"type":"broadcast","data":{}{tail}}}"#,
                        Self::data(seq, *pad)
                    ),
                    ClientMsg::Ping { .. } => format!(r#"{{"type":"ping"{tail}}}"#),
                    ClientMsg::Garbage => "{not json".to_owned(),
                };
                Step::Text {
                    conn,
                    text,
                    msg: msg.clone(),
                    seq,
                    reference,
                }
            }
            Op::Binary { conn } => Step::Binary(self.conn(*conn)),
            Op::TooBig { conn } => {
                let conn = self.conn(*conn);
                let text = format!(
                    r#"{{"type":"ping","pad":"{}"}}"#,
                    "y".repeat(self.model.cfg.max_message_size)
                );
                Step::Text {
                    conn,
                    text,
                    msg: ClientMsg::Ping { reference: false },
                    seq: 0,
                    reference: None,
                }
            }
            Op::Join { target, room: r } => Step::Join(self.target(target), room(*r), self.req()),
            Op::Leave { target, room: r } => Step::Leave(self.target(target), room(*r), self.req()),
            Op::Deliver { target, pad, req } => {
                let target = self.target(target);
                let seq = self.seq();
                let room = match &target {
                    Target::Room(r) => Some(r.as_str()),
                    _ => None,
                };
                let frame = protocol::message(room, None, &Self::data(seq, *pad));
                let req = req.then(|| self.req());
                Step::Deliver(target, frame, seq, req)
            }
            Op::Disconnect { target } => Step::Disconnect(self.target(target), self.req()),
            Op::Close { conn, code } => Step::Close(self.conn(*conn), *code),
            Op::Closed { conn } => Step::Closed(self.conn(*conn)),
            Op::Sent { conn } => Step::Sent(self.conn(*conn)),
            Op::Activity { conn } => Step::Activity(self.conn(*conn)),
            Op::Ping { conn, len } => {
                Step::Ping(self.conn(*conn), Bytes::from(vec![b'p'; usize::from(*len)]))
            }
            Op::Lookup { client } => Step::Lookup(self.client(*client), self.req()),
            Op::Advance { ms } => Step::Advance(Duration::from_millis(u64::from(*ms))),
            Op::Shutdown => Step::Shutdown,
        }
    }

    /// Applies one op to the shard and the model, drains, and checks everything.
    pub(crate) fn step(&mut self, op: &Op) {
        let step = self.resolve(op);
        self.model.expect = Expect::default();
        let mut open_result = None;
        match &step {
            Step::Open(params, _) => {
                let result = self.shard.open(self.now, params.clone());
                let client = result
                    .as_ref()
                    .ok()
                    .and_then(|id| self.shard.connection(*id))
                    .map(|info| info.client);
                open_result = Some((result, client));
            }
            other => {
                let input = self.input_for(other);
                match input {
                    Some(input) => self.shard.handle_input(self.now, input),
                    None => {
                        if let Step::Advance(by) = other {
                            self.now += *by;
                        }
                        self.shard.handle_timeout(self.now);
                    }
                }
            }
        }
        let outputs: Vec<Output> = std::iter::from_fn(|| self.shard.poll_output()).collect();
        self.model.errors = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Event(Event::Error {
                    conn,
                    code,
                    message,
                }) => Some((*conn, *code, message.clone())),
                _ => None,
            })
            .collect();
        self.apply_model(&step, open_result);
        assert!(
            self.model.errors.is_empty(),
            "shard sent errors the model did not expect: {:?}",
            self.model.errors
        );
        let req = match &step {
            Step::Join(_, _, r) | Step::Leave(_, _, r) | Step::Disconnect(_, r) => Some(*r),
            Step::Lookup(_, r) => Some(*r),
            Step::Deliver(_, _, _, r) => *r,
            _ => None,
        };
        self.check_outputs(outputs, req);
        self.drain();
        self.check();
    }

    fn input_for(&self, step: &Step) -> Option<Input> {
        let input = match step {
            Step::Text { conn, text, .. } => Input::Message {
                conn: *conn,
                data: Bytes::from(text.clone()),
                binary: false,
            },
            Step::Binary(conn) => Input::Message {
                conn: *conn,
                data: Bytes::from_static(b"\x00\x01"),
                binary: true,
            },
            Step::Join(target, room, req) => Input::Join {
                target: target.clone(),
                room: RoomName::from(room.as_str()),
                req: Some(*req),
            },
            Step::Leave(target, room, req) => Input::Leave {
                target: target.clone(),
                room: RoomName::from(room.as_str()),
                req: Some(*req),
            },
            Step::Deliver(target, frame, _, req) => Input::Deliver {
                target: target.clone(),
                frame: frame.clone(),
                req: *req,
            },
            Step::Disconnect(target, req) => Input::Disconnect {
                target: target.clone(),
                code: close_code::DISCONNECTED,
                reason: "bye".into(),
                req: Some(*req),
            },
            Step::Close(conn, code) => Input::Close {
                conn: *conn,
                code: *code,
                reason: "closing".into(),
            },
            Step::Closed(conn) => Input::Closed { conn: *conn },
            Step::Sent(conn) => Input::Sent { conn: *conn },
            Step::Activity(conn) => Input::Activity { conn: *conn },
            Step::Ping(conn, payload) => Input::Ping {
                conn: *conn,
                payload: payload.clone(),
            },
            Step::Lookup(client, req) => Input::Lookup {
                client: ClientId::from(client.as_str()),
                req: *req,
            },
            Step::Shutdown => Input::Shutdown,
            Step::Advance(_) | Step::Open(..) => return None,
        };
        Some(input)
    }

    /// Records that `recipients` must each receive message `seq` once.
    fn expect_message(&mut self, seq: u64, recipients: &[ConnId]) {
        for id in recipients {
            self.expected.entry(*id).or_default().push(seq);
        }
    }
}
