//! History rooms in a cluster: the history lives in a store every node shares (Redis), which
//! numbers each message, keeps it and publishes it on the room's bus channel in one atomic
//! step (see `hub_cluster::history`).
//!
//! How the nodes agree: the node a publish arrives on asks the store to append it
//! ([`HistoryCommand::Append`]) and delivers nothing itself. Every node with members of the
//! room (the publishing one included) receives the numbered frame from its bus subscription,
//! in the store's order, and sends it to its shards in offset order ([`Router::deliver_ordered`]):
//! - a room's next offset is tracked per node while it has members here; a frame at or below
//!   it is a duplicate and dropped, the next one goes out at once;
//! - a frame beyond it (the bus lost messages: a reconnect, or a subscription that became
//!   active after the join's read) is held with everything after it, and the missing ones are
//!   read from the store ([`ReadPurpose::Fill`]); then all go out in order. What the store no
//!   longer has is skipped, and the clients see the jump in offsets;
//! - a frame of another epoch (the store lost the room) starts the count again.
//!
//! Joins read the store ([`ReadPurpose::Recover`]); the shard holds live frames meanwhile and
//! drops those the replay covers, as on one node.
//!
//! With the gRPC bus, history rooms still travel over the store's pub/sub: the router
//! subscribes their channels beside sending peers its interest (`peer.rs`).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{Origin, Output, Router, Stage};
use crate::frame;
use crate::history::{Position, Recovery, Since};
use crate::ids::{RequestId, RoomName};
use crate::node::{HistoryAnswer, HistoryCommand, ReadPurpose, Reply};
use crate::protocol;
use crate::shard::Input as ShardInput;

/// Where a history room with members here is in its offsets.
#[derive(Debug, Default)]
pub(super) struct Track {
    epoch: String,
    /// The next offset to send to the shards.
    next: u64,
    /// Frames past a gap, waiting for the fill.
    waiting: BTreeMap<u64, Bytes>,
    /// Whether a fill is being read.
    filling: bool,
}

/// Frames held past a gap before they go out without the fill (a store that does not answer
/// must not hold a room forever).
const MAX_WAITING: usize = 4096;

impl Router {
    /// Asks the store to number and publish a history room's message.
    pub(super) fn append_shared(
        &mut self,
        now: std::time::Instant,
        origin: Origin,
        room: RoomName,
        frame: Bytes,
    ) {
        let rule = self
            .config
            .history
            .rule_for(room.as_str())
            .map(|r| (r.max_len, r.ttl));
        let parts = protocol::message_parts(&frame);
        let id = match origin {
            Origin::Nobody => None,
            origin => Some(self.start(now, origin, Stage::Count, 1, true)),
        };
        let (Some((max_len, ttl)), Some(parts)) = (rule, parts) else {
            if let Some(id) = id {
                self.answer(now, id, |_| {});
            }
            return;
        };
        let head = protocol::message_head(room.as_str(), parts.from.as_deref());
        self.outputs
            .push_back(Output::History(HistoryCommand::Append {
                room,
                head,
                data: parts.data,
                max_len,
                ttl,
                id,
            }));
    }

    /// Asks the store for a room's position and messages.
    pub(super) fn read_shared(
        &mut self,
        room: RoomName,
        since: Option<Since>,
        limit: usize,
        purpose: ReadPurpose,
    ) {
        let Some(ttl) = self.config.history.rule_for(room.as_str()).map(|r| r.ttl) else {
            return self.read_answered(room, purpose, None, Vec::new());
        };
        self.outputs
            .push_back(Output::History(HistoryCommand::Read {
                room,
                since,
                limit,
                ttl,
                purpose,
            }));
    }

    /// The store answered.
    pub(super) fn on_history(&mut self, now: std::time::Instant, answer: HistoryAnswer) {
        match answer {
            HistoryAnswer::Appended { id, ok: _ } => {
                // Delivery happens from the bus, after this answer: no count to add.
                if let Some(id) = id {
                    self.answer(now, id, |_| {});
                }
            }
            HistoryAnswer::Read {
                room,
                purpose,
                page,
                texts,
            } => {
                let frames = texts.iter().map(|t| frame::text(t)).collect();
                self.read_answered(room, purpose, page, frames)
            }
        }
    }

