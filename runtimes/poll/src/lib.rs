//! # hubbub-poll — a Hubbub node with no async runtime
//!
//! This crate exists to show that the sans-IO core (`hub-core`) needs no async runtime: no
//! tokio, no futures, no tasks, no channels. It is one thread running one hand-written event
//! loop over non-blocking sockets and [`mio`] (epoll on Linux), around one [`Hub`] (the
//! core's shard and standalone router wired together). It serves real WebSocket clients with
//! Hubbub's JSON protocol (`GET /ws`, `GET /ws/{room}`), answers `GET /healthz`, and refuses
//! everything else with the status `hub_serve::Gate` picks, or 404. There is no producer API,
//! `/stats`, demo page or `/hubbub.js`.
//!
//! ## The loop
//!
//! ```text
//! loop {
//!     wait for socket events, or until the earliest of hub.poll_timeout() and the
//!         connections' handshake/linger deadlines;
//!     now = Instant::now()                   // the loop reads the clock, the core never does
//!     fire what is due: hub.handle_timeout(now), deadlines
//!     for each event:
//!         listener readable   → accept every pending connection
//!         connection writable → write its backlog (vectored); when a Transmit is fully
//!                               written, feed Input::Sent (or shut the socket if it closed)
//!         connection readable → read into the one shared 64 KiB buffer, then
//!             reading the head → parse it, Gate::decide: an upgrade writes the 101 answer
//!                                and calls hub.open; /healthz gets 200; the rest 404
//!             WebSocket        → FrameDecoder → Input::{Message, Ping, Activity, Close}
//!             EOF or error     → Input::Closed
//!         drain: hub.poll_output() until it is empty (Transmit → backlog, Abort → drop
//!                the socket)
//! }
//! ```
//!
//! A connection is registered for both readable and writable readiness once (mio is
//! edge-triggered): a `Transmit` is written at once, and the rest of it when the socket says
//! it is writable again. A connection that keeps its socket busy gets a few reads per turn,
//! then waits for the next turn, so one client cannot starve the others.
//!
//! After the close frame (or an HTTP answer) is written, the write side is shut and the socket
//! is read and discarded until the client closes it or answers with its own close frame, or for
//! two seconds at most, so that the client reads the close frame rather than a reset.
//!
//! ## Stopping
//!
//! [`Stopper::stop`] (or the flag given to [`serve`]) makes the loop close the listener, feed
//! `Shutdown` to the hub (every client gets close code 1001 after its queued frames), and
//! return once every socket is closed or `Settings::shutdown_timeout` has passed.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use hub_core::shard::{Input, OpenError, OpenParams};
use hub_core::{ConnId, Hub, HubInput, HubOutput};
use hub_edge::api::ApiError;
use hub_serve::{Decision, Gate, IpLimiter, Settings};
use hub_wire::http::{parse_request, upgrade_response, Parsed, Response};
use hub_wire::ws::{is_valid_close_code, Decoded, FrameDecoder, WsError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

/// The listening socket's token (connections use their slab keys).
const LISTENER: Token = Token(usize::MAX);
/// The token of the [`Waker`] that [`Stopper::stop`] fires.
const WAKER: Token = Token(usize::MAX - 1);
/// The one read buffer shared by every connection.
const READ_BUFFER: usize = 64 * 1024;
/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Reads per connection and turn before the others get their turn.
const READS_PER_TURN: usize = 8;
/// Most slices in one vectored write.
const MAX_IOV: usize = 64;
/// How long a closing socket waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(2);
/// How often [`serve`] looks at its stop flag when nothing else wakes it.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Where a connection is in its life.
enum Phase {
    /// Reading the HTTP request head (the bytes so far).
    Head(Vec<u8>),
    /// An upgraded WebSocket, open on the hub.
    Ws { id: ConnId, decoder: FrameDecoder },
    /// The last bytes are written or being written; what the client sends is discarded. With
    /// a decoder: a close frame went out, and the client's answering close frame ends it.
    Closing(Option<FrameDecoder>),
}

/// What to do once the backlog is fully written.
enum After {
    /// Nothing (the upgrade answer, or nothing pending).
    Nothing,
    /// Feed `Input::Sent`: a hub `Transmit` is done.
    Sent(ConnId),
    /// Shut the write side and linger: a close frame or an HTTP answer is done.
    Shutdown,
}

/// One accepted TCP connection.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    phase: Phase,
    /// Bytes to write, in order; the first may be partly written already.
    backlog: VecDeque<Bytes>,
    after: After,
    /// Handshake or linger deadline (also in [`Server::deadlines`]).
    deadline: Option<Instant>,
    /// Whether it holds a place in the per-IP limiter.
    counted: bool,
}

/// Stops a running [`Server`] from any thread.
#[derive(Clone, Debug)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Stopper {
    /// Asks the loop to shut down gracefully, and wakes it.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }
}

