//! Benchmarks and load generation for Hubbub.
