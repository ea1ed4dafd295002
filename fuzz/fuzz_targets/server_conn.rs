//! The sans-IO server connection fed arbitrary byte streams split at arbitrary points,
//! interleaved with time, partial writes, end of stream and the caller's answers (body:
//! `hub_wire::server::fuzzing::conn_stream`).
//!
//! Run: `cargo +nightly fuzz run server_conn -- -max_total_time=60`. One minute on a shared
//! 2-core machine (hub-wire at 682449e): 866,432 executions (about 14,000/s), coverage 1,486
//! edges, 4,724 features, a corpus of 877 inputs, no crash.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hub_wire::server::fuzzing::conn_stream(data));
