//! Hashers of the core's maps.
//!
//! Invariants:
//! - Every map keyed by a name that clients or producers choose (room names, client ids, user
//!   ids) is a [`KeyedMap`]: SipHash-1-3 under a 128-bit key drawn from the node's [`Seed`].
//!   Without the key, colliding names cannot be computed, so no choice of names piles them
//!   into one bucket.
//! - Maps keyed by numbers the hub hands out itself (slots, request ids) are [`FixedMap`]s:
//!   FNV-1a, cheaper, and safe because nobody outside chooses those keys.
//! - With a fixed seed (tests, simulations), iteration order is the same in every run.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use rand_core::Rng;
use siphasher::sip::SipHasher13;

use crate::seed::{Seed, HASH_STREAM};

/// FNV-1a, 64 bit: fast for the short keys the hub uses and identical in every run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FnvHasher(u64);

impl Default for FnvHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A `HashMap` with [`FnvHasher`], for keys the hub generates (never for names).
pub(crate) type FixedMap<K, V> = HashMap<K, V, BuildHasherDefault<FnvHasher>>;

/// Builds SipHash-1-3 hashers under one secret 128-bit key.
#[derive(Clone)]
pub(crate) struct KeyedState {
    k0: u64,
    k1: u64,
}

impl KeyedState {
    /// The hashers of maps owned by a node with `seed` (every map of a node shares the key).
    pub(crate) fn new(seed: &Seed) -> Self {
        let mut rng = seed.stream(HASH_STREAM);
        Self {
            k0: rng.next_u64(),
            k1: rng.next_u64(),
        }
    }
}

impl std::fmt::Debug for KeyedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedState(<redacted>)")
    }
}

impl BuildHasher for KeyedState {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

/// A `HashMap` keyed by names that clients or producers choose, with [`KeyedState`].
pub(crate) type KeyedMap<K, V> = HashMap<K, V, KeyedState>;

/// An empty [`KeyedMap`] hashing with `keys`.
pub(crate) fn keyed_map<K, V>(keys: &KeyedState) -> KeyedMap<K, V> {
    HashMap::with_hasher(keys.clone())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashSet;

    pub(crate) fn hash(state: &KeyedState, name: &str) -> u64 {
        state.hash_one(name)
    }

    #[test]
    fn keyed_hashes_depend_on_the_seed_only() {
        let a = KeyedState::new(&Seed::from_u64(1));
        let a2 = KeyedState::new(&Seed::from_u64(1));
        let b = KeyedState::new(&Seed::from_u64(2));
        assert_eq!(hash(&a, "lobby"), hash(&a2, "lobby"));
        assert_ne!(hash(&a, "lobby"), hash(&b, "lobby"));
        assert!(!format!("{a:?}").contains(&a.k0.to_string()));
    }

    /// `count` room names whose FNV-1a hashes agree in their low 12 bits (the bucket index of
    /// a table of 4,096 buckets): found by trying names in turn, cheaply, because FNV has no key.
    pub(crate) fn fnv_collisions(count: usize) -> Vec<String> {
        let fnv = |s: &str| BuildHasherDefault::<FnvHasher>::default().hash_one(s);
        let target = fnv("room-0") & 0xfff;
        (0u64..)
            .map(|i| format!("room-{i}"))
            .filter(|name| fnv(name) & 0xfff == target)
            .take(count)
            .collect()
    }

    #[test]
    fn names_colliding_under_fnv_spread_under_the_keyed_hash() {
        let names = fnv_collisions(256);
        let fnv = BuildHasherDefault::<FnvHasher>::default();
        let fnv_buckets: HashSet<u64> = names
            .iter()
            .map(|n| fnv.hash_one(n.as_str()) & 0xfff)
            .collect();
        assert_eq!(fnv_buckets.len(), 1, "the names collide under FNV");
        let keyed = KeyedState::new(&Seed::from_u64(3));
        let buckets: HashSet<u64> = names.iter().map(|n| hash(&keyed, n) & 0xfff).collect();
        // 256 names in 4,096 buckets spread nearly one per bucket (about 248 expected).
        assert!(buckets.len() > 230, "{} buckets", buckets.len());
    }
}
