//! The sans-IO server side of one TCP connection: [`ServerConn`].
//!
//! A `ServerConn` is everything between a socket and the application: the request-head
//! buffer, HTTP answers and keep-alive, the WebSocket upgrade, the frame decoder, the bytes
//! not yet written, and the request, drain and linger deadlines. It does no I/O and never
//! reads a clock: the caller moves bytes and passes `now`. One value per accepted socket.
//!
//! # The loop
//!
//! ```text
//! conn = ServerConn::new(now, config)            // once per accepted socket
//! loop {
//!     read the socket         → conn.recv(now, &buf[..n])   (0 bytes or an error: recv_eof)
//!     while let Some(event) = conn.poll_event() { act on it (see below) }
//!     n = conn.poll_transmit(&mut slices)        → write those slices (one vectored write)
//!     conn.written(written)                      (true: everything `send` queued is out)
//!     sleep until readiness or conn.poll_timeout() → conn.handle_timeout(now)
//! }
//! ```
//!
//! [`ServerConn::read_from`] and [`ServerConn::write_to`] are that read and those writes for
//! a non-blocking socket (any `Read` / `Write`).
//!
//! Drain [`ServerConn::poll_event`] after every call that takes input (`recv`, `recv_eof`,
//! `handle_timeout`, `written`, `accept`, `read_body`, `respond`, `close`): events queue up
//! until taken. [`ServerConn::poll_timeout`] is O(1); after `handle_timeout(now)` it is
//! later than `now` or `None`. `now` must never go backwards.
//!
//! # Example
//!
//! One blocking socket, served to the end: health checks over HTTP, and a WebSocket that
//! answers every message with the same pre-built frame.
//!
//! ```no_run
//! use std::io::{ErrorKind, IoSlice, Read, Write};
//! use std::net::{Shutdown, TcpListener};
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//!
//! use bytes::Bytes;
//! use hub_wire::http::Response;
//! use hub_wire::server::{ConnConfig, ConnEvent, ServerConn, MAX_IOV, READ_BUFFER};
//!
//! # fn main() -> std::io::Result<()> {
//! let listener = TcpListener::bind("127.0.0.1:8080")?;
//! let (mut socket, _) = listener.accept()?;
//! let mut conn = ServerConn::new(Instant::now(), Arc::new(ConnConfig::default()));
//! let reply = Bytes::from_static(b"\x81\x02ok"); // one text frame, shared by every answer
//! let close = Bytes::from_static(b"\x88\x02\x03\xe8"); // close frame, code 1000
//! let mut buf = vec![0; READ_BUFFER];
//! loop {
//!     while let Some(event) = conn.poll_event() {
//!         let now = Instant::now();
//!         let done = match event {
//!             ConnEvent::Request(head) if head.path == "/healthz" => {
//!                 conn.respond(now, &Response::json(200, r#"{"status":"ok"}"#))
//!             }
//!             ConnEvent::Request(_) | ConnEvent::Body(_) => {
//!                 conn.respond(now, &Response::json(404, r#"{"error":"no such page"}"#))
//!             }
//!             ConnEvent::Upgrade(_) => conn.accept(now),
//!             ConnEvent::Message { .. } => conn.send(vec![reply.clone()]),
//!             ConnEvent::Ping(_) | ConnEvent::Pong(_) => Ok(()), // a real server answers pings
//!             ConnEvent::PeerClose { .. } | ConnEvent::ProtocolError(_) => {
//!                 // A real server puts the code it was given in the close frame.
//!                 conn.send(vec![close.clone()]).and_then(|()| conn.close(now))
//!             }
//!             ConnEvent::ShutdownWrite => Ok(socket.shutdown(Shutdown::Write)?),
//!             ConnEvent::Closed => return Ok(()),
//!         };
//!         done.expect("each answer fits the event it answers");
//!     }
//!     let mut slices = [IoSlice::new(&[]); MAX_IOV];
//!     let count = conn.poll_transmit(&mut slices);
//!     if count > 0 {
//!         let n = socket.write_vectored(&slices[..count])?;
//!         conn.written(n);
//!         continue;
//!     }
//!     let wait = conn.poll_timeout().map(|at| at.saturating_duration_since(Instant::now()));
//!     socket.set_read_timeout(wait.map(|w| w.max(Duration::from_millis(1))))?;
//!     match socket.read(&mut buf) {
//!         Ok(0) => conn.recv_eof(Instant::now()),
//!         Ok(n) => conn.recv(Instant::now(), &buf[..n]),
//!         Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
//!             conn.handle_timeout(Instant::now())
//!         }
//!         Err(_) => conn.recv_eof(Instant::now()),
//!     }
//! }
//! # }
//! ```
//!
//! # What each event obliges
//!
//! * [`ConnEvent::Request`]: answer with [`ServerConn::respond`]; for a route that takes a
//!   body, call [`ServerConn::read_body`] first and answer after [`ConnEvent::Body`]. A body
//!   nobody asked for is never read: the connection closes after the answer.
//! * [`ConnEvent::Upgrade`]: [`ServerConn::accept`] (the 101 answer is queued, the socket
//!   becomes a WebSocket and what the client sent after its request is decoded), or refuse
//!   with [`ServerConn::respond`].
//! * [`ConnEvent::Message`], [`ConnEvent::Ping`], [`ConnEvent::Pong`]: hand them on (a ping
//!   is owed a pong; hub-core sends it). Answers go out with [`ServerConn::send`] as
//!   pre-encoded frames, shared among recipients (`Bytes` clones, never copied here).
//! * [`ConnEvent::PeerClose`], [`ConnEvent::ProtocolError`]: send a close frame with the code
//!   given, then [`ServerConn::close`]. The connection writes what is queued within the drain
//!   timeout, asks for the write side to be shut ([`ConnEvent::ShutdownWrite`]), reads and
//!   discards for the linger time (ending early at the client's close frame or end of stream)
//!   and then reports [`ConnEvent::Closed`].
//! * [`ConnEvent::Closed`]: drop the socket and the connection.
//!
//! The connection answers some requests itself and then closes: a malformed head (400),
//! one too large (431), `Transfer-Encoding` (411), a body over the limit (413), a request
//! not complete within its deadline (408), and a malformed upgrade (400, or 426 for another
//! WebSocket version). Every such answer is JSON: `{"error": "..."}`.
//!
//! # Strict at the wire
//!
//! Nothing the client sends after a protocol violation or its close frame is handed on, not
//! even the rest of the same read; text is checked for UTF-8 as it arrives (fail fast). A
//! request is handed on only once its head is complete and its framing unambiguous, and the
//! next pipelined request only once the answer to the one before is written.
//!
//! # Under TLS
//!
//! The byte boundary is plaintext in, plaintext out, so a sans-IO TLS session (rustls'
//! `ServerConnection`) stacks underneath without a second copy of any of this:
//!
//! ```text
//! socket → tls.read_tls(socket); tls.process_new_packets()
//!        → tls.reader().read(&mut buf)       → conn.recv(now, &buf[..n])
//! conn.poll_transmit(&mut slices)            → tls.writer().write_vectored(&slices) = n
//!                                            → conn.written(n); tls.write_tls(socket)
//! ConnEvent::ShutdownWrite                   → tls.send_close_notify(); tls.write_tls(socket);
//!                                              then shut the socket's write side
//! ```
//!
//! TLS end of stream (`close_notify`, or a reader at EOF) is `recv_eof`. The TLS writer
//! copies plaintext into records, so a frame shared among recipients is encrypted once per
//! recipient, as it must be. [`tls::TlsServerConn`] is exactly this plumbing, with the same
//! methods; it holds [`ConnEvent::ShutdownWrite`] back until `close_notify` is written.
//! (rustls is built without a crypto provider here: its user picks one.)
//!
//! # Size
//!
//! An open, idle WebSocket (nothing partly received or written, no event waiting) is 40
//! bytes and owns no heap (a test says so): the frame decoder, event queue, request buffer
//! and deadlines live in a box that exists only while something is going on.

