//! The body of the `server_conn` fuzz target ([`conn_stream`]), kept in the library so that
//! ordinary builds compile it and its unit test runs it over pseudo-random inputs.
//!
//! It panics on a broken invariant, which is what a fuzzer reports.

use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{ConnConfig, ConnEvent, ServerConn};
use crate::http::Response;

/// A valid upgrade request, to reach the WebSocket states quickly.
const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";
/// A valid request with a body, to reach the body states quickly.
const POST: &[u8] = b"POST /api/x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";

/// Reads the fuzz input one byte at a time (zeros once it runs out).
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        *first
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (chunk, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        chunk
    }
}

/// What the driver has seen, to check the connection's promises against.
#[derive(Default)]
struct Seen {
    /// Bytes `send` queued that `written` has not reported out yet.
    unsent: usize,
    accepted: bool,
    /// A close frame or a protocol error was handed out: no more WebSocket input may come.
    ended_input: bool,
    closed: bool,
    shut: bool,
}

/// Drives one connection with an arbitrary byte stream split at arbitrary points,
/// interleaved with time passing, partial writes, end of stream and the caller's answers;
/// checks that it never panics, hands nothing on after the client's close or a protocol
/// error (or anything at all after `Closed`), reports sent batches truthfully, keeps its
/// deadline ahead of `now`, and hands out valid UTF-8 text only.
pub fn conn_stream(data: &[u8]) {
    let mut input = Input { data };
    let config = Arc::new(ConnConfig {
        max_head: 512,
        max_body: 64,
        max_message_size: 256,
        ..ConnConfig::default()
    });
    let mut now = Instant::now();
    let mut conn = ServerConn::new(now, config);
    let mut seen = Seen::default();
    match input.byte() % 3 {
        0 => conn.recv(now, UPGRADE),
        1 => conn.recv(now, POST),
        _ => {}
    }
    let mut steps = 0;
    while !input.data.is_empty() && steps < 10_000 {
        steps += 1;
        let op = input.byte();
        match op % 8 {
            0..=2 => {
                let len = usize::from(input.byte());
                let chunk = input.take(len).to_vec();
                conn.recv(now, &chunk);
            }
            3 => {
                now += Duration::from_millis(u64::from(input.byte()) * 50);
                conn.handle_timeout(now);
                if let Some(at) = conn.poll_timeout() {
                    assert!(at > now, "the deadline moves past now");
                }
            }
            4 => write(&mut conn, &mut seen, usize::from(input.byte())),
            5 => {
                if conn.send(vec![Bytes::from_static(b"\x81\x01x")]).is_ok() {
                    assert!(!seen.closed && !seen.shut, "send after the end");
                    seen.unsent += 3;
                }
            }
            6 => {
                if conn.close(now).is_ok() {
                    assert!(seen.accepted, "only a WebSocket closes");
                }
            }
            _ => {
                if op & 0x80 != 0 {
                    conn.recv_eof(now);
                }
            }
        }
        while let Some(event) = conn.poll_event() {
            check(&mut conn, &mut seen, now, event, input.byte());
        }
        if seen.closed {
            assert!(!conn.wants_write(), "nothing is written after Closed");
            assert!(conn.poll_event().is_none());
        }
    }
}

/// Writes up to `budget` bytes of what the connection offers, in up to three slices.
fn write(conn: &mut ServerConn, seen: &mut Seen, budget: usize) {
    let mut slices = [IoSlice::new(&[]); 3];
    let count = conn.poll_transmit(&mut slices);
    let offered: usize = slices.iter().take(count).map(|s| s.len()).sum();
    assert!(slices.iter().take(count).all(|s| !s.is_empty()));
    let n = offered.min(budget);
    if conn.written(n) {
        assert!(seen.unsent > 0, "a batch reported out that was never sent");
        seen.unsent = 0;
    }
    if !conn.wants_write() && conn.is_websocket() && seen.accepted {
        assert_eq!(seen.unsent, 0, "all written yet a batch not reported out");
    }
}

/// Checks one event against what came before, and answers it as a caller would.
fn check(conn: &mut ServerConn, seen: &mut Seen, now: Instant, event: ConnEvent, choice: u8) {
    assert!(!seen.closed, "an event after Closed: {event:?}");
    match event {
        // An answer may be refused only when the connection ended meanwhile (end of stream).
        ConnEvent::Request(_) | ConnEvent::Upgrade(_) | ConnEvent::Body(_) => {
            assert!(!seen.accepted, "HTTP after the upgrade");
            let upgrade = matches!(event, ConnEvent::Upgrade(_));
            let asks_body = matches!(event, ConnEvent::Request(_)) && choice & 1 == 1;
            if upgrade && choice & 1 == 1 {
                let accepted = conn.accept(now).is_ok();
                assert!(accepted || conn.is_closed(), "{conn:?}");
                seen.accepted = accepted;
            } else if asks_body && conn.read_body(now).is_ok() {
            } else {
                let status = if choice & 2 == 0 { 200 } else { 404 };
                let answered = conn.respond(now, &Response::json(status, "{}"));
                assert!(answered.is_ok() || conn.is_closed(), "{conn:?}");
            }
        }
        ConnEvent::Message { data, binary } => {
            assert!(seen.accepted && !seen.ended_input, "a message out of place");
            assert!(
                binary || std::str::from_utf8(&data).is_ok(),
                "text is UTF-8"
            );
        }
        ConnEvent::Ping(_) | ConnEvent::Pong(_) => {
            assert!(
                seen.accepted && !seen.ended_input,
                "a control frame out of place"
            );
        }
        ConnEvent::PeerClose { .. } | ConnEvent::ProtocolError(_) => {
            assert!(seen.accepted && !seen.ended_input, "a second end of input");
            seen.ended_input = true;
            let close_frame = || vec![Bytes::from_static(b"\x88\x02\x03\xe8")];
            if choice & 1 == 0 && conn.send(close_frame()).is_ok() {
                seen.unsent += 4;
                assert!(conn.close(now).is_ok());
            }
        }
        ConnEvent::ShutdownWrite => {
            assert!(!seen.shut, "shut twice");
            assert!(!conn.wants_write(), "shut with bytes unwritten");
            seen.shut = true;
        }
        ConnEvent::Closed => seen.closed = true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_random_streams_keep_every_promise() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let len = (next() % 600) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            conn_stream(&data);
        }
    }

    #[test]
    fn a_scripted_websocket_session_keeps_every_promise() {
        // The upgrade request; a no-op step; the upgrade accepted (choice 1); the 101 written.
        let mut data = vec![0u8, 7, 1, 4, 255];
        for _ in 0..4 {
            // Receive a text frame "hi" (mask 0), take its event (choice 0); send; write.
            data.extend([0, 8, 0x81, 0x82, 0, 0, 0, 0, b'h', b'i', 0, 5, 4, 200]);
        }
        conn_stream(&data);
    }
}
