//! The client protocol parser never panics and round-trips sane inputs (body:
//! `hub_sim::fuzzing::protocol_parse`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hub_sim::fuzzing::protocol_parse(data));
