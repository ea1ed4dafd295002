//! The WebSocket connections a shard task runs itself, over TCP sockets it owns.
//!
//! After the upgrade, a TCP connection leaves the runtime's reactor ([`Conn::into_tcp`])
//! and joins its shard's poller: one epoll instance per shard (kqueue elsewhere, through
//! mio), whose own descriptor the runtime's reactor watches ([`Readiness`]). The shard task
//! reads the sockets the poller names, decodes their frames and feeds the core in place,
//! and writes what the core transmits straight to the socket. An idle connection thereby
//! costs no task, no reactor registration, no read buffer and no channel: one [`Open`]
//! entry in this table beside the core's own state.
//!
//! Invariants:
//! - A socket is registered once, for reading and writing, edge-triggered: each readiness is
//!   reported once, so a socket is read until it has no more (or, when its reads this turn
//!   are used up, it waits on the `again` list for the next turn) and written until it takes
//!   no more.
//! - Tokens carry the generation of their slot (open sockets) or entry (closing ones), so an
//!   event of a connection that ended never reaches the next one in its place.
//! - The core hands out one batch per connection until it is reported sent: the rest of a
//!   batch the socket did not take waits in the entry for the next writable event, and is
//!   reported sent once written.
//! - A socket the core is done with (its close frame, or its final frames at shutdown) moves
//!   to the closing table: it writes what is left within the drain timeout, then shuts its
//!   write side and reads and discards for at most [`LINGER`], so the client reads the close
//!   frame rather than a reset.
//!
//! [`Conn::into_tcp`]: crate::Conn::into_tcp

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hub_core::shard::{Input, Shard};
use hub_core::{ConnId, ShardId};
use hub_wire::ws::{Decoded, FrameDecoder};
use mio::unix::SourceFd;
use mio::{Events, Interest, Token};
use slab::Slab;

use crate::hub::Hub;
use crate::inputs::{message_input, protocol_close};
use crate::runtime::{write_until_blocked, Readiness};

/// How long a closed connection keeps reading (and discarding) so the client gets the close
/// frame instead of a reset (the same time as every server connection's).
pub(crate) use hub_wire::server::LINGER;
/// Reads of one socket per turn before the others get theirs.
const READS_PER_TURN: usize = 8;
/// The shard's read buffer, shared by all its sockets.
const READ_BUFFER: usize = 64 * 1024;
/// Socket events taken per turn (the outputs they cause are drained after each turn).
const EVENTS_PER_TURN: usize = 256;
/// Set in the tokens of closing sockets.
const CLOSING: usize = 1 << 63;
/// The bits of a token that hold a generation, above the 32 bits of slot or key.
const GEN_MASK: u32 = 0x7fff_ffff;

/// The sockets of one shard and the poller that watches them.
pub(crate) struct Sockets {
    shard: ShardId,
    poll: mio::Poll,
    readiness: Box<dyn Readiness>,
    events: Events,
    /// Open connections, by the core's slot.
    open: Vec<Option<Open>>,
    /// Sockets the core is done with, writing their last frames or lingering.
    closing: Slab<Closing>,
    /// When closing sockets stop waiting to write (the drain timeout), and to linger
    /// ([`LINGER`]); each in the order set, so the earliest first.
    write_deadlines: VecDeque<Deadline>,
    linger_deadlines: VecDeque<Deadline>,
    /// Sockets whose reads this turn were used up while they may hold more.
    again: Vec<Token>,
    /// This turn's work, taken from `events` and `again` (kept for its capacity).
    work: Vec<(Token, Ready)>,
    buf: Vec<u8>,
    decoded: Vec<Decoded>,
    /// Closes for protocol errors, fed after this turn's application events (see
    /// [`Sockets::take_deferred`]).
    deferred: Vec<Input>,
    /// Generation of the next closing entry.
    next_serial: u32,
    max_message_size: usize,
    drain_timeout: Duration,
}