/// Runs a node on `listener` in the calling thread until `stop` is set, then shuts down
/// gracefully (see the crate docs). `settings.shards` is ignored: there is one shard.
/// The flag is checked at least every 50 ms; [`Server::stopper`] stops without that delay.
pub fn serve(
    listener: std::net::TcpListener,
    settings: Settings,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let mut server = Server::new(listener, settings)?;
    server.stop = stop;
    server.tick = Some(STOP_CHECK);
    server.run()
}

/// A node's whole state: the core's hub, the sockets and the timers.
pub struct Server {
    poll: Poll,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    /// Longest wait, when the stop flag has no waker behind it.
    tick: Option<Duration>,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    settings: Settings,
    gate: Gate,
    limiter: IpLimiter,
    hub: Hub,
    conns: Slab<Conn>,
    /// The connection token of each open WebSocket.
    tokens: HashMap<ConnId, usize>,
    /// Handshake and linger deadlines, earliest first.
    deadlines: BTreeSet<(Instant, usize)>,
    /// Connections that used up their reads this turn and may have more.
    again: Vec<usize>,
    buf: Vec<u8>,
    decoded: Vec<Decoded>,
    /// Set once stopping: when the loop gives up waiting for sockets to close.
    stop_deadline: Option<Instant>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let connections = self.conns.len();
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("connections", &connections)
            .finish_non_exhaustive()
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.into())
}

/// A JSON error answer, `{"error": message}`.
fn error(status: u16, message: &str) -> Response {
    let message = message.to_owned();
    Response::json(status, ApiError { status, message }.body())
}

