//! The router as the sequencer of rooms with history (see [`crate::history`]): it numbers
//! their publishes, answers joins with the position and the replay, and answers the
//! producer API's history and position queries.
//!
//! Invariants:
//! - a history room's publish reaches every shard with members as one numbered frame,
//!   the shard it came from included (that shard did not deliver it);
//! - a shard's `Recover` is answered after every `Sequenced` frame the router sent it
//!   before, and before any it sends after, so the shard can tell replay from live;
//! - alone, the history is this node's memory; in a cluster it is Redis's, and the router
//!   only asks for it and orders what comes back (`shared.rs`).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Origin, Output, ReadPurpose, Reply, Router, Stage};
use crate::history::{Position, Recovery, Since};
use crate::ids::{ConnId, RequestId, RoomName};
use crate::protocol;
use crate::shard::Input as ShardInput;

/// How often rooms whose history expired are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Router {
    /// Whether `room` keeps history here (O(1) when no room does).
    pub(super) fn keeps_history(&self, room: &str) -> bool {
        self.config.history.covers(room)
    }

    fn schedule_sweep(&mut self, now: Instant) {
        if self.sweep_at.is_none() {
            self.sweep_at = Some(now + SWEEP_EVERY);
        }
    }

    /// Forgets expired rooms without members here, when it is time.
    pub(super) fn sweep_history(&mut self, now: Instant) {
        if self.sweep_at.is_none_or(|at| at > now) {
            return;
        }
        self.sweep_at = None;
        let members = &self.room_shards;
        if let Some(history) = self.history.as_mut() {
            history.sweep(now, |room| members.contains_key(room));
            if history.room_count() > 0 {
                self.sweep_at = Some(now + SWEEP_EVERY);
            }
        }
    }

    /// Numbers a publish to a history room and sends it to every shard with members.
    /// `frame` is the `message` frame without a number, as a shard or the API built it.
    pub(super) fn sequence(&mut self, now: Instant, origin: Origin, room: RoomName, frame: Bytes) {
        if self.is_clustered() {
            return self.append_shared(now, origin, room, frame);
        }
        let numbered = protocol::message_parts(&frame).and_then(|parts| {
            let data = std::str::from_utf8(&parts.data).ok()?;
            let history = self.history.as_mut()?;
            history.append(now, &room, parts.from.as_deref(), data)
        });
        self.schedule_sweep(now);
        let Some((offset, numbered)) = numbered else {
            // Not a message frame this node built: nothing to number, nobody to reach.
            let id = self.start(now, origin, Stage::Count, 0, false);
            self.advance(now, id);
            return;
        };
        let shards: Vec<u16> = self
            .room_shards
            .get(room.as_str())
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let id = match origin {
            Origin::Nobody => None,
            origin => Some(self.start(now, origin, Stage::Count, shards.len() as u32, false)),
        };
        for &shard in &shards {
            self.send_shard(
                shard,
                ShardInput::Sequenced {
                    room: room.clone(),
                    offset,
                    frame: numbered.clone(),
                    req: id.map(RequestId),
                },
            );
        }
        if let (Some(id), true) = (id, shards.is_empty()) {
            self.advance(now, id);
        }
    }

    /// Answers a shard's join of a history room.
    pub(super) fn recover(
        &mut self,
        now: Instant,
        conn: ConnId,
        room: RoomName,
        since: Option<Since>,
    ) {
        if self.is_clustered() {
            let purpose = ReadPurpose::Recover {
                conn,
                since: since.is_some(),
            };
            let limit = self
                .config
                .history
                .rule_for(room.as_str())
                .map_or(0, |r| r.max_len);
            let limit = if since.is_some() { limit } else { 0 };
            return self.read_shared(room, since, limit, purpose);
        }
        self.schedule_sweep(now);
        let recovery = self
            .history
            .as_mut()
            .and_then(|h| h.recover(now, &room, since.as_ref()))
            .unwrap_or_else(|| Recovery {
                position: Position {
                    offset: 0,
                    epoch: "".into(),
                },
                recovered: since.as_ref().map(|_| false),
                frames: Vec::new(),
            });
        self.send_shard(
            conn.shard.0,
            ShardInput::Recovered {
                conn,
                room,
                recovery,
            },
        );
    }

    /// Answers the producer API's history query.
    pub(super) fn history_query(
        &mut self,
        now: Instant,
        req: RequestId,
        room: RoomName,
        since: Option<Since>,
        limit: usize,
    ) {
        if self.is_clustered() {
            return self.read_shared(room, since, limit, ReadPurpose::Query(req));
        }
        self.schedule_sweep(now);
        let page = self
            .history
            .as_mut()
            .and_then(|h| h.read(now, &room, since.as_ref(), limit));
        let reply = Reply::History(page);
        self.outputs.push_back(Output::Reply { req, reply });
    }

    /// Answers the producer API's position query.
    pub(super) fn position_query(&mut self, now: Instant, req: RequestId, room: RoomName) {
        if self.is_clustered() {
            return self.read_shared(room, None, 0, ReadPurpose::Position(req));
        }
        self.schedule_sweep(now);
        let position = self.history.as_mut().and_then(|h| h.position(now, &room));
        let reply = Reply::Position(position);
        self.outputs.push_back(Output::Reply { req, reply });
    }
}
