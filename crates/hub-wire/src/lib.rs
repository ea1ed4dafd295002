//! `hub-wire`: the runtime-neutral wire codec of Hubbub.
//!
//! This crate turns raw bytes read from a client connection into HTTP/1.1
//! request heads and decoded WebSocket messages, and produces the bytes of
//! HTTP responses and of the WebSocket upgrade answer. It performs no I/O,
//! spawns nothing, never looks at a clock and contains no `async` code, so
//! the tokio runtime, the smol runtime and the hand-written event loop all
//! share exactly the same protocol logic.
//!
//! # The server connection
//!
//! [`server::ServerConn`] puts all of the below behind one sans-IO value per TCP socket:
//! feed it bytes and `now`, take events (requests, upgrades, messages, closes) and the bytes
//! to write, sleep until its deadline. New event loops should start there; its module docs
//! show the loop. [`host::Host`] keeps many of them around one `hub_core::Hub`, so that an
//! event loop of your own only waits, accepts and says which socket is ready. The pieces
//! below stay usable on their own:
//!
//! # How a runtime uses the pieces
//!
//! 1. Read from the socket into a (possibly shared) buffer and call
//!    [`http::parse_request`] on the bytes accumulated so far, until it
//!    returns [`http::Parsed::Complete`] (on [`http::Parsed::Partial`], read
//!    more; on an error, answer with `HttpError::status()` and close).
//! 2. Route on [`http::RequestHead::path`]. Plain HTTP endpoints answer with
//!    [`http::Response::to_bytes`], honouring [`http::RequestHead::keep_alive`]
//!    and skipping `head_len` (plus the body's `content_length()`) bytes.
//! 3. For the WebSocket endpoint, check
//!    [`http::RequestHead::is_websocket_upgrade`], write
//!    [`http::upgrade_response`] for [`http::RequestHead::websocket_key`],
//!    create one [`ws::FrameDecoder`] per connection, feed it the bytes that
//!    followed the head (`&buf[head_len..]`) and then every later read via
//!    [`ws::FrameDecoder::decode`]. On a [`ws::WsError`], send a close frame
//!    with its `code` and close the connection.
//!
//! # Invariants
//!
//! * No function in this crate panics on any input, uses `unsafe`, blocks, or
//!   allocates proportionally to a *claimed* length before the bytes arrive.
//! * Decoders keep no reference to the caller's input: a runtime may reuse a
//!   single read buffer for all its connections.
//! * An idle [`ws::FrameDecoder`] (nothing pending) owns no heap allocation.

pub mod fuzzing;
pub mod host;
pub mod http;
pub mod server;
pub mod ws;

pub use http::{parse_request, upgrade_response, HttpError, Parsed, RequestHead, Response};
pub use ws::{Decoded, FrameDecoder, WsError};
