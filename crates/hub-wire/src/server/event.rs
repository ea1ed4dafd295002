//! What a [`ServerConn`](super::ServerConn) hands its caller ([`ConnEvent`]), and the error of
//! a call made in the wrong state ([`StateError`]).

use bytes::Bytes;

use crate::http::RequestHead;
use crate::ws::WsError;

/// Something the connection needs its caller to act on; each variant says what it obliges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    /// A plain HTTP request (no upgrade). Answer it with
    /// [`respond`](super::ServerConn::respond), or first ask for its body with
    /// [`read_body`](super::ServerConn::read_body) when the route takes one. Nothing more is
    /// read from the client until then. An unread body closes the connection after the answer.
    Request(RequestHead),
    /// The body [`read_body`](super::ServerConn::read_body) asked for (exactly
    /// `Content-Length` bytes): now [`respond`](super::ServerConn::respond).
    Body(Bytes),
    /// A valid RFC 6455 upgrade request (GET, HTTP/1.1, version 13, a well-formed key).
    /// [`accept`](super::ServerConn::accept) it, or refuse it with
    /// [`respond`](super::ServerConn::respond) (the connection closes after the answer).
    Upgrade(RequestHead),
    /// A complete WebSocket message: valid UTF-8 text (`binary == false`) or binary.
    Message {
        /// The payload, unmasked.
        data: Bytes,
        /// Whether it came as a binary message.
        binary: bool,
    },
    /// A ping: send a pong with the same payload (hub-core does, on `Input::Ping`).
    Ping(Bytes),
    /// A pong (it proves the client is alive; nothing is owed).
    Pong(Bytes),
    /// The client's close frame: send a close frame with `code` (the client's own code when
    /// it may be sent back, else 1000), then [`close`](super::ServerConn::close). Nothing the
    /// client sends afterwards is handed on.
    PeerClose {
        /// The code to answer with.
        code: u16,
    },
    /// The client broke the protocol: send a close frame with the error's `code`, then
    /// [`close`](super::ServerConn::close). Nothing the client sent after the violation (in
    /// the same read or later) is handed on.
    ProtocolError(WsError),
    /// Everything is written: shut the socket's write side (under TLS: send `close_notify`
    /// and write it out first). The connection still reads and discards for a while.
    ShutdownWrite,
    /// The connection is over: drop the socket and this value. A WebSocket the core still
    /// knows must be reported gone (hub-core: `Input::Closed`).
    Closed,
}

/// A call that the connection's state does not allow (the caller's mistake, not the
/// client's); the call changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not allowed now: {0}")]
pub struct StateError(pub &'static str);
