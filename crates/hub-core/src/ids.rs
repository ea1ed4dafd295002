//! Identifiers: connection ids with a generation, and the names users choose.
//!
//! Invariants:
//! - A [`ConnId`] names one connection for its whole life. Its `slot` may be reused by a later
//!   connection of the same shard, but that connection gets a different `gen`, so a stale id
//!   never resolves to it.
//! - Names ([`ClientId`], [`UserId`], [`RoomName`], [`NodeId`]) are cheap to clone (`Arc<str>`)
//!   and compare by content.
//! - A generated client id is [`GENERATED_ID_BITS`] bits from a CSPRNG (ChaCha20 keyed by the
//!   node's secret [`Seed`]): ids seen earlier say nothing about later ones, and even after
//!   keeping only the ids that land on one shard (at most 1,024 shards), more than 122 bits
//!   remain unknown.

use std::fmt;
use std::sync::Arc;

use chacha20::ChaCha20Rng;
use rand_core::Rng;

use crate::seed::Seed;

/// Index of a shard within a node (`0..shard_count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u16);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A connection's id: its shard, its slot in that shard's table, and the slot's generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId {
    /// The shard that owns the connection.
    pub shard: ShardId,
    /// The slot in the shard's connection table.
    pub slot: u32,
    /// The slot's generation when the connection was opened.
    pub gen: u32,
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.shard.0, self.slot, self.gen)
    }
}

/// Id of a request whose answer (a delivered count, a lookup) comes back later as an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a name.
            pub fn new(name: impl Into<Arc<str>>) -> Self {
                Self(name.into())
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.into())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s.into())
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

/// The first character of the room names kept for protocols beside the JSON one (Pusher
/// channels): JSON clients and the producer API may not name such a room, so protocols and
/// apps never share a room.
pub const RESERVED_ROOM_PREFIX: char = '\u{1f}';

/// Whether `room` is in the reserved namespace ([`RESERVED_ROOM_PREFIX`]).
pub fn is_reserved_room(room: &str) -> bool {
    room.starts_with(RESERVED_ROOM_PREFIX)
}

name_type!(
    /// A client id: unique in the cluster; a newer connection with a taken id replaces the older.
    ClientId
);
name_type!(
    /// A user id: one user may hold many connections, on many nodes.
    UserId
);
name_type!(
    /// A room's name.
    RoomName
);
name_type!(
    /// A node's name, unique in the cluster.
    NodeId
);

/// The shard that owns `client` among `shard_count` shards: a stable FNV-1a hash of the id.
///
/// Every connection with a given client id lands on this shard, so the shard's own client
/// index answers "is this client here?" without asking the other shards.
pub fn shard_for(client: &str, shard_count: u16) -> ShardId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in client.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let count = u64::from(shard_count.max(1));
    // The remainder is below `shard_count`, which fits in u16.
    ShardId((hash % count) as u16)
}

/// Random bits in a generated client id (written as `GENERATED_ID_BITS / 4` hex digits).
pub const GENERATED_ID_BITS: usize = 144;

/// Draws client ids for one shard from its own ChaCha20 stream of the node's seed.
pub struct IdGenerator {
    rng: ChaCha20Rng,
}

impl fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdGenerator(<redacted>)")
    }
}

impl IdGenerator {
    /// The generator of shard `shard` of a node with `seed`.
    pub fn new(seed: &Seed, shard: ShardId) -> Self {
        Self {
            rng: seed.stream(u64::from(shard.0)),
        }
    }

    /// A fresh id: [`GENERATED_ID_BITS`] random bits as lowercase hex.
    pub fn next_id(&mut self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut bytes = [0u8; GENERATED_ID_BITS / 8];
        self.rng.fill_bytes(&mut bytes);
        let mut id = String::with_capacity(bytes.len() * 2);
        for byte in bytes {
            id.push(char::from(HEX[usize::from(byte >> 4)]));
            id.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        id
    }

    /// A fresh Pusher socket id, `"N.M"`: two random decimal numbers of up to 16 digits
    /// each (106 random bits), the shape Pusher's SDKs check (`^\d+\.\d+$`).
    pub fn next_socket_id(&mut self) -> String {
        const LIMIT: u64 = 10_000_000_000_000_000;
        let mut half = || {
            let mut bytes = [0u8; 8];
            self.rng.fill_bytes(&mut bytes);
            u64::from_le_bytes(bytes) % LIMIT
        };
        let (a, b) = (half(), half());
        format!("{a}.{b}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_long_hex_and_depend_on_seed_and_shard() {
        let mut a = IdGenerator::new(&Seed::from_u64(1), ShardId(0));
        let first = a.next_id();
        assert_eq!(first.len(), GENERATED_ID_BITS / 4);
        assert!(first
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(first, a.next_id());
        let again = IdGenerator::new(&Seed::from_u64(1), ShardId(0)).next_id();
        assert_eq!(first, again, "a fixed seed gives the same ids");
        assert_ne!(
            first,
            IdGenerator::new(&Seed::from_u64(1), ShardId(1)).next_id()
        );
        assert_ne!(
            first,
            IdGenerator::new(&Seed::from_u64(2), ShardId(0)).next_id()
        );
    }

    #[test]
    fn shard_for_is_stable_and_in_range() {
        for n in 1..20u16 {
            for id in ["a", "b", "user-17", "", "ünïcode"] {
                let s = shard_for(id, n);
                assert!(s.0 < n);
                assert_eq!(s, shard_for(id, n));
            }
        }
        assert_eq!(shard_for("x", 0), ShardId(0));
    }

    #[test]
    fn shard_for_spreads_ids() {
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            counts[shard_for(&format!("client-{i}"), 4).0 as usize] += 1;
        }
        for c in counts {
            assert!(c > 800, "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn names_compare_by_content() {
        assert_eq!(ClientId::from("a"), ClientId::new(String::from("a")));
        assert_eq!(RoomName::from("r").as_str(), "r");
        assert_eq!(format!("{:?}", UserId::from("u")), "\"u\"");
    }
}
