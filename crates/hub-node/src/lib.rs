//! # hub-node — a Hubbub node, whatever the async runtime
//!
//! Everything a node does around the sans-IO core, written once: one task per shard, one
//! router task, one task per connection, the HTTP endpoints and the WebSocket upgrade, the
//! [`Hub`] handle and the [`Handler`] callbacks, graceful shutdown. It is generic over two
//! small traits: [`Runtime`] (spawn, sleep, enter tokio for the cluster plumbing) and
//! [`Conn`] (read into a shared buffer, write without waiting, vectored write). The tokio
//! and smol adapters implement those and run the accept loop; nothing else differs between
//! them.
//!
//! Tasks and channels:
//! - a **shard task** per shard owns a [`hub_core::Shard`]; connection tasks feed it client
//!   messages on a bounded channel (a flooding client is slowed down) and control events on
//!   an unbounded one;
//! - a **router task** owns the [`hub_core::Node`] and answers [`Hub`] calls;
//! - the shard task writes each batch the core transmits straight to the connection's socket
//!   ([`Conn::write_now`]: one `send`, no task wake-up);
//! - a **connection task** per WebSocket reads through a buffer shared by its thread (an idle
//!   connection holds no read buffer), decodes frames, and writes what a full socket did not
//!   take, once it drains; such a rest arrives through a one-slot mailbox, since the core
//!   never has two batches outstanding.

mod conn;
mod http;
mod hub;
mod inputs;
mod listen;
mod mailbox;
mod node_task;
mod runtime;
mod shard_task;
mod sockets;
mod start;

pub use conn::open_and_run;
pub use http::serve as serve_http;
pub use hub::{Handler, Hub, HubError};
pub use listen::{listen, LISTEN_BACKLOG};
pub use runtime::{
    linger_close, read_ready, timeout, write_all, write_frames, Conn, Readiness, Runtime,
};
pub use start::{is_shutting_down, shutdown, start, ServeError};
