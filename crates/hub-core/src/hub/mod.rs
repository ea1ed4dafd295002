//! The embeddable hub: a node's [`Shard`]s and its router ([`Router`]) wired together in one
//! value, for runtimes that drive the whole node from one thread.
//!
//! A multi-threaded runtime runs each shard and the router on tasks of their own and carries
//! [`Report`](crate::shard::Report)s and `ToShard` inputs between them itself; a
//! single-threaded embedder feeds one [`Hub`] and drains one output queue instead. Inside the
//! hub a shard's report goes to the router and the router's input for a shard goes to that
//! shard at once, at the `now` of the latest call (in-process wiring has no delay).
//!
//! Invariants:
//! - every [`HubInput::Command`] gets exactly one answer (`Delivered`, `Online` or
//!   `Disconnected`, as the command says) with its `req`;
//! - [`Hub::poll_timeout`] is O(1), and after `handle_timeout(now)` it is `None` or later
//!   than `now` (it may name a deadline that has since gone: calling early is harmless);
//! - `now` never goes backwards: an earlier `now` than one already given counts as the
//!   latest one;
//! - outputs are deterministic: the same calls give the same outputs in the same order.

mod io;

use std::time::Instant;

use crate::config::{Config, ConfigError};
use crate::ids::{shard_for, ConnId, ShardId};
use crate::node::{Input as RouterInput, NodeConfig, Output as RouterOutput, Reply, Router};
use crate::shard::{Input as ShardInput, OpenError, OpenParams, Output as ShardOutput, Shard};

pub use io::{ClusterOutput, HubInput, HubOutput};

/// A node's shards and router in one state machine.
///
/// Methods come in the usual four groups:
/// - getters ([`Hub::shards`], [`Hub::router`], [`Hub::connection_count`]);
/// - mutators: [`Hub::open`] (returns the new connection's id), [`Hub::handle_input`],
///   [`Hub::handle_timeout`];
/// - [`Hub::poll_output`]: drain after every mutation, until `None`;
/// - [`Hub::poll_timeout`]: when to call `handle_timeout` next.
#[derive(Debug)]
pub struct Hub {
    config: Config,
    shards: Vec<Shard>,
    router: Router,
    /// The latest `now` given; the wiring inside the hub runs at it.
    now: Option<Instant>,
    /// The first shard that may have outputs; `shards.len()` when none has.
    cursor: usize,
    /// The earliest shard deadline, or earlier (never later).
    earliest: Option<Instant>,
    /// The shard that gets the next connection without a client id, minus one.
    next_shard: usize,
}

impl Hub {
    /// A hub of `config.shard_count` shards and a router. The settings are validated, and
    /// the router must agree with the shards on the node id and the shard count.
    pub fn new(config: Config, router: NodeConfig) -> Result<Self, ConfigError> {
        if router.shard_count != config.shard_count {
            return Err(ConfigError {
                setting: "shards",
                problem: format!(
                    "the router expects {} shards, the shard settings say {}",
                    router.shard_count, config.shard_count
                ),
            });
        }
        if router.node_id != config.node_id {
            return Err(ConfigError {
                setting: "node-id",
                problem: "the router and the shards name different nodes".into(),
            });
        }
        if router.history != config.history {
            return Err(ConfigError {
                setting: "history",
                problem: "the router and the shards keep history for different rooms".into(),
            });
        }
        let shards = (0..config.shard_count)
            .map(|s| Shard::new(ShardId(s), config.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            config,
            cursor: shards.len(),
            shards,
            router: Router::new(router),
            now: None,
            earliest: None,
            next_shard: 0,
        })
    }

    // ----- getters -----

    /// The shards' settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The shards, in id order.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// The shard with this id.
    pub fn shard(&self, id: ShardId) -> Option<&Shard> {
        self.shards.get(usize::from(id.0))
    }

    /// The router.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Open connections over every shard (closing ones not counted).
    pub fn connection_count(&self) -> usize {
        self.shards.iter().map(Shard::connection_count).sum()
    }

    // ----- mutators -----

    /// Opens a connection on the shard that owns its client id (one generated when absent,
    /// on the shards in turn). See [`Shard::open`].
    pub fn open(&mut self, now: Instant, params: OpenParams) -> Result<ConnId, OpenError> {
        let now = self.advance(now);
        let count = self.shards.len();
        let shard = match &params.client {
            Some(client) => usize::from(shard_for(client.as_str(), count as u16).0),
            None => {
                self.next_shard = (self.next_shard + 1) % count.max(1);
                self.next_shard
            }
        };
        let Some(target) = self.shards.get_mut(shard) else {
            return Err(OpenError::ShuttingDown);
        };
        let opened = target.open(now, params);
        self.touched(shard);
        opened
    }

