//! The simulated cluster: nodes, clients, links, a registry, a bus and a virtual clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hub_core::node::{
    BusCommand, ClusterEvent, Command, Input as NodeInput, PeerMessage, RegistryCommand,
};
use hub_core::shard::Input as ShardInput;
use hub_core::{
    protocol, BusKind, ClientId, ClusterMode, ClusterOutput, Config, Hub, HubInput, NodeConfig,
    NodeId, OpenError, OpenParams, RequestId, RoomName, Target,
};

use crate::client::{ClientKey, SimClient};
use crate::node::{Answers, SimNode};
use crate::rng::SimRng;

/// How a simulated cluster is built.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of nodes (named `n0`, `n1`, …).
    pub nodes: usize,
    /// Shards per node.
    pub shards: u16,
    /// The broadcast bus; `None` runs standalone nodes (no registry, no peers).
    pub bus: Option<BusKind>,
    /// Shard settings; `node_id` and `shard_count` are set per node.
    pub shard: Config,
    /// How long a router waits for peers and the registry.
    pub remote_timeout: Duration,
    /// How long a crashed node's lease lives on: its peers learn of the crash, and its
    /// registry entries read offline, this long after it.
    pub lease_ttl: Duration,
    /// Smallest one-way delay of a peer or bus message.
    pub min_delay: Duration,
    /// Largest one-way delay of a peer or bus message.
    pub max_delay: Duration,
    /// Peer and bus messages lost, per thousand.
    pub loss_per_mille: u16,
    /// How long the registry takes to answer a lookup.
    pub registry_delay: Duration,
    /// Seed of every random choice (delays, loss).
    pub seed: u64,
}

impl SimConfig {
    /// One standalone node with `shards` shards.
    pub fn standalone(shards: u16) -> Self {
        Self {
            nodes: 1,
            shards,
            bus: None,
            shard: Config::default(),
            remote_timeout: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(10),
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            loss_per_mille: 0,
            registry_delay: Duration::from_millis(1),
            seed: 1,
        }
    }

    /// `nodes` clustered nodes of `shards` shards each, with `bus`.
    pub fn cluster(nodes: usize, shards: u16, bus: BusKind) -> Self {
        Self {
            nodes,
            bus: Some(bus),
            ..Self::standalone(shards)
        }
    }
}

/// Something in flight between the nodes and the outside world.
#[derive(Debug, Clone)]
enum Pending {
    Peer {
        from: usize,
        to: usize,
        message: PeerMessage,
    },
    PeerFailed {
        to: usize,
        node: NodeId,
        id: Option<u64>,
    },
    Bus {
        to: usize,
        origin: NodeId,
        room: Option<RoomName>,
        frame: Bytes,
    },
    Registry {
        to: usize,
        req: RequestId,
        node: Option<NodeId>,
    },
    NodeDown {
        to: usize,
        down: NodeId,
    },
}

impl Pending {
    fn target(&self) -> usize {
        match self {
            Pending::Peer { to, .. }
            | Pending::PeerFailed { to, .. }
            | Pending::Bus { to, .. }
            | Pending::Registry { to, .. }
            | Pending::NodeDown { to, .. } => *to,
        }
    }
}

/// A deterministic simulation of a whole cluster in one thread.
///
/// Every node runs its router and shards in-process; peer messages and bus messages cross
/// simulated links with a seeded delay (FIFO per link) and loss; a stub registry answers
/// lookups and expires the entries of a crashed node with its lease; a stub Redis bus fans
/// publishes out to subscribed nodes (the publisher included, to exercise echo prevention).
/// Nothing happens between calls: time moves only in [`Sim::advance`] and friends, and
/// every due timer and message is handled in a fixed order, so a seed replays exactly.
#[derive(Debug)]
pub struct Sim {
    config: SimConfig,
    now: Instant,
    nodes: Vec<SimNode>,
    clients: Vec<SimClient>,
    rng: SimRng,
    pending: BTreeMap<(Instant, u64), Pending>,
    seq: u64,
    link_free: BTreeMap<(usize, usize, bool), Instant>,
    partitions: BTreeSet<(usize, usize)>,
    registry: BTreeMap<ClientId, usize>,
    crashed_at: Vec<Option<Instant>>,
    subscriptions: Vec<BTreeSet<RoomName>>,
    next_req: u64,
}

