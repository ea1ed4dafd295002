//! A shard: one state machine owning a set of connections.
//!
//! Invariants, checked by the tests after arbitrary input sequences:
//! - a [`ConnId`] resolves only while its connection is in the table; a closed connection's
//!   slot gets a new generation, so a stale id never resolves;
//! - an open connection is in the client index under its client id, in the user index under
//!   its user, in exactly the rooms it joined, and in the ping timer list; a connection that is
//!   closing (draining) is in none of them; a freed connection is in nothing at all;
//! - a send queue never holds more bytes or frames than the configured limits, but for the
//!   one close frame that ends a closing connection;
//! - at most one [`Output::Transmit`] per connection is outstanding until [`Input::Sent`].
//!
//! The shard reads no clock: `now` comes with every call. It allocates only to hold state.

mod client;
mod conn;
mod delivery;
mod io;
mod membership;
mod recovery;
mod users;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use slab::Slab;

use crate::config::{Config, ConfigError};
use crate::frame::{self, close_code};
use crate::hash::{keyed_map, KeyedMap, KeyedState};
use crate::ids::{shard_for, ClientId, ConnId, IdGenerator, RoomName, ShardId, UserId};
use crate::rooms::{Membership, RoomIndex};
use crate::stats::ShardStats;
use crate::timers::DeadlineList;
use conn::{Conn, ConnState};

pub use io::{Event, Input, OpenError, OpenParams, Output, Report, Target};

/// Whether queued frames go out before the close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseMode {
    /// Flush what is queued, then the close frame.
    Drain,
    /// Drop what is queued; only the close frame goes out.
    Now,
}

/// What a shard knows of one open connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// The connection's client id.
    pub client: ClientId,
    /// The connection's user id.
    pub user: Option<UserId>,
    /// Rooms joined, in join order.
    pub rooms: Vec<RoomName>,
    /// Bytes held in its send queue (queued and in flight).
    pub queued_bytes: usize,
    /// Frames held in its send queue (queued and in flight).
    pub queued_frames: usize,
    /// Whether the connection is closing.
    pub closing: bool,
}

/// One shard's connections, indexes, queues and timers.
///
/// Methods come in four groups, as in quinn-proto:
/// - getters ([`Shard::connection`], [`Shard::stats`], …);
/// - mutators: [`Shard::open`] (returns the new id), [`Shard::handle_input`],
///   [`Shard::handle_timeout`];
/// - [`Shard::poll_output`]: drain after every mutation, until `None`;
/// - [`Shard::poll_timeout`]: when to call `handle_timeout` next.
#[derive(Debug)]
pub struct Shard {
    id: ShardId,
    config: Config,
    conns: Slab<Conn>,
    /// Generation of each slot; bumped when the slot is freed.
    gens: Vec<u32>,
    clients: KeyedMap<ClientId, u32>,
    users: KeyedMap<UserId, Vec<u32>>,
    rooms: RoomIndex,
    ping_timers: DeadlineList,
    pong_timers: DeadlineList,
    drain_timers: DeadlineList,
    outputs: VecDeque<Output>,
    /// Bytes held in all send queues, kept as they change.
    queued_bytes: usize,
    ready: VecDeque<u32>,
    scratch: Vec<u32>,
    stats: ShardStats,
    ids: IdGenerator,
    shutting_down: bool,
    /// Joins of history rooms the router has not answered yet.
    holds: Vec<recovery::Hold>,
}

impl Shard {
    /// A shard with no connections. The configuration is validated.
    pub fn new(id: ShardId, config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        if id.0 >= config.shard_count {
            return Err(ConfigError {
                setting: "shards",
                problem: format!("shard {} of {}", id.0, config.shard_count),
            });
        }
        let keys = KeyedState::new(&config.seed);
        let ids = IdGenerator::new(&config.seed, id);
        Ok(Self {
            id,
            config,
            conns: Slab::new(),
            gens: Vec::new(),
            clients: keyed_map(&keys),
            users: keyed_map(&keys),
            rooms: RoomIndex::new(&keys),
            ping_timers: DeadlineList::new(),
            pong_timers: DeadlineList::new(),
            drain_timers: DeadlineList::new(),
            outputs: VecDeque::new(),
            queued_bytes: 0,
            ready: VecDeque::new(),
            scratch: Vec::new(),
            stats: ShardStats::default(),
            ids,
            shutting_down: false,
            holds: Vec::new(),
        })
    }

