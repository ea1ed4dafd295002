//! Joins of rooms with history: live messages held while the router answers, then `joined`,
//! the replay and what was held, in that order (see [`crate::history`]).
//!
//! Invariants:
//! - a connection has at most one hold per room, and only while it is open and a member;
//! - a held message is sent after the replay unless the replay (or the position, for a
//!   join without `since`) already covers its offset: nothing twice, nothing skipped;
//! - a hold never holds more frames than a send queue may (the connection is closed as a
//!   slow consumer instead);
//! - after the answer, the connection's hold stays as a floor (the answer's offset) until a
//!   later offset arrives: in a cluster, frames the replay covered may still be on their way
//!   from the bus, and they are dropped for this connection.

use std::time::Instant;

use bytes::Bytes;

use super::{CloseMode, Report, Shard, Target};
use crate::frame::close_code;
use crate::history::{Recovery, Since};
use crate::ids::{ConnId, RoomName};
use crate::protocol::{self, ErrorCode};

/// A join being answered: the live messages of `room` for `slot`, held until the answer.
#[derive(Debug)]
pub(super) struct Hold {
    slot: u32,
    room: RoomName,
    /// The join's `ref`, echoed in `joined` and acked after it.
    reference: Option<String>,
    held: Vec<(u64, Bytes)>,
    /// Set once answered: frames at or below it were covered by the answer.
    floor: Option<u64>,
}

impl Shard {
    /// Starts answering a join of a history room by `slot` (already a member): holds the
    /// room's live messages and asks the router for the position and the replay.
    pub(super) fn start_recovery(
        &mut self,
        slot: u32,
        conn: ConnId,
        room: RoomName,
        since: Option<Since>,
        reference: Option<&str>,
    ) -> Result<(), (ErrorCode, String)> {
        if let Some(i) = self.holding(slot, room.as_str()) {
            if self.holds[i].floor.is_some() {
                self.holds.swap_remove(i);
            }
        }
        if self.holding(slot, room.as_str()).is_some() {
            return Err((
                ErrorCode::BadRequest,
                "a join of this room is already being answered".into(),
            ));
        }
        self.holds.push(Hold {
            slot,
            room: room.clone(),
            reference: reference.map(str::to_owned),
            held: Vec::new(),
            floor: None,
        });
        self.report(Report::Recover { conn, room, since });
        Ok(())
    }

    fn holding(&self, slot: u32, room: &str) -> Option<usize> {
        self.holds
            .iter()
            .position(|h| h.slot == slot && h.room.as_str() == room)
    }

    /// Forgets the holds of `slot` (every room, or one): it left, or closed.
    pub(super) fn drop_holds(&mut self, slot: u32, room: Option<&str>) {
        if !self.holds.is_empty() {
            self.holds
                .retain(|h| h.slot != slot || room.is_some_and(|r| h.room.as_str() != r));
        }
    }

    /// Delivers a numbered message of a history room to its members here; a member whose
    /// join is being answered gets it held. Returns the count.
    pub(super) fn deliver_sequenced(
        &mut self,
        now: Instant,
        room: RoomName,
        offset: u64,
        frame: &Bytes,
    ) -> u64 {
        if self.holds.is_empty() {
            return self.deliver(now, &Target::Room(room), frame, None);
        }
        let slots = self.take_targets(&Target::Room(room.clone()));
        let mut count = 0;
        let mut overflowing = Vec::new();
        for &slot in &slots {
            let answered = self
                .holding(slot, room.as_str())
                .map(|i| (i, self.holds[i].floor));
            match answered {
                Some((_, Some(floor))) if offset <= floor => {}
                Some((i, Some(_))) => {
                    self.holds.swap_remove(i);
                    if self.enqueue(now, slot, frame.clone()) {
                        count += 1;
                    }
                }
                Some((i, None)) => {
                    let hold = &mut self.holds[i];
                    hold.held.push((offset, frame.clone()));
                    count += 1;
                    if hold.held.len() > self.config.send_queue_messages {
                        overflowing.push(slot);
                    }
                }
                None => {
                    if self.enqueue(now, slot, frame.clone()) {
                        count += 1;
                    }
                }
            }
        }
        self.stats.messages_out += count;
        self.scratch = slots;
        for slot in overflowing {
            self.stats.slow_consumer_closes += 1;
            self.close_slot(
                now,
                slot,
                close_code::SLOW_CONSUMER,
                "slow consumer",
                CloseMode::Now,
                true,
            );
        }
        count
    }

    /// The router's answer to a join: `joined`, the ack, the replay, then the held messages
    /// the answer does not cover.
    pub(super) fn finish_recovery(
        &mut self,
        now: Instant,
        conn: ConnId,
        room: RoomName,
        recovery: Recovery,
    ) {
        let Some(slot) = self.open_slot(conn) else {
            return;
        };
        let Some(i) = self
            .holding(slot, room.as_str())
            .filter(|i| self.holds[*i].floor.is_none())
        else {
            return;
        };
        let mut hold = self.holds.swap_remove(i);
        // Stays as the floor: frames up to the answer's offset are covered.
        self.holds.push(Hold {
            slot,
            room: room.clone(),
            reference: None,
            held: Vec::new(),
            floor: Some(recovery.position.offset),
        });
        let held = std::mem::take(&mut hold.held);
        let reference = hold.reference.as_deref();
        let joined = protocol::joined(
            room.as_str(),
            &recovery.position,
            recovery.recovered,
            reference,
        );
        let mut frames = std::iter::once(joined)
            .chain(reference.map(protocol::ack))
            .chain(recovery.frames)
            .chain(
                held.into_iter()
                    .filter(|(offset, _)| *offset > recovery.position.offset)
                    .map(|(_, frame)| frame),
            );
        // A frame that does not fit closes the connection (slow consumer): stop there.
        for frame in frames.by_ref() {
            if !self.enqueue(now, slot, frame) {
                break;
            }
        }
    }
}
