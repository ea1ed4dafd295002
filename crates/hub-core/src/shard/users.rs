//! A connection's user, set after it opened (a protocol layer's sign-in).
//!
//! Invariant: an open connection is in the user index under its current user only; the
//! router hears `UserActive` for a user's first connection on the shard and `UserIdle` for
//! its last, whether the user came with the open or later.

use super::conn::ConnState;
use super::{Report, Shard};
use crate::ids::{ConnId, UserId};

impl Shard {
    /// Makes `user` the user of `conn` (an open connection); a previous user is left.
    pub(super) fn set_user(&mut self, conn: ConnId, user: UserId) {
        let Some(slot) = self.open_slot(conn) else {
            return;
        };
        let Some(entry) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if entry.state != ConnState::Open || entry.user.as_ref() == Some(&user) {
            return;
        }
        let old = entry.user.replace(user.clone());
        if let Some(old) = old {
            if let Some(slots) = self.users.get_mut(old.as_str()) {
                slots.retain(|s| *s != slot);
                if slots.is_empty() {
                    self.users.remove(old.as_str());
                    self.report(Report::UserIdle(old));
                }
            }
        }
        let slots = self.users.entry(user.clone()).or_default();
        slots.push(slot);
        if slots.len() == 1 {
            self.report(Report::UserActive(user));
        }
    }
}
