//! A reference model of one shard: connections, indexes, send queues and timers, written
//! independently of the shard's own data structures (plain maps and vectors, no slab, no
//! deadline lists) so that the two can be compared after every step.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use hub_core::frame::{self, close_code};
use hub_core::protocol::{self, ErrorCode};
use hub_core::{shard_for, Config, ConnId, OverflowPolicy, ShardId, ShardStats, Target};

/// What the model knows of one connection in the table (open or draining).
#[derive(Debug, Clone)]
pub(crate) struct MConn {
    pub(crate) client: String,
    pub(crate) user: Option<String>,
    /// Rooms in join order.
    pub(crate) rooms: Vec<String>,
    /// Frames queued, not handed out yet.
    pub(crate) queued: VecDeque<Bytes>,
    /// Frames handed out in the outstanding `Transmit`, not acknowledged.
    pub(crate) in_flight: Vec<Bytes>,
    pub(crate) open: bool,
    pub(crate) ping_at: Instant,
    pub(crate) pong_at: Option<Instant>,
    pub(crate) drain_at: Option<Instant>,
    /// Whether the test acknowledges every transmit at once.
    pub(crate) auto_ack: bool,
}

impl MConn {
    pub(crate) fn bytes(&self) -> usize {
        self.queued
            .iter()
            .chain(&self.in_flight)
            .map(Bytes::len)
            .sum()
    }

    pub(crate) fn frames(&self) -> usize {
        self.queued.len() + self.in_flight.len()
    }
}

/// Reports and events the model expects from one step (compared as sorted lists).
#[derive(Debug, Default)]
pub(crate) struct Expect {
    pub(crate) connected: Vec<ConnId>,
    pub(crate) disconnected: Vec<(ConnId, u16)>,
    pub(crate) client_up: Vec<(String, ConnId)>,
    pub(crate) client_down: Vec<(String, ConnId)>,
    pub(crate) delivered: Option<u64>,
    pub(crate) found: Option<bool>,
    pub(crate) routes: usize,
    pub(crate) aborts: Vec<ConnId>,
    /// Connections that lost queued frames in this step (closed at once, aborted, dropped).
    pub(crate) lossy: Vec<ConnId>,
}

/// The model of one shard.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) cfg: Config,
    pub(crate) me: ShardId,
    /// Connections still in the table, by id.
    pub(crate) conns: BTreeMap<ConnId, MConn>,
    pub(crate) shutting_down: bool,
    pub(crate) stats: ShardStats,
    pub(crate) expect: Expect,
    /// Error events the shard emitted this step, consumed in order: the model predicts the
    /// code, the shard's event supplies the human-readable message text.
    pub(crate) errors: VecDeque<(ConnId, ErrorCode, String)>,
}

impl Model {
    pub(crate) fn new(cfg: Config, me: ShardId) -> Self {
        Self {
            cfg,
            me,
            conns: BTreeMap::new(),
            shutting_down: false,
            stats: ShardStats::default(),
            expect: Expect::default(),
            errors: VecDeque::new(),
        }
    }

    pub(crate) fn is_open(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some_and(|c| c.open)
    }

