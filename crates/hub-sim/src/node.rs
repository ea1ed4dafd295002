//! One simulated node: a [`Hub`] (router and shards wired in-process) and its clients.

use std::collections::BTreeMap;
use std::time::Instant;

use hub_core::shard::Input as ShardInput;
use hub_core::{ClusterOutput, ConnId, Hub, HubInput, HubOutput, NodeId, RequestId, Router, Shard};

use crate::client::SimClient;

/// The answers a node gave to commands, by request and by kind.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    pub(crate) delivered: BTreeMap<RequestId, u64>,
    pub(crate) online: BTreeMap<RequestId, Option<NodeId>>,
    pub(crate) disconnected: BTreeMap<RequestId, bool>,
}

/// A node's hub. Reports go straight to the router and `ToShard` inputs straight to the
/// shard, at the same instant: in-process wiring has no delay.
#[derive(Debug)]
pub struct SimNode {
    pub(crate) id: NodeId,
    pub(crate) hub: Hub,
    /// Open connections and the client each belongs to.
    pub(crate) conns: BTreeMap<ConnId, usize>,
    pub(crate) answers: Answers,
    pub(crate) alive: bool,
}

impl SimNode {
    /// The node's name.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The hub: the node's router and shards.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The router.
    pub fn router(&self) -> &Router {
        self.hub.router()
    }

    /// The shards.
    pub fn shards(&self) -> &[Shard] {
        self.hub.shards()
    }

    /// Whether the node is running (not crashed).
    pub fn is_alive(&self) -> bool {
        self.alive
    }

    /// Open connections over all shards.
    pub fn connection_count(&self) -> usize {
        self.hub.connection_count()
    }

    /// The hub's next deadline.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.hub.poll_timeout()
    }

    /// Fires every timer due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.hub.poll_timeout().is_some_and(|at| at <= now) {
            self.hub.handle_timeout(now);
        }
    }

    /// Feeds the hub one input.
    pub(crate) fn input(&mut self, now: Instant, input: HubInput) {
        self.hub.handle_input(now, input);
    }

    /// Drains the hub's outputs: transmits reach the clients (who acknowledge them unless
    /// slow, and answer pings), answers are kept, and what must leave the node goes to `out`.
    pub(crate) fn pump(
        &mut self,
        now: Instant,
        clients: &mut [SimClient],
        out: &mut Vec<ClusterOutput>,
    ) {
        while let Some(output) = self.hub.poll_output() {
            match output {
                HubOutput::Transmit {
                    conn,
                    frames,
                    close,
                } => {
                    let Some(client) = self.conns.get(&conn).and_then(|k| clients.get_mut(*k))
                    else {
                        continue;
                    };
                    let pinged = client.read(&frames);
                    if close {
                        client.gone();
                        self.conns.remove(&conn);
                        continue;
                    }
                    if client.slow {
                        client.unacked = true;
                        continue;
                    }
                    self.input(now, HubInput::Conn(ShardInput::Sent { conn }));
                    if pinged {
                        // The client's pong: any traffic proves it alive.
                        self.input(now, HubInput::Conn(ShardInput::Activity { conn }));
                    }
                }
                HubOutput::Abort { conn } => {
                    if let Some(client) = self.conns.remove(&conn).and_then(|k| clients.get_mut(k))
                    {
                        client.gone();
                    }
                }
                // Presence is read from the hub's router directly (`Hub::router`).
                HubOutput::Event(_) | HubOutput::Presence { .. } | HubOutput::PresenceEvent(_) => {}
                HubOutput::Delivered { req, count } => {
                    self.answers.delivered.insert(req, count);
                }
                HubOutput::Online { req, node } => {
                    self.answers.online.insert(req, node);
                }
                HubOutput::Disconnected { req, closed } => {
                    self.answers.disconnected.insert(req, closed);
                }
                // The simulation configures no history and asks no history query.
                HubOutput::Answer { .. } => {}
                HubOutput::Cluster(output) => out.push(output),
            }
        }
    }
}
