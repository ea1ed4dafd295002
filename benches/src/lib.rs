//! Benchmarks and load generation for Hubbub.
//!
//! [`fixtures`] builds the shards that the criterion benches in `benches/` measure
//! (`cargo bench -p hubbub-benches`); see `BENCHMARKS.md` at the repository root for the
//! figures and how they were taken.

#![warn(missing_docs)]

pub mod fixtures;