    pub(crate) fn open_ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.iter().filter(|(_, c)| c.open).map(|(id, _)| *id)
    }

    pub(crate) fn by_client(&self, client: &str) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|(_, c)| c.open && c.client == client)
            .map(|(id, _)| *id)
    }

    pub(crate) fn members(&self, room: &str) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.open && c.rooms.iter().any(|r| r == room))
            .map(|(id, _)| *id)
            .collect()
    }

    pub(crate) fn user_conns(&self, user: &str) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.open && c.user.as_deref() == Some(user))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The open connections a target names.
    pub(crate) fn targets(&self, target: &Target) -> Vec<ConnId> {
        match target {
            Target::Conn(id) => self.is_open(*id).then_some(*id).into_iter().collect(),
            Target::Client(c) => self.by_client(c.as_str()).into_iter().collect(),
            Target::User(u) => self.user_conns(u.as_str()),
            Target::Room(r) => self.members(r.as_str()),
            Target::RoomExcept { room, except } => {
                let skip = self.by_client(except.as_str());
                let mut members = self.members(room.as_str());
                members.retain(|m| Some(*m) != skip);
                members
            }
            Target::All => self.open_ids().collect(),
        }
    }

    pub(crate) fn name_ok(&self, name: &str) -> bool {
        !name.is_empty() && name.len() <= self.cfg.max_name_len
    }

    /// The next deadline the shard must report.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .flat_map(|c| {
                if c.open {
                    [Some(c.ping_at), c.pong_at]
                } else {
                    [c.drain_at, None]
                }
            })
            .flatten()
            .min()
    }

    /// Timers the shard must hold: a ping timer per open connection, a pong timer per
    /// unanswered ping, a drain timer per closing connection.
    pub(crate) fn timer_count(&self) -> usize {
        self.conns
            .values()
            .map(|c| {
                if c.open {
                    1 + usize::from(c.pong_at.is_some())
                } else {
                    usize::from(c.drain_at.is_some())
                }
            })
            .sum()
    }

    // ----- the shard's rules, restated -----

    /// Queues `frame` to `id` under the overflow policy; whether it was queued.
    pub(crate) fn push(&mut self, now: Instant, id: ConnId, frame: Bytes) -> bool {
        let (max_b, max_f) = (self.cfg.send_queue_bytes, self.cfg.send_queue_messages);
        let policy = self.cfg.overflow_policy;
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        if !c.open {
            return false;
        }
        let fits = |c: &MConn| c.bytes() + frame.len() <= max_b && c.frames() < max_f;
        if !fits(c) && policy == OverflowPolicy::DropOldest {
            while !fits(c) && c.queued.pop_front().is_some() {
                self.stats.dropped_frames += 1;
                self.expect.lossy.push(id);
            }
        }
        if fits(c) {
            c.queued.push_back(frame);
            true
        } else {
            self.stats.slow_consumer_closes += 1;
            self.close(
                now,
                id,
                close_code::SLOW_CONSUMER,
                "slow consumer",
                true,
                true,
            );
            false
        }
    }

    /// Takes an open connection out of every index and timer.
    fn detach(&mut self, id: ConnId, code: u16, report_down: bool) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if !c.open {
            return;
        }
        c.open = false;
        c.rooms.clear();
        c.pong_at = None;
        self.stats.closed += 1;
        self.expect.disconnected.push((id, code));
        if report_down {
            self.expect.client_down.push((c.client.clone(), id));
        }
    }

    /// Starts closing an open connection: detach, (drop the queue), queue the close frame.
    pub(crate) fn close(
        &mut self,
        now: Instant,
        id: ConnId,
        code: u16,
        reason: &str,
        at_once: bool,
        report_down: bool,
    ) {
        if !self.is_open(id) {
            return;
        }
        self.detach(id, code, report_down);
        let drain = self.cfg.drain_timeout;
        if let Some(c) = self.conns.get_mut(&id) {
            if at_once {
                c.queued.clear();
                self.expect.lossy.push(id);
            }
            c.queued.push_back(frame::close(code, reason));
            c.drain_at = Some(now + drain);
        }
    }

    /// The socket went away.
    pub(crate) fn closed(&mut self, id: ConnId) {
        if !self.conns.contains_key(&id) {
            return;
        }
        self.detach(id, 1006, true);
        self.conns.remove(&id);
        self.expect.lossy.push(id);
    }

    pub(crate) fn sent(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.in_flight.clear();
        }
    }

    pub(crate) fn saw_traffic(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id).filter(|c| c.open) {
            c.pong_at = None;
        }
    }

    /// `join_slot`: false when already a member or at the room limit.
    pub(crate) fn join(&mut self, id: ConnId, room: &str) -> bool {
        let max = self.cfg.max_rooms_per_connection;
        let Some(c) = self.conns.get_mut(&id).filter(|c| c.open) else {
            return false;
        };
        if c.rooms.len() >= max || c.rooms.iter().any(|r| r == room) {
            return false;
        }
        c.rooms.push(room.to_owned());
        true
    }

    pub(crate) fn leave(&mut self, id: ConnId, room: &str) -> bool {
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        let Some(pos) = c.rooms.iter().position(|r| r == room) else {
            return false;
        };
        c.rooms.remove(pos);
        true
    }

    /// Delivers `frame` to `recipients`; returns the connections that got it queued.
    pub(crate) fn deliver(
        &mut self,
        now: Instant,
        recipients: &[ConnId],
        frame: &Bytes,
    ) -> Vec<ConnId> {
        let mut got = Vec::new();
        for &id in recipients {
            if self.push(now, id, frame.clone()) {
                got.push(id);
            }
        }
        self.stats.messages_out += got.len() as u64;
        got
    }

    /// Answers a refused client request with an error frame; the message text comes from the
    /// shard's `Event::Error`.
    pub(crate) fn refuse(
        &mut self,
        now: Instant,
        id: ConnId,
        reference: Option<&str>,
        code: ErrorCode,
    ) {
        self.stats.request_errors += 1;
        let (conn, got, message) = self.errors.pop_front().unwrap_or_else(|| {
            panic!("model expected an error {code:?} for {id}, shard sent none")
        });
        assert_eq!((conn, got), (id, code), "error event");
        self.push(now, id, protocol::error(reference, code, &message));
    }

    pub(crate) fn ack(&mut self, now: Instant, id: ConnId, reference: Option<&str>) {
        if let Some(r) = reference {
            if self.is_open(id) {
                self.push(now, id, protocol::ack(r));
            }
        }
    }

    /// Fires every timer due at `now`, in the shard's order: pong timeouts, pings, drains.
    pub(crate) fn timeout(&mut self, now: Instant) {
        let late: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.open && c.pong_at.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.stats.heartbeat_closes += 1;
            let code = close_code::HEARTBEAT_TIMEOUT;
            self.close(now, id, code, "heartbeat timeout", true, true);
        }
        let due: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.open && c.ping_at <= now)
            .map(|(id, _)| *id)
            .collect();
        let (interval, pong) = (self.cfg.ping_interval, self.cfg.pong_timeout);
        for id in due {
            if let Some(c) = self.conns.get_mut(&id) {
                if c.pong_at.is_none() {
                    c.pong_at = Some(now + pong);
                }
                c.ping_at = now + interval;
            }
            self.push(now, id, Bytes::from_static(&[0x89, 0x00]));
        }
        let stuck: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.open && c.drain_at.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in stuck {
            self.conns.remove(&id);
            self.expect.aborts.push(id);
            self.expect.lossy.push(id);
        }
    }

    /// Inserts a newly opened connection (after any replacement) and queues its welcome.
    pub(crate) fn insert(
        &mut self,
        now: Instant,
        id: ConnId,
        client: &str,
        user: Option<&str>,
        auto_ack: bool,
    ) {
        if let Some(old) = self.by_client(client) {
            self.stats.replaced += 1;
            let code = close_code::REPLACED;
            self.close(
                now,
                old,
                code,
                "replaced by a newer connection",
                true,
                false,
            );
        }
        self.conns.insert(
            id,
            MConn {
                client: client.to_owned(),
                user: user.map(str::to_owned),
                rooms: Vec::new(),
                queued: VecDeque::new(),
                in_flight: Vec::new(),
                open: true,
                ping_at: now + self.cfg.ping_interval,
                pong_at: None,
                drain_at: None,
                auto_ack,
            },
        );
        self.stats.opened += 1;
        self.expect.connected.push(id);
        self.expect.client_up.push((client.to_owned(), id));
        let welcome = protocol::welcome(client, self.cfg.node_id.as_str());
        self.push(now, id, welcome);
    }

    /// The batch `Transmit` must carry for `id` (`take_batch`), and whether it closes.
    pub(crate) fn take_batch(&mut self, id: ConnId) -> Option<(Vec<Bytes>, bool)> {
        let (max_frames, max_bytes) = (self.cfg.batch_frames.max(1), self.cfg.batch_bytes);
        let c = self.conns.get_mut(&id)?;
        let mut batch = Vec::new();
        let mut size = 0;
        while batch.len() < max_frames {
            let Some(next) = c.queued.front() else { break };
            if !batch.is_empty() && size + next.len() > max_bytes {
                break;
            }
            size += next.len();
            batch.extend(c.queued.pop_front());
        }
        let close = !c.open && c.queued.is_empty();
        c.in_flight = batch.clone();
        if close {
            self.conns.remove(&id);
        }
        Some((batch, close))
    }

    /// Whether `client` belongs on this shard.
    pub(crate) fn owns(&self, client: &str) -> bool {
        shard_for(client, self.cfg.shard_count) == self.me
    }
}
