//! One task per shard: feeds the shard its inputs and timers, and carries out its outputs.

use std::sync::Arc;
use std::time::Instant;

use hub_core::shard::{Input, OpenError, OpenParams, Output, Shard};
use hub_core::{node, ConnId, ShardId, ShardStats};
use tokio::sync::{mpsc, oneshot};

use crate::hub::{dispatch_event, Hub};
use crate::mailbox::{Link, Transmitted, WriteNow, WriterCmd};
use crate::node_task::NodeMsg;
use crate::runtime::Runtime;

/// Inputs taken per turn before outputs are drained (bounds latency under load).
const TURN_BUDGET: usize = 256;
/// Client messages that may wait for a shard before readers are slowed down.
pub(crate) const DATA_QUEUE: usize = 4096;

/// A request for a shard task.
pub(crate) enum ShardMsg {
    /// Open a connection whose frames go through `link`.
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

/// The two ways into a shard task: control (unbounded: opens, router inputs, write
/// completions) and data (bounded: client messages, so a flooding client is slowed down).
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
    /// Each open connection's link, by slot.
    links: Vec<Option<(ConnId, SharedLink)>>,
    node: mpsc::UnboundedSender<NodeMsg>,
    hub: Hub,
}

/// Runs a shard until its channels close.
pub(crate) async fn run<R: Runtime>(
    rt: R,
    shard: Shard,
    mut rx: ShardRx,
    node: mpsc::UnboundedSender<NodeMsg>,
    hub: Hub,
) {
    let mut task = ShardTask {
        shard,
        links: Vec::new(),
        node,
        hub,
    };
    loop {
        let deadline = task.shard.poll_timeout();
        let timer = next_deadline(&rt, deadline);
        tokio::pin!(timer);
        tokio::select! {
            biased;
            msg = rx.control.recv() => {
                let Some(msg) = msg else { break };
                task.control(msg);
                for _ in 0..TURN_BUDGET {
                    match rx.control.try_recv() {
                        Ok(msg) => task.control(msg),
                        Err(_) => break,
                    }
                }
            }
            input = rx.data.recv() => {
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
            () = &mut timer => {
                task.shard.handle_timeout(Instant::now());
            }
        }
        task.drain();
    }
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
        let mut now = None;
        while let Some(output) = self.shard.poll_output() {
            match output {
                Output::Transmit {
                    conn,
                    frames,
                    close,
                } => {
                    let Some(link) = link_of(&self.links, conn) else {
                        continue;
                    };
                    if close {
                        link.mailbox.put(WriterCmd::Transmit { frames, close });
                        self.forget(conn);
                    } else if link.transmit(frames) == Transmitted::Written {
                        // Written through: sent now; the connection's next batch, if any,
                        // comes out of this same loop.
                        let now = *now.get_or_insert_with(Instant::now);
                        self.shard.handle_input(now, Input::Sent { conn });
                    }
                }
                Output::Abort { conn } => {
                    if let Some(link) = link_of(&self.links, conn) {
                        link.mailbox.put(WriterCmd::Abort);
                    }
                    self.forget(conn);
                }
                Output::Event(event) => dispatch_event(&self.hub, &event),
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