impl Sim {
    /// Builds the cluster; clustered nodes learn of each other at once.
    pub fn new(config: SimConfig) -> Result<Self, hub_core::ConfigError> {
        let now = Instant::now();
        let mode = match config.bus {
            Some(bus) => ClusterMode::Cluster { bus },
            None => ClusterMode::Standalone,
        };
        let mut nodes = Vec::with_capacity(config.nodes);
        for n in 0..config.nodes {
            let id = NodeId::from(format!("n{n}"));
            let shard_config = Config {
                node_id: id.clone(),
                shard_count: config.shards,
                seed: hub_core::Seed::from_u64(config.seed ^ ((n as u64) << 32)),
                ..config.shard.clone()
            };
            let router = NodeConfig {
                mode,
                remote_timeout: config.remote_timeout,
                seed: hub_core::Seed::from_u64(config.seed ^ ((n as u64) << 32)),
                ..NodeConfig::standalone(id.clone(), config.shards)
            };
            nodes.push(SimNode {
                id,
                hub: Hub::new(shard_config, router)?,
                conns: BTreeMap::new(),
                answers: Answers::default(),
                alive: true,
            });
        }
        let mut sim = Self {
            rng: SimRng::new(config.seed),
            crashed_at: vec![None; config.nodes],
            subscriptions: vec![BTreeSet::new(); config.nodes],
            config,
            now,
            nodes,
            clients: Vec::new(),
            pending: BTreeMap::new(),
            seq: 0,
            link_free: BTreeMap::new(),
            partitions: BTreeSet::new(),
            registry: BTreeMap::new(),
            next_req: 0,
        };
        if sim.config.bus.is_some() {
            for n in 0..sim.nodes.len() {
                for m in 0..sim.nodes.len() {
                    if n != m {
                        let up = ClusterEvent::NodeUp(sim.nodes[m].id.clone());
                        sim.cluster_input(n, NodeInput::Cluster(up));
                    }
                }
            }
        }
        Ok(sim)
    }

    // ----- getters -----

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Node `n`.
    pub fn node(&self, n: usize) -> &SimNode {
        &self.nodes[n]
    }

    /// A client.
    pub fn client(&self, key: ClientKey) -> &SimClient {
        &self.clients[key.0]
    }

    /// The answer to a `Deliver`, `Join` or `Leave` request made on node `n`, once it came.
    pub fn delivered(&self, n: usize, req: RequestId) -> Option<u64> {
        self.nodes[n].answers.delivered.get(&req).copied()
    }

    /// The answer to an `Online` request made on node `n`, once it came.
    pub fn online_answer(&self, n: usize, req: RequestId) -> Option<Option<NodeId>> {
        self.nodes[n].answers.online.get(&req).cloned()
    }

    /// The answer to a `Disconnect` request made on node `n`, once it came.
    pub fn disconnected(&self, n: usize, req: RequestId) -> Option<bool> {
        self.nodes[n].answers.disconnected.get(&req).copied()
    }

    /// Messages in flight between nodes, the registry and the bus.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    // ----- clients -----

    /// How many clients were ever connected (their keys are `0..client_count()`).
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Connects client `client` to node `n`, on the shard that owns its id.
    pub fn connect(&mut self, n: usize, client: &str) -> Result<ClientKey, OpenError> {
        let params = OpenParams {
            client: Some(ClientId::from(client)),
            ..OpenParams::default()
        };
        self.connect_with(n, params)
    }

