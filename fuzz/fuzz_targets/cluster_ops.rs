//! Routing across two or three simulated nodes (body: `hub_sim::fuzzing::cluster_ops`):
//! takeovers, joins, publishes, emits, API calls, cut links, a crash and time; then every
//! live node must agree on where each client is.
//!
//! Run: `cargo +nightly fuzz run cluster_ops -- -max_total_time=3600`. Figures:
//! fuzz/README.md.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hub_sim::fuzzing::cluster_ops(data));
