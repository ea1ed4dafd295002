//! Room membership of a shard's connections: joining and leaving.

use super::conn::ConnState;
use super::{Report, Shard};
use crate::ids::RoomName;
use crate::rooms::Membership;

impl Shard {
    /// Adds `slot` to `room`; false when it already was a member or is at its room limit.
    pub(super) fn join_slot(&mut self, slot: u32, room: &RoomName) -> bool {
        let Some(conn) = self.conns.get_mut(slot as usize) else {
            return false;
        };
        if conn.state != ConnState::Open || conn.rooms.len() >= self.config.max_rooms_per_connection
        {
            return false;
        }
        match self.rooms.join(room, slot) {
            Membership::Unchanged => false,
            change => {
                conn.rooms.push(room.clone());
                if change == Membership::RoomCreated {
                    self.report(Report::RoomActive(room.clone()));
                }
                true
            }
        }
    }

    /// Removes `slot` from `room`; false when it was not a member.
    pub(super) fn leave_slot(&mut self, slot: u32, room: &str) -> bool {
        let Some(conn) = self.conns.get_mut(slot as usize) else {
            return false;
        };
        let Some(pos) = conn.rooms.iter().position(|r| r.as_str() == room) else {
            return false;
        };
        let name = conn.rooms.remove(pos);
        self.drop_holds(slot, Some(room));
        if self.rooms.leave(room, slot) == Membership::RoomRemoved {
            self.report(Report::RoomIdle(name));
        }
        true
    }
}
