//! # hub-core — the sans-IO heart of Hubbub
//!
//! Everything Hubbub decides lives here, as pure, synchronous, deterministic state machines
//! that read no clock, open no socket, spawn nothing and never block. Runtimes (tokio, smol,
//! or your own event loop) do the I/O and feed events in.
//!
//! Two state machines make a node, and one value wires them together:
//! - [`Shard`]: a set of connections with their client/user/room indexes, bounded send
//!   queues, heartbeats and the client JSON protocol. A node runs N shards.
//! - [`Router`]: the router between a node's shards and the cluster: which shards, peers,
//!   bus channels and registry entries a delivery or an event concerns, and the sum of the
//!   answers to each request.
//! - [`Hub`]: N shards and the router in one value, for an embedder that drives the whole
//!   node from one thread. A multi-threaded runtime runs shards and router on tasks of their
//!   own instead and carries their messages itself (see "Without the hub" below).
//!
//! ## The run loop
//!
//! Every state machine is driven the same way, in this order:
//!
//! 1. read the clock once: `now`. It never goes backwards from one call to the next (a
//!    [`Hub`] takes an earlier `now` as the latest one it was given);
//! 2. feed what happened: `handle_input(now, ..)` (and [`Hub::open`] for an accepted
//!    upgrade), and `handle_timeout(now)` once `now` reaches `poll_timeout()`;
//! 3. drain: call `poll_output()` until it returns `None`, and carry out each output. This
//!    may feed more inputs (a finished write is `Sent`); drain again until `None`;
//! 4. sleep until the sockets have news or until `poll_timeout()` (O(1); `None`: no timer).
//!
//! Drain outputs after every batch of mutations: frames for one connection are coalesced
//! into one `Transmit` when the outputs are drained, not when they are queued.
//!
//! A whole node in a loop you own (the socket work, shown as stubs, is yours):
//!
//! ```no_run
//! use std::time::Instant;
//!
//! use bytes::Bytes;
//! use hub_core::shard::Input;
//! use hub_core::{Config, ConnId, Hub, HubInput, HubOutput, NodeConfig, OpenParams};
//!
//! /// What the sockets did since the last turn.
//! enum SocketEvent {
//!     /// An upgrade request the gate accepted.
//!     Upgrade(OpenParams),
//!     /// A decoded frame as a shard input: `Message`, `Ping`, `Activity` (a pong), `Close`.
//!     Frame(Input),
//!     /// The frames of a `Transmit` are all written.
//!     Written(ConnId),
//!     /// The socket is gone (EOF, reset).
//!     Gone(ConnId),
//! }
//! // Your I/O: epoll, mio, io_uring, a test harness.
//! fn wait(_until: Option<Instant>) -> Vec<SocketEvent> { Vec::new() }
//! fn write(_conn: ConnId, _frames: Vec<Bytes>, _close: bool) {}
//! fn answer_upgrade(_accepted: Result<ConnId, hub_core::OpenError>) {}
//! fn drop_socket(_conn: ConnId) {}
//!
//! let config = Config::default();
//! let router = NodeConfig::standalone(config.node_id.clone(), config.shard_count);
//! let mut hub = Hub::new(config, router)?;
//! for _turn in 0.. {
//!     let events = wait(hub.poll_timeout());
//!     let now = Instant::now();
//!     if hub.poll_timeout().is_some_and(|at| at <= now) {
//!         hub.handle_timeout(now);
//!     }
//!     for event in events {
//!         match event {
//!             // Write the 101 (or the refusal) now: the welcome frame comes out of
//!             // poll_output below, behind it.
//!             SocketEvent::Upgrade(params) => answer_upgrade(hub.open(now, params)),
//!             SocketEvent::Frame(input) => hub.handle_input(now, HubInput::Conn(input)),
//!             SocketEvent::Written(conn) => {
//!                 hub.handle_input(now, HubInput::Conn(Input::Sent { conn }))
//!             }
//!             SocketEvent::Gone(conn) => {
//!                 hub.handle_input(now, HubInput::Conn(Input::Closed { conn }))
//!             }
//!         }
//!     }
//!     while let Some(output) = hub.poll_output() {
//!         match output {
//!             HubOutput::Transmit { conn, frames, close } => write(conn, frames, close),
//!             HubOutput::Abort { conn } => drop_socket(conn),
//!             HubOutput::Event(_event) => {} // the application's callbacks
//!             HubOutput::Delivered { .. }
//!             | HubOutput::Online { .. }
//!             | HubOutput::Disconnected { .. }
//!             | HubOutput::Answer { .. }
//!             | HubOutput::Presence { .. } => {} // answers to HubInput::Command
//!             HubOutput::PresenceEvent(_) => {} // who came and went, if asked for
//!             HubOutput::Cluster(_) => {} // a standalone hub has none
//!         }
//!     }
//! }
//! # Ok::<(), hub_core::ConfigError>(())
//! ```
//!
//! The same loop over real sockets, with `hub_wire::server::ServerConn` between each socket
//! and the hub, is `hub_wire::host::Host`; `runtimes/poll/examples/custom_loop.rs` runs it
//! as a whole node (the client protocol, heartbeats, close codes) on mio in 60 lines, using
//! only this crate and hub-wire; copy it to start.
//!
//! What each output obliges the runtime to do:
//! - `Transmit { conn, frames, close }`: write the frames in order (one vectored write if it
//!   can), then feed `Sent { conn }`; with `close`, shut the socket after writing instead.
//! - `Abort { conn }`: drop the socket without writing.
//! - `Event(..)`: hand it to the application (callbacks), or ignore it.
//! - [`Hub`] answers (`Delivered`, `Online`, `Disconnected`): answer the caller of the
//!   command with that `req`.
//! - `Cluster(..)`: `ToPeer`: send to that node (feed `PeerFailed` if it cannot be sent);
//!   `Registry`/`Bus`: perform it (answer a `Lookup` with `RegistryAnswer`, `None` on error).
//!
//! ## Without the hub
//!
//! A runtime that runs each shard and the router on its own thread or task drives [`Shard`]
//! and [`Router`] directly, with the same loop, and carries what the hub carries inside:
//! - a shard's `Report(..)`: feed it to the router as `node::Input::Shard`;
//! - the router's `ToShard`: feed the input to that shard; `Reply`: answer the caller;
//!   `ToPeer`, `Registry`, `Bus`: as `Cluster(..)` above.
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
//! - Iteration orders are deterministic: the same inputs and [`Seed`] give the same outputs.
//! - Maps keyed by names clients or producers choose hash with a key drawn from the seed
//!   ([`hash::KeyedMap`]), and generated client ids come from a CSPRNG keyed by it.
//!
//! ## Panics, errors and unwraps
//!
//! No input makes the core panic: malformed client messages become error frames, protocol
//! violations become close codes, unknown or stale ids are ignored, and bad settings are a
//! [`ConfigError`]. The crate has no `unwrap` outside tests.

#![warn(missing_docs)]

pub mod config;
pub mod frame;
pub(crate) mod hash;
pub mod history;
pub mod hub;
pub mod ids;
pub mod node;
pub mod pattern;
pub mod presence;
pub mod protocol;
pub(crate) mod queue;
pub(crate) mod rooms;
pub mod seed;
pub mod shard;
pub mod stats;
pub(crate) mod timers;

pub use config::{ClientProtocol, Config, ConfigError, OverflowPolicy};
pub use hub::{ClusterOutput, Hub, HubInput, HubOutput};
pub use ids::{shard_for, ClientId, ConnId, NodeId, RequestId, RoomName, ShardId, UserId};
pub use node::{BusKind, ClusterMode, NodeConfig, Router};
pub use pattern::{RoomPattern, RoomPatterns};
pub use presence::{Member, PresenceCount, PresenceEvent, Scope};
pub use seed::Seed;
pub use shard::{Event, OpenError, OpenParams, Shard, Target};
pub use stats::ShardStats;