    /// Connects a client to node `n` with the given parameters (a generated id lands on the
    /// shards in turn). A crashed node refuses with [`OpenError::ShuttingDown`].
    pub fn connect_with(&mut self, n: usize, params: OpenParams) -> Result<ClientKey, OpenError> {
        let node = &mut self.nodes[n];
        if !node.alive {
            return Err(OpenError::ShuttingDown);
        }
        let conn = node.hub.open(self.now, params)?;
        let id = node
            .hub
            .shard(conn.shard)
            .and_then(|shard| shard.connection(conn))
            .map(|info| info.client)
            .unwrap_or_else(|| ClientId::from(""));
        let key = ClientKey(self.clients.len());
        self.clients.push(SimClient::new(n, conn, id));
        node.conns.insert(conn, key.0);
        self.pump(n);
        Ok(key)
    }

    /// The client sends one text frame.
    pub fn send(&mut self, key: ClientKey, text: &str) {
        self.client_input(key, |conn| ShardInput::Message {
            conn,
            data: Bytes::copy_from_slice(text.as_bytes()),
            binary: false,
        });
    }

    /// Marks the client slow (it stops acknowledging writes) or reads again.
    pub fn set_slow(&mut self, key: ClientKey, slow: bool) {
        let client = &mut self.clients[key.0];
        client.slow = slow;
        if !slow && client.unacked {
            client.unacked = false;
            self.client_input(key, |conn| ShardInput::Sent { conn });
        }
    }

    /// The client's socket goes away.
    pub fn hang_up(&mut self, key: ClientKey) {
        self.client_input(key, |conn| ShardInput::Closed { conn });
        if let Some(conn) = self.clients[key.0].conn {
            self.nodes[self.clients[key.0].node].conns.remove(&conn);
        }
        self.clients[key.0].gone();
    }

    fn client_input(&mut self, key: ClientKey, input: impl FnOnce(hub_core::ConnId) -> ShardInput) {
        let client = &self.clients[key.0];
        let (n, Some(conn)) = (client.node, client.conn) else {
            return;
        };
        if !self.nodes[n].alive {
            return;
        }
        self.nodes[n].input(self.now, HubInput::Conn(input(conn)));
        self.pump(n);
    }

    // ----- the producer API -----

    /// Sends a command to node `n`'s router; the answer comes later (see [`Sim::delivered`],
    /// [`Sim::online_answer`] and [`Sim::disconnected`]).
    pub fn command(&mut self, n: usize, command: Command) -> RequestId {
        self.next_req += 1;
        let req = RequestId(self.next_req);
        self.input(n, HubInput::Command { req, command });
        req
    }

    /// Sends a command and runs the clock until `answer` has it (or far past any deadline).
    fn call<T>(
        &mut self,
        n: usize,
        command: Command,
        answer: impl Fn(&Sim, usize, RequestId) -> Option<T>,
    ) -> Option<T> {
        let req = self.command(n, command);
        let limit = self.config.remote_timeout * 2 + self.config.max_delay * 8;
        self.run_until(limit, |sim| answer(sim, n, req).is_some());
        answer(self, n, req)
    }

    /// `{"type":"message","data":data}` to `target`, through node `n`; the delivered count.
    pub fn deliver(&mut self, n: usize, target: Target, data: &str) -> Option<u64> {
        let room = match &target {
            Target::Room(r) => Some(r.as_str()),
            _ => None,
        };
        let frame = protocol::message(room, None, data);
        self.call(n, Command::Deliver { target, frame }, Sim::delivered)
    }

    /// Where node `n` says `client` is connected (`None` inside: offline).
    pub fn online(&mut self, n: usize, client: &str) -> Option<Option<NodeId>> {
        let client = ClientId::from(client);
        self.call(n, Command::Online { client }, Sim::online_answer)
    }

    /// Closes `client` wherever it is, through node `n`; whether a connection was closed.
    pub fn disconnect(&mut self, n: usize, client: &str) -> Option<bool> {
        let client = ClientId::from(client);
        self.call(n, Command::Disconnect { client }, Sim::disconnected)
    }

    // ----- faults -----

