//! The HTTP request head parser on arbitrary bytes (body:
//! `hub_wire::fuzzing::http_head`): no panic, complete heads re-parse the same from their
//! own bytes and are partial one byte earlier, errors map to 4xx/5xx.
//!
//! Run: `cargo +nightly fuzz run http_head -- -runs=10000000`. Figures: fuzz/README.md.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hub_wire::fuzzing::http_head(data));