mod admit;
mod config;
mod event;
pub mod fuzzing;
mod outbox;
mod sink;
mod socket;
pub mod tls;

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

pub use admit::{body_framing, error_response};
pub use config::{ConnConfig, LINGER, MAX_BODY, MAX_HEAD, MAX_IOV, READS_PER_TURN, READ_BUFFER};
pub use event::{ConnEvent, StateError};

use crate::http::{parse_request, upgrade_response, Parsed, Response};
use crate::ws::FrameDecoder;
use admit::{admit, Admitted};
use outbox::Outbox;
use sink::{Sink, Watch};

/// The sans-IO server side of one TCP connection (see the module docs for the loop).
///
/// Methods: inputs (`recv`, `recv_eof`, `handle_timeout`, `written`), answers to events
/// (`respond`, `read_body`, `accept`), WebSocket output (`send`, `close`), outputs
/// (`poll_event`, `poll_transmit`, `poll_timeout`) and getters.
#[derive(Debug)]
pub struct ServerConn {
    /// What is still to be written, in order.
    outbox: Outbox,
    /// Everything but an open, idle WebSocket; `None` is exactly that state.
    busy: Option<Box<Busy>>,
    /// Limits and timeouts, shared by all connections.
    config: Arc<ConnConfig>,
}

/// The state of a connection that is not an idle open WebSocket.
#[derive(Debug)]
struct Busy {
    phase: Phase,
    /// The current deadline (its meaning depends on the phase).
    deadline: Option<Instant>,
    /// The latest `now` seen: the start of waits begun by calls that take no `now`.
    now: Instant,
    events: VecDeque<ConnEvent>,
    /// HTTP bytes received and not consumed yet: a head, a body, pipelined requests.
    input: BytesMut,
    /// How much of `input` is known to hold no end of a head.
    scanned: usize,
    decoder: FrameDecoder,
    /// Bytes at the front of the outbox that are not from [`ServerConn::send`] (the 101
    /// answer), so that `written` knows when a batch is out.
    preamble: usize,
    /// The request being answered.
    exchange: Exchange,
    /// The client ended its side of the stream.
    eof: bool,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Reading a request head.
    Head,
    /// A request was handed out; waiting for `respond` or `read_body`.
    AwaitRequest,
    /// An upgrade request was handed out; waiting for `accept` or `respond`.
    AwaitUpgrade {
        /// The client's `Sec-WebSocket-Key`.
        key: String,
    },
    /// Reading the body the caller asked for.
    Body,
    /// Writing an answer; the connection is kept alive after it.
    Responding,
    /// An open WebSocket; `reading` is false after the client's close frame or a violation.
    Open { reading: bool },
    /// Writing the last bytes; `watch` decodes input for the client's close frame.
    Draining { watch: bool },
    /// The write side is shut; input is read and discarded.
    Lingering { watch: bool },
    /// [`ConnEvent::Closed`] is queued or was handed out.
    Closed,
}