    // ----- getters -----

    /// This shard's id.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Open connections (closing ones not counted).
    pub fn connection_count(&self) -> usize {
        self.clients.len()
    }

    /// Entries in the connection table, closing ones included.
    pub fn table_len(&self) -> usize {
        self.conns.len()
    }

    /// Rooms with at least one member on this shard.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Connections with a pending heartbeat or drain timer (for invariant checks).
    pub fn timer_count(&self) -> usize {
        self.ping_timers.len() + self.pong_timers.len() + self.drain_timers.len()
    }

    /// Bytes held in all send queues, queued and in flight (a gauge: O(1)).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// The counters.
    pub fn stats(&self) -> &ShardStats {
        &self.stats
    }

    /// What the shard knows of `conn`, if it still exists.
    pub fn connection(&self, conn: ConnId) -> Option<ConnInfo> {
        let c = self.get(conn)?;
        Some(ConnInfo {
            client: c.client.clone(),
            user: c.user.clone(),
            rooms: c.rooms.clone(),
            queued_bytes: c.queue.bytes(),
            queued_frames: c.queue.len(),
            closing: c.state == ConnState::Draining,
        })
    }

    /// The open connection with this client id.
    pub fn resolve(&self, client: &str) -> Option<ConnId> {
        let slot = *self.clients.get(client)?;
        self.conns.get(slot as usize).map(|c| c.id)
    }

