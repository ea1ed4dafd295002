//! # hub-node — a Hubbub node, whatever the async runtime
//!
//! Everything a node does around the sans-IO core, written once: one task per shard, one
//! router task, the HTTP endpoints and the WebSocket upgrade, the [`Hub`] handle and the
//! [`Handler`] callbacks, graceful shutdown. It is generic over three small traits:
//! [`Runtime`] (spawn, sleep, watch a descriptor, enter tokio for the cluster plumbing),
//! [`Readiness`] (what watching a descriptor gives) and [`Conn`] (a connection's stream).
//! The tokio and smol adapters implement those and run the accept loop; nothing else
//! differs between them.
//!
//! Tasks, sockets and channels:
//! - an **HTTP task** per accepted connection answers requests until the connection is
//!   upgraded, then hands its TCP socket to a shard ([`Conn::into_tcp`]) and ends;
//! - a **shard task** per shard owns a [`hub_core::Shard`] and the TCP sockets of its
//!   WebSocket connections. It polls them through one epoll instance of its own, which the
//!   runtime's reactor watches as one descriptor; it reads through one buffer, decodes
//!   frames and feeds the core in place, and writes each batch the core transmits straight
//!   to the socket (`send`), keeping only what a full socket did not take until it drains.
//!   An idle connection thereby costs no task, no reactor registration and no buffer;
//! - a **router task** owns the [`hub_core::Router`] and answers [`Hub`] calls; the shards
//!   reach it, and it them, over unbounded channels;
//! - a **connection task** runs a stream that is not a bare TCP socket (one an embedding
//!   service upgraded, handed over with [`Hub::serve_conn`]): it reads and decodes, feeds
//!   its shard over a bounded channel (a flooding client is slowed down), and writes what
//!   the shard transmits through a one-slot mailbox, since the core never has two batches
//!   outstanding. A TLS connection of the client listener ([`serve_tls`]) runs this way.

mod admission;
mod conn;
mod http;
mod hub;
mod inputs;
mod listen;
mod mailbox;
mod node_task;
mod pusher_api;
mod runtime;
mod shard_task;
mod sockets;
mod start;
mod tls;

pub use conn::open_and_run;
pub use http::serve as serve_http;
pub use hub::{Handler, Hub, HubError, PRESENCE_EVENTS};
pub use listen::{listen, LISTEN_BACKLOG};
pub use runtime::{
    linger_close, read_ready, timeout, write_all, write_frames, Conn, Readiness, Runtime,
};
pub use start::{is_shutting_down, shutdown, start, ServeError};
pub use tls::{serve_tls, RELOAD_CHECK};
