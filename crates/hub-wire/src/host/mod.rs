//! Many sockets feeding one [`Hub`]: the table every single-threaded event loop keeps.
//!
//! [`Host`] owns each socket with its [`ServerConn`], knows which socket holds which hub
//! connection, and carries the hub's outputs to the sockets. Everything the loop decides is
//! left to it: which poller, when to accept, how to wait, which routes exist ([`Routes`]).
//! The loop's whole job:
//!
//! ```text
//! loop {
//!     wait for readiness, at most until host.poll_timeout()
//!     now = Instant::now()                  // never earlier than the last one
//!     host.handle_timeout(now, &mut routes) // heartbeats, deadlines, reads left over
//!     listener readable → token = host.insert(now, socket, peer); register it under token
//!     socket readable or writable → host.ready(now, token, &mut routes)
//! }
//! ```
//!
//! Sockets must be non-blocking. A socket is read a few buffers at a time
//! ([`READS_PER_TURN`]) so one busy client cannot starve the others; the rest is read at the
//! next [`Host::handle_timeout`], which [`Host::poll_timeout`] makes immediate. With an
//! edge-triggered poller (mio), register each socket once for both directions.

mod routes;

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hub_core::shard::{Input, OpenError};
use hub_core::{ConnId, Hub, HubInput, HubOutput};
use slab::Slab;

use crate::server::{
    error_response, ConnConfig, ConnEvent, ServerConn, READS_PER_TURN, READ_BUFFER,
};

pub use routes::{hub_input, ws_open_params, PlainRoutes, Routes};

/// A non-blocking byte stream a [`Host`] can serve.
pub trait Socket: Read + Write {
    /// Shuts the write side (the lingering close after a last HTTP answer).
    fn shutdown_write(&mut self);
}

