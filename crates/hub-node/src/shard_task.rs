//! One task per shard: feeds the shard its inputs, timers and sockets, and carries out its
//! outputs.
//!
//! The task waits for four things: the earliest deadline of the core and of its closing
//! sockets, control messages (opens, router inputs, write completions), client messages of
//! connections that run as their own tasks, and its sockets' readiness (see `sockets.rs`).
//! Each wake serves every one of them that is ready, then drains the core's outputs.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use hub_core::shard::{Event, Input, OpenError, OpenParams, Output, Shard};
use hub_core::{node, ConnId, ShardId, ShardStats};
use tokio::sync::{mpsc, oneshot};

use crate::hub::{dispatch_event, Hub};
use crate::mailbox::{Link, Transmitted, WriteNow, WriterCmd};
use crate::node_task::NodeMsg;
use crate::runtime::Runtime;
use crate::sockets::{Ctx, Sockets};

/// Inputs taken per turn before outputs are drained (bounds latency under load).
const TURN_BUDGET: usize = 256;
/// Client messages that may wait for a shard before readers are slowed down.
pub(crate) const DATA_QUEUE: usize = 4096;

/// A request for a shard task.
pub(crate) enum ShardMsg {
    /// Open a connection over a TCP socket the shard task then owns (see `sockets.rs`).
    /// `leftover` holds what the client sent right after the upgrade request; `limited`, the
    /// address whose place in the connection limiter the connection holds.
    Adopt {
        params: OpenParams,
        socket: std::net::TcpStream,
        leftover: Bytes,
        limited: Option<IpAddr>,
    },
    /// Open a connection that runs as its own task, whose frames go through `link`.
    Open {
        params: OpenParams,
        link: SharedLink,
        reply: oneshot::Sender<Result<ConnId, OpenError>>,
    },
    /// Feed an input.
    Input(Input),
    /// Report counters and gauges.
    Snapshot(oneshot::Sender<ShardSnap>),
}

/// A shard's gauges and counters at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardSnap {
    pub(crate) connections: usize,
    pub(crate) rooms: usize,
    pub(crate) queued_bytes: usize,
    pub(crate) stats: ShardStats,
}

/// The two channels into a shard task: control (unbounded: opens, router inputs, write
/// completions) and data (bounded: messages from the clients of connections that run as
/// their own tasks, so a flooding client is slowed down; the shard reads its own sockets).
#[derive(Clone)]
pub(crate) struct ShardTx {
    pub(crate) control: mpsc::UnboundedSender<ShardMsg>,
    pub(crate) data: mpsc::Sender<Input>,
}

/// The receiving ends, for the task.
pub(crate) struct ShardRx {
    pub(crate) control: mpsc::UnboundedReceiver<ShardMsg>,
    pub(crate) data: mpsc::Receiver<Input>,
}

/// A shard's channels.
pub(crate) fn channels() -> (ShardTx, ShardRx) {
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE);
    (
        ShardTx {
            control: control_tx,
            data: data_tx,
        },
        ShardRx {
            control: control_rx,
            data: data_rx,
        },
    )
}

struct ShardTask {
    shard: Shard,
    /// The sockets the task owns.
    sockets: Sockets,
    /// The link of each open connection that runs as its own task, by slot.
    links: Vec<Option<(ConnId, SharedLink)>>,
    node: mpsc::UnboundedSender<NodeMsg>,
    hub: Hub,
    /// This shard's Pusher connections (their events go to the node's Pusher sessions).
    pusher_conns: std::collections::HashSet<ConnId>,
}

/// What is ready for a shard task when it wakes: every source is polled on each wake, so
/// none waits behind a busy other.
#[derive(Default)]
struct Wake {
    timer: bool,
    /// A control message, or `None` when the channel closed.
    control: Option<Option<ShardMsg>>,
    /// A client message, or `None` when the channel closed.
    data: Option<Option<Input>>,
    sockets: bool,
}

/// A sleep until a deadline, kept while the deadline stays the same.
type Timer = Option<(Instant, Pin<Box<dyn Future<Output = ()> + Send>>)>;

