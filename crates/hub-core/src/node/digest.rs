//! Order-independent digests of a set of room names: a node sends its peers the digest of
//! the rooms it has members of, and a peer whose view differs asks for a full snapshot. A
//! lost `Interest` message heals this way without resending every room periodically.

/// A set of room names folded into a count and the XOR of their 64-bit hashes. Adding and
/// removing a name are O(1) and undo each other, so both sides keep it as the set changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterestDigest {
    /// How many rooms.
    pub count: u64,
    /// The XOR of [`room_hash`] over the rooms.
    pub hash: u64,
}

impl InterestDigest {
    /// Adds `room` (which must not be in the set).
    pub fn add(&mut self, room: &str) {
        self.count = self.count.wrapping_add(1);
        self.hash ^= room_hash(room);
    }

    /// Removes `room` (which must be in the set).
    pub fn remove(&mut self, room: &str) {
        self.count = self.count.wrapping_sub(1);
        self.hash ^= room_hash(room);
    }
}

/// A room name's 64-bit hash, the same on every node and build: FNV-1a, then the splitmix64
/// finalizer so that every output bit depends on every input byte.
pub fn room_hash(room: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in room.bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: u64 = 0xd1a3_5ad2_051a_df02;

    #[test]
    fn order_does_not_matter_and_remove_undoes_add() {
        let mut a = InterestDigest::default();
        let mut b = InterestDigest::default();
        for room in ["x", "y", "z"] {
            a.add(room);
        }
        for room in ["z", "x", "w", "y"] {
            b.add(room);
        }
        assert_ne!(a, b);
        b.remove("w");
        assert_eq!(a, b);
        assert_ne!(room_hash("ab"), room_hash("ba"));
        // Pinned: nodes of different builds must agree.
        assert_eq!(room_hash("chat"), PINNED);
    }
}
