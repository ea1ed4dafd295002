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
//! Everything between a socket and the core is one [`ServerConn`] per connection (hub-wire's
//! sans-IO server connection): the request head, the upgrade, frame decoding, the unwritten
//! tail and the request, drain and linger deadlines. The loop moves bytes and maps events:
//!
//! ```text
//! loop {
//!     wait for socket events, or until the earliest of hub.poll_timeout() and the
//!         connections' poll_timeout();
//!     now = Instant::now()                   // the loop reads the clock, the core never does
//!     fire what is due: hub.handle_timeout(now), conn.handle_timeout(now)
//!     for each event:
//!         listener readable   → accept every pending connection: ServerConn::new
//!         connection writable → poll_transmit → write_vectored → written (true: Input::Sent)
//!         connection readable → read into the one shared 64 KiB buffer → conn.recv
//!             (0 bytes or an error → conn.recv_eof); then every conn.poll_event():
//!             Request          → Gate::decide: /healthz gets 200, the rest its refusal or 404
//!             Upgrade          → Gate::decide, hub.open, conn.accept
//!             Message, Ping, Pong, PeerClose, ProtocolError → Input::{Message, Ping,
//!                                Activity, Close}
//!             ShutdownWrite    → shut the socket's write side
//!             Closed           → drop the socket (Input::Closed if the hub still knows it)
//!         drain: hub.poll_output() until it is empty (Transmit → conn.send, and conn.close
//!                with the close frame; Abort → drop the socket)
//! }
//! ```
//!
//! A connection is registered for both readable and writable readiness once (mio is
//! edge-triggered): a `Transmit` is written at once, and the rest of it when the socket says
//! it is writable again. A connection that keeps its socket busy gets a few reads per turn,
//! then waits for the next turn, so one client cannot starve the others. Every HTTP answer
//! closes its connection (no keep-alive here).
//!
//! ## Stopping
//!
//! [`Stopper::stop`] (or the flag given to [`serve`]) makes the loop close the listener, feed
//! `Shutdown` to the hub (every client gets close code 1001 after its queued frames), and
//! return once every socket is closed or `Settings::shutdown_timeout` has passed.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hub_core::shard::{Input, OpenError};
use hub_core::{ConnId, Hub, HubInput, HubOutput};
use hub_serve::{Decision, Gate, IpLimiter, Settings};
use hub_wire::http::{RequestHead, Response};
use hub_wire::server::{
    error_response, ConnConfig, ConnEvent, ServerConn, MAX_IOV, READS_PER_TURN, READ_BUFFER,
};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

