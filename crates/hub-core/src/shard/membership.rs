//! Room membership of a shard's connections, and what the router learns of it for presence:
//! each join and leave, with the member's user id and information. The shard keeps no
//! presence state beyond room membership; the router's
//! [`PresenceIndex`](crate::presence::PresenceIndex) does.

use std::sync::Arc;

use super::conn::{Conn, ConnState};
use super::{Report, Shard, Target};
use crate::ids::{RequestId, RoomName, UserId};
use crate::presence::Member;
use crate::rooms::Membership;

/// The presence member `conn` is in a room it joins: its own user id unless `user` is given.
pub(super) fn member_of(conn: &Conn, user: Option<UserId>, info: Option<Arc<str>>) -> Member {
    Member {
        client: conn.client.clone(),
        user: user.or_else(|| conn.user.clone()),
        info,
    }
}

impl Shard {
    /// Adds `slot` to `room`; false when it already was a member or is at its room limit.
    pub(super) fn join_slot(&mut self, slot: u32, room: &RoomName) -> bool {
        self.join_slot_as(slot, room, None, None)
    }

    /// [`Self::join_slot`] with the presence member's user id (`None`: the connection's) and
    /// information.
    pub(super) fn join_slot_as(
        &mut self,
        slot: u32,
        room: &RoomName,
        user: Option<UserId>,
        info: Option<std::sync::Arc<str>>,
    ) -> bool {
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
                let member = member_of(conn, user, info);
                if change == Membership::RoomCreated {
                    self.report(Report::RoomActive(room.clone()));
                }
                let room = room.clone();
                self.report(Report::MemberJoined { room, member });
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
        let client = conn.client.clone();
        self.drop_holds(slot, Some(room));
        if self.rooms.leave(room, slot) == Membership::RoomRemoved {
            self.report(Report::RoomIdle(name.clone()));
        }
        self.report(Report::MemberLeft { room: name, client });
        true
    }

    /// `Input::JoinAs`: joins `target` to `room` as members with `user` and `info`.
    pub(super) fn join_as(
        &mut self,
        target: Target,
        room: RoomName,
        user: Option<UserId>,
        info: Option<Arc<str>>,
        req: Option<RequestId>,
    ) {
        let max = self.config.max_name_len;
        let name_ok = |s: &str| !s.is_empty() && s.len() <= max;
        let mut count = 0;
        if name_ok(room.as_str()) && user.as_ref().is_none_or(|u| name_ok(u.as_str())) {
            for slot in self.take_targets(&target) {
                if self.join_slot_as(slot, &room, user.clone(), info.clone()) {
                    count += 1;
                }
            }
        }
        if let Some(req) = req {
            self.report(Report::Delivered { req, count });
        }
    }
}
