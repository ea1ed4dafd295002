//! `ServerConn::read_from` and `ServerConn::write_to` over in-memory readers and writers that
//! behave like non-blocking sockets (short writes, `WouldBlock`, end of stream).

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hub_wire::server::{ConnConfig, ConnEvent, ServerConn};

/// Takes at most `per_call` bytes per write, and `WouldBlock` after `budget` bytes in all.
struct Trickle {
    out: Vec<u8>,
    per_call: usize,
    budget: usize,
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.per_call.min(self.budget);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        let n = n.min(all.len());
        self.out.extend_from_slice(&all[..n]);
        self.budget -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hands out its bytes, then `WouldBlock` (or end of stream when `eof`).
struct Source {
    data: io::Cursor<Vec<u8>>,
    eof: bool,
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.data.read(buf)? {
            0 if !self.eof => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }
}

const UPGRADE: &str =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn read_from_hands_each_read_on_and_stops_at_would_block_or_eof() {
    let now = Instant::now();
    let mut conn = ServerConn::new(now, Arc::new(ConnConfig::default()));
    let mut socket = Source {
        data: io::Cursor::new(UPGRADE.as_bytes().to_vec()),
        eof: false,
    };
    let mut buf = [0; 16];
    let mut reads = 0;
    while conn.read_from(now, &mut socket, &mut buf) {
        reads += 1;
        if let Some(event) = conn.poll_event() {
            assert!(matches!(event, ConnEvent::Upgrade(_)), "{event:?}");
            conn.accept(now).expect("accept");
        }
    }
    assert_eq!(reads, UPGRADE.len().div_ceil(16));
    assert!(conn.is_websocket() && conn.poll_event().is_none());
    socket.eof = true;
    assert!(!conn.read_from(now, &mut socket, &mut buf));
    assert_eq!(conn.poll_event(), Some(ConnEvent::Closed));
}

#[test]
fn write_to_writes_until_would_block_and_says_when_the_batch_is_out() {
    let now = Instant::now();
    let mut conn = ServerConn::upgraded(Arc::new(ConnConfig::default()));
    let frames = vec![
        Bytes::from_static(b"\x81\x03abc"),
        Bytes::from_static(b"\x81\x01d"),
    ];
    conn.send(frames).expect("send");
    let mut socket = Trickle {
        out: Vec::new(),
        per_call: 2,
        budget: 5,
    };
    assert!(!conn.write_to(now, &mut socket), "the batch is not all out");
    assert_eq!(socket.out, b"\x81\x03abc");
    socket.budget = 100;
    assert!(conn.write_to(now, &mut socket), "the last byte is out");
    assert_eq!(socket.out, b"\x81\x03abc\x81\x01d");
    assert!(!conn.wants_write());
    assert!(!conn.write_to(now, &mut socket), "nothing more to write");
}