    /// Feeds one event. Drain [`Hub::poll_output`] afterwards.
    pub fn handle_input(&mut self, now: Instant, input: HubInput) {
        let now = self.advance(now);
        match input {
            HubInput::Conn(input) => {
                if let Some(conn) = socket_conn(&input) {
                    self.feed(now, conn.shard, input);
                }
            }
            HubInput::Command { req, command } => {
                self.router
                    .handle_input(now, RouterInput::Command { req, command });
            }
            HubInput::Cluster(input) => self.router.handle_input(now, input),
            HubInput::Shutdown => {
                for s in 0..self.shards.len() {
                    self.feed(now, ShardId(s as u16), ShardInput::Shutdown);
                }
            }
        }
    }

    /// Fires every timer due at `now`: heartbeats and drain deadlines on the shards, request
    /// deadlines in the router.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        if self.router.poll_timeout().is_some_and(|at| at <= now) {
            self.router.handle_timeout(now);
        }
        self.earliest = None;
        for shard in &mut self.shards {
            if shard.poll_timeout().is_some_and(|at| at <= now) {
                shard.handle_timeout(now);
            }
            self.earliest = earliest(self.earliest, shard.poll_timeout());
        }
        self.cursor = 0;
    }

    // ----- polls -----

    /// The next thing for the embedder to do. Call until `None` after every mutation.
    ///
    /// Shard reports and the router's inputs for shards are handled here, inside the hub;
    /// only what concerns sockets, the application, the callers and the cluster comes out.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<HubOutput> {
        let now = self.now?;
        loop {
            while let Some(shard) = self.shards.get_mut(self.cursor) {
                match shard.poll_output() {
                    None => self.cursor += 1,
                    Some(ShardOutput::Report(report)) => {
                        let shard = shard.id();
                        self.router
                            .handle_input(now, RouterInput::Shard { shard, report });
                    }
                    Some(ShardOutput::Transmit {
                        conn,
                        frames,
                        close,
                    }) => {
                        return Some(HubOutput::Transmit {
                            conn,
                            frames,
                            close,
                        })
                    }
                    Some(ShardOutput::Abort { conn }) => return Some(HubOutput::Abort { conn }),
                    Some(ShardOutput::Event(event)) => return Some(HubOutput::Event(event)),
                }
            }
            let cluster = match self.router.poll_output()? {
                RouterOutput::ToShard { shard, input } => {
                    self.feed(now, shard, input);
                    continue;
                }
                RouterOutput::Reply { req, reply } => {
                    return Some(match reply {
                        Reply::Delivered(count) => HubOutput::Delivered { req, count },
                        Reply::Online(node) => HubOutput::Online { req, node },
                        Reply::Disconnected(closed) => HubOutput::Disconnected { req, closed },
                        reply @ (Reply::History(_) | Reply::Position(_)) => {
                            HubOutput::Answer { req, reply }
                        }
                        Reply::Presence(reply) => HubOutput::Presence { req, reply },
                    })
                }
                RouterOutput::Presence(event) => return Some(HubOutput::PresenceEvent(event)),
                RouterOutput::ToPeer { node, message } => ClusterOutput::ToPeer { node, message },
                RouterOutput::Registry(command) => ClusterOutput::Registry(command),
                RouterOutput::Bus(command) => ClusterOutput::Bus(command),
                RouterOutput::History(command) => ClusterOutput::History(command),
            };
            return Some(HubOutput::Cluster(cluster));
        }
    }

    /// When [`Hub::handle_timeout`] must next be called; O(1).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(self.earliest, self.router.poll_timeout())
    }

    // ----- internals -----

    /// Takes `now` as the latest time unless an earlier call gave a later one.
    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |latest| latest.max(now));
        self.now = Some(now);
        now
    }

    /// Feeds shard `shard` one input (ignored for a shard the hub does not have).
    fn feed(&mut self, now: Instant, shard: ShardId, input: ShardInput) {
        let s = usize::from(shard.0);
        if let Some(target) = self.shards.get_mut(s) {
            target.handle_input(now, input);
            self.touched(s);
        }
    }

    /// Shard `s` was mutated: it may have outputs and an earlier deadline.
    fn touched(&mut self, s: usize) {
        self.cursor = self.cursor.min(s);
        if let Some(shard) = self.shards.get(s) {
            self.earliest = earliest(self.earliest, shard.poll_timeout());
        }
    }
}

/// The connection a socket event is for; `None` for the inputs that name no connection.
fn socket_conn(input: &ShardInput) -> Option<ConnId> {
    match input {
        ShardInput::Message { conn, .. }
        | ShardInput::Activity { conn }
        | ShardInput::Ping { conn, .. }
        | ShardInput::Close { conn, .. }
        | ShardInput::Closed { conn }
        | ShardInput::Sent { conn }
        | ShardInput::SetUser { conn, .. } => Some(*conn),
        ShardInput::Deliver { .. }
        | ShardInput::Sequenced { .. }
        | ShardInput::Recovered { .. }
        | ShardInput::Publish { .. }
        | ShardInput::Join { .. }
        | ShardInput::JoinAs { .. }
        | ShardInput::Leave { .. }
        | ShardInput::Disconnect { .. }
        | ShardInput::Lookup { .. }
        | ShardInput::Shutdown => None,
    }
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
