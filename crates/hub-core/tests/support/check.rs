//! Applying a step to the model, and comparing the shard with it.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use hub_core::frame::{self, close_code, opcode_of, payload_of, OpCode};
use hub_core::protocol::{self, ErrorCode};
use hub_core::shard::{Event, Input, Output, Report};
use hub_core::{shard_for, ClientId, ConnId, OpenError, RequestId};

use super::model::Expect;
use super::{ClientMsg, Pair, Step, MAX_CLOSE_FRAME, ROOMS};

type OpenResult = (Result<ConnId, OpenError>, Option<ClientId>);

impl Pair {
    /// What the step does, by the model's rules.
    pub(super) fn apply_model(&mut self, step: &Step, open: Option<OpenResult>) {
        let now = self.now;
        match step {
            Step::Open(params, auto_ack) => {
                let (result, client) = open.expect("open has a result");
                let m = &self.model;
                let max = m.cfg.max_name_len;
                let bad = |what| Some(OpenError::BadName { what, max });
                let expected = if m.shutting_down {
                    Some(OpenError::ShuttingDown)
                } else if params.user.as_ref().is_some_and(|u| !m.name_ok(u.as_str())) {
                    bad("user id")
                } else if params.rooms.iter().any(|r| !m.name_ok(r.as_str())) {
                    bad("room name")
                } else {
                    match &params.client {
                        Some(c) if !m.name_ok(c.as_str()) => bad("client id"),
                        Some(c) if !m.owns(c.as_str()) => Some(OpenError::WrongShard(shard_for(
                            c.as_str(),
                            m.cfg.shard_count,
                        ))),
                        _ => None,
                    }
                };
                assert_eq!(result.as_ref().err(), expected.as_ref(), "open result");
                let Ok(id) = result else { return };
                assert!(!self.issued.contains(&id), "open reused an id: {id}");
                assert_eq!(id.shard, m.me);
                let client = client.expect("an open connection has info");
                let client = client.as_str().to_owned();
                match &params.client {
                    Some(asked) => assert_eq!(asked.as_str(), client),
                    None => {
                        assert!(m.owns(&client), "generated id {client} is not ours");
                        assert!(m.by_client(&client).is_none(), "generated id in use");
                    }
                }
                self.issued.push(id);
                self.seen_clients.insert(client.clone());
                let user = params.user.as_ref().map(|u| u.as_str());
                self.model.insert(now, id, &client, user, *auto_ack);
                for room in &params.rooms {
                    self.model.join(id, room.as_str());
                }
            }
            Step::Text {
                conn,
                text,
                msg,
                seq,
                reference,
            } => self.model_text(*conn, text, msg, *seq, reference.as_deref()),
            Step::Binary(id) => {
                if self.model.is_open(*id) {
                    self.model.saw_traffic(*id);
                    self.model.stats.messages_in += 1;
                    self.model.stats.protocol_closes += 1;
                    let reason = "binary frames are not part of the JSON protocol";
                    let code = close_code::UNSUPPORTED_DATA;
                    self.model.close(now, *id, code, reason, true, true);
                }
            }
            Step::Join(target, room, _) => {
                let mut count = 0;
                if self.model.name_ok(room) {
                    for id in self.model.targets(target) {
                        count += u64::from(self.model.join(id, room));
                    }
                }
                self.model.expect.delivered = Some(count);
            }
            Step::Leave(target, room, _) => {
                let mut count = 0;
                for id in self.model.targets(target) {
                    count += u64::from(self.model.leave(id, room));
                }
                self.model.expect.delivered = Some(count);
            }
            Step::Deliver(target, frame, seq, req) => {
                let ids = self.model.targets(target);
                self.expect_message(*seq, &ids);
                let got = self.model.deliver(now, &ids, frame);
                if req.is_some() {
                    self.model.expect.delivered = Some(got.len() as u64);
                }
            }
            Step::Disconnect(target, _) => {
                let ids = self.model.targets(target);
                for id in &ids {
                    let code = close_code::DISCONNECTED;
                    self.model.close(now, *id, code, "bye", false, true);
                }
                self.model.expect.delivered = Some(ids.len() as u64);
            }
            Step::Close(id, code) => {
                if self.model.is_open(*id) {
                    if *code != close_code::NORMAL && *code != close_code::GOING_AWAY {
                        self.model.stats.protocol_closes += 1;
                    }
                    self.model.close(now, *id, *code, "closing", false, true);
                }
            }
            Step::Closed(id) => self.model.closed(*id),
            Step::Sent(id) => self.model.sent(*id),
            Step::Activity(id) => self.model.saw_traffic(*id),
            Step::Ping(id, payload) => {
                if self.model.is_open(*id) {
                    self.model.saw_traffic(*id);
                    let pong = frame::encode(OpCode::Pong, &payload[..payload.len().min(125)]);
                    self.model.push(now, *id, pong);
                }
            }
            Step::Lookup(client, _) => {
                self.model.expect.found = Some(self.model.by_client(client).is_some());
            }
            Step::Advance(_) => self.model.timeout(now),
            Step::Shutdown => {
                self.model.shutting_down = true;
                let open: Vec<ConnId> = self.model.open_ids().collect();
                for id in open {
                    let code = close_code::GOING_AWAY;
                    self.model
                        .close(now, id, code, "node shutting down", false, true);
                }
            }
        }
    }