/// An open connection's socket side.
struct Open {
    socket: TcpStream,
    /// The generation of the core's slot.
    gen: u32,
    /// False once the client closed or broke the protocol: what it sends is ignored until
    /// the shard transmits its close frame.
    reading: bool,
    decoder: FrameDecoder,
    /// What the socket did not take of the batch being written (boxed: rare, and every
    /// connection's entry holds the field).
    backlog: Option<Box<Backlog>>,
    /// The address whose place in the connection limiter this connection holds.
    limited: Option<IpAddr>,
}

/// Frames waiting for a full socket to drain, in order; the first may be partly written.
struct Backlog(Vec<Bytes>);

/// A socket the core is done with.
struct Closing {
    socket: TcpStream,
    conn: ConnId,
    serial: u32,
    /// Frames still to write; empty once lingering.
    frames: Vec<Bytes>,
    lingering: bool,
    limited: Option<IpAddr>,
}

/// When a closing entry's current wait ends.
struct Deadline {
    at: Instant,
    key: usize,
    serial: u32,
}

/// What an event said a socket is ready for.
#[derive(Clone, Copy)]
struct Ready {
    read: bool,
    write: bool,
}

/// What a socket's work needs of the shard task: the core, the node, the time.
pub(crate) struct Ctx<'a> {
    pub(crate) shard: &'a mut Shard,
    pub(crate) hub: &'a Hub,
    pub(crate) now: Instant,
}

impl Ctx<'_> {
    fn input(&mut self, input: Input) {
        self.shard.handle_input(self.now, input);
    }
}

/// A socket that is open (`false`) or closing (`true`) at `index` with generation `gen`.
fn token(closing: bool, index: usize, gen: u32) -> Token {
    let flag = if closing { CLOSING } else { 0 };
    Token(flag | ((gen & GEN_MASK) as usize) << 32 | index)
}

/// The parts of a token: closing, index, generation.
fn untoken(token: Token) -> (bool, usize, u32) {
    let t = token.0;
    (
        t & CLOSING != 0,
        t & 0xffff_ffff,
        (t >> 32) as u32 & GEN_MASK,
    )
}

/// `send` (one slice) or `sendmsg`: the cheapest ways to write to a socket.
fn send(socket: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    let socket = socket2::SockRef::from(socket);
    match slices {
        [one] => socket.send(one),
        _ => socket.send_vectored(slices),
    }
}

impl Sockets {
    /// A shard's empty table and its poller, watched by `rt`'s reactor.
    pub(crate) fn new<R: crate::Runtime>(
        rt: &R,
        shard: ShardId,
        max_message_size: usize,
        drain_timeout: Duration,
    ) -> io::Result<Sockets> {
        let poll = mio::Poll::new()?;
        let fd = poll.registry().as_fd().try_clone_to_owned()?;
        let readiness = Box::new(rt.readiness(fd)?);
        Ok(Sockets {
            shard,
            poll,
            readiness,
            events: Events::with_capacity(EVENTS_PER_TURN),
            open: Vec::new(),
            closing: Slab::new(),
            write_deadlines: VecDeque::new(),
            linger_deadlines: VecDeque::new(),
            again: Vec::new(),
            work: Vec::new(),
            buf: vec![0; READ_BUFFER],
            decoded: Vec::new(),
            deferred: Vec::new(),
            next_serial: 0,
            max_message_size,
            drain_timeout,
        })
    }

    /// Whether `conn` is one of this table's open connections.
    pub(crate) fn owns(&self, conn: ConnId) -> bool {
        self.entry(conn).is_some()
    }

    fn entry(&self, conn: ConnId) -> Option<&Open> {
        match self.open.get(conn.slot as usize) {
            Some(Some(open)) if open.gen == conn.gen => Some(open),
            _ => None,
        }
    }

    fn entry_mut(&mut self, conn: ConnId) -> Option<&mut Open> {
        match self.open.get_mut(conn.slot as usize) {
            Some(Some(open)) if open.gen == conn.gen => Some(open),
            _ => None,
        }
    }

    fn conn_id(&self, slot: usize, gen: u32) -> ConnId {
        ConnId {
            shard: self.shard,
            slot: slot as u32,
            gen,
        }
    }