    /// Node `n` dies: its clients lose their sockets, messages to it fail, and after the
    /// lease TTL its peers get `NodeDown` and its registry entries read offline.
    pub fn crash(&mut self, n: usize) {
        if !self.nodes[n].alive {
            return;
        }
        self.nodes[n].alive = false;
        self.crashed_at[n] = Some(self.now);
        self.subscriptions[n].clear();
        for client in self.clients.iter_mut().filter(|c| c.node == n) {
            client.gone();
        }
        let at = self.now + self.config.lease_ttl;
        let down = self.nodes[n].id.clone();
        for to in 0..self.nodes.len() {
            if to != n && self.nodes[to].alive {
                let down = down.clone();
                self.schedule(at, Pending::NodeDown { to, down });
            }
        }
    }

    /// Messages between nodes `a` and `b` are lost silently, both ways, until healed.
    pub fn partition(&mut self, a: usize, b: usize) {
        self.partitions.insert((a.min(b), a.max(b)));
    }

    /// Cuts node `n` off from every other node (it stays up and keeps its lease).
    pub fn isolate(&mut self, n: usize) {
        for m in 0..self.nodes.len() {
            if m != n {
                self.partition(n, m);
            }
        }
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        self.partitions.clear();
    }

    // ----- the clock -----

    /// Moves the clock `by` forward, handling every due message and timer on the way, in
    /// time order (ties: messages first in the order sent, then nodes in index order).
    pub fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        self.run_until(by, |_| false);
        self.now = self.now.max(until);
    }

    /// Runs until no message is in flight (timers on the way fire as they fall due). After a
    /// crash this includes the peers' `NodeDown`, a lease TTL later.
    pub fn settle(&mut self) {
        while let Some(&(at, _)) = self.pending.keys().next() {
            let by = at.saturating_duration_since(self.now);
            self.run_until(by, |_| false);
        }
    }

    /// Runs event by event until `done` holds or `limit` has passed; whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let until = self.now + limit;
        for _ in 0..10_000_000u64 {
            if done(self) {
                return true;
            }
            let next = self.next_due();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.fire_due();
                }
                _ => return done(self),
            }
        }
        panic!("simulation does not settle: events keep falling due at the same time");
    }

    fn next_due(&self) -> Option<Instant> {
        let messages = self.pending.keys().next().map(|(at, _)| *at);
        let timers = self
            .nodes
            .iter()
            .filter(|n| n.alive)
            .filter_map(SimNode::poll_timeout);
        timers.chain(messages).min()
    }

    fn fire_due(&mut self) {
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let event = entry.remove();
            self.deliver_pending(event);
        }
        for n in 0..self.nodes.len() {
            if self.nodes[n].alive {
                self.nodes[n].handle_timeout(self.now);
                self.pump(n);
            }
        }
    }

    fn deliver_pending(&mut self, event: Pending) {
        let to = event.target();
        if !self.nodes[to].alive {
            return;
        }
        let input = match event {
            Pending::Peer { from, message, .. } => NodeInput::Peer {
                from: self.nodes[from].id.clone(),
                message,
            },
            Pending::PeerFailed { node, id, .. } => NodeInput::PeerFailed { node, id },
            Pending::Bus {
                origin,
                room,
                frame,
                ..
            } => NodeInput::Bus {
                origin,
                room,
                frame,
            },
            Pending::Registry { req, node, .. } => NodeInput::RegistryAnswer { req, node },
            Pending::NodeDown { down, .. } => NodeInput::Cluster(ClusterEvent::NodeDown(down)),
        };
        self.cluster_input(to, input);
    }

    // ----- wiring -----

    fn cluster_input(&mut self, n: usize, input: NodeInput) {
        self.input(n, HubInput::Cluster(input));
    }

    fn input(&mut self, n: usize, input: HubInput) {
        if !self.nodes[n].alive {
            return;
        }
        self.nodes[n].input(self.now, input);
        self.pump(n);
    }

    /// Drains node `n` and carries out what it asked of the outside world.
    fn pump(&mut self, n: usize) {
        let mut out = Vec::new();
        self.nodes[n].pump(self.now, &mut self.clients, &mut out);
        for output in out {
            match output {
                ClusterOutput::ToPeer { node, message } => self.send_peer(n, &node, message),
                ClusterOutput::Registry(command) => self.registry(n, command),
                ClusterOutput::Bus(command) => self.bus(n, command),
                // The simulation configures no history.
                ClusterOutput::History(_) => {}
            }
        }
    }

    fn index_of(&self, node: &NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| &n.id == node)
    }

    fn schedule(&mut self, at: Instant, event: Pending) {
        self.seq += 1;
        self.pending.insert((at, self.seq), event);
    }

    /// When a message sent now on link `from → to` arrives: a seeded delay, never before
    /// the previous message on the same link (links are FIFO, like a gRPC stream).
    fn arrival(&mut self, from: usize, to: usize, bus: bool) -> Instant {
        let (lo, hi) = (
            self.config.min_delay,
            self.config.max_delay.max(self.config.min_delay),
        );
        let spread = (hi - lo).as_micros() as u64;
        let delay = lo + Duration::from_micros(self.rng.below(spread + 1));
        let at = self.now + delay;
        let free = self.link_free.entry((from, to, bus)).or_insert(at);
        let at = at.max(*free);
        *free = at;
        at
    }

    fn send_peer(&mut self, from: usize, node: &NodeId, message: PeerMessage) {
        let Some(to) = self.index_of(node) else {
            return;
        };
        let failed_id = match &message {
            PeerMessage::Request { id, .. } => Some(*id),
            _ => None,
        };
        if !self.nodes[to].alive {
            // Connection refused: the sender learns at once (after one link delay).
            if let Some(id) = failed_id {
                let at = self.arrival(to, from, false);
                let node = node.clone();
                self.schedule(at, Pending::PeerFailed { to: from, node, id });
            }
            return;
        }
        if self.partitions.contains(&(from.min(to), from.max(to))) {
            return;
        }
        if self.rng.chance(self.config.loss_per_mille) {
            return;
        }
        let at = self.arrival(from, to, false);
        self.schedule(at, Pending::Peer { from, to, message });
    }

    fn lease_alive(&self, n: usize) -> bool {
        self.crashed_at[n].is_none_or(|t| self.now < t + self.config.lease_ttl)
    }

    fn registry(&mut self, from: usize, command: RegistryCommand) {
        match command {
            RegistryCommand::Register { client, .. } => {
                self.registry.insert(client, from);
            }
            RegistryCommand::Unregister { client } => {
                if self.registry.get(&client) == Some(&from) {
                    self.registry.remove(&client);
                }
            }
            RegistryCommand::Lookup { client, req } => {
                let node = self
                    .registry
                    .get(&client)
                    .copied()
                    .filter(|n| self.lease_alive(*n))
                    .map(|n| self.nodes[n].id.clone());
                let at = self.now + self.config.registry_delay;
                self.schedule(
                    at,
                    Pending::Registry {
                        to: from,
                        req,
                        node,
                    },
                );
            }
        }
    }

    fn bus(&mut self, from: usize, command: BusCommand) {
        match command {
            BusCommand::Subscribe(room) => {
                self.subscriptions[from].insert(room);
            }
            BusCommand::Unsubscribe(room) => {
                self.subscriptions[from].remove(&room);
            }
            BusCommand::Publish { room, frame } => {
                let origin = self.nodes[from].id.clone();
                for to in 0..self.nodes.len() {
                    let subscribed = match &room {
                        Some(r) => self.subscriptions[to].contains(r),
                        None => true,
                    };
                    if !self.nodes[to].alive || !subscribed {
                        continue;
                    }
                    if self.rng.chance(self.config.loss_per_mille) {
                        continue;
                    }
                    let at = self.arrival(from, to, true);
                    let (origin, room, frame) = (origin.clone(), room.clone(), frame.clone());
                    self.schedule(
                        at,
                        Pending::Bus {
                            to,
                            origin,
                            room,
                            frame,
                        },
                    );
                }
            }
        }
    }
}
