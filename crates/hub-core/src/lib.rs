//! # hub-core — the sans-IO heart of Hubbub
//!
//! Everything Hubbub decides lives here, as pure, synchronous, deterministic state machines
//! that read no clock, open no socket, spawn nothing and never block. Runtimes (tokio, smol,
//! or your own event loop) do the I/O and feed events in.
//!
//! Two state machines make a node:
//! - [`Shard`]: a set of connections with their client/user/room indexes, bounded send
//!   queues, heartbeats and the client JSON protocol. A node runs N shards, one task each.
//! - [`Node`]: the router between a node's shards and the cluster: which shards, peers,
//!   bus channels and registry entries a delivery or an event concerns, and the sum of the
//!   answers to each request.
//!
//! ## The run loop
//!
//! Every state machine is driven the same way:
//!
//! ```text
//! loop {
//!     feed one event:  sm.handle_input(now, input)   // or shard.open(now, params)
//!     drain outputs:   while let Some(out) = sm.poll_output() { execute(out) }
//!     sleep until the next event or sm.poll_timeout(); then sm.handle_timeout(now)
//!     drain outputs again
//! }
//! ```
//!
//! Drain outputs after every mutation: frames for one connection are coalesced into one
//! [`shard::Output::Transmit`] when the outputs are drained, not when they are queued.
//!
//! What each output obliges the runtime to do:
//! - `Transmit { conn, frames, close }`: write the frames in order (one vectored write if it
//!   can), then feed `Sent { conn }`; with `close`, shut the socket after writing instead.
//! - `Abort { conn }`: drop the socket without writing.
//! - `Event(..)`: hand it to the application (callbacks), or ignore it.
//! - `Report(..)`: feed it to the node router as `node::Input::Shard`.
//! - Router `ToShard`: feed the input to that shard; `Reply`: answer the caller;
//!   `ToPeer`: send to that node (feed `PeerFailed` if it cannot be sent);
//!   `Registry`/`Bus`: perform it (answer a `Lookup` with `RegistryAnswer`, `None` on error).
//!
//! ## Invariants
//!
//! - `poll_timeout()` is O(1), and after `handle_timeout(now)` it is `None` or later than `now`.
//! - A stale [`ConnId`] (a connection that closed) never resolves, even when its slot is reused.
//! - Closing a connection removes it from every index, room and timer at once.
//! - Send queues never pass their byte or frame bounds; a full queue closes the connection
//!   with 4008 (or drops the oldest frames, if configured) — nothing grows without bound and
//!   nothing is dropped without a count.
//! - A message for N recipients is encoded once: the N queues share one [`bytes::Bytes`].
//! - Iteration orders are deterministic: the same inputs give the same outputs.
//!
//! ## Panics, errors and unwraps
//!
//! No input makes the core panic: malformed client messages become error frames, protocol
//! violations become close codes, unknown or stale ids are ignored, and bad settings are a
//! [`ConfigError`]. The crate has no `unwrap` outside tests.

#![warn(missing_docs)]

pub mod config;
pub mod frame;
pub mod hash;
pub mod ids;
pub mod node;
pub mod protocol;
pub mod queue;
pub mod rooms;
pub mod shard;
pub mod stats;
pub mod timers;

pub use config::{ClientProtocol, Config, ConfigError, OverflowPolicy};
pub use ids::{shard_for, ClientId, ConnId, NodeId, RequestId, RoomName, ShardId, UserId};
pub use node::{BusKind, ClusterMode, Node, NodeConfig};
pub use shard::{Event, OpenError, OpenParams, Shard, Target};
pub use stats::ShardStats;