impl Server {
    /// A node serving `listener` (made non-blocking here) with one shard. Fails on invalid
    /// settings, a clustered registry (this runtime is standalone only), or a poller error.
    pub fn new(listener: std::net::TcpListener, mut settings: Settings) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        settings.listen = local_addr;
        settings.shards = 1;
        settings.validate().map_err(invalid)?;
        if settings.clustered() {
            return Err(invalid("the poll runtime runs a standalone node only"));
        }
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        let hub = Hub::new(settings.core_config(seed), settings.node_config())
            .map_err(|e| invalid(e.to_string()))?;
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Self {
            poll,
            waker,
            stop: Arc::new(AtomicBool::new(false)),
            tick: None,
            listener: Some(listener),
            local_addr,
            gate: Gate::new(&settings),
            limiter: IpLimiter::new(settings.max_connections_per_ip),
            settings,
            hub,
            conns: Slab::new(),
            tokens: HashMap::new(),
            deadlines: BTreeSet::new(),
            again: Vec::new(),
            buf: vec![0; READ_BUFFER],
            decoded: Vec::new(),
            stop_deadline: None,
        })
    }

    /// The address the node listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops [`Server::run`] from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            flag: self.stop.clone(),
            waker: self.waker.clone(),
        }
    }

    /// Runs the event loop in the calling thread until stopped and every socket is closed
    /// (or the shutdown timeout passed). Errors only if the poller itself fails.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if self.stop_deadline.is_none() && self.stop.load(Ordering::Acquire) {
                self.begin_stop(now);
            }
            if let Some(at) = self.stop_deadline {
                if self.conns.is_empty() || now >= at {
                    return Ok(());
                }
            }
            if let Err(e) = self.poll.poll(&mut events, self.timeout(now)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            self.fire_timers(now);
            self.drain(now);
            for token in std::mem::take(&mut self.again) {
                self.on_readable(token, now);
                self.drain(now);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => {}
                    Token(token) => {
                        if event.is_writable() {
                            self.flush(token, now);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(token, now);
                        }
                    }
                }
                self.drain(now);
            }
        }
    }

    /// How long to wait for events: until the next timer or deadline, at once if a
    /// connection has reads left over.
    fn timeout(&self, now: Instant) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = [
            self.hub.poll_timeout(),
            self.deadlines.first().map(|&(at, _)| at),
            self.stop_deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        let wait = next.map(|at| at.saturating_duration_since(now));
        match (wait, self.tick) {
            (Some(wait), Some(tick)) => Some(wait.min(tick)),
            (wait, tick) => wait.or(tick),
        }
    }

    /// Fires the core's timers and the connection deadlines that are due.
    fn fire_timers(&mut self, now: Instant) {
        if self.hub.poll_timeout().is_some_and(|at| at <= now) {
            self.hub.handle_timeout(now);
        }
        while let Some(&(at, token)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.close(token, now);
        }
    }

    /// Closes the listener and connections still in their handshake, and tells the hub.
    fn begin_stop(&mut self, now: Instant) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let heads: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Head(_)))
            .map(|(token, _)| token)
            .collect();
        for token in heads {
            self.close(token, now);
        }
        self.hub.handle_input(now, HubInput::Shutdown);
        self.stop_deadline = Some(now + self.settings.shutdown_timeout);
        self.drain(now);
    }

    /// Accepts every pending connection.
    fn accept(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: all accepted. Anything else (out of descriptors): try again
                // when the next connection arrives.
                Err(_) => return,
            };
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let token = entry.key();
            let mut conn = Conn {
                stream,
                peer,
                phase: Phase::Head(Vec::new()),
                backlog: VecDeque::new(),
                after: After::Nothing,
                deadline: None,
                counted: false,
            };
            let interest = Interest::READABLE | Interest::WRITABLE;
            if token >= WAKER.0
                || self
                    .poll
                    .registry()
                    .register(&mut conn.stream, Token(token), interest)
                    .is_err()
            {
                continue;
            }
            entry.insert(conn);
            self.set_deadline(token, Some(now + self.settings.handshake_timeout));
        }
    }

    /// Replaces a connection's deadline.
    fn set_deadline(&mut self, token: usize, at: Option<Instant>) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        if let Some(old) = std::mem::replace(&mut conn.deadline, at) {
            self.deadlines.remove(&(old, token));
        }
        if let Some(at) = at {
            self.deadlines.insert((at, token));
        }
    }

    /// Reads what a connection sent, a few buffers at most, and acts on it.
    fn on_readable(&mut self, token: usize, now: Instant) {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            let n = match conn.stream.read(&mut self.buf) {
                Ok(0) => return self.close(token, now),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.close(token, now),
            };
            match &mut conn.phase {
                Phase::Head(head) => {
                    head.extend_from_slice(&self.buf[..n]);
                    self.on_head(token, now);
                }
                Phase::Ws { id, decoder } => {
                    let id = *id;
                    let result = decoder.decode(&self.buf[..n], &mut self.decoded);
                    self.forward(id, result, now);
                }
                Phase::Closing(Some(decoder)) => {
                    let _ = decoder.decode(&self.buf[..n], &mut self.decoded);
                    self.decoded.clear();
                    if decoder.is_finished() {
                        return self.close(token, now);
                    }
                }
                Phase::Closing(None) => {}
            }
            self.drain(now);
        }
        self.again.push(token);
    }

    /// Acts on a request head once it is complete.
    fn on_head(&mut self, token: usize, now: Instant) {
        let Some(Conn {
            phase: Phase::Head(bytes),
            ..
        }) = self.conns.get_mut(token)
        else {
            return;
        };
        let (head, leftover) = match parse_request(bytes, MAX_HEAD) {
            Ok(Parsed::Partial) => return,
            Ok(Parsed::Complete { head, head_len }) => (head, bytes.split_off(head_len)),
            Err(e) => return self.respond(token, now, error(e.status(), &e.to_string())),
        };
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let response = match self.gate.decide(&head, now_unix) {
            Decision::Upgrade { params, key, .. } => {
                return self.upgrade(token, now, params, &key, &leftover)
            }
            Decision::Health => Response::json(200, r#"{"status":"ok"}"#),
            Decision::Respond(response) => response,
            Decision::Stats
            | Decision::Metrics
            | Decision::Demo
            | Decision::Script
            | Decision::Api => error(404, "not served by the poll runtime"),
        };
        self.respond(token, now, response);
    }

    /// Writes an HTTP answer, then closes the connection.
    fn respond(&mut self, token: usize, now: Instant, response: Response) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        conn.phase = Phase::Closing(None);
        conn.backlog
            .push_back(Bytes::from(response.to_bytes(false)));
        conn.after = After::Shutdown;
        self.set_deadline(token, Some(now + LINGER));
        self.flush(token, now);
    }

    /// Opens the connection on the hub, answers 101 and decodes what followed the head.
    fn upgrade(
        &mut self,
        token: usize,
        now: Instant,
        mut params: OpenParams,
        key: &str,
        leftover: &[u8],
    ) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        if !self.limiter.acquire(conn.peer.ip()) {
            let refusal = error(429, "too many connections from this address");
            return self.respond(token, now, refusal);
        }
        conn.counted = true;
        params.peer = Some(conn.peer);
        let id = match self.hub.open(now, params) {
            Ok(id) => id,
            Err(e) => {
                let status = if e == OpenError::ShuttingDown {
                    503
                } else {
                    400
                };
                return self.respond(token, now, error(status, &e.to_string()));
            }
        };
        // Written before anything the hub transmits: that only comes when outputs are drained.
        conn.backlog.push_back(Bytes::from(upgrade_response(key)));
        let mut decoder = FrameDecoder::new(self.settings.max_message_size);
        let result = decoder.decode(leftover, &mut self.decoded);
        conn.phase = Phase::Ws { id, decoder };
        self.tokens.insert(id, token);
        self.set_deadline(token, None);
        self.forward(id, result, now);
        self.flush(token, now);
    }

    /// Feeds decoded client frames (and a protocol error, if any) to the hub.
    fn forward(&mut self, id: ConnId, result: Result<(), WsError>, now: Instant) {
        for message in self.decoded.drain(..) {
            let binary = matches!(message, Decoded::Binary(_));
            let input = match message {
                Decoded::Text(data) | Decoded::Binary(data) => Input::Message {
                    conn: id,
                    data,
                    binary,
                },
                Decoded::Ping(payload) => Input::Ping { conn: id, payload },
                Decoded::Pong(_) => Input::Activity { conn: id },
                // Echo the client's code when it is one we may send back, else 1000.
                Decoded::Close { code, .. } => Input::Close {
                    conn: id,
                    code: code.filter(|&c| is_valid_close_code(c)).unwrap_or(1000),
                    reason: String::new(),
                },
            };
            self.hub.handle_input(now, HubInput::Conn(input));
        }
        if let Err(e) = result {
            let reason = e.reason.to_owned();
            let close = Input::Close {
                conn: id,
                code: e.code,
                reason,
            };
            self.hub.handle_input(now, HubInput::Conn(close));
        }
    }

    /// Writes as much of the backlog as the socket takes; acts when it is all written.
    fn flush(&mut self, token: usize, now: Instant) {
        loop {
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            if conn.backlog.is_empty() {
                match std::mem::replace(&mut conn.after, After::Nothing) {
                    After::Nothing => {}
                    After::Sent(id) => {
                        let sent = Input::Sent { conn: id };
                        self.hub.handle_input(now, HubInput::Conn(sent));
                    }
                    After::Shutdown => {
                        let _ = conn.stream.shutdown(Shutdown::Write);
                        let phase = std::mem::replace(&mut conn.phase, Phase::Closing(None));
                        if let Phase::Ws { decoder, .. } = phase {
                            // Wait for the client's answer, unless it closed (or broke) first.
                            if !decoder.is_finished() {
                                conn.phase = Phase::Closing(Some(decoder));
                            }
                            self.set_deadline(token, Some(now + LINGER));
                        }
                    }
                }
                return;
            }
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            for (slice, frame) in iov.iter_mut().zip(&conn.backlog) {
                *slice = IoSlice::new(frame);
                count += 1;
            }
            let mut written = match conn.stream.write_vectored(&iov[..count]) {
                Ok(0) => return self.close(token, now),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.close(token, now),
            };
            while let Some(front) = conn.backlog.front_mut() {
                if front.len() > written {
                    front.advance(written);
                    break;
                }
                written -= front.len();
                conn.backlog.pop_front();
            }
        }
    }

    /// Drops a connection's socket; the hub learns it is gone.
    fn close(&mut self, token: usize, now: Instant) {
        let Some(mut conn) = self.conns.try_remove(token) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if let Some(at) = conn.deadline {
            self.deadlines.remove(&(at, token));
        }
        if conn.counted {
            self.limiter.release(conn.peer.ip());
        }
        if let Phase::Ws { id, .. } = conn.phase {
            if self.tokens.get(&id) == Some(&token) {
                self.tokens.remove(&id);
            }
            // Ignored by the hub if it already forgot the connection.
            self.hub
                .handle_input(now, HubInput::Conn(Input::Closed { conn: id }));
        }
    }

    /// Carries out the hub's outputs until it has none.
    fn drain(&mut self, now: Instant) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                HubOutput::Transmit {
                    conn,
                    frames,
                    close,
                } => self.transmit(conn, frames, close, now),
                HubOutput::Abort { conn } => {
                    if let Some(token) = self.tokens.remove(&conn) {
                        self.close(token, now);
                    }
                }
                // A standalone hub with no API callers emits no answers or cluster outputs.
                HubOutput::Event(_)
                | HubOutput::Delivered { .. }
                | HubOutput::Online { .. }
                | HubOutput::Disconnected { .. }
                | HubOutput::Cluster(_) => {}
            }
        }
    }

    /// Queues a hub `Transmit` behind the connection's backlog and starts writing it.
    fn transmit(&mut self, id: ConnId, frames: Vec<Bytes>, close: bool, now: Instant) {
        // No token: the socket is gone and the hub was told (`Closed`).
        let Some(&token) = self.tokens.get(&id) else {
            return;
        };
        if close {
            // The hub has forgotten the connection: the deadline is ours to keep.
            self.tokens.remove(&id);
            let flush_by = now + self.hub.config().drain_timeout;
            self.set_deadline(token, Some(flush_by));
        }
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        conn.backlog
            .extend(frames.into_iter().filter(|f| !f.is_empty()));
        conn.after = if close {
            After::Shutdown
        } else {
            After::Sent(id)
        };
        self.flush(token, now);
    }
}
