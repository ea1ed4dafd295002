//! Queueing frames: to one connection under the overflow policy, and to every connection a
//! target names on this shard.

use std::time::Instant;

use bytes::Bytes;

use super::conn::ConnState;
use super::{CloseMode, Shard, Target};
use crate::config::OverflowPolicy;
use crate::frame::close_code;
use crate::queue::QueueFull;

impl Shard {
    /// Queues `frame` for `slot`, applying the overflow policy. Returns whether it was queued.
    pub(super) fn enqueue(&mut self, now: Instant, slot: u32, frame: Bytes) -> bool {
        let max_bytes = self.config.send_queue_bytes;
        let max_frames = self.config.send_queue_messages;
        let policy = self.config.overflow_policy;
        let Some(conn) = self.conns.get_mut(slot as usize) else {
            return false;
        };
        if conn.state != ConnState::Open {
            return false;
        }
        let mut result = conn.queue.push(frame.clone(), max_bytes, max_frames);
        if result.is_err() && policy == OverflowPolicy::DropOldest {
            while result == Err(QueueFull) {
                let Some(dropped) = conn.queue.drop_oldest() else {
                    break;
                };
                self.queued_bytes -= dropped;
                self.stats.dropped_frames += 1;
                result = conn.queue.push(frame.clone(), max_bytes, max_frames);
            }
        }
        match result {
            Ok(()) => {
                self.queued_bytes += frame.len();
                self.mark_ready(slot);
                true
            }
            Err(QueueFull) => {
                self.stats.slow_consumer_closes += 1;
                self.close_slot(
                    now,
                    slot,
                    close_code::SLOW_CONSUMER,
                    "slow consumer",
                    CloseMode::Now,
                    true,
                );
                false
            }
        }
    }

    /// Queues `frame` to every open connection in `target` (but `skip`); returns the count.
    pub(super) fn deliver(
        &mut self,
        now: Instant,
        target: &Target,
        frame: &Bytes,
        skip: Option<u32>,
    ) -> u64 {
        let slots = self.take_targets(target);
        let mut count = 0;
        for &slot in &slots {
            if Some(slot) != skip && self.enqueue(now, slot, frame.clone()) {
                count += 1;
            }
        }
        self.stats.messages_out += count;
        self.scratch = slots;
        count
    }

    /// The open slots `target` names on this shard (in a reused buffer).
    pub(super) fn take_targets(&mut self, target: &Target) -> Vec<u32> {
        let mut slots = std::mem::take(&mut self.scratch);
        slots.clear();
        match target {
            Target::Conn(id) => slots.extend(self.open_slot(*id)),
            Target::Client(client) => slots.extend(self.clients.get(client.as_str()).copied()),
            Target::User(user) => {
                if let Some(s) = self.users.get(user.as_str()) {
                    slots.extend_from_slice(s);
                }
            }
            Target::Room(room) => {
                if let Some(r) = self.rooms.get(room.as_str()) {
                    slots.extend_from_slice(r.members());
                }
            }
            Target::RoomExcept { room, except } => {
                if let Some(r) = self.rooms.get(room.as_str()) {
                    let skip = self.clients.get(except.as_str()).copied();
                    slots.extend(r.members().iter().filter(|s| Some(**s) != skip));
                }
            }
            Target::All => slots.extend(
                self.conns
                    .iter()
                    .filter(|(_, c)| c.state == ConnState::Open)
                    .map(|(k, _)| k as u32),
            ),
        }
        slots
    }
}
