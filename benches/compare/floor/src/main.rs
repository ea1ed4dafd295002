//! The floor of the comparison: what the kernel alone costs to deliver a fan-out.
//!
//! One thread, one epoll loop (mio). Each connection's upgrade is answered from its
//! `Sec-WebSocket-Key` and nothing else is checked. When a client sends a text frame, its
//! payload is unmasked and framed once, and that one frame is written to every connection
//! (the sender included) with one `write` each: no rooms, no queues, no JSON, no per-socket
//! state beyond the bytes a full socket did not take (kept in a plain buffer). Speaks the
//! `broadcast` contract of `hubbub-load`. Frames other than text (pings, closes) are
//! skipped; a connection that sends garbage is dropped.
//!
//! `floor-server --listen 127.0.0.1:9000`

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);

/// One client: its socket, what it sent that is not handled yet, what it was not sent yet.
struct Client {
    socket: TcpStream,
    upgraded: bool,
    input: Vec<u8>,
    unsent: Vec<u8>,
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = match (args.next().as_deref(), args.next()) {
        (Some("--listen"), Some(addr)) => addr.parse().map_err(std::io::Error::other)?,
        _ => "127.0.0.1:9000".parse().map_err(std::io::Error::other)?,
    };
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("floor server on ws://{}/", listener.local_addr()?);
    let mut events = Events::with_capacity(1024);
    let mut clients: HashMap<usize, Client> = HashMap::new();
    let (mut next, mut buf) = (0usize, vec![0u8; 64 * 1024]);
    loop {
        poll.poll(&mut events, None).or_else(|e| match e.kind() {
            ErrorKind::Interrupted => Ok(()),
            _ => Err(e),
        })?;
        for event in events.iter() {
            if event.token() == LISTENER {
                while let Ok((mut socket, _)) = listener.accept() {
                    next += 1;
                    let _ = socket.set_nodelay(true);
                    let both = Interest::READABLE | Interest::WRITABLE;
                    poll.registry().register(&mut socket, Token(next), both)?;
                    let (upgraded, input, unsent) = (false, Vec::new(), Vec::new());
                    let client = Client {
                        socket,
                        upgraded,
                        input,
                        unsent,
                    };
                    clients.insert(next, client);
                }
                continue;
            }
            let key = event.token().0;
            let frames = match clients.get_mut(&key) {
                Some(client) => client.read(&mut buf),
                None => continue,
            };
            match frames {
                Some(frames) => {
                    for frame in frames {
                        clients.values_mut().for_each(|c| c.send(&frame));
                    }
                    if let Some(client) = clients.get_mut(&key) {
                        client.flush();
                    }
                }
                None => {
                    clients.remove(&key);
                }
            }
        }
    }
}

impl Client {
    /// Reads what the socket has and writes what it owes; the frames to send to everyone,
    /// or `None` when the connection is over.
    fn read(&mut self, buf: &mut [u8]) -> Option<Vec<Vec<u8>>> {
        loop {
            match self.socket.read(buf) {
                Ok(0) => return None,
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        if !self.upgraded {
            let Some(end) = self.input.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Some(Vec::new()); // the head is not complete yet
            };
            let head = String::from_utf8_lossy(&self.input[..end]).to_ascii_lowercase();
            let key_at = head.find("sec-websocket-key:")? + "sec-websocket-key:".len();
            let key_len = head[key_at..].find("\r\n").unwrap_or(head.len() - key_at);
            // The key as sent (base64 is case-sensitive).
            let key = String::from_utf8_lossy(&self.input[key_at..key_at + key_len]);
            let answer = hub_wire::http::upgrade_response(key.trim());
            self.input.drain(..end + 4);
            self.upgraded = true;
            self.send(&answer);
        }
        let mut frames = Vec::new();
        while let Some((frame, used)) = text_frame(&self.input) {
            frame.into_iter().for_each(|f| frames.push(f));
            self.input.drain(..used);
        }
        self.flush();
        Some(frames)
    }

    /// Writes `frame` now, or keeps what the socket did not take (after what it keeps).
    fn send(&mut self, frame: &[u8]) {
        if !self.upgraded {
            return;
        }
        if self.unsent.is_empty() {
            match self.socket.write(frame) {
                Ok(n) if n == frame.len() => return,
                Ok(n) => return self.unsent.extend_from_slice(&frame[n..]),
                Err(_) => {}
            }
        }
        self.unsent.extend_from_slice(frame);
    }

    /// Writes what the socket did not take before.
    fn flush(&mut self) {
        while !self.unsent.is_empty() {
            match self.socket.write(&self.unsent) {
                Ok(n) if n > 0 => drop(self.unsent.drain(..n)),
                _ => return,
            }
        }
    }
}

/// The next client frame in `input`: its bytes used, and the server frame of its payload
/// when it is a text frame (`None` inside for other frames). `None` until it is complete.
fn text_frame(input: &[u8]) -> Option<(Option<Vec<u8>>, usize)> {
    let (&b0, &b1) = (input.first()?, input.get(1)?);
    let (len, at) = match b1 & 0x7f {
        126 => (
            u16::from_be_bytes([*input.get(2)?, *input.get(3)?]) as usize,
            4,
        ),
        127 => {
            let bytes: [u8; 8] = input.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let mask: [u8; 4] = input.get(at..at + 4)?.try_into().ok()?;
    let payload = input.get(at + 4..at + 4 + len)?;
    let used = at + 4 + len;
    if b0 & 0x0f != 1 {
        return Some((None, used));
    }
    let mut frame = Vec::with_capacity(len + 10);
    frame.push(0x81);
    match len {
        0..=125 => frame.push(len as u8),
        126..=65535 => {
            frame.push(126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            frame.push(127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    Some((Some(frame), used))
}
