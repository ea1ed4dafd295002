//! The two loops every caller writes around a [`ServerConn`] and a non-blocking socket (or
//! any `Read`/`Write`): one read handed to [`ServerConn::recv`], and writes of what
//! [`ServerConn::poll_transmit`] offers until the socket takes no more.
//!
//! Invariant: a failed read or write ends the connection as end of stream does
//! ([`ServerConn::recv_eof`]); `WouldBlock` and `Interrupted` are never errors here.

use std::io::{ErrorKind, IoSlice, Read, Write};
use std::time::Instant;

use super::{ServerConn, MAX_IOV};

impl ServerConn {
    /// Reads once from `socket` into `buf` (if reading is useful now) and hands the bytes to
    /// [`ServerConn::recv`], or the end of the stream to [`ServerConn::recv_eof`]. Returns
    /// true when it read bytes: act on the events, then call it again (an edge-triggered
    /// poller needs reads until this returns false).
    pub fn read_from(&mut self, now: Instant, socket: &mut impl Read, buf: &mut [u8]) -> bool {
        while self.wants_read() {
            match socket.read(buf) {
                Ok(n) if n > 0 => {
                    self.recv(now, buf.get(..n).unwrap_or_default());
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Ok(_) | Err(_) => {
                    self.recv_eof(now);
                    return false;
                }
            }
        }
        false
    }

    /// Writes what is queued to `socket` until all of it is written or the socket would
    /// block. Returns true when this wrote the last byte of what [`ServerConn::send`] queued
    /// (hub-core's `Input::Sent`), as [`ServerConn::written`] does.
    pub fn write_to(&mut self, now: Instant, socket: &mut impl Write) -> bool {
        let mut sent = false;
        loop {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let count = self.poll_transmit(&mut iov);
            let Some(slices) = iov.get(..count).filter(|s| !s.is_empty()) else {
                return sent;
            };
            match socket.write_vectored(slices) {
                Ok(n) if n > 0 => sent |= self.written(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return sent,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Ok(_) | Err(_) => {
                    self.recv_eof(now);
                    return sent;
                }
            }
        }
    }
}
