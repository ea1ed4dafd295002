//! # hubbub-tokio — Hubbub on tokio
//!
//! The tokio adapter of [`hub_node`]: the [`TokioRuntime`], TCP connections read through a
//! per-thread buffer ([`TcpConn`]), any other tokio stream ([`IoConn`]), and the accept loop
//! ([`Server`]). Everything else — shards, router, connections, HTTP, the embedding API —
//! is hub-node's, shared with the smol adapter.
//!
//! Embedding: [`Server::bind`] then [`Server::run`]; [`Hub`] emits, publishes and looks up;
//! a [`Handler`] receives connect/message/disconnect/error callbacks;
//! [`ServeUpgraded::serve_upgraded`] takes a stream that axum or hyper already upgraded;
//! [`axum::routes`] (feature `axum`, on by default) is the WebSocket endpoint as axum routes.

#[cfg(feature = "axum")]
mod axum_routes;
mod runtime;
mod server;

/// Hubbub's WebSocket endpoint in an axum application (feature `axum`).
#[cfg(feature = "axum")]
pub mod axum {
    pub use crate::axum_routes::{routes, upgrade};
}

pub use hub_node::{Handler, Hub, HubError, ServeError};
pub use runtime::{IoConn, TcpConn, TokioReadiness, TokioRuntime};
pub use server::{ServeUpgraded, Server};

pub use hub_core;
pub use hub_serve::Settings;