/// Runs a shard until its channels close.
pub(crate) async fn run<R: Runtime>(
    rt: R,
    shard: Shard,
    sockets: Sockets,
    mut rx: ShardRx,
    node: mpsc::UnboundedSender<NodeMsg>,
    hub: Hub,
) {
    let mut task = ShardTask {
        shard,
        sockets,
        links: Vec::new(),
        node,
        hub,
        pusher_conns: std::collections::HashSet::new(),
    };
    let mut timer: Timer = None;
    loop {
        let deadline = earliest(task.shard.poll_timeout(), task.sockets.next_deadline());
        if timer.as_ref().map(|(at, _)| *at) != deadline {
            timer = deadline.map(|at| (at, Box::pin(rt.sleep_until(at)) as Pin<Box<_>>));
        }
        let wake = std::future::poll_fn(|cx| {
            let mut wake = Wake::default();
            if let Some((_, sleep)) = timer.as_mut() {
                wake.timer = sleep.as_mut().poll(cx).is_ready();
            }
            if let Poll::Ready(msg) = rx.control.poll_recv(cx) {
                wake.control = Some(msg);
            }
            if let Poll::Ready(input) = rx.data.poll_recv(cx) {
                wake.data = Some(input);
            }
            wake.sockets = task.sockets.poll_ready(cx).is_ready();
            let ready = wake.timer || wake.control.is_some() || wake.data.is_some() || wake.sockets;
            if ready {
                Poll::Ready(wake)
            } else {
                Poll::Pending
            }
        })
        .await;
        if wake.timer {
            timer = None;
            let now = Instant::now();
            task.shard.handle_timeout(now);
            task.sockets.expire(now, &task.hub);
        }
        if let Some(msg) = wake.control {
            let Some(msg) = msg else { break };
            task.control(msg);
            for _ in 0..TURN_BUDGET {
                match rx.control.try_recv() {
                    Ok(msg) => task.control(msg),
                    Err(_) => break,
                }
            }
        }
        if let Some(input) = wake.data {
            let Some(input) = input else { break };
            let now = Instant::now();
            task.input(now, input);
            for _ in 0..TURN_BUDGET {
                match rx.data.try_recv() {
                    Ok(input) => task.input(now, input),
                    Err(_) => break,
                }
            }
        }
        if wake.sockets {
            let mut cx = Ctx {
                shard: &mut task.shard,
                hub: &task.hub,
                now: Instant::now(),
            };
            task.sockets.turn(&mut cx);
        }
        task.drain();
        let deferred = task.sockets.take_deferred();
        if let Some(tx) = task.hub.shard_tx(task.shard.id()) {
            for input in deferred {
                let _ = tx.control.send(ShardMsg::Input(input));
            }
        }
        if task.sockets.has_more() {
            // A socket has more to read: let the thread's other tasks run first.
            yield_now().await;
        }
    }
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Lets the executor run other tasks once, whatever the runtime.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

/// A connection's link as the shard task holds it.
pub(crate) type SharedLink = Arc<Link<dyn WriteNow>>;

/// The link of `conn` in a shard task's table.
fn link_of(links: &[Option<(ConnId, SharedLink)>], conn: ConnId) -> Option<&SharedLink> {
    match links.get(conn.slot as usize) {
        Some(Some((id, link))) if *id == conn => Some(link),
        _ => None,
    }
}

/// Completes at `deadline`, or never when there is none.
pub(crate) async fn next_deadline<R: Runtime>(rt: &R, deadline: Option<Instant>) {
    match deadline {
        Some(at) => rt.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl ShardTask {
    fn control(&mut self, msg: ShardMsg) {
        let now = Instant::now();
        match msg {
            ShardMsg::Adopt {
                params,
                socket,
                leftover,
                limited,
            } => self.adopt(now, params, socket, &leftover, limited),
            ShardMsg::Open {
                params,
                link,
                reply,
            } => {
                let result = self.shard.open(now, params);
                if let Ok(id) = result {
                    let slot = id.slot as usize;
                    if self.links.len() <= slot {
                        self.links.resize(slot + 1, None);
                    }
                    self.links[slot] = Some((id, link));
                }
                let opened = result.as_ref().ok().copied();
                if reply.send(result).is_err() {
                    // The connection task is gone already: forget the connection.
                    if let Some(id) = opened {
                        self.shard.handle_input(now, Input::Closed { conn: id });
                        self.forget(id);
                    }
                }
            }
            ShardMsg::Input(input) => self.input(now, input),
            ShardMsg::Snapshot(reply) => {
                let _ = reply.send(ShardSnap {
                    connections: self.shard.connection_count(),
                    rooms: self.shard.room_count(),
                    queued_bytes: self.shard.queued_bytes(),
                    stats: *self.shard.stats(),
                });
            }
        }
    }

    /// Opens a connection over `socket` and hands the socket to the table.
    fn adopt(
        &mut self,
        now: Instant,
        params: OpenParams,
        socket: std::net::TcpStream,
        leftover: &[u8],
        limited: Option<IpAddr>,
    ) {
        let peer = params.peer;
        match self.shard.open(now, params) {
            Ok(id) => {
                self.hub.connection_started(id);
                let mut cx = Ctx {
                    shard: &mut self.shard,
                    hub: &self.hub,
                    now,
                };
                self.sockets.adopt(&mut cx, id, socket, leftover, limited);
            }
            Err(e) => {
                tracing::warn!(?peer, error = %e, "connection not opened");
                if let Some(ip) = limited {
                    crate::http::release(&self.hub, ip);
                }
            }
        }
    }

    /// Hands the events of Pusher connections to the node's Pusher sessions and feeds what
    /// they answer to this shard (the shard of the connection concerned).
    fn pusher_event(&mut self, now: Instant, event: &Event) {
        let conn = match event {
            Event::Connected {
                conn, app: Some(_), ..
            } => {
                self.pusher_conns.insert(*conn);
                *conn
            }
            Event::Message { conn, .. } | Event::Disconnected { conn, .. } => *conn,
            _ => return,
        };
        if !self.pusher_conns.contains(&conn) {
            return;
        }
        if matches!(event, Event::Disconnected { .. }) {
            self.pusher_conns.remove(&conn);
        }
        let inputs: Vec<Input> = {
            let Ok(mut sessions) = self.hub.inner.pusher.lock() else {
                return;
            };
            match event {
                Event::Connected {
                    conn,
                    client,
                    app: Some(app),
                    ..
                } => sessions.opened(*conn, client.clone(), app),
                Event::Message {
                    conn,
                    data,
                    binary: false,
                } => sessions.message(*conn, data),
                Event::Disconnected { conn, .. } => sessions.closed(*conn),
                _ => return,
            }
            std::iter::from_fn(|| sessions.poll_input()).collect()
        };
        for input in inputs {
            self.shard.handle_input(now, input);
        }
    }

    fn input(&mut self, now: Instant, input: Input) {
        if let Input::Closed { conn } = &input {
            self.forget(*conn);
        }
        self.shard.handle_input(now, input);
    }

    fn forget(&mut self, conn: ConnId) {
        if let Some(entry) = self.links.get_mut(conn.slot as usize) {
            if entry.as_ref().is_some_and(|(id, _)| *id == conn) {
                *entry = None;
            }
        }
    }

    fn drain(&mut self) {
        let shard_id: ShardId = self.shard.id();
        let now = Instant::now();
        while let Some(output) = self.shard.poll_output() {
            match output {
                Output::Transmit {
                    conn,
                    frames,
                    close,
                } => {
                    if self.sockets.owns(conn) {
                        let mut cx = Ctx {
                            shard: &mut self.shard,
                            hub: &self.hub,
                            now,
                        };
                        self.sockets.transmit(&mut cx, conn, frames, close);
                        continue;
                    }
                    let Some(link) = link_of(&self.links, conn) else {
                        continue;
                    };
                    if close {
                        link.mailbox.put(WriterCmd::Transmit { frames, close });
                        self.forget(conn);
                    } else if link.transmit(frames) == Transmitted::Written {
                        // Written through: sent now; the connection's next batch, if any,
                        // comes out of this same loop.
                        self.shard.handle_input(now, Input::Sent { conn });
                    }
                }
                Output::Abort { conn } => {
                    if self.sockets.abort(&self.hub, conn) {
                        continue;
                    }
                    if let Some(link) = link_of(&self.links, conn) {
                        link.mailbox.put(WriterCmd::Abort);
                    }
                    self.forget(conn);
                }
                Output::Event(event) => {
                    self.pusher_event(now, &event);
                    dispatch_event(&self.hub, &event);
                }
                Output::Report(report) => {
                    let _ = self.node.send(NodeMsg::Input(node::Input::Shard {
                        shard: shard_id,
                        report,
                    }));
                }
            }
        }
    }
}
