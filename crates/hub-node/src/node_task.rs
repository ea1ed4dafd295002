//! The router task: one per node, between the shards, the callers of the producer API and
//! (in a cluster) the registry, the bus and the peers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use hub_core::node::{self, Command, NodeStats, Output, Reply};
use hub_core::PresenceEvent;
use hub_core::{NodeId, RequestId};
use hub_mesh::{Cluster, ClusterCmd};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::runtime::Runtime;
use crate::shard_task::{next_deadline, ShardMsg, ShardTx};

/// A request for the router task.
pub(crate) enum NodeMsg {
    /// Feed an input (shard reports, cluster events).
    Input(node::Input),
    /// Run a command and send back its reply.
    Command {
        command: Command,
        reply: oneshot::Sender<Reply>,
    },
    /// Report the router's state.
    Snapshot(oneshot::Sender<NodeSnap>),
}

/// The router's state at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeSnap {
    pub(crate) stats: NodeStats,
    /// Rooms with members on this node.
    pub(crate) rooms: usize,
    pub(crate) peers: Vec<NodeId>,
}

/// Runs the router until its channel closes.
pub(crate) async fn run<R: Runtime>(
    rt: R,
    mut router: node::Router,
    mut rx: mpsc::UnboundedReceiver<NodeMsg>,
    shards: Vec<ShardTx>,
    cluster: Option<Arc<Cluster>>,
    presence: broadcast::Sender<PresenceEvent>,
) {
    let mut replies: HashMap<u64, oneshot::Sender<Reply>> = HashMap::new();
    let mut next_req: u64 = 1;
    loop {
        let timer = next_deadline(&rt, router.poll_timeout());
        tokio::pin!(timer);
        tokio::select! {
            biased;
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                let now = Instant::now();
                let mut next = Some(msg);
                let mut budget = 256;
                while let Some(msg) = next.take() {
                    match msg {
                        NodeMsg::Input(input) => router.handle_input(now, input),
                        NodeMsg::Command { command, reply } => {
                            let req = next_req;
                            next_req += 1;
                            replies.insert(req, reply);
                            router.handle_input(now, node::Input::Command { req: RequestId(req), command });
                        }
                        NodeMsg::Snapshot(reply) => {
                            let _ = reply.send(NodeSnap {
                                stats: *router.stats(),
                                rooms: router.room_count(),
                                peers: router.peers().cloned().collect(),
                            });
                        }
                    }
                    budget -= 1;
                    if budget > 0 {
                        next = rx.try_recv().ok();
                    }
                }
            }
            () = &mut timer => router.handle_timeout(Instant::now()),
        }
        while let Some(output) = router.poll_output() {
            match output {
                Output::ToShard { shard, input } => {
                    if let Some(tx) = shards.get(usize::from(shard.0)) {
                        let _ = tx.control.send(ShardMsg::Input(input));
                    }
                }
                Output::Reply { req, reply } => {
                    if let Some(tx) = replies.remove(&req.0) {
                        let _ = tx.send(reply);
                    }
                }
                Output::ToPeer { node, message } => {
                    if let Some(cluster) = &cluster {
                        cluster.send(ClusterCmd::ToPeer { node, message });
                    }
                }
                Output::Registry(command) => {
                    if let Some(cluster) = &cluster {
                        cluster.send(ClusterCmd::Registry(command));
                    }
                }
                Output::Bus(command) => {
                    if let Some(cluster) = &cluster {
                        cluster.send(ClusterCmd::Bus(command));
                    }
                }
                Output::History(command) => {
                    if let Some(cluster) = &cluster {
                        cluster.send(ClusterCmd::History(command));
                    }
                }
                // Nobody listening is fine: the event is dropped.
                Output::Presence(event) => {
                    let _ = presence.send(event);
                }
            }
        }
    }
}
