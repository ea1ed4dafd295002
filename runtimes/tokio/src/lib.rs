//! # hubbub-tokio — Hubbub on tokio
//!
//! The tokio adapter around the sans-IO core: it accepts TCP, upgrades to WebSocket, runs one
//! task per shard plus one router task, sleeps until the core's next deadline, and writes the
//! frames the core hands out with vectored writes. It holds no routing logic: decisions are
//! hub-core's, request policy is hub-serve's.
//!
//! Tasks and channels:
//! - a **shard task** per shard owns a [`hub_core::Shard`]; connection tasks feed it client
//!   messages on a bounded channel (a flooding client is slowed down) and control events on
//!   an unbounded one;
//! - a **router task** owns the [`hub_core::Node`] and answers [`Hub`] calls;
//! - a **connection task** per WebSocket reads through a per-thread buffer (an idle connection
//!   holds no read buffer), decodes frames, and writes each batch the shard transmits; it
//!   receives batches through a one-slot mailbox, since the core never has two outstanding.
//!
//! Embedding: [`Server::bind`] then [`Server::run`]; [`Hub`] emits, publishes and looks up;
//! a [`Handler`] receives connect/message/disconnect/error callbacks;
//! [`Hub::serve_upgraded`] takes a stream that axum or hyper already upgraded.

mod conn;
mod http;
mod hub;
mod mailbox;
mod node_task;
mod server;
mod shard_task;
mod socket;

pub use hub::{Handler, Hub, HubError};
pub use server::Server;
pub use socket::Stream;

pub use hub_core;
pub use hub_serve::Settings;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting is invalid; the message names the flag.
    #[error("{0}")]
    Settings(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(std::net::SocketAddr, #[source] std::io::Error),
}
