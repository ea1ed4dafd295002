//! The limits and timeouts of a [`ServerConn`](super::ServerConn), and the sizes an event
//! loop around it should use.
//!
//! Invariant: every default is safe on the public internet: bounded buffers, bounded waits.

use std::time::Duration;

/// Largest request head accepted by default (bytes, final blank line included).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body read by default (bytes).
pub const MAX_BODY: usize = 1024 * 1024;
/// How long a closed connection reads and discards by default, so that the client reads the
/// last bytes (a close frame, an error answer) instead of a reset.
pub const LINGER: Duration = Duration::from_secs(2);
/// A good size for the read buffer an event loop shares among its connections.
pub const READ_BUFFER: usize = 64 * 1024;
/// Reads of one socket per turn of an event loop before the other sockets get theirs.
pub const READS_PER_TURN: usize = 8;
/// A good number of slices to offer [`ServerConn::poll_transmit`](super::ServerConn::poll_transmit)
/// (one vectored write).
pub const MAX_IOV: usize = 64;

/// Limits and timeouts of a server connection; share one among all connections (`Arc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnConfig {
    /// Largest request head, in bytes (a longer one is answered 431).
    pub max_head: usize,
    /// Largest request body a caller may ask for, in bytes (a longer one is answered 413).
    pub max_body: usize,
    /// Largest WebSocket message, in bytes (a longer one is a 1009 protocol error).
    pub max_message_size: usize,
    /// The one deadline for the first request: its whole head, and its body when read.
    pub request_timeout: Duration,
    /// The one deadline for a later request on a kept-alive connection, from the answer
    /// before it: writing that answer, waiting, and the whole next head (and body).
    pub keep_alive_timeout: Duration,
    /// Whether a connection may carry more than one request (HTTP keep-alive); when false,
    /// every answer closes it.
    pub keep_alive: bool,
    /// How long the last bytes (a close frame, an error answer) may take to be written.
    pub drain_timeout: Duration,
    /// How long a connection whose write side is shut reads and discards (see [`LINGER`]).
    pub linger: Duration,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            max_head: MAX_HEAD,
            max_body: MAX_BODY,
            max_message_size: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(30),
            keep_alive: true,
            drain_timeout: Duration::from_secs(5),
            linger: LINGER,
        }
    }
}