    /// The open connections of `user`.
    pub fn user_connections(&self, user: &str) -> Vec<ConnId> {
        self.users
            .get(user)
            .map(|slots| {
                slots
                    .iter()
                    .filter_map(|s| self.conns.get(*s as usize).map(|c| c.id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Members of `room` on this shard.
    pub fn room_members(&self, room: &str) -> Vec<ConnId> {
        self.rooms
            .get(room)
            .map(|r| {
                r.members()
                    .iter()
                    .filter_map(|s| self.conns.get(*s as usize).map(|c| c.id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names of the rooms with members on this shard, sorted.
    pub fn room_names(&self) -> Vec<RoomName> {
        self.rooms.names()
    }

    /// Every open connection's id, in slot order.
    pub fn connection_ids(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.state == ConnState::Open)
            .map(|(_, c)| c.id)
            .collect()
    }

    // ----- mutators -----

    /// Opens a connection: indexes it, queues `welcome` (JSON protocol), joins the rooms in
    /// `params` and starts its heartbeat. A connection already holding the client id is closed
    /// with 4000.
    pub fn open(&mut self, now: Instant, params: OpenParams) -> Result<ConnId, OpenError> {
        if self.shutting_down {
            return Err(OpenError::ShuttingDown);
        }
        let max = self.config.max_name_len;
        let name_ok = |s: &str| !s.is_empty() && s.len() <= max;
        if params.user.as_ref().is_some_and(|u| !name_ok(u.as_str())) {
            return Err(OpenError::BadName {
                what: "user id",
                max,
            });
        }
        if params.rooms.iter().any(|r| !name_ok(r.as_str())) {
            return Err(OpenError::BadName {
                what: "room name",
                max,
            });
        }
        let protocol = params.protocol.unwrap_or(self.config.client_protocol);
        let client = match params.client {
            Some(client) => {
                if !name_ok(client.as_str()) {
                    return Err(OpenError::BadName {
                        what: "client id",
                        max,
                    });
                }
                let owner = shard_for(client.as_str(), self.config.shard_count);
                if owner != self.id {
                    return Err(OpenError::WrongShard(owner));
                }
                client
            }
            None => self.generate_client_id(protocol),
        };
        if let Some(&old) = self.clients.get(client.as_str()) {
            self.stats.replaced += 1;
            self.close_slot(
                now,
                old,
                close_code::REPLACED,
                "replaced by a newer connection",
                CloseMode::Now,
                false,
            );
        }

        let entry = self.conns.vacant_entry();
        let slot = entry.key() as u32;
        if self.gens.len() <= slot as usize {
            self.gens.resize(slot as usize + 1, 0);
        }
        let id = ConnId {
            shard: self.id,
            slot,
            gen: self.gens[slot as usize],
        };
        entry.insert(Conn::new(
            id,
            client.clone(),
            params.user.clone(),
            params.allowed_rooms,
            protocol,
        ));
        self.clients.insert(client.clone(), slot);
        if let Some(user) = &params.user {
            let slots = self.users.entry(user.clone()).or_default();
            slots.push(slot);
            if slots.len() == 1 {
                self.report(Report::UserActive(user.clone()));
            }
        }
        self.ping_timers
            .schedule(slot, now + self.config.ping_interval);
        self.stats.opened += 1;
        self.report(Report::ClientUp {
            client: client.clone(),
            user: params.user.clone(),
            conn: id,
        });
        self.outputs.push_back(Output::Event(Event::Connected {
            conn: id,
            client: client.clone(),
            user: params.user,
            peer: params.peer,
            app: params.app,
        }));
        if protocol == crate::config::ClientProtocol::Json {
            let welcome = crate::protocol::welcome(client.as_str(), self.config.node_id.as_str());
            self.enqueue(now, slot, welcome);
        }
        for room in params.rooms {
            if self.join_slot(slot, &room) && self.config.history.covers(room.as_str()) {
                let _ = self.start_recovery(slot, id, room, None, None);
            }
        }
        Ok(id)
    }

    /// Feeds one event. Drain [`Shard::poll_output`] afterwards.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Message { conn, data, binary } => self.on_message(now, conn, data, binary),
            Input::Activity { conn } => {
                if let Some(slot) = self.open_slot(conn) {
                    self.saw_traffic(slot);
                }
            }
            Input::Ping { conn, payload } => {
                if let Some(slot) = self.open_slot(conn) {
                    self.saw_traffic(slot);
                    let pong =
                        frame::encode(frame::OpCode::Pong, &payload[..payload.len().min(125)]);
                    self.enqueue(now, slot, pong);
                }
            }
            Input::Close { conn, code, reason } => {
                if let Some(slot) = self.open_slot(conn) {
                    if code != close_code::NORMAL && code != close_code::GOING_AWAY {
                        self.stats.protocol_closes += 1;
                    }
                    // What was queued before (answers to the messages that came before
                    // the close or the violation) goes out first, within the drain timeout.
                    self.close_slot(now, slot, code, &reason, CloseMode::Drain, true);
                }
            }
            Input::Closed { conn } => {
                if let Some(slot) = self.slot_of(conn) {
                    if self.conns[slot as usize].state == ConnState::Open {
                        self.detach(slot, 1006, true);
                    }
                    self.free(slot);
                }
            }
            Input::Sent { conn } => {
                if let Some(slot) = self.slot_of(conn) {
                    self.queued_bytes -= self.conns[slot as usize].queue.batch_written();
                    self.mark_ready(slot);
                }
            }
            Input::Deliver { target, frame, req } => {
                let count = self.deliver(now, &target, &frame, None);
                if let Some(req) = req {
                    self.report(Report::Delivered { req, count });
                }
            }
            Input::Sequenced {
                room,
                offset,
                frame,
                req,
            } => {
                let count = self.deliver_sequenced(now, room, offset, &frame);
                if let Some(req) = req {
                    self.report(Report::Delivered { req, count });
                }
            }
            Input::Recovered {
                conn,
                room,
                recovery,
            } => self.finish_recovery(now, conn, room, recovery),
            Input::SetUser { conn, user } => self.set_user(conn, user),
            Input::Publish { target, frame } => {
                self.deliver(now, &target, &frame, None);
                self.report(Report::Route { target, frame });
            }
            Input::Join { target, room, req } => {
                let mut count = 0;
                if room.as_str().is_empty() || room.as_str().len() > self.config.max_name_len {
                    if let Some(req) = req {
                        self.report(Report::Delivered { req, count });
                    }
                    return;
                }
                for slot in self.take_targets(&target) {
                    if self.join_slot(slot, &room) {
                        count += 1;
                    }
                }
                if let Some(req) = req {
                    self.report(Report::Delivered { req, count });
                }
            }
            Input::JoinAs {
                target,
                room,
                user,
                info,
                req,
            } => self.join_as(target, room, user, info, req),
            Input::Leave { target, room, req } => {
                let mut count = 0;
                for slot in self.take_targets(&target) {
                    if self.leave_slot(slot, room.as_str()) {
                        count += 1;
                    }
                }
                if let Some(req) = req {
                    self.report(Report::Delivered { req, count });
                }
            }
            Input::Disconnect {
                target,
                code,
                reason,
                req,
            } => {
                let slots = self.take_targets(&target);
                let count = slots.len() as u64;
                for slot in slots {
                    self.close_slot(now, slot, code, &reason, CloseMode::Drain, true);
                }
                if let Some(req) = req {
                    self.report(Report::Delivered { req, count });
                }
            }
            Input::Lookup { client, req } => {
                let found = self.clients.contains_key(client.as_str());
                self.report(Report::Found { req, found });
            }
            Input::Shutdown => {
                self.shutting_down = true;
                let slots: Vec<u32> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.state == ConnState::Open)
                    .map(|(k, _)| k as u32)
                    .collect();
                for slot in slots {
                    self.close_slot(
                        now,
                        slot,
                        close_code::GOING_AWAY,
                        "node shutting down",
                        CloseMode::Drain,
                        true,
                    );
                }
            }
        }
    }

    /// Fires every timer due at `now`: pings, pong timeouts, drain deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(slot) = self.pong_timers.pop_due(now) {
            self.stats.heartbeat_closes += 1;
            self.close_slot(
                now,
                slot,
                close_code::HEARTBEAT_TIMEOUT,
                "heartbeat timeout",
                CloseMode::Now,
                true,
            );
        }
        while let Some(slot) = self.ping_timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if conn.state != ConnState::Open {
                continue;
            }
            if !conn.ping_unanswered {
                conn.ping_unanswered = true;
                self.pong_timers
                    .schedule(slot, now + self.config.pong_timeout);
            }
            self.ping_timers
                .schedule(slot, now + self.config.ping_interval);
            self.enqueue(now, slot, ping_frame());
        }
        while let Some(slot) = self.drain_timers.pop_due(now) {
            if let Some(conn) = self.conns.get(slot as usize) {
                let id = conn.id;
                self.free(slot);
                self.outputs.push_back(Output::Abort { conn: id });
            }
        }
    }

    // ----- polls -----

    /// The next thing for the runtime to do. Call until `None` after every mutation.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(out) = self.outputs.pop_front() {
            return Some(out);
        }
        while let Some(slot) = self.ready.pop_front() {
            if let Some(out) = self.transmit(slot) {
                return Some(out);
            }
        }
        None
    }

    /// When [`Shard::handle_timeout`] must next be called; O(1).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.ping_timers.first(),
            self.pong_timers.first(),
            self.drain_timers.first(),
        ]
        .into_iter()
        .flatten()
        .map(|(at, _)| at)
        .min()
    }

    // ----- internals -----

    fn get(&self, conn: ConnId) -> Option<&Conn> {
        if conn.shard != self.id {
            return None;
        }
        self.conns.get(conn.slot as usize).filter(|c| c.id == conn)
    }

    fn slot_of(&self, conn: ConnId) -> Option<u32> {
        self.get(conn).map(|c| c.id.slot)
    }

    fn open_slot(&self, conn: ConnId) -> Option<u32> {
        self.get(conn)
            .filter(|c| c.state == ConnState::Open)
            .map(|c| c.id.slot)
    }

    fn report(&mut self, report: Report) {
        self.outputs.push_back(Output::Report(report));
    }

    fn generate_client_id(&mut self, protocol: crate::config::ClientProtocol) -> ClientId {
        loop {
            let candidate = match protocol {
                crate::config::ClientProtocol::Pusher => self.ids.next_socket_id(),
                _ => self.ids.next_id(),
            };
            if shard_for(&candidate, self.config.shard_count) == self.id
                && !self.clients.contains_key(candidate.as_str())
            {
                return ClientId::from(candidate);
            }
        }
    }

    /// The connection showed it is alive: an unanswered ping is answered. (When is not
    /// kept: nothing reads it, and the pong deadline is in `pong_timers`.)
    fn saw_traffic(&mut self, slot: u32) {
        if let Some(conn) = self.conns.get_mut(slot as usize) {
            if std::mem::take(&mut conn.ping_unanswered) {
                self.pong_timers.cancel(slot);
            }
        }
    }

    fn mark_ready(&mut self, slot: u32) {
        if let Some(conn) = self.conns.get_mut(slot as usize) {
            if !conn.ready && !conn.queue.is_empty() && !conn.queue.in_flight() {
                conn.ready = true;
                self.ready.push_back(slot);
            }
        }
    }

    fn transmit(&mut self, slot: u32) -> Option<Output> {
        let conn = self.conns.get_mut(slot as usize)?;
        conn.ready = false;
        if conn.queue.in_flight() || conn.queue.is_empty() {
            return None;
        }
        let mut frames = Vec::new();
        conn.queue.take_batch(
            self.config.batch_frames,
            self.config.batch_bytes,
            &mut frames,
        );
        let close = conn.state == ConnState::Draining && conn.queue.is_empty();
        let id = conn.id;
        if close {
            self.free(slot);
        }
        Some(Output::Transmit {
            conn: id,
            frames,
            close,
        })
    }

    /// Takes an open connection out of every index, room and heartbeat timer; reports it gone.
    fn detach(&mut self, slot: u32, code: u16, report_down: bool) {
        let Some(conn) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if conn.state != ConnState::Open {
            return;
        }
        conn.state = ConnState::Draining;
        let id = conn.id;
        let client = conn.client.clone();
        let user = conn.user.clone();
        let rooms = std::mem::take(&mut conn.rooms);
        if self.clients.get(client.as_str()) == Some(&slot) {
            self.clients.remove(client.as_str());
        }
        if let Some(user) = user {
            if let Some(slots) = self.users.get_mut(user.as_str()) {
                slots.retain(|s| *s != slot);
                if slots.is_empty() {
                    self.users.remove(user.as_str());
                    self.report(Report::UserIdle(user));
                }
            }
        }
        for room in rooms {
            if self.rooms.leave(room.as_str(), slot) == Membership::RoomRemoved {
                self.report(Report::RoomIdle(room.clone()));
            }
            let client = client.clone();
            self.report(Report::MemberLeft { room, client });
        }
        self.ping_timers.cancel(slot);
        self.pong_timers.cancel(slot);
        self.drop_holds(slot, None);
        self.stats.closed += 1;
        if report_down {
            self.report(Report::ClientDown {
                client: client.clone(),
                conn: id,
            });
        }
        self.outputs.push_back(Output::Event(Event::Disconnected {
            conn: id,
            client,
            code,
        }));
    }

    /// Starts closing `slot` with `code`: detaches it and queues the close frame.
    fn close_slot(
        &mut self,
        now: Instant,
        slot: u32,
        code: u16,
        reason: &str,
        mode: CloseMode,
        report_down: bool,
    ) {
        let Some(conn) = self.conns.get(slot as usize) else {
            return;
        };
        if conn.state != ConnState::Open {
            return;
        }
        let code = conn.protocol.close_code(code);
        self.detach(slot, code, report_down);
        let Some(conn) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if mode == CloseMode::Now {
            self.queued_bytes -= conn.queue.clear();
        }
        let close = frame::close(code, reason);
        self.queued_bytes += close.len();
        conn.queue.push_unbounded(close);
        self.drain_timers
            .schedule(slot, now + self.config.drain_timeout);
        self.mark_ready(slot);
    }

    /// Removes `slot` from the table and every timer; bumps its generation.
    fn free(&mut self, slot: u32) {
        let Some(conn) = self.conns.try_remove(slot as usize) else {
            return;
        };
        self.queued_bytes -= conn.queue.bytes();
        self.ping_timers.cancel(slot);
        self.pong_timers.cancel(slot);
        self.drain_timers.cancel(slot);
        if let Some(gen) = self.gens.get_mut(slot as usize) {
            *gen = gen.wrapping_add(1);
        }
    }
}

fn ping_frame() -> Bytes {
    static PING: [u8; 2] = [0x89, 0x00];
    Bytes::from_static(&PING)
}

#[cfg(test)]
mod tests;