impl Socket for std::net::TcpStream {
    fn shutdown_write(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

#[cfg(feature = "mio")]
impl Socket for mio::net::TcpStream {
    fn shutdown_write(&mut self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

/// One socket and everything known about it.
struct Entry<S> {
    socket: S,
    peer: Option<SocketAddr>,
    wire: ServerConn,
    /// The hub's id for this WebSocket, until the hub is done with it (its close frame).
    id: Option<ConnId>,
    /// Whether [`Routes::upgrade`] admitted it (then [`Routes::released`] is owed).
    admitted: bool,
    /// `wire`'s deadline as kept in [`Host::deadlines`].
    deadline: Option<Instant>,
}

/// The sockets of one [`Hub`], keyed by the token [`Host::insert`] returns.
pub struct Host<S> {
    hub: Hub,
    conns: Slab<Entry<S>>,
    /// The token of each WebSocket the hub knows.
    tokens: HashMap<ConnId, usize>,
    /// The connections' deadlines, earliest first.
    deadlines: BTreeSet<(Instant, usize)>,
    config: Arc<ConnConfig>,
    /// Sockets that used up their reads and may have more.
    again: Vec<usize>,
    /// The latest `now` seen (what [`Host::poll_timeout`] answers when reads are left over).
    last: Option<Instant>,
    buf: Vec<u8>,
}

impl<S> std::fmt::Debug for Host<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("sockets", &self.conns.len())
            .field("websockets", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

impl<S: Socket> Host<S> {
    /// A host for `hub`'s connections, each socket under `config`'s limits and deadlines.
    pub fn new(hub: Hub, config: Arc<ConnConfig>) -> Self {
        Self {
            hub,
            conns: Slab::new(),
            tokens: HashMap::new(),
            deadlines: BTreeSet::new(),
            config,
            again: Vec::new(),
            last: None,
            buf: vec![0; READ_BUFFER],
        }
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The hub, to feed it inputs of your own (API commands, cluster traffic); call
    /// [`Host::drain`] afterwards.
    pub fn hub_mut(&mut self) -> &mut Hub {
        &mut self.hub
    }

    /// How many sockets are open.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no socket is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The token the next [`Host::insert`] returns.
    pub fn next_token(&self) -> usize {
        self.conns.vacant_key()
    }

    /// Takes an accepted socket; returns its token (register the socket under it).
    pub fn insert(&mut self, now: Instant, socket: S, peer: Option<SocketAddr>) -> usize {
        self.last = Some(now);
        let wire = ServerConn::new(now, self.config.clone());
        let token = self.conns.insert(Entry {
            socket,
            peer,
            wire,
            id: None,
            admitted: false,
            deadline: None,
        });
        self.sync_deadline(token);
        token
    }

    /// The socket under `token` (to register it with a poller).
    pub fn socket_mut(&mut self, token: usize) -> Option<&mut S> {
        self.conns.get_mut(token).map(|entry| &mut entry.socket)
    }

    /// The socket under `token` may be readable or writable: reads a few buffers, writes
    /// what is queued, and acts on everything that brings.
    pub fn ready(&mut self, now: Instant, token: usize, routes: &mut impl Routes) {
        self.last = Some(now);
        self.service(token, now, routes);
        self.read(token, now, routes);
        self.drain(now, routes);
    }

    /// When to call [`Host::handle_timeout`] next: the hub's timers, the sockets' deadlines,
    /// or at once when sockets have reads left over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let left_over = self.last.filter(|_| !self.again.is_empty());
        let deadline = self.deadlines.first().map(|&(at, _)| at);
        [left_over, self.hub.poll_timeout(), deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires what is due at `now`: the hub's timers (heartbeats), the sockets' deadlines,
    /// and the reads left over from the last turn.
    pub fn handle_timeout(&mut self, now: Instant, routes: &mut impl Routes) {
        self.last = Some(now);
        if self.hub.poll_timeout().is_some_and(|at| at <= now) {
            self.hub.handle_timeout(now);
        }
        while let Some(&(at, token)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(entry) = self.conns.get_mut(token) {
                entry.deadline = None;
                entry.wire.handle_timeout(now);
                self.service(token, now, routes);
            }
        }
        self.drain(now, routes);
        for token in std::mem::take(&mut self.again) {
            self.read(token, now, routes);
            self.drain(now, routes);
        }
    }

    /// Carries out the hub's outputs until it has none: frames to their sockets, aborts;
    /// everything else goes to [`Routes::output`].
    pub fn drain(&mut self, now: Instant, routes: &mut impl Routes) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                HubOutput::Transmit {
                    conn,
                    frames,
                    close,
                } => self.transmit(conn, frames, close, now, routes),
                HubOutput::Abort { conn } => {
                    if let Some(token) = self.tokens.remove(&conn) {
                        self.remove(token, now, routes);
                    }
                }
                other => routes.output(other),
            }
        }
    }

    /// Begins a graceful stop: closes the sockets that are not WebSockets and tells the hub,
    /// which closes every WebSocket with 1001 after what is queued. Keep running the loop
    /// until [`Host::is_empty`] (or your own deadline).
    pub fn shutdown(&mut self, now: Instant, routes: &mut impl Routes) {
        self.last = Some(now);
        let heads: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, entry)| !entry.wire.is_websocket())
            .map(|(token, _)| token)
            .collect();
        for token in heads {
            self.remove(token, now, routes);
        }
        self.hub.handle_input(now, HubInput::Shutdown);
        self.drain(now, routes);
    }

    /// Drops the socket under `token` at once; the hub learns that its WebSocket is gone.
    pub fn remove(&mut self, token: usize, now: Instant, routes: &mut impl Routes) {
        let Some(entry) = self.conns.try_remove(token) else {
            return;
        };
        if let Some(at) = entry.deadline {
            self.deadlines.remove(&(at, token));
        }
        if entry.admitted {
            routes.released(entry.peer);
        }
        if let Some(id) = entry.id {
            if self.tokens.get(&id) == Some(&token) {
                self.tokens.remove(&id);
            }
            self.hub
                .handle_input(now, HubInput::Conn(Input::Closed { conn: id }));
        }
    }

    /// Reads up to [`READS_PER_TURN`] buffers from a socket, acting on each.
    fn read(&mut self, token: usize, now: Instant, routes: &mut impl Routes) {
        for _ in 0..READS_PER_TURN {
            let Some(entry) = self.conns.get_mut(token) else {
                return;
            };
            let more = entry.wire.read_from(now, &mut entry.socket, &mut self.buf);
            self.service(token, now, routes);
            self.drain(now, routes);
            if !more {
                return;
            }
        }
        self.again.push(token);
    }

    /// Acts on a connection's events and writes what it has, until neither brings more.
    fn service(&mut self, token: usize, now: Instant, routes: &mut impl Routes) {
        loop {
            while let Some(event) = self
                .conns
                .get_mut(token)
                .and_then(|entry| entry.wire.poll_event())
            {
                self.on_event(token, event, now, routes);
            }
            let Some(entry) = self.conns.get_mut(token) else {
                return;
            };
            if entry.wire.write_to(now, &mut entry.socket) {
                if let Some(conn) = entry.id {
                    self.hub
                        .handle_input(now, HubInput::Conn(Input::Sent { conn }));
                }
            }
            // Writing may have brought an event (the write side to shut, the end).
            match entry.wire.poll_event() {
                Some(event) => self.on_event(token, event, now, routes),
                None => break,
            }
        }
        self.sync_deadline(token);
    }

    /// Acts on one event of the connection under `token`.
    fn on_event(&mut self, token: usize, event: ConnEvent, now: Instant, routes: &mut impl Routes) {
        let Some(entry) = self.conns.get_mut(token) else {
            return;
        };
        let response = match event {
            ConnEvent::Request(head) => routes.request(&head, entry.peer),
            ConnEvent::Body(_) => error_response(404, "no route here takes a body"),
            ConnEvent::Upgrade(head) => match routes.upgrade(&head, entry.peer) {
                Ok(mut params) => {
                    entry.admitted = true;
                    params.peer = params.peer.or(entry.peer);
                    match self.hub.open(now, params) {
                        Ok(id) => {
                            // The 101 goes out before anything the hub transmits.
                            let _ = entry.wire.accept(now);
                            entry.id = Some(id);
                            self.tokens.insert(id, token);
                            return;
                        }
                        Err(OpenError::ShuttingDown) => {
                            error_response(503, &OpenError::ShuttingDown.to_string())
                        }
                        Err(e) => error_response(400, &e.to_string()),
                    }
                }
                Err(refusal) => refusal,
            },
            ConnEvent::ShutdownWrite => {
                entry.socket.shutdown_write();
                return;
            }
            ConnEvent::Closed => {
                self.remove(token, now, routes);
                return;
            }
            event => {
                if let Some(input) = entry.id.and_then(|id| hub_input(id, event)) {
                    self.hub.handle_input(now, input);
                }
                return;
            }
        };
        let _ = entry.wire.respond(now, &response);
    }

    /// Queues a hub `Transmit` on its socket; with `close`, the hub is done with the
    /// connection, which closes after these frames.
    fn transmit(
        &mut self,
        id: ConnId,
        frames: Vec<bytes::Bytes>,
        close: bool,
        now: Instant,
        routes: &mut impl Routes,
    ) {
        // No token: the socket is gone and the hub was told (`Closed`).
        let Some(&token) = self.tokens.get(&id) else {
            return;
        };
        let Some(entry) = self.conns.get_mut(token) else {
            return;
        };
        let _ = entry.wire.send(frames); // encoded once for every recipient
        if close {
            self.tokens.remove(&id);
            entry.id = None;
            let _ = entry.wire.close(now);
        } else if !entry.wire.wants_write() {
            // Nothing to write: the batch is out already.
            self.hub
                .handle_input(now, HubInput::Conn(Input::Sent { conn: id }));
        }
        self.service(token, now, routes);
    }

    /// Keeps [`Host::deadlines`] in step with the connection's own deadline.
    fn sync_deadline(&mut self, token: usize) {
        let Some(entry) = self.conns.get_mut(token) else {
            return;
        };
        let at = entry.wire.poll_timeout();
        if entry.deadline == at {
            return;
        }
        if let Some(old) = std::mem::replace(&mut entry.deadline, at) {
            self.deadlines.remove(&(old, token));
        }
        if let Some(at) = at {
            self.deadlines.insert((at, token));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_socket_entry_is_small() {
        // Socket, peer address, the 40-byte ServerConn (no heap when idle), the hub's id,
        // the deadline and a flag.
        let size = std::mem::size_of::<Entry<std::net::TcpStream>>();
        assert!(size <= 128, "a socket entry is {size} bytes");
    }
}
