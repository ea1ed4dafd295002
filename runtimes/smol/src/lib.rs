//! # hubbub-smol — Hubbub on smol
//!
//! The smol adapter of [`hub_node`]: the [`SmolRuntime`] (a multi-threaded
//! `smol::Executor`, async-io timers), TCP connections read through a per-thread buffer
//! ([`SmolConn`]), and the accept loop ([`Server`]). Its own sockets and timers stay on
//! smol/async-io, and so do Redis connections (the redis crate's smol support); only tonic
//! and etcd-client, which need tokio's reactor, run through async-compat. Everything else is
//! hub-node's, shared with tokio.

mod runtime;
mod server;

pub use hub_node::{Handler, Hub, HubError, ServeError};
pub use runtime::{IoConn, SmolConn, SmolReadiness, SmolRuntime};
pub use server::Server;

pub use hub_core;
pub use hub_serve::Settings;