    fn model_text(&mut self, id: ConnId, text: &str, msg: &ClientMsg, seq: u64, r: Option<&str>) {
        let now = self.now;
        if !self.model.is_open(id) {
            return;
        }
        self.model.saw_traffic(id);
        self.model.stats.messages_in += 1;
        if text.len() > self.model.cfg.max_message_size {
            self.model.stats.protocol_closes += 1;
            let code = close_code::TOO_BIG;
            self.model
                .close(now, id, code, "message too big", true, true);
            return;
        }
        let room_of = |i: u8| ROOMS[usize::from(i) % ROOMS.len()];
        let from = self.model.conns[&id].client.clone();
        match msg {
            ClientMsg::Garbage => self.model.refuse(now, id, None, ErrorCode::BadJson),
            ClientMsg::Join { room, .. } => {
                let room = room_of(*room);
                if !self.model.name_ok(room) {
                    return self.model.refuse(now, id, r, ErrorCode::BadName);
                }
                let c = &self.model.conns[&id];
                let already = c.rooms.iter().any(|x| x == room);
                if !already && c.rooms.len() >= self.model.cfg.max_rooms_per_connection {
                    return self.model.refuse(now, id, r, ErrorCode::TooManyRooms);
                }
                self.model.join(id, room);
                self.model.ack(now, id, r);
            }
            ClientMsg::Leave { room, .. } => {
                let room = room_of(*room);
                if !self.model.name_ok(room) {
                    return self.model.refuse(now, id, r, ErrorCode::BadName);
                }
                self.model.leave(id, room);
                self.model.ack(now, id, r);
            }
            ClientMsg::Publish { room, pad, .. } => {
                let room = room_of(*room);
                if !self.model.name_ok(room) {
                    return self.model.refuse(now, id, r, ErrorCode::BadName);
                }
                let frame = protocol::message(Some(room), Some(&from), &Self::data(seq, *pad));
                let members = self.model.members(room);
                self.expect_message(seq, &members);
                self.model.deliver(now, &members, &frame);
                self.model.expect.routes += 1;
                self.model.ack(now, id, r);
            }
            ClientMsg::Emit { to, pad, .. } => {
                let to = self.client(*to);
                let frame = protocol::message(None, Some(&from), &Self::data(seq, *pad));
                match self.model.by_client(&to).filter(|_| self.model.owns(&to)) {
                    Some(target) => {
                        self.expect_message(seq, &[target]);
                        self.model.deliver(now, &[target], &frame);
                    }
                    None => self.model.expect.routes += 1,
                }
                self.model.ack(now, id, r);
            }
            ClientMsg::Broadcast { pad, .. } => {
                if !self.model.cfg.allow_client_broadcast {
                    return self.model.refuse(now, id, r, ErrorCode::Forbidden);
                }
                let frame = protocol::message(None, Some(&from), &Self::data(seq, *pad));
                let all: Vec<ConnId> = self.model.open_ids().collect();
                self.expect_message(seq, &all);
                self.model.deliver(now, &all, &frame);
                self.model.expect.routes += 1;
                self.model.ack(now, id, r);
            }
            ClientMsg::Ping { .. } => {
                self.model.push(now, id, protocol::pong(r));
            }
        }
    }

