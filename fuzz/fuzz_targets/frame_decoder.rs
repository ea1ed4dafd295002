//! The WebSocket frame decoder on arbitrary bytes split at arbitrary points (body:
//! `hub_wire::fuzzing::frame_decoder`): the same messages and error however split, limits
//! kept, UTF-8 text, nothing after a close frame, no allocation ahead of the bytes.
//!
//! Run: `cargo +nightly fuzz run frame_decoder -- -runs=10000000`. Figures: fuzz/README.md.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hub_wire::fuzzing::frame_decoder(data));
