//! The node's secret seed: generated client ids and the keys of name-keyed maps derive from it.
//!
//! Invariants:
//! - Runtimes pass 32 bytes from the operating system's CSPRNG; tests pass a fixed seed and
//!   get the same ids and the same map order in every run.
//! - Each use draws from its own ChaCha20 stream of the seed ([`Seed::stream`]), so what one
//!   use reveals (a generated id) says nothing about another (a hash key).
//! - The seed never appears in `Debug` output.

use std::fmt;

use chacha20::ChaCha20Rng;
use rand_core::SeedableRng;

/// 32 secret bytes, the root of every random choice a shard or router makes.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed([u8; 32]);

/// The ChaCha20 stream of the keys of name-keyed maps ([`crate::hash::KeyedState`]).
pub(crate) const HASH_STREAM: u64 = u64::MAX;

impl Seed {
    /// A seed of these bytes (runtimes: from the OS's CSPRNG).
    pub const fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fixed seed expanded from `n`, for tests and simulations; never secret.
    pub fn from_u64(n: u64) -> Self {
        let mut bytes = [0u8; 32];
        // SplitMix64 spreads `n` over the 32 bytes; any fixed expansion would do.
        let mut state = n;
        for chunk in bytes.chunks_exact_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        Self(bytes)
    }

    /// The ChaCha20 generator of stream `stream` of this seed (a CSPRNG).
    pub(crate) fn stream(&self, stream: u64) -> ChaCha20Rng {
        let mut rng = ChaCha20Rng::from_seed(self.0);
        rng.set_stream(stream);
        rng
    }
}

impl Default for Seed {
    /// The fixed seed of `Config::default()`; runtimes replace it with a random one.
    fn default() -> Self {
        Self::from_u64(0x5eed)
    }
}

impl From<u64> for Seed {
    fn from(n: u64) -> Self {
        Self::from_u64(n)
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let seed = Seed::from_u64(7);
        let draw = |s: &Seed, stream| s.stream(stream).next_u64();
        assert_eq!(draw(&seed, 0), draw(&Seed::from_u64(7), 0));
        assert_ne!(draw(&seed, 0), draw(&seed, 1));
        assert_ne!(draw(&seed, 0), draw(&Seed::from_u64(8), 0));
        assert_ne!(Seed::from_u64(0), Seed::from_u64(1));
        assert_eq!(format!("{seed:?}"), "Seed(<redacted>)");
    }
}