    /// Compares the first round of outputs after a step with the model's expectations.
    pub(super) fn check_outputs(&mut self, outputs: Vec<Output>, req: Option<RequestId>) {
        let mut got = Expect::default();
        let mut transmits = Vec::new();
        for out in outputs {
            match out {
                Output::Transmit {
                    conn,
                    frames,
                    close,
                } => transmits.push((conn, frames, close)),
                Output::Abort { conn } => got.aborts.push(conn),
                Output::Event(Event::Connected { conn, .. }) => got.connected.push(conn),
                Output::Event(Event::Disconnected { conn, code, .. }) => {
                    got.disconnected.push((conn, code))
                }
                Output::Event(Event::Error { .. }) => {}
                Output::Event(e @ Event::Message { .. }) => panic!("JSON protocol passed up {e:?}"),
                Output::Report(report) => self.on_report(report, req, &mut got),
            }
        }
        let mut want = std::mem::take(&mut self.model.expect);
        for e in [&mut got, &mut want] {
            e.connected.sort();
            e.disconnected.sort();
            e.client_up.sort();
            e.client_down.sort();
            e.aborts.sort();
        }
        assert_eq!(got.connected, want.connected, "Connected events");
        assert_eq!(got.disconnected, want.disconnected, "Disconnected events");
        assert_eq!(got.client_up, want.client_up, "ClientUp reports");
        assert_eq!(got.client_down, want.client_down, "ClientDown reports");
        assert_eq!(got.delivered, want.delivered, "Delivered report");
        assert_eq!(got.found, want.found, "Found report");
        assert_eq!(got.routes, want.routes, "Route reports");
        assert_eq!(got.aborts, want.aborts, "Abort outputs");
        self.lossy.extend(want.lossy);
        self.transmits(transmits);
    }

    fn on_report(&mut self, report: Report, req: Option<RequestId>, got: &mut Expect) {
        match report {
            Report::Route { .. } => got.routes += 1,
            Report::Recover { .. } => panic!("no room keeps history in this model"),
            Report::Delivered { req: r, count } => {
                assert_eq!(Some(r), req, "answer to the request asked");
                assert!(got.delivered.replace(count).is_none(), "two answers");
            }
            Report::Found { req: r, found } => {
                assert_eq!(Some(r), req, "answer to the request asked");
                assert!(got.found.replace(found).is_none(), "two answers");
            }
            Report::RoomActive(r) => {
                assert!(self.active_rooms.insert(r.to_string()), "{r} active twice")
            }
            Report::RoomIdle(r) => assert!(self.active_rooms.remove(r.as_str()), "{r} idle twice"),
            Report::UserActive(u) => {
                assert!(self.active_users.insert(u.to_string()), "{u} active twice")
            }
            Report::UserIdle(u) => assert!(self.active_users.remove(u.as_str()), "{u} idle twice"),
            Report::MemberJoined { room, member } => {
                let key = (room.to_string(), member.client.to_string());
                assert!(
                    self.active_rooms.contains(room.as_str()),
                    "member before RoomActive"
                );
                assert!(self.members.insert(key), "{room}: {member:?} joined twice");
            }
            Report::MemberLeft { room, client } => {
                let key = (room.to_string(), client.to_string());
                assert!(self.members.remove(&key), "{room}: {client} left unjoined");
            }
            Report::ClientUp { client, conn, .. } => {
                got.client_up.push((client.to_string(), conn));
                self.registry.insert(client.to_string(), conn);
            }
            Report::ClientDown { client, conn } => {
                got.client_down.push((client.to_string(), conn));
                let entry = self.registry.remove(client.as_str());
                assert_eq!(
                    entry,
                    Some(conn),
                    "ClientDown for a connection not registered"
                );
            }
        }
    }

