//! Operations decoded with `arbitrary`, driven through one shard, checked against a small
//! reference model after every step (body: `hub_sim::fuzzing::shard_ops`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hub_sim::fuzzing::shard_ops(data));
