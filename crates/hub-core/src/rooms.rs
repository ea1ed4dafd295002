//! Room membership within one shard.
//!
//! Invariants: a slot is listed in a room's members at most once; `pos[slot]` is its index in
//! `members`; a room with no members does not exist (it is removed with its last member).

use crate::hash::{keyed_map, FixedMap, KeyedMap, KeyedState};
use crate::ids::RoomName;

/// Members of one room on one shard, by connection slot.
#[derive(Debug, Default)]
pub(crate) struct Room {
    members: Vec<u32>,
    pos: FixedMap<u32, u32>,
}

impl Room {
    /// The member slots, in a deterministic order.
    pub(crate) fn members(&self) -> &[u32] {
        &self.members
    }
}

/// Room name → members, for one shard.
#[derive(Debug)]
pub(crate) struct RoomIndex {
    rooms: KeyedMap<RoomName, Room>,
}

/// What a join or leave changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Membership {
    /// Nothing changed (already a member, or not a member).
    Unchanged,
    /// The member was added or removed; the room still has other members or had them before.
    Changed,
    /// The room went from no members to one on this shard.
    RoomCreated,
    /// The room's last member on this shard left.
    RoomRemoved,
}

impl RoomIndex {
    /// An empty index hashing room names with `keys`.
    pub(crate) fn new(keys: &KeyedState) -> Self {
        Self {
            rooms: keyed_map(keys),
        }
    }

    /// The room, if it has members here.
    pub(crate) fn get(&self, room: &str) -> Option<&Room> {
        self.rooms.get(room)
    }

    /// Number of rooms with members here.
    pub(crate) fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether no room has members here.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Whether `slot` is a member of `room`.
    pub(crate) fn contains(&self, room: &str, slot: u32) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.pos.contains_key(&slot))
    }

    /// Adds `slot` to `room`.
    pub(crate) fn join(&mut self, room: &RoomName, slot: u32) -> Membership {
        let created = !self.rooms.contains_key(room.as_str());
        let entry = self.rooms.entry(room.clone()).or_default();
        if entry.pos.contains_key(&slot) {
            return Membership::Unchanged;
        }
        // A shard holds far fewer than 2^32 connections.
        entry.pos.insert(slot, entry.members.len() as u32);
        entry.members.push(slot);
        if created {
            Membership::RoomCreated
        } else {
            Membership::Changed
        }
    }

    /// Removes `slot` from `room`.
    pub(crate) fn leave(&mut self, room: &str, slot: u32) -> Membership {
        let Some(entry) = self.rooms.get_mut(room) else {
            return Membership::Unchanged;
        };
        let Some(index) = entry.pos.remove(&slot) else {
            return Membership::Unchanged;
        };
        entry.members.swap_remove(index as usize);
        if let Some(&moved) = entry.members.get(index as usize) {
            entry.pos.insert(moved, index);
        }
        if entry.members.is_empty() {
            self.rooms.remove(room);
            Membership::RoomRemoved
        } else {
            Membership::Changed
        }
    }

    /// Room names in a deterministic order (sorted).
    pub(crate) fn names(&self) -> Vec<RoomName> {
        let mut names: Vec<RoomName> = self.rooms.keys().cloned().collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_leave_and_room_lifecycle() {
        let mut idx = RoomIndex::new(&KeyedState::new(&crate::Seed::from_u64(1)));
        let r = RoomName::from("r");
        assert_eq!(idx.join(&r, 1), Membership::RoomCreated);
        assert_eq!(idx.join(&r, 1), Membership::Unchanged);
        assert_eq!(idx.join(&r, 2), Membership::Changed);
        assert_eq!(idx.join(&r, 3), Membership::Changed);
        assert_eq!(idx.leave("r", 1), Membership::Changed);
        assert!(idx.contains("r", 3));
        assert!(!idx.contains("r", 1));
        let mut m = idx.get("r").expect("room").members().to_vec();
        m.sort();
        assert_eq!(m, vec![2, 3]);
        assert_eq!(idx.leave("r", 9), Membership::Unchanged);
        assert_eq!(idx.leave("r", 2), Membership::Changed);
        assert_eq!(idx.leave("r", 3), Membership::RoomRemoved);
        assert!(idx.is_empty());
        assert_eq!(idx.leave("r", 3), Membership::Unchanged);
    }

    #[test]
    fn names_colliding_under_fnv_keep_the_index_whole() {
        let names = crate::hash::tests::fnv_collisions(512);
        let mut idx = RoomIndex::new(&KeyedState::new(&crate::Seed::from_u64(9)));
        for (slot, name) in (0u32..).zip(&names) {
            assert_eq!(
                idx.join(&RoomName::from(name.as_str()), slot),
                Membership::RoomCreated
            );
        }
        assert_eq!(idx.names().len(), names.len());
        // The keyed hash spreads the names over the table's buckets: no more than a handful
        // share one bucket index (FNV put all of them in one).
        let keys = KeyedState::new(&crate::Seed::from_u64(9));
        let mut per_bucket = std::collections::HashMap::<u64, u32>::new();
        for name in &names {
            *per_bucket
                .entry(crate::hash::tests::hash(&keys, name) & 0xfff)
                .or_default() += 1;
        }
        assert!(
            per_bucket.values().all(|&n| n <= 6),
            "{:?}",
            per_bucket.values().max()
        );
        for (slot, name) in (0u32..).zip(&names) {
            assert!(idx.contains(name, slot));
            assert_eq!(idx.leave(name, slot), Membership::RoomRemoved);
        }
        assert!(idx.is_empty());
    }
}