    fn read_answered(
        &mut self,
        room: RoomName,
        purpose: ReadPurpose,
        page: Option<crate::history::HistoryPage>,
        frames: Vec<Bytes>,
    ) {
        match purpose {
            ReadPurpose::Query(req) => {
                let reply = Reply::History(page);
                self.outputs.push_back(Output::Reply { req, reply });
            }
            ReadPurpose::Position(req) => {
                let reply = Reply::Position(page.map(|p| p.position));
                self.outputs.push_back(Output::Reply { req, reply });
            }
            ReadPurpose::Recover { conn, since } => {
                let recovery = match page {
                    Some(page) => {
                        self.track_from(&room, &page.position);
                        Recovery {
                            recovered: since.then_some(page.recovered),
                            frames: if page.recovered { frames } else { Vec::new() },
                            position: page.position,
                        }
                    }
                    None => Recovery {
                        position: Position {
                            offset: 0,
                            epoch: "".into(),
                        },
                        recovered: since.then_some(false),
                        frames: Vec::new(),
                    },
                };
                self.send_shard(
                    conn.shard.0,
                    ShardInput::Recovered {
                        conn,
                        room,
                        recovery,
                    },
                );
            }
            ReadPurpose::Fill => self.filled(room, page.map(|p| p.messages), frames),
        }
    }

    /// A join read the store: a room not tracked yet starts after the position read.
    fn track_from(&mut self, room: &RoomName, position: &Position) {
        if !self.room_shards.contains_key(room.as_str()) || self.tracks.contains_key(room.as_str())
        {
            return;
        }
        let track = Track {
            epoch: position.epoch.to_string(),
            next: position.offset + 1,
            ..Track::default()
        };
        self.tracks.insert(room.clone(), track);
    }

    /// A numbered frame from the bus: sent to the shards in offset order.
    pub(super) fn deliver_ordered(&mut self, room: RoomName, frame: Bytes) {
        let Some((offset, epoch)) = protocol::sequenced_position(&frame) else {
            return;
        };
        if !self.room_shards.contains_key(room.as_str()) {
            return;
        }
        let track = self.tracks.entry(room.clone()).or_default();
        if track.epoch != epoch || track.next == 0 {
            *track = Track {
                epoch,
                next: offset,
                ..Track::default()
            };
        }
        if offset < track.next {
            return;
        }
        if track.filling || offset > track.next {
            track.waiting.insert(offset, frame);
            if track.filling {
                if track.waiting.len() > MAX_WAITING {
                    self.filled(room, None, Vec::new());
                }
                return;
            }
            track.filling = true;
            let since = Since {
                offset: track.next - 1,
                epoch: track.epoch.clone(),
            };
            let limit = (offset - track.next) as usize;
            return self.read_shared(room, Some(since), limit, ReadPurpose::Fill);
        }
        track.next = offset + 1;
        self.send_sequenced(&room, offset, frame);
    }

    /// The missing frames were read (or could not be): everything held goes out in order.
    fn filled(
        &mut self,
        room: RoomName,
        messages: Option<Vec<crate::history::HistoryMessage>>,
        frames: Vec<Bytes>,
    ) {
        let Some(track) = self.tracks.get_mut(room.as_str()) else {
            return;
        };
        track.filling = false;
        let offsets = messages.unwrap_or_default().into_iter().map(|m| m.offset);
        let mut out: Vec<(u64, Bytes)> = offsets.zip(frames).collect();
        out.extend(std::mem::take(&mut track.waiting));
        let mut next = track.next;
        let mut sends = Vec::new();
        for (offset, frame) in out {
            if offset >= next {
                next = offset + 1;
                sends.push((offset, frame));
            }
        }
        track.next = next;
        for (offset, frame) in sends {
            self.send_sequenced(&room, offset, frame);
        }
    }

    fn send_sequenced(&mut self, room: &RoomName, offset: u64, frame: Bytes) {
        let shards: Vec<u16> = self
            .room_shards
            .get(room.as_str())
            .into_iter()
            .flatten()
            .copied()
            .collect();
        for shard in shards {
            self.send_shard(
                shard,
                ShardInput::Sequenced {
                    room: room.clone(),
                    offset,
                    frame: frame.clone(),
                    req: None::<RequestId>,
                },
            );
        }
    }
}
