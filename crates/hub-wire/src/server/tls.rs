//! A [`ServerConn`] under a rustls session: [`TlsServerConn`], the same loop over TLS.
//!
//! rustls' `ServerConnection` is sans-IO like the connection above it, so this is only the
//! plumbing between the two: ciphertext read → `read_tls` → `process_new_packets` →
//! plaintext → [`ServerConn::recv`]; [`ServerConn::poll_transmit`] → the TLS writer (which
//! encrypts into records) → `write_tls` → ciphertext to write. Every HTTP and WebSocket rule
//! stays in [`ServerConn`]; nothing of it is written twice.
//!
//! Invariants:
//! * [`ConnEvent::ShutdownWrite`] is held back until the `close_notify` alert that precedes
//!   it is handed out and written: shutting the socket earlier would cut it off.
//! * [`TlsServerConn::written`] returns true once everything [`TlsServerConn::send`] queued
//!   is encrypted *and* written to the socket.
//! * A TLS error ends the connection ([`ConnEvent::Closed`]); nothing received after it is
//!   decrypted or handed on.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{ConnConfig, ConnEvent, ServerConn, StateError, MAX_IOV};
use crate::http::Response;

/// Plaintext taken from the TLS session per read.
const PLAINTEXT_CHUNK: usize = 16 * 1024;

/// A [`ServerConn`] over TLS: the same methods, but [`TlsServerConn::recv`] takes
/// ciphertext and [`TlsServerConn::poll_transmit`] hands ciphertext out.
pub struct TlsServerConn {
    tls: rustls::ServerConnection,
    conn: ServerConn,
    /// Ciphertext to write; `out[..written]` is written already.
    out: Vec<u8>,
    written: usize,
    /// A batch of `send` went into TLS and is not reported written yet.
    batch_in_tls: bool,
    /// The connection asked for the write side to be shut; `close_notify` goes first.
    shutdown_pending: bool,
    /// The TLS session failed: nothing more is read.
    failed: bool,
}

impl std::fmt::Debug for TlsServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServerConn")
            .field("conn", &self.conn)
            .field("unwritten", &(self.out.len() - self.written))
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl TlsServerConn {
    /// A freshly accepted connection; its request deadline covers the TLS handshake too.
    pub fn new(
        now: Instant,
        config: Arc<ConnConfig>,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<Self, rustls::Error> {
        Ok(TlsServerConn {
            tls: rustls::ServerConnection::new(tls)?,
            conn: ServerConn::new(now, config),
            out: Vec::new(),
            written: 0,
            batch_in_tls: false,
            shutdown_pending: false,
            failed: false,
        })
    }

    /// Takes ciphertext read from the socket (all of it).
    pub fn recv(&mut self, now: Instant, mut ciphertext: &[u8]) {
        let mut stalled = false;
        while !ciphertext.is_empty() && !self.failed {
            match self.tls.read_tls(&mut ciphertext) {
                Ok(_) => stalled = false,
                // The session's buffers are full: take the plaintext out, then try again.
                Err(_) if !stalled => stalled = true,
                Err(_) => return self.fail(now),
            }
            self.process(now);
        }
    }

    /// Decrypts what was read and passes the plaintext on.
    fn process(&mut self, now: Instant) {
        if self.tls.process_new_packets().is_err() {
            return self.fail(now);
        }
        let mut plaintext = [0u8; PLAINTEXT_CHUNK];
        loop {
            match self.tls.reader().read(&mut plaintext) {
                Ok(0) => return self.conn.recv_eof(now),
                Ok(n) => self.conn.recv(now, plaintext.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return self.conn.recv_eof(now),
            }
        }
    }

    /// The session failed: whatever alert rustls queued is offered, and the connection ends.
    fn fail(&mut self, now: Instant) {
        self.failed = true;
        self.conn.recv_eof(now);
    }

    /// The client ended its side of the stream, or the socket failed.
    pub fn recv_eof(&mut self, now: Instant) {
        self.conn.recv_eof(now);
    }

    /// See [`ServerConn::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.conn.handle_timeout(now);
    }

    /// See [`ServerConn::poll_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conn.poll_timeout()
    }

    /// The next event; [`ConnEvent::ShutdownWrite`] comes once `close_notify` is written.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        if self.shutdown_pending && !self.wants_write() {
            self.shutdown_pending = false;
            return Some(ConnEvent::ShutdownWrite);
        }
        match self.conn.poll_event() {
            Some(ConnEvent::ShutdownWrite) => {
                self.tls.send_close_notify();
                self.shutdown_pending = true;
                self.encrypt();
                self.poll_event()
            }
            other => other,
        }
    }

    /// Moves the connection's plaintext into TLS records and collects the ciphertext.
    fn encrypt(&mut self) {
        loop {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let count = self.conn.poll_transmit(&mut slices);
            let taken = match slices.get(..count).filter(|s| !s.is_empty()) {
                Some(slices) => self.tls.writer().write_vectored(slices).unwrap_or(0),
                None => 0,
            };
            if taken == 0 {
                break;
            }
            self.batch_in_tls |= self.conn.written(taken);
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
        while self.tls.wants_write() {
            if !matches!(self.tls.write_tls(&mut self.out), Ok(n) if n > 0) {
                break;
            }
        }
    }

    /// Fills `slices` with ciphertext to write (one slice); returns how many it filled.
    pub fn poll_transmit<'a>(&'a mut self, slices: &mut [IoSlice<'a>]) -> usize {
        self.encrypt();
        let pending = self.out.get(self.written..).unwrap_or_default();
        match slices.first_mut() {
            Some(slot) if !pending.is_empty() => {
                *slot = IoSlice::new(pending);
                1
            }
            _ => 0,
        }
    }

    /// Records that `n` bytes of ciphertext were written; true once everything
    /// [`TlsServerConn::send`] queued is encrypted and written.
    pub fn written(&mut self, n: usize) -> bool {
        self.written = self.written.saturating_add(n).min(self.out.len());
        if self.written < self.out.len() {
            return false;
        }
        self.out = Vec::new();
        self.written = 0;
        let out = self.batch_in_tls && !self.conn.wants_write();
        if out {
            self.batch_in_tls = false;
        }
        out
    }

    /// Whether ciphertext or plaintext waits to be written.
    pub fn wants_write(&self) -> bool {
        self.written < self.out.len() || self.tls.wants_write() || self.conn.wants_write()
    }

    /// See [`ServerConn::respond`].
    pub fn respond(&mut self, now: Instant, response: &Response) -> Result<(), StateError> {
        self.conn.respond(now, response)
    }

    /// See [`ServerConn::read_body`].
    pub fn read_body(&mut self, now: Instant) -> Result<(), StateError> {
        self.conn.read_body(now)
    }

    /// See [`ServerConn::accept`].
    pub fn accept(&mut self, now: Instant) -> Result<(), StateError> {
        self.conn.accept(now)
    }

    /// See [`ServerConn::send`] (each recipient's frames are encrypted for it, once).
    pub fn send(&mut self, frames: Vec<Bytes>) -> Result<(), StateError> {
        self.conn.send(frames)
    }

    /// See [`ServerConn::close`].
    pub fn close(&mut self, now: Instant) -> Result<(), StateError> {
        self.conn.close(now)
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// The TLS session (negotiated protocol, server name, peer certificates).
    pub fn tls(&self) -> &rustls::ServerConnection {
        &self.tls
    }
}
