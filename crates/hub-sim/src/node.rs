//! One simulated node: a [`Node`] router and its [`Shard`]s wired together in-process.

use std::collections::BTreeMap;
use std::time::Instant;

use hub_core::node::{
    BusCommand, Input as NodeInput, Output as NodeOutput, PeerMessage, RegistryCommand, Reply,
};
use hub_core::shard::{Input as ShardInput, Output as ShardOutput};
use hub_core::{ConnId, Node, NodeId, RequestId, Shard, ShardId};

use crate::client::SimClient;

/// What a node asks of the outside world, for the [`Sim`](crate::Sim) to carry out.
#[derive(Debug, Clone)]
pub(crate) enum External {
    Peer(NodeId, PeerMessage),
    Registry(RegistryCommand),
    Bus(BusCommand),
}

/// A router and its shards. Reports go straight to the router and `ToShard` inputs straight
/// to the shard, at the same instant: in-process wiring has no delay.
#[derive(Debug)]
pub struct SimNode {
    pub(crate) id: NodeId,
    pub(crate) router: Node,
    pub(crate) shards: Vec<Shard>,
    /// Open connections and the client each belongs to.
    pub(crate) conns: BTreeMap<ConnId, usize>,
    pub(crate) replies: BTreeMap<RequestId, Reply>,
    pub(crate) alive: bool,
    pub(crate) next_shard: usize,
}

impl SimNode {
    /// The node's name.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The router.
    pub fn router(&self) -> &Node {
        &self.router
    }

    /// The shards.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Whether the node is running (not crashed).
    pub fn is_alive(&self) -> bool {
        self.alive
    }

    /// Open connections over all shards.
    pub fn connection_count(&self) -> usize {
        self.shards.iter().map(Shard::connection_count).sum()
    }

    /// The earliest deadline of the router and the shards.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let shards = self.shards.iter().filter_map(Shard::poll_timeout);
        shards.chain(self.router.poll_timeout()).min()
    }

    /// Fires every timer due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.router.poll_timeout().is_some_and(|t| t <= now) {
            self.router.handle_timeout(now);
        }
        for shard in &mut self.shards {
            if shard.poll_timeout().is_some_and(|t| t <= now) {
                shard.handle_timeout(now);
            }
        }
    }

    /// Feeds the router one input.
    pub(crate) fn router_input(&mut self, now: Instant, input: NodeInput) {
        self.router.handle_input(now, input);
    }

    /// Feeds a shard one input.
    pub(crate) fn shard_input(&mut self, now: Instant, shard: ShardId, input: ShardInput) {
        if let Some(s) = self.shards.get_mut(usize::from(shard.0)) {
            s.handle_input(now, input);
        }
    }

    /// Drains every output of the shards and the router until all are quiet; what must
    /// leave the node goes to `out`.
    pub(crate) fn pump(
        &mut self,
        now: Instant,
        clients: &mut [SimClient],
        out: &mut Vec<External>,
    ) {
        loop {
            let mut busy = false;
            for s in 0..self.shards.len() {
                while let Some(output) = self.shards[s].poll_output() {
                    busy = true;
                    self.shard_output(now, s, output, clients);
                }
            }
            while let Some(output) = self.router.poll_output() {
                busy = true;
                match output {
                    NodeOutput::ToShard { shard, input } => self.shard_input(now, shard, input),
                    NodeOutput::Reply { req, reply } => {
                        self.replies.insert(req, reply);
                    }
                    NodeOutput::ToPeer { node, message } => out.push(External::Peer(node, message)),
                    NodeOutput::Registry(command) => out.push(External::Registry(command)),
                    NodeOutput::Bus(command) => out.push(External::Bus(command)),
                }
            }
            if !busy {
                return;
            }
        }
    }

    fn shard_output(
        &mut self,
        now: Instant,
        s: usize,
        output: ShardOutput,
        clients: &mut [SimClient],
    ) {
        let shard = ShardId(s as u16);
        match output {
            ShardOutput::Transmit {
                conn,
                frames,
                close,
            } => {
                let Some(client) = self.conns.get(&conn).and_then(|k| clients.get_mut(*k)) else {
                    return;
                };
                let pinged = client.read(&frames);
                if close {
                    client.gone();
                    self.conns.remove(&conn);
                    return;
                }
                let slow = client.slow;
                if slow {
                    client.unacked = true;
                } else {
                    self.shard_input(now, shard, ShardInput::Sent { conn });
                }
                if pinged && !slow {
                    // The client's pong: any traffic proves it alive.
                    self.shard_input(now, shard, ShardInput::Activity { conn });
                }
            }
            ShardOutput::Abort { conn } => {
                if let Some(client) = self.conns.remove(&conn).and_then(|k| clients.get_mut(k)) {
                    client.gone();
                }
            }
            ShardOutput::Event(_) => {}
            ShardOutput::Report(report) => {
                self.router_input(now, NodeInput::Shard { shard, report });
            }
        }
    }
}