/// What is known of the request being answered.
#[derive(Debug, Clone, Copy)]
struct Exchange {
    keep_alive: bool,
    /// A `HEAD` request: the answer has no body.
    head_only: bool,
    /// The declared body length.
    body_len: usize,
    /// Whether the body was read (or there is none).
    body_read: bool,
    /// The client waits for `100 Continue` before sending its body.
    expect_continue: bool,
    /// The request's one deadline (head and body).
    deadline: Instant,
}

impl Exchange {
    /// Nothing known yet; `deadline` for the next request.
    fn new(deadline: Instant) -> Self {
        Exchange {
            keep_alive: false,
            head_only: false,
            body_len: 0,
            body_read: true,
            expect_continue: false,
            deadline,
        }
    }
}

impl Busy {
    /// State in `phase` with nothing received.
    fn new(now: Instant, phase: Phase, deadline: Option<Instant>, config: &ConnConfig) -> Self {
        Busy {
            phase,
            deadline,
            now,
            events: VecDeque::new(),
            input: BytesMut::new(),
            scanned: 0,
            decoder: FrameDecoder::new(config.max_message_size),
            preamble: 0,
            exchange: Exchange::new(deadline.unwrap_or(now)),
            eof: false,
        }
    }

    /// Whether this is an idle open WebSocket that needs no box.
    fn is_idle_open(&self) -> bool {
        self.phase == Phase::Open { reading: true }
            && self.events.is_empty()
            && self.decoder.is_idle()
            && self.deadline.is_none()
            && self.preamble == 0
            && self.input.is_empty()
            && !self.eof
    }

