//! # hub-edge — what a Hubbub node shows the outside
//!
//! Pure, runtime-neutral code for a node's edges, shared by the tokio and smol runtimes: no
//! async, no sockets, no clock reads (the time is passed in), no panics on input. Each
//! runtime does the I/O and calls in here for every decision about what comes in from, or
//! goes out to, clients, producers and operators.
//!
//! How runtimes use each module:
//! - [`units`]: parse duration and size flags (`--ping-interval 25s`,
//!   `--max-message-size 64KiB`) and format their defaults for `--help`.
//! - [`auth`]: on a WebSocket upgrade, check `Origin` against the [`auth::OriginPolicy`]
//!   and, when a JWT secret is configured, verify the token (from `?token=` or
//!   [`auth::bearer_token`] of `Authorization`) with [`auth::JwtVerifier`], passing the
//!   current Unix time; refuse with 1008/403 on failure. On `/api/...` calls check the key
//!   with [`auth::api_key_ok`] (401 otherwise).
//! - [`api`]: after reading at most [`api::MAX_API_BODY`] bytes, [`api::parse_api`] routes
//!   and parses a producer call into an [`api::ApiRequest`] for the node router, or an
//!   [`api::ApiError`] to answer with; the router's reply becomes the answer body.
//! - [`stats`]: gather a [`stats::NodeSnapshot`] from the shards and the router and render
//!   `/stats`, `/metrics` and `/healthz`.
//! - [`demo`]: the page served at `/`.
//! - [`pusher_api`]: Pusher's HTTP API under `/apps/{id}`; [`pusher_api::verify`] checks a
//!   request's signature against the app's key and secret.
//! - [`script`]: the JavaScript client served at `/hubbub.js`, which the demo page uses.

#![recursion_limit = "256"]
#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod demo;
pub mod history_api;
pub mod metrics;
pub mod pusher_api;
pub mod script;
pub mod stats;
pub mod units;

pub use api::{parse_api, ApiError, ApiRequest, MAX_API_BODY};
pub use auth::{api_key_ok, AuthError, Claims, JwtVerifier, OriginPolicy};
pub use metrics::{metrics_text, Latencies};
pub use stats::{health, stats_json, NodeSnapshot, ShardSnapshot};
pub use units::{format_duration, format_size, parse_duration, parse_size};

#[cfg(test)]
mod no_panic_tests;