    /// Checks each `Transmit` against the model's next batch; acknowledges auto-ack ones.
    fn transmits(&mut self, list: Vec<(ConnId, Vec<Bytes>, bool)>) {
        let mut ack = Vec::new();
        for (conn, frames, close) in list {
            let c = self.model.conns.get(&conn);
            let c = c.unwrap_or_else(|| panic!("Transmit to {conn}, which the model has not"));
            assert!(
                c.in_flight.is_empty(),
                "second Transmit to {conn} before Sent"
            );
            assert!(!c.queued.is_empty(), "empty Transmit to {conn}");
            let auto_ack = c.auto_ack;
            let (batch, closes) = self.model.take_batch(conn).expect("model has it");
            assert_eq!(frames, batch, "frames of the Transmit to {conn}");
            assert_eq!(close, closes, "close flag of the Transmit to {conn}");
            for f in &frames {
                if let Some(n) = message_seq(f) {
                    self.received.entry(conn).or_default().push(n);
                }
            }
            if !close && auto_ack {
                ack.push(conn);
            }
        }
        for conn in ack {
            self.shard.handle_input(self.now, Input::Sent { conn });
            self.model.sent(conn);
        }
    }

    /// Drains the shard until it has nothing to say; only transmits may come now.
    pub(super) fn drain(&mut self) {
        loop {
            let outputs: Vec<Output> = std::iter::from_fn(|| self.shard.poll_output()).collect();
            if outputs.is_empty() {
                return;
            }
            let transmits = outputs
                .into_iter()
                .map(|o| match o {
                    Output::Transmit {
                        conn,
                        frames,
                        close,
                    } => (conn, frames, close),
                    other => panic!("only transmits follow a Sent, got {other:?}"),
                })
                .collect();
            self.transmits(transmits);
        }
    }

    /// Acknowledges everything from now on and drains; then checks that every connection
    /// that lost nothing received every message it was a recipient of.
    pub(crate) fn flush(&mut self) {
        let mut waiting = Vec::new();
        for (id, c) in self.model.conns.iter_mut() {
            c.auto_ack = true;
            if !c.in_flight.is_empty() {
                waiting.push(*id);
            }
        }
        for conn in waiting {
            self.shard.handle_input(self.now, Input::Sent { conn });
            self.model.sent(conn);
        }
        self.drain();
        self.check();
    }