    /// Takes over `socket` for `conn`, which the core just opened, and passes the core what
    /// the client sent right after the upgrade request (`leftover`).
    pub(crate) fn adopt(
        &mut self,
        cx: &mut Ctx<'_>,
        conn: ConnId,
        socket: TcpStream,
        leftover: &[u8],
        limited: Option<IpAddr>,
    ) {
        let token = token(false, conn.slot as usize, conn.gen);
        let registered = socket.set_nonblocking(true).and_then(|()| {
            let fd = SourceFd(&socket.as_raw_fd());
            let interest = Interest::READABLE | Interest::WRITABLE;
            self.poll.registry().register(&mut { fd }, token, interest)
        });
        if let Err(e) = registered {
            tracing::warn!(%conn, error = %e, "connection not polled");
            cx.input(Input::Closed { conn });
            cx.hub.connection_ended(conn, limited);
            return;
        }
        let slot = conn.slot as usize;
        if self.open.len() <= slot {
            self.open.resize_with(slot + 1, || None);
        }
        let mut open = Open {
            socket,
            gen: conn.gen,
            reading: true,
            decoder: FrameDecoder::new(self.max_message_size),
            backlog: None,
            limited,
        };
        if !leftover.is_empty() {
            take_in(
                cx,
                conn,
                &mut open,
                &mut self.decoded,
                &mut self.deferred,
                leftover,
            );
        }
        self.open[slot] = Some(open);
    }

    /// Writes a batch the core transmits to `conn` (one of this table's): straight to the
    /// socket, the rest when it drains. With `close`, the core is done with the connection.
    pub(crate) fn transmit(
        &mut self,
        cx: &mut Ctx<'_>,
        conn: ConnId,
        mut frames: Vec<Bytes>,
        close: bool,
    ) {
        let Some(open) = self.entry_mut(conn) else {
            return;
        };
        if close {
            let slot = conn.slot as usize;
            if let Some(open) = self.open[slot].take() {
                if let Some(mut backlog) = open.backlog {
                    backlog.0.append(&mut frames);
                    frames = backlog.0;
                }
                self.start_closing(cx, conn, open.socket, frames, open.limited);
            }
            return;
        }
        if let Some(backlog) = &mut open.backlog {
            // Not expected (one batch at a time), but order is kept if it happens.
            backlog.0.append(&mut frames);
            return;
        }
        match write_until_blocked(|slices| send(&open.socket, slices), &mut frames) {
            Ok(true) => cx.input(Input::Sent { conn }),
            Ok(false) => open.backlog = Some(Box::new(Backlog(frames))),
            Err(_) => self.gone(cx, conn),
        }
    }

    /// Drops `conn`'s socket at once (the core gave up on it); whether it was this table's.
    pub(crate) fn abort(&mut self, hub: &Hub, conn: ConnId) -> bool {
        if !self.owns(conn) {
            return false;
        }
        if let Some(open) = self.open[conn.slot as usize].take() {
            hub.connection_ended(conn, open.limited);
        }
        true
    }

    /// The socket of `conn` ended (end of stream, reset, write error): the core forgets it.
    fn gone(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        if let Some(Some(open)) = self.open.get_mut(conn.slot as usize).map(Option::take) {
            cx.input(Input::Closed { conn });
            cx.hub.connection_ended(conn, open.limited);
        }
    }