    /// Ends the connection: [`ConnEvent::Closed`] after the events already queued.
    fn close_now(&mut self, outbox: &mut Outbox) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.events.push_back(ConnEvent::Closed);
        }
        self.deadline = None;
        self.input = BytesMut::new();
        outbox.clear();
    }

    /// Writes the last bytes (already queued), then shuts the write side and lingers.
    fn start_draining(&mut self, now: Instant, watch: bool, outbox: &mut Outbox, c: &ConnConfig) {
        self.phase = Phase::Draining { watch };
        self.deadline = Some(now + c.drain_timeout);
        self.input = BytesMut::new();
        self.scanned = 0;
        if outbox.is_empty() {
            self.finish_draining(now, outbox, c);
        }
    }

    /// Everything is written: shut the write side and linger (or end, if the client did).
    fn finish_draining(&mut self, now: Instant, outbox: &mut Outbox, c: &ConnConfig) {
        let Phase::Draining { watch } = self.phase else {
            return;
        };
        if self.eof {
            return self.close_now(outbox);
        }
        self.events.push_back(ConnEvent::ShutdownWrite);
        self.phase = Phase::Lingering { watch };
        self.deadline = Some(now + c.linger);
    }

    /// Answers with `response` and closes (the connection's own refusals).
    fn refuse(&mut self, now: Instant, response: &Response, outbox: &mut Outbox, c: &ConnConfig) {
        outbox.push(Bytes::from(response.to_bytes(false)));
        self.start_draining(now, false, outbox, c);
    }

    /// Takes WebSocket bytes: decodes them into events while reading, watches them for the
    /// client's close frame while closing, ignores them otherwise.
    fn take_frames(&mut self, bytes: &[u8], outbox: &mut Outbox) {
        match self.phase {
            Phase::Open { reading: true } => {
                let mut sink = Sink {
                    events: &mut self.events,
                    closed: false,
                };
                let result = self.decoder.decode(bytes, &mut sink);
                let closed = sink.closed;
                if let Err(e) = result {
                    self.events.push_back(ConnEvent::ProtocolError(e));
                }
                if closed || self.decoder.is_finished() {
                    self.phase = Phase::Open { reading: false };
                }
            }
            Phase::Draining { watch: true } | Phase::Lingering { watch: true } => {
                let mut watch = Watch { closed: false };
                let result = self.decoder.decode(bytes, &mut watch);
                if watch.closed || result.is_err() {
                    match self.phase {
                        Phase::Lingering { .. } => self.close_now(outbox),
                        _ => self.phase = Phase::Draining { watch: false },
                    }
                }
            }
            _ => {}
        }
    }

    /// Hands on the next request once its head is complete (see [`admit`]); waits while an
    /// answer is being written.
    fn advance_head(&mut self, outbox: &mut Outbox, c: &ConnConfig) {
        if self.phase != Phase::Head || !outbox.is_empty() || self.input.is_empty() {
            return;
        }
        // A head ends with a line feed: no new one, no new head (and no quadratic re-parse).
        let fresh = self.input.get(self.scanned..).unwrap_or_default();
        if !fresh.contains(&b'\n') && self.input.len() <= c.max_head {
            self.scanned = self.input.len();
            return;
        }
        let now = self.now;
        let (head, head_len) = match parse_request(&self.input, c.max_head) {
            Ok(Parsed::Partial) => {
                self.scanned = self.input.len();
                return;
            }
            Ok(Parsed::Complete { head, head_len }) => (head, head_len),
            Err(e) => {
                return self.refuse(now, &error_response(e.status(), &e.to_string()), outbox, c)
            }
        };
        self.input.advance(head_len);
        self.scanned = 0;
        let deadline = self.deadline.unwrap_or(now);
        match admit(&head) {
            Admitted::Refuse(response) => self.refuse(now, &response, outbox, c),
            Admitted::Request { body_len } => {
                self.exchange = Exchange {
                    keep_alive: head.keep_alive(),
                    head_only: head.method == "HEAD",
                    body_len,
                    body_read: body_len == 0,
                    expect_continue: head.has_token("expect", "100-continue"),
                    deadline,
                };
                self.phase = Phase::AwaitRequest;
                self.deadline = None;
                self.events.push_back(ConnEvent::Request(head));
            }
            Admitted::Upgrade { key } => {
                self.exchange = Exchange::new(deadline);
                self.phase = Phase::AwaitUpgrade { key };
                self.deadline = None;
                self.events.push_back(ConnEvent::Upgrade(head));
            }
        }
    }

    /// Hands on the body being read once all of it is in.
    fn advance_body(&mut self) {
        if self.phase == Phase::Body && self.input.len() >= self.exchange.body_len {
            let body = self.input.split_to(self.exchange.body_len).freeze();
            self.exchange.body_read = true;
            self.phase = Phase::AwaitRequest;
            self.deadline = None;
            self.events.push_back(ConnEvent::Body(body));
        }
    }
}

