//! A fixed, seedless hasher so that every map's iteration order is deterministic.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a, 64 bit: fast for the short keys the hub uses and identical in every run.
#[derive(Debug, Clone, Copy)]
pub struct FnvHasher(u64);

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

/// A `HashMap` with [`FnvHasher`].
pub type FixedMap<K, V> = HashMap<K, V, BuildHasherDefault<FnvHasher>>;
/// A `HashSet` with [`FnvHasher`].
pub type FixedSet<K> = HashSet<K, BuildHasherDefault<FnvHasher>>;