/// The listening socket's token (connections use their slab keys).
const LISTENER: Token = Token(usize::MAX);
/// The token of the [`Waker`] that [`Stopper::stop`] fires.
const WAKER: Token = Token(usize::MAX - 1);
/// How often [`serve`] looks at its stop flag when nothing else wakes it.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// One accepted TCP connection.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// Everything between the socket and the hub.
    wire: ServerConn,
    /// The hub's id for this WebSocket, until the hub is done with it (its close frame).
    id: Option<ConnId>,
    /// Whether the upgrade was accepted (the connection is or was a WebSocket).
    upgraded: bool,
    /// The deadline of `wire` as kept in [`Server::deadlines`].
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
    /// The connections' deadlines, earliest first.
    deadlines: BTreeSet<(Instant, usize)>,
    /// Limits and timeouts of every connection.
    wire_config: Arc<ConnConfig>,
    /// Connections that used up their reads this turn and may have more.
    again: Vec<usize>,
    buf: Vec<u8>,
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
        let seed = hub_serve::random_seed().map_err(io::Error::other)?;
        let hub = Hub::new(
            settings.core_config(seed.clone()),
            settings.node_config(seed),
        )
        .map_err(|e| invalid(e.to_string()))?;
        let wire_config = Arc::new(ConnConfig {
            max_message_size: settings.max_message_size,
            request_timeout: settings.handshake_timeout,
            drain_timeout: hub.config().drain_timeout,
            keep_alive: false,
            ..ConnConfig::default()
        });
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
            gate: Gate::new(&settings).map_err(invalid)?,
            limiter: IpLimiter::new(settings.max_connections_per_ip),
            settings,
            hub,
            conns: Slab::new(),
            tokens: HashMap::new(),
            deadlines: BTreeSet::new(),
            wire_config,
            again: Vec::new(),
            buf: vec![0; READ_BUFFER],
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
                            self.service(token, now);
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
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            conn.deadline = None;
            conn.wire.handle_timeout(now);
            self.service(token, now);
        }
    }

    /// Closes the listener and connections that are not WebSockets, and tells the hub.
    fn begin_stop(&mut self, now: Instant) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let heads: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.upgraded)
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
                wire: ServerConn::new(now, self.wire_config.clone()),
                id: None,
                upgraded: false,
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
            self.sync_deadline(token);
        }
    }

    /// Keeps [`Server::deadlines`] in step with the connection's own deadline.
    fn sync_deadline(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let at = conn.wire.poll_timeout();
        if conn.deadline == at {
            return;
        }
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
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            match self.buf.get(..n) {
                Some(bytes) if n > 0 => conn.wire.recv(now, bytes),
                _ => conn.wire.recv_eof(now),
            }
            self.service(token, now);
            self.drain(now);
            if n == 0 {
                return;
            }
        }
        self.again.push(token);
    }

    /// Acts on the connection's events and writes what it has to write, until neither
    /// brings anything new.
    fn service(&mut self, token: usize, now: Instant) {
        loop {
            loop {
                let Some(conn) = self.conns.get_mut(token) else {
                    return;
                };
                let Some(event) = conn.wire.poll_event() else {
                    break;
                };
                self.on_event(token, event, now);
            }
            if !self.write(token, now) {
                break;
            }
        }
        self.sync_deadline(token);
    }

    /// Acts on one event of a connection.
    fn on_event(&mut self, token: usize, event: ConnEvent, now: Instant) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        match event {
            ConnEvent::Request(head) => {
                let response = match self.gate.decide(&head, unix_now()) {
                    Decision::Health => Response::json(200, r#"{"status":"ok"}"#),
                    Decision::Respond(response) => response,
                    _ => error_response(404, "not served by the poll runtime"),
                };
                let _ = conn.wire.respond(now, &response);
            }
            ConnEvent::Upgrade(head) => self.upgrade(token, &head, now),
            ConnEvent::Body(_) => {
                let _ = conn
                    .wire
                    .respond(now, &error_response(404, "no body expected"));
            }
            ConnEvent::ShutdownWrite => {
                let _ = conn.stream.shutdown(Shutdown::Write);
            }
            ConnEvent::Closed => self.close(token, now),
            event => {
                if let Some(input) = conn.id.and_then(|id| ws_input(id, event)) {
                    self.hub.handle_input(now, HubInput::Conn(input));
                }
            }
        }
    }

    /// Admits an upgrade request: the gate's checks, the per-address limit, the hub.
    fn upgrade(&mut self, token: usize, head: &RequestHead, now: Instant) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let mut params = match self.gate.decide(head, unix_now()) {
            Decision::Upgrade { params, .. } => params,
            Decision::Respond(response) => {
                let _ = conn.wire.respond(now, &response);
                return;
            }
            _ => {
                let refusal = error_response(404, "no WebSocket endpoint here");
                let _ = conn.wire.respond(now, &refusal);
                return;
            }
        };
        if !self.limiter.acquire(conn.peer.ip()) {
            let refusal = error_response(429, "too many connections from this address");
            let _ = conn.wire.respond(now, &refusal);
            return;
        }
        conn.counted = true;
        params.peer = Some(conn.peer);
        match self.hub.open(now, params) {
            Ok(id) => {
                // The 101 answer goes out before anything the hub transmits: that only comes
                // when outputs are drained.
                let _ = conn.wire.accept(now);
                conn.id = Some(id);
                conn.upgraded = true;
                self.tokens.insert(id, token);
            }
            Err(e) => {
                let status = if e == OpenError::ShuttingDown {
                    503
                } else {
                    400
                };
                let _ = conn
                    .wire
                    .respond(now, &error_response(status, &e.to_string()));
            }
        }
    }

    /// Writes what the connection offers until the socket takes no more; whether anything
    /// happened (bytes written, or the socket failed).
    fn write(&mut self, token: usize, now: Instant) -> bool {
        let Some(conn) = self.conns.get_mut(token) else {
            return false;
        };
        let mut progressed = false;
        loop {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let count = conn.wire.poll_transmit(&mut iov);
            let Some(slices) = iov.get(..count).filter(|s| !s.is_empty()) else {
                return progressed;
            };
            match conn.stream.write_vectored(slices) {
                Ok(n) if n > 0 => {
                    progressed = true;
                    if conn.wire.written(n) {
                        if let Some(id) = conn.id {
                            self.hub
                                .handle_input(now, HubInput::Conn(Input::Sent { conn: id }));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return progressed,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(_) | Err(_) => {
                    conn.wire.recv_eof(now);
                    return true;
                }
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
        if let Some(id) = conn.id {
            if self.tokens.get(&id) == Some(&token) {
                self.tokens.remove(&id);
            }
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

    /// Queues a hub `Transmit` on its connection and starts writing it; with `close`, the
    /// hub is done with the connection, which closes after these frames.
    fn transmit(&mut self, id: ConnId, frames: Vec<Bytes>, close: bool, now: Instant) {
        // No token: the socket is gone and the hub was told (`Closed`).
        let Some(&token) = self.tokens.get(&id) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let _ = conn.wire.send(frames);
        if close {
            self.tokens.remove(&id);
            conn.id = None;
            let _ = conn.wire.close(now);
        } else if !conn.wire.wants_write() {
            // Nothing to write: the batch is out already.
            self.hub
                .handle_input(now, HubInput::Conn(Input::Sent { conn: id }));
        }
        self.service(token, now);
    }
}

/// The hub's input for a WebSocket event of connection `id` (`None` for other events).
fn ws_input(id: ConnId, event: ConnEvent) -> Option<Input> {
    match event {
        ConnEvent::Message { data, binary } => Some(Input::Message {
            conn: id,
            data,
            binary,
        }),
        ConnEvent::Ping(payload) => Some(Input::Ping { conn: id, payload }),
        ConnEvent::Pong(_) => Some(Input::Activity { conn: id }),
        ConnEvent::PeerClose { code } => Some(Input::Close {
            conn: id,
            code,
            reason: String::new(),
        }),
        ConnEvent::ProtocolError(e) => Some(Input::Close {
            conn: id,
            code: e.code,
            reason: e.reason.to_owned(),
        }),
        _ => None,
    }
}

/// Seconds since the Unix epoch (token expiry).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_entry_is_small() {
        // Socket, peer address, the 40-byte ServerConn (no heap when idle), the hub's id, the
        // deadline and two flags: 128 bytes. The hand-written head/decoder/backlog state it
        // replaced took 160, and its backlog kept its heap buffer after a write.
        let size = std::mem::size_of::<Conn>();
        assert!(size <= 128, "a connection entry is {size} bytes");
    }
}