impl ServerConn {
    /// A freshly accepted connection, reading its first request head (due by
    /// `now + config.request_timeout`).
    pub fn new(now: Instant, config: Arc<ConnConfig>) -> Self {
        let deadline = Some(now + config.request_timeout);
        let busy = Busy::new(now, Phase::Head, deadline, &config);
        ServerConn {
            outbox: Outbox::default(),
            busy: Some(Box::new(busy)),
            config,
        }
    }

    /// A connection whose upgrade was answered elsewhere: an open, idle WebSocket. Pass it
    /// what the client sent after its upgrade request with [`ServerConn::recv`].
    pub fn upgraded(config: Arc<ConnConfig>) -> Self {
        ServerConn {
            outbox: Outbox::default(),
            busy: None,
            config,
        }
    }

    /// The busy state, created for an open WebSocket when there is none.
    fn busy_mut(&mut self, now: Instant) -> &mut Busy {
        let config = &self.config;
        let busy = self.busy.get_or_insert_with(|| {
            Box::new(Busy::new(now, Phase::Open { reading: true }, None, config))
        });
        busy.now = now;
        busy
    }

    /// Frees the busy state of an open WebSocket that has nothing going on.
    fn settle(&mut self) {
        if self.busy.as_ref().is_some_and(|b| b.is_idle_open()) {
            self.busy = None;
        }
    }

    /// Takes bytes read from the client (all of them; nothing is kept of the slice).
    pub fn recv(&mut self, now: Instant, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let cap = self.config.max_head.saturating_add(self.config.max_body);
        let Self {
            outbox,
            busy,
            config,
        } = self;
        let busy = busy.get_or_insert_with(|| {
            Box::new(Busy::new(now, Phase::Open { reading: true }, None, config))
        });
        busy.now = now;
        match busy.phase {
            Phase::Head
            | Phase::AwaitRequest
            | Phase::AwaitUpgrade { .. }
            | Phase::Body
            | Phase::Responding => {
                if busy.input.len().saturating_add(bytes.len()) > cap {
                    // More than any request may hold, while nothing of it can be used.
                    busy.close_now(outbox);
                } else {
                    busy.input.extend_from_slice(bytes);
                    busy.advance_head(outbox, config);
                    busy.advance_body();
                }
            }
            _ => busy.take_frames(bytes, outbox),
        }
        self.settle();
    }

    /// The client ended its side of the stream (a read returned 0), or the socket failed.
    pub fn recv_eof(&mut self, now: Instant) {
        let Self { outbox, busy, .. } = self;
        let config = &self.config;
        let busy = busy.get_or_insert_with(|| {
            Box::new(Busy::new(now, Phase::Open { reading: true }, None, config))
        });
        busy.now = now;
        busy.eof = true;
        match busy.phase {
            // An answer is owed or being written: finish it, then end.
            Phase::AwaitRequest | Phase::Responding | Phase::Draining { .. } => {}
            _ => busy.close_now(outbox),
        }
    }