    /// `Ready` when a socket has something to do (see [`Sockets::turn`]).
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.again.is_empty() {
            return Poll::Ready(());
        }
        let Self {
            poll,
            readiness,
            events,
            ..
        } = self;
        let mut find = || loop {
            match poll.poll(events, Some(Duration::ZERO)) {
                Ok(()) => return !events.is_empty(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!(error = %e, "the shard's poller failed");
                    return false;
                }
            }
        };
        match readiness.poll_find(cx, &mut find) {
            Poll::Ready(Ok(())) => Poll::Ready(()),
            Poll::Ready(Err(e)) => {
                tracing::error!(error = %e, "the runtime stopped watching the shard's poller");
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Whether sockets still wait for their next reads (the task should let others run
    /// before the next turn).
    pub(crate) fn has_more(&self) -> bool {
        !self.again.is_empty()
    }

    /// The closes for protocol errors read this turn. The shard task feeds them through its
    /// control channel after dispatching the turn's events, so what a handler sends in
    /// answer to the messages read before the violation (queued on that channel) goes out
    /// before the close frame.
    pub(crate) fn take_deferred(&mut self) -> Vec<Input> {
        std::mem::take(&mut self.deferred)
    }

    /// Does what the last events and the `again` list ask: reads, writes, closes.
    pub(crate) fn turn(&mut self, cx: &mut Ctx<'_>) {
        let mut work = std::mem::take(&mut self.work);
        let read_only = Ready {
            read: true,
            write: false,
        };
        work.extend(self.again.drain(..).map(|token| (token, read_only)));
        for event in self.events.iter() {
            let ready = Ready {
                read: event.is_readable() || event.is_read_closed() || event.is_error(),
                write: event.is_writable() || event.is_write_closed() || event.is_error(),
            };
            work.push((event.token(), ready));
        }
        self.events.clear();
        for (token, ready) in work.drain(..) {
            match untoken(token) {
                (true, key, serial) => {
                    if self.closing.get(key).is_some_and(|c| c.serial == serial) {
                        self.progress_closing(cx.now, cx.hub, key);
                    }
                }
                (false, slot, gen) => {
                    let Some(Some(open)) = self.open.get(slot) else {
                        continue;
                    };
                    if open.gen & GEN_MASK != gen {
                        continue;
                    }
                    let conn = self.conn_id(slot, open.gen);
                    if ready.write {
                        self.flush(cx, conn);
                    }
                    if ready.read {
                        self.read(cx, conn);
                    }
                }
            }
        }
        self.work = work;
    }

    /// Writes more of `conn`'s backlog; reports the batch sent once it is all written.
    fn flush(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        let Some(open) = self.entry_mut(conn) else {
            return;
        };
        let Some(backlog) = open.backlog.as_mut() else {
            return;
        };
        match write_until_blocked(|slices| send(&open.socket, slices), &mut backlog.0) {
            Ok(true) => {
                open.backlog = None;
                cx.input(Input::Sent { conn });
            }
            Ok(false) => {}
            Err(_) => self.gone(cx, conn),
        }
    }

    /// Reads `conn`'s socket until it has no more, or its reads this turn are used up, and
    /// passes the core what the bytes complete.
    fn read(&mut self, cx: &mut Ctx<'_>, conn: ConnId) {
        let slot = conn.slot as usize;
        let Some(Some(open)) = self.open.get_mut(slot) else {
            return;
        };
        if open.gen != conn.gen {
            return;
        }
        for _ in 0..READS_PER_TURN {
            if !open.reading {
                return;
            }
            let n = match (&open.socket).read(&mut self.buf) {
                Ok(0) => return self.gone(cx, conn),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.gone(cx, conn),
            };
            take_in(
                cx,
                conn,
                open,
                &mut self.decoded,
                &mut self.deferred,
                &self.buf[..n],
            );
            if n < self.buf.len() {
                // A short read of a stream socket: it had no more.
                return;
            }
        }
        self.again.push(token(false, slot, open.gen));
    }

    /// Moves `conn`'s socket to the closing table: it writes `frames`, then lingers.
    fn start_closing(
        &mut self,
        cx: &mut Ctx<'_>,
        conn: ConnId,
        socket: TcpStream,
        frames: Vec<Bytes>,
        limited: Option<IpAddr>,
    ) {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1) & GEN_MASK;
        let entry = self.closing.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        let token = token(true, key, serial);
        let fd = SourceFd(&socket.as_raw_fd());
        if let Err(e) = self
            .poll
            .registry()
            .reregister(&mut { fd }, token, interest)
        {
            tracing::debug!(%conn, error = %e, "closing socket not polled");
            cx.hub.connection_ended(conn, limited);
            return;
        }
        entry.insert(Closing {
            socket,
            conn,
            serial,
            frames,
            lingering: false,
            limited,
        });
        self.write_deadlines.push_back(Deadline {
            at: cx.now + self.drain_timeout,
            key,
            serial,
        });
        self.progress_closing(cx.now, cx.hub, key);
    }

    /// Writes a closing socket's last frames, then shuts its write side and reads and
    /// discards until the client closes too.
    fn progress_closing(&mut self, now: Instant, hub: &Hub, key: usize) {
        let Some(closing) = self.closing.get_mut(key) else {
            return;
        };
        if !closing.lingering {
            let socket = &closing.socket;
            match write_until_blocked(|slices| send(socket, slices), &mut closing.frames) {
                Ok(true) => {}
                Ok(false) => return,
                Err(_) => return self.end_closing(hub, key),
            }
            if closing.socket.shutdown(Shutdown::Write).is_err() {
                return self.end_closing(hub, key);
            }
            closing.frames = Vec::new();
            closing.lingering = true;
            self.linger_deadlines.push_back(Deadline {
                at: now + LINGER,
                key,
                serial: closing.serial,
            });
        }
        for _ in 0..READS_PER_TURN {
            match (&closing.socket).read(&mut self.buf) {
                Ok(0) => return self.end_closing(hub, key),
                Ok(n) if n < self.buf.len() => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.end_closing(hub, key),
            }
        }
        self.again.push(token(true, key, closing.serial));
    }

    /// Drops a closing socket: the connection is over.
    fn end_closing(&mut self, hub: &Hub, key: usize) {
        if let Some(closing) = self.closing.try_remove(key) {
            hub.connection_ended(closing.conn, closing.limited);
        }
    }

    /// The earliest deadline of a closing socket.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let write = self.write_deadlines.front().map(|d| d.at);
        let linger = self.linger_deadlines.front().map(|d| d.at);
        match (write, linger) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends the closing sockets whose wait is over at `now`.
    pub(crate) fn expire(&mut self, now: Instant, hub: &Hub) {
        for lingering in [false, true] {
            loop {
                let deadlines = if lingering {
                    &mut self.linger_deadlines
                } else {
                    &mut self.write_deadlines
                };
                let Some(d) = deadlines.front().filter(|d| d.at <= now) else {
                    break;
                };
                let (key, serial) = (d.key, d.serial);
                deadlines.pop_front();
                let due = self
                    .closing
                    .get(key)
                    .is_some_and(|c| c.serial == serial && c.lingering == lingering);
                if due {
                    self.end_closing(hub, key);
                }
            }
        }
    }
}

/// Decodes `bytes` from `conn`'s client and passes the core what they complete, in order;
/// after a close frame or a protocol error, `open` stops reading. The close for a protocol
/// error goes to `deferred`: the application's answers to the messages before it come first.
fn take_in(
    cx: &mut Ctx<'_>,
    conn: ConnId,
    open: &mut Open,
    decoded: &mut Vec<Decoded>,
    deferred: &mut Vec<Input>,
    bytes: &[u8],
) {
    let result = open.decoder.decode(bytes, decoded);
    for message in decoded.drain(..) {
        let (input, ends) = message_input(conn, message);
        cx.input(input);
        if ends {
            open.reading = false;
            break;
        }
    }
    if let Err(e) = result {
        if open.reading {
            open.reading = false;
            deferred.push(protocol_close(conn, &e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_their_parts_apart() {
        for (closing, index, gen) in [
            (false, 0, 0),
            (true, 7, 3),
            (false, u32::MAX as usize, GEN_MASK),
            (true, 12, GEN_MASK),
        ] {
            assert_eq!(untoken(token(closing, index, gen)), (closing, index, gen));
        }
        // A generation past the mask wraps, as the tables' generations are compared masked.
        assert_eq!(untoken(token(false, 1, GEN_MASK + 2)), (false, 1, 1));
    }

    #[test]
    fn an_open_entry_stays_small() {
        // Every idle connection holds one; see BENCHMARKS.md, "Idle memory: findings".
        let size = std::mem::size_of::<Option<Open>>();
        assert!(size <= 64, "an open socket's entry is {size} bytes");
    }
}
