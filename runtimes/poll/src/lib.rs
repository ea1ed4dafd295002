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
//! Everything between a socket and the core is one `ServerConn` per connection (hub-wire's
//! sans-IO server connection: the request head, the upgrade, frame decoding, the unwritten
//! tail and the request, drain and linger deadlines), kept with its socket in a
//! [`hub_wire::host::Host`] around the [`Hub`]. The host does what follows; this crate adds
//! the poller, the gate (tokens, origins), the per-address limit and the graceful stop:
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

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hub_core::Hub;
use hub_serve::{Decision, Gate, IpLimiter, Settings};
use hub_wire::host::{Host, Routes};
use hub_wire::http::{RequestHead, Response};
use hub_wire::server::{error_response, ConnConfig};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

/// The listening socket's token (connections use their host tokens).
const LISTENER: Token = Token(usize::MAX);
/// The token of the [`Waker`] that [`Stopper::stop`] fires.
const WAKER: Token = Token(usize::MAX - 1);
/// How often [`serve`] looks at its stop flag when nothing else wakes it.
const STOP_CHECK: Duration = Duration::from_millis(50);

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

/// The gate's decisions and the per-address limit, as the host's routes.
struct GateRoutes {
    gate: Gate,
    limiter: IpLimiter,
}

impl Routes for GateRoutes {
    fn request(&mut self, head: &RequestHead, _peer: Option<SocketAddr>) -> Response {
        match self.gate.decide(head, unix_now()) {
            Decision::Health => Response::json(200, r#"{"status":"ok"}"#),
            Decision::Respond(response) => response,
            _ => error_response(404, "not served by the poll runtime"),
        }
    }

    fn upgrade(
        &mut self,
        head: &RequestHead,
        peer: Option<SocketAddr>,
    ) -> Result<hub_core::OpenParams, Response> {
        let params = match self.gate.decide(head, unix_now()) {
            Decision::Upgrade { params, .. } if params.protocol.is_some() => {
                return Err(error_response(
                    404,
                    "Pusher clients are served by the tokio and smol runtimes",
                ))
            }
            Decision::Upgrade { params, .. } => params,
            Decision::Respond(response) => return Err(response),
            _ => return Err(error_response(404, "no WebSocket endpoint here")),
        };
        match peer {
            Some(peer) if !self.limiter.acquire(peer.ip()) => Err(error_response(
                429,
                "too many connections from this address",
            )),
            _ => Ok(params),
        }
    }

    fn released(&mut self, peer: Option<SocketAddr>) {
        if let Some(peer) = peer {
            self.limiter.release(peer.ip());
        }
    }
}

/// A node's whole state: the poller, the listener, and the host of the hub's sockets.
pub struct Server {
    poll: Poll,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    /// Longest wait, when the stop flag has no waker behind it.
    tick: Option<Duration>,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    settings: Settings,
    routes: GateRoutes,
    host: Host<TcpStream>,
    /// Set once stopping: when the loop gives up waiting for sockets to close.
    stop_deadline: Option<Instant>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.host.len())
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
            routes: GateRoutes {
                gate: Gate::new(&settings).map_err(invalid)?,
                limiter: IpLimiter::new(settings.max_connections_per_ip),
            },
            settings,
            host: Host::new(hub, wire_config),
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
                if self.host.is_empty() || now >= at {
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
            self.host.handle_timeout(now, &mut self.routes);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => {}
                    Token(token) => self.host.ready(now, token, &mut self.routes),
                }
            }
        }
    }

    /// How long to wait for events: until the host's next deadline or the stop deadline.
    fn timeout(&self, now: Instant) -> Option<Duration> {
        let next = [self.host.poll_timeout(), self.stop_deadline]
            .into_iter()
            .flatten()
            .min();
        let wait = next.map(|at| at.saturating_duration_since(now));
        match (wait, self.tick) {
            (Some(wait), Some(tick)) => Some(wait.min(tick)),
            (wait, tick) => wait.or(tick),
        }
    }

    /// Closes the listener, then lets the host close what is not a WebSocket and tell the
    /// hub, which closes every WebSocket with 1001.
    fn begin_stop(&mut self, now: Instant) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.host.shutdown(now, &mut self.routes);
        self.stop_deadline = Some(now + self.settings.shutdown_timeout);
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
            if self.host.next_token() >= WAKER.0 {
                continue;
            }
            let _ = stream.set_nodelay(true);
            let token = self.host.insert(now, stream, Some(peer));
            let interest = Interest::READABLE | Interest::WRITABLE;
            let registered = self.host.socket_mut(token).map(|stream| {
                self.poll
                    .registry()
                    .register(stream, Token(token), interest)
            });
            if !matches!(registered, Some(Ok(()))) {
                self.host.remove(token, now, &mut self.routes);
            }
        }
    }
}

/// Seconds since the Unix epoch (token expiry).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