    /// Acts on the deadline if it is due at `now` (a no-op otherwise). Afterwards
    /// [`ServerConn::poll_timeout`] is later than `now`, or `None`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Self {
            outbox,
            busy,
            config,
        } = self;
        let Some(busy) = busy.as_deref_mut() else {
            return;
        };
        busy.now = now;
        if busy.deadline.is_none_or(|at| at > now) {
            return;
        }
        busy.deadline = None;
        match busy.phase {
            Phase::Head if busy.input.is_empty() => busy.close_now(outbox),
            Phase::Head | Phase::Body => {
                let late = error_response(408, "the request did not arrive in time");
                busy.refuse(now, &late, outbox, config);
            }
            _ => busy.close_now(outbox),
        }
    }

    /// Records that the first `n` bytes [`ServerConn::poll_transmit`] offered were written.
    ///
    /// Returns true when this wrote the last byte of everything [`ServerConn::send`] queued
    /// (hub-core's `Input::Sent`).
    pub fn written(&mut self, n: usize) -> bool {
        let n = self.outbox.consume(n);
        let Self {
            outbox,
            busy,
            config,
        } = self;
        let Some(busy) = busy.as_deref_mut() else {
            return n > 0 && outbox.is_empty();
        };
        let from_preamble = n.min(busy.preamble);
        busy.preamble -= from_preamble;
        if !outbox.is_empty() {
            return false;
        }
        let now = busy.now;
        let sent = match busy.phase {
            Phase::Open { .. } => n > from_preamble,
            Phase::Responding if busy.eof => {
                busy.close_now(outbox);
                false
            }
            Phase::Responding => {
                busy.phase = Phase::Head;
                busy.advance_head(outbox, config);
                false
            }
            Phase::Draining { .. } => {
                busy.finish_draining(now, outbox, config);
                false
            }
            _ => false,
        };
        self.settle();
        sent
    }

    /// Answers the request (or refuses the upgrade) handed out last. The connection is kept
    /// alive when the request allows it, its body was read (or it had none) and `response`
    /// is not a server error; otherwise it closes after the answer. A refused upgrade always
    /// closes.
    pub fn respond(&mut self, now: Instant, response: &Response) -> Result<(), StateError> {
        let Self {
            outbox,
            busy,
            config,
        } = self;
        let busy = busy
            .as_deref_mut()
            .filter(|b| {
                matches!(
                    b.phase,
                    Phase::AwaitRequest | Phase::AwaitUpgrade { .. } | Phase::Body
                )
            })
            .ok_or(StateError("no request is waiting for an answer"))?;
        busy.now = now;
        let upgrade = matches!(busy.phase, Phase::AwaitUpgrade { .. });
        let x = busy.exchange;
        let keep_alive = config.keep_alive
            && !upgrade
            && x.keep_alive
            && x.body_read
            && response.status < 500
            && !busy.eof;
        let mut bytes = response.to_bytes(keep_alive);
        if x.head_only {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                bytes.truncate(end + 4);
            }
        }
        outbox.push(Bytes::from(bytes));
        if keep_alive {
            busy.phase = Phase::Responding;
            busy.deadline = Some(now + config.keep_alive_timeout);
        } else {
            busy.start_draining(now, false, outbox, config);
        }
        Ok(())
    }

    /// Reads the body of the request handed out last (a route that takes one), within the
    /// request's deadline; [`ConnEvent::Body`] follows. A body over `max_body` is answered
    /// 413 by the connection, which then closes (no `Body` comes).
    pub fn read_body(&mut self, now: Instant) -> Result<(), StateError> {
        let Self {
            outbox,
            busy,
            config,
        } = self;
        let busy = busy
            .as_deref_mut()
            .filter(|b| b.phase == Phase::AwaitRequest && !b.exchange.body_read)
            .ok_or(StateError("no request with an unread body is waiting"))?;
        busy.now = now;
        if busy.exchange.body_len > config.max_body {
            let message = format!("request bodies are limited to {} bytes", config.max_body);
            busy.refuse(now, &error_response(413, &message), outbox, config);
            return Ok(());
        }
        if busy.exchange.expect_continue && busy.input.len() < busy.exchange.body_len {
            outbox.push(Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n"));
        }
        busy.phase = Phase::Body;
        busy.deadline = Some(busy.exchange.deadline);
        busy.advance_body();
        if busy.phase == Phase::Body && busy.eof {
            // The client ended its stream before the whole body: it never comes.
            busy.close_now(outbox);
        }
        Ok(())
    }

    /// Accepts the upgrade handed out last: queues the 101 answer and decodes what the client
    /// sent after its request. The connection is an open WebSocket from here.
    pub fn accept(&mut self, now: Instant) -> Result<(), StateError> {
        let Self { outbox, busy, .. } = self;
        let busy = busy
            .as_deref_mut()
            .ok_or(StateError("no upgrade request is waiting"))?;
        let Phase::AwaitUpgrade { key } = &busy.phase else {
            return Err(StateError("no upgrade request is waiting"));
        };
        busy.now = now;
        let answer = Bytes::from(upgrade_response(key));
        busy.preamble = answer.len();
        outbox.push(answer);
        busy.phase = Phase::Open { reading: true };
        busy.deadline = None;
        let early = std::mem::take(&mut busy.input);
        busy.scanned = 0;
        if !early.is_empty() {
            busy.take_frames(&early, outbox);
        }
        Ok(())
    }

    /// Queues pre-encoded frames to write after what is queued (an open WebSocket only).
    /// Into an empty outbox the `Vec` itself moves: no copy, no allocation. A batch with no
    /// bytes is written at once (`wants_write` stays false).
    pub fn send(&mut self, frames: Vec<Bytes>) -> Result<(), StateError> {
        match self.busy.as_deref().map(|b| &b.phase) {
            None | Some(Phase::Open { .. }) => {
                self.outbox.append(frames);
                Ok(())
            }
            Some(_) => Err(StateError("frames are sent on an open WebSocket only")),
        }
    }

    /// Closes an open WebSocket after what is queued (normally its close frame): the rest is
    /// written within the drain timeout, then the write side is shut and the connection
    /// lingers (see the module docs).
    pub fn close(&mut self, now: Instant) -> Result<(), StateError> {
        if !self.is_websocket() {
            return Err(StateError("only an open WebSocket is closed this way"));
        }
        let busy = self.busy_mut(now);
        let watch = busy.phase == Phase::Open { reading: true };
        let Self {
            outbox,
            busy,
            config,
        } = self;
        if let Some(busy) = busy.as_deref_mut() {
            busy.start_draining(now, watch, outbox, config);
        }
        Ok(())
    }

    /// The next event to act on, in order.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        let event = self.busy.as_deref_mut()?.events.pop_front();
        self.settle();
        event
    }

    /// Fills `slices` with the bytes to write next, in order; returns how many it filled
    /// (0: nothing to write). Report what was written with [`ServerConn::written`].
    pub fn poll_transmit<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        self.outbox.fill(slices)
    }

    /// When [`ServerConn::handle_timeout`] is next due, if ever (O(1)).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.busy.as_deref().and_then(|b| b.deadline)
    }

    /// Whether bytes wait to be written.
    pub fn wants_write(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Whether reading now is useful: false while a request waits for its answer (what the
    /// client sends meanwhile is buffered, up to `max_head + max_body`) and once closed.
    pub fn wants_read(&self) -> bool {
        !matches!(
            self.busy.as_deref().map(|b| &b.phase),
            Some(
                Phase::AwaitRequest
                    | Phase::AwaitUpgrade { .. }
                    | Phase::Responding
                    | Phase::Closed
            )
        )
    }

    /// Whether this is an open WebSocket (accepted and not yet closing).
    pub fn is_websocket(&self) -> bool {
        matches!(
            self.busy.as_deref().map(|b| &b.phase),
            None | Some(Phase::Open { .. })
        )
    }

    /// Whether the connection is over ([`ConnEvent::Closed`] is queued or was handed out).
    pub fn is_closed(&self) -> bool {
        matches!(self.busy.as_deref().map(|b| &b.phase), Some(Phase::Closed))
    }

    /// Whether the connection holds no heap at all (an open, idle WebSocket).
    pub fn is_idle(&self) -> bool {
        self.busy.is_none() && self.outbox.is_empty()
    }
}