    /// Every getter, counter and timer of the shard against the model, and the message log.
    pub(super) fn check(&self) {
        let m = &self.model;
        let (max_b, max_f) = (m.cfg.send_queue_bytes, m.cfg.send_queue_messages);
        for (id, c) in &m.conns {
            let info = self.shard.connection(*id);
            let info = info.unwrap_or_else(|| panic!("{id} is in the model, not in the shard"));
            assert_eq!(info.client.as_str(), c.client);
            assert_eq!(info.user.as_ref().map(|u| u.to_string()), c.user);
            let rooms: Vec<String> = info.rooms.iter().map(|r| r.to_string()).collect();
            assert_eq!(rooms, c.rooms, "rooms of {id}");
            assert_eq!(info.queued_bytes, c.bytes(), "queued bytes of {id}");
            assert_eq!(info.queued_frames, c.frames(), "queued frames of {id}");
            assert_eq!(info.closing, !c.open, "closing flag of {id}");
            if c.open {
                assert!(info.queued_bytes <= max_b && info.queued_frames <= max_f);
            } else {
                assert!(info.queued_bytes <= max_b + MAX_CLOSE_FRAME);
                assert!(info.queued_frames <= max_f + 1);
            }
            assert!(
                c.queued.is_empty() || !c.in_flight.is_empty(),
                "{id} has frames queued but nothing transmitted"
            );
            if c.auto_ack {
                assert!(c.queued.is_empty() && c.in_flight.is_empty());
            }
        }
        for id in &self.issued {
            if !m.conns.contains_key(id) {
                assert!(self.shard.connection(*id).is_none(), "stale {id} resolves");
            }
        }
        for client in self.clients.iter().chain(&self.seen_clients) {
            assert_eq!(
                self.shard.resolve(client),
                m.by_client(client),
                "resolve {client}"
            );
        }
        for user in super::USERS {
            let mut got = self.shard.user_connections(user);
            got.sort();
            assert_eq!(got, m.user_conns(user), "connections of user {user:?}");
        }
        for room in ROOMS {
            let mut got = self.shard.room_members(room);
            got.sort();
            assert_eq!(got, m.members(room), "members of room {room:?}");
        }
        let rooms: BTreeSet<String> = m
            .conns
            .values()
            .filter(|c| c.open)
            .flat_map(|c| c.rooms.iter().cloned())
            .collect();
        let names: Vec<String> = self
            .shard
            .room_names()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            names,
            rooms.iter().cloned().collect::<Vec<_>>(),
            "room names"
        );
        assert_eq!(self.shard.room_count(), rooms.len());
        assert_eq!(self.active_rooms, rooms, "RoomActive/RoomIdle reports");
        let members: BTreeSet<(String, String)> = m
            .conns
            .values()
            .filter(|c| c.open)
            .flat_map(|c| c.rooms.iter().map(|r| (r.clone(), c.client.clone())))
            .collect();
        assert_eq!(self.members, members, "MemberJoined/MemberLeft reports");
        let users: BTreeSet<String> = m
            .conns
            .values()
            .filter(|c| c.open)
            .filter_map(|c| c.user.clone())
            .collect();
        assert_eq!(self.active_users, users, "UserActive/UserIdle reports");
        let registry: BTreeMap<String, ConnId> = m
            .conns
            .iter()
            .filter(|(_, c)| c.open)
            .map(|(id, c)| (c.client.clone(), *id))
            .collect();
        assert_eq!(self.registry, registry, "ClientUp/ClientDown reports");
        let mut open: Vec<ConnId> = m.open_ids().collect();
        open.sort_by_key(|id| id.slot);
        assert_eq!(
            self.shard.connection_ids(),
            open,
            "connection ids in slot order"
        );
        assert_eq!(self.shard.connection_count(), open.len());
        let queued: usize = m.conns.values().map(|c| c.bytes()).sum();
        assert_eq!(self.shard.queued_bytes(), queued, "queued bytes gauge");
        assert_eq!(self.shard.table_len(), m.conns.len(), "table length");
        assert_eq!(self.shard.timer_count(), m.timer_count(), "timer count");
        assert!(self.shard.timer_count() >= open.len());
        if m.conns.is_empty() {
            assert_eq!(self.shard.timer_count(), 0);
        }
        let next = self.shard.poll_timeout();
        assert_eq!(next, m.next_deadline(), "poll_timeout");
        assert!(
            next.is_none_or(|t| t > self.now),
            "poll_timeout not past now"
        );
        assert_eq!(*self.shard.stats(), m.stats, "counters");
        self.check_log();
    }

    /// Once each, in order, only to recipients; everything to those that lost nothing.
    fn check_log(&self) {
        for (id, got) in &self.received {
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "{id} received a message twice or out of order: {got:?}"
            );
            let want = self.expected.get(id).map_or(&[][..], Vec::as_slice);
            let mut rest = want.iter();
            for n in got {
                assert!(
                    rest.any(|w| w == n),
                    "{id} received message {n} but was not a recipient ({want:?})"
                );
            }
        }
        for (id, want) in &self.expected {
            let settled = self.model.conns.get(id).is_none_or(|c| c.auto_ack);
            if settled && !self.lossy.contains(id) {
                let got = self.received.get(id).map_or(&[][..], Vec::as_slice);
                assert_eq!(got, want.as_slice(), "messages received by {id}");
            }
        }
    }
}

/// The sequence number of a `{"type":"message","data":{"n":N}}` frame.
fn message_seq(frame: &Bytes) -> Option<u64> {
    if opcode_of(frame) != Some(OpCode::Text) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&payload_of(frame)).expect("text is JSON");
    if v["type"] != "message" {
        return None;
    }
    Some(v["data"]["n"].as_u64().expect("message carries its number"))
}
