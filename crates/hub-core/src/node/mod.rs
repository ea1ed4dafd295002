//! The node router: routes deliveries between a node's shards and the rest of the cluster.
//!
//! A node runs one router and N shards. Shards deliver to their own connections and
//! [`Report`] what must reach further; the router decides which other shards, which peer
//! nodes, which bus channel and which registry entries a message or an event concerns, and
//! sums the answers into one [`Reply`] per request.
//!
//! Invariants:
//! - every [`Input::Command`] gets exactly one [`Output::Reply`]: when every shard and peer
//!   asked has answered, or when `remote_timeout` passes (counting what arrived);
//! - a message is never sent back to the shard or node it came from, and a bus message that
//!   this node published is ignored when it comes back (echo prevention);
//! - peers learn which rooms this node has members of (gRPC bus) or the bus is subscribed to
//!   exactly those rooms (Redis bus);
//! - with [`ClusterMode::Standalone`] no registry, bus or peer output is ever produced.

mod digest;
mod history;
mod io;
mod peer;
mod presence;
mod reports;
mod shared;
mod users;

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::frame::close_code;
use crate::hash::{keyed_map, FixedMap, KeyedMap, KeyedState};
use crate::history::{HistoryRules, MemoryHistory};
use crate::ids::{shard_for, ClientId, NodeId, RequestId, RoomName, ShardId, UserId};
use crate::pattern::RoomPatterns;
use crate::presence::PresenceIndex;
use crate::seed::Seed;
#[cfg(test)]
use crate::shard::Report;
use crate::shard::{Input as ShardInput, Target};

pub use digest::{room_hash, InterestDigest};
pub use io::{
    BusCommand, ClusterEvent, Command, HistoryAnswer, HistoryCommand, Input, Output, PeerMessage,
    PresenceQuery, PresenceReply, ReadPurpose, RegistryCommand, RemoteOp, Reply,
};
pub use presence::PRESENCE_PART;

/// How room publishes and broadcasts reach other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BusKind {
    /// Forward over the node-to-node service to the nodes with members.
    #[default]
    Grpc,
    /// Publish on Redis pub/sub channels (a global one and one per room).
    Redis,
}

/// Whether the node is alone or part of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterMode {
    /// One node, in-memory registry: nothing leaves the node.
    #[default]
    Standalone,
    /// A cluster with a shared registry and the given bus.
    Cluster {
        /// The broadcast bus.
        bus: BusKind,
    },
}

/// Settings of the node router.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's name.
    pub node_id: NodeId,
    /// How many shards the node runs.
    pub shard_count: u16,
    /// Alone or clustered.
    pub mode: ClusterMode,
    /// How long to wait for peers and the registry before answering with what arrived.
    /// Default 2 s.
    pub remote_timeout: Duration,
    /// Secret seed of the keys of the router's name-keyed maps; runtimes pass the node's
    /// random seed. Default: a fixed, public seed.
    pub seed: Seed,
    /// The rooms that keep history (in memory, numbered by this router); the shards'
    /// [`Config::history`](crate::Config::history) must be the same. Default: none.
    pub history: HistoryRules,
    /// Rooms whose members get `{"type":"presence",...}` notifications. Default: none.
    pub presence_notify: RoomPatterns,
    /// Whether to emit [`Output::Presence`] events. Default: no.
    pub presence_events: bool,
}

impl NodeConfig {
    /// A standalone node with `shard_count` shards.
    pub fn standalone(node_id: NodeId, shard_count: u16) -> Self {
        Self {
            node_id,
            shard_count,
            mode: ClusterMode::Standalone,
            remote_timeout: Duration::from_secs(2),
            seed: Seed::default(),
            history: HistoryRules::default(),
            presence_notify: RoomPatterns::default(),
            presence_events: false,
        }
    }
}

/// Counters of the router.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Requests sent to peers.
    pub peer_requests: u64,
    /// Replies received from peers.
    pub peer_replies: u64,
    /// Sends to peers that failed.
    pub peer_failures: u64,
    /// Requests answered because the deadline passed.
    pub timeouts: u64,
    /// Registry commands issued.
    pub registry_commands: u64,
    /// Bus publishes issued.
    pub bus_publishes: u64,
    /// Bus messages received from other nodes.
    pub bus_received: u64,
    /// Times a peer's interest digest disagreed with this node's view and a snapshot was
    /// asked for (a lost `Interest` healed).
    pub interest_resyncs: u64,
    /// Own bus messages that came back and were ignored.
    pub bus_echoes: u64,
    /// Times a peer's presence digest disagreed with this node's view and a snapshot was
    /// asked for.
    pub presence_resyncs: u64,
}

/// Who waits for a request's answer.
#[derive(Debug, Clone)]
enum Origin {
    Local(RequestId),
    Peer { node: NodeId, id: u64 },
    Nobody,
}

/// What a request still has to do when its current answers are in.
#[derive(Debug, Clone)]
enum Stage {
    /// Sum the delivered counts.
    Count,
    /// Local shard answered; if nobody was reached, ask the registry where `client` is and
    /// forward `frame` there.
    EmitLocal { client: ClientId, frame: Bytes },
    /// Waiting for the registry; then forward `frame` to the node holding `client`.
    EmitLookup { client: ClientId, frame: Bytes },
    /// Local shard lookup; then the registry.
    OnlineLocal { client: ClientId },
    /// Waiting for the registry.
    OnlineLookup,
    /// Local disconnect; then the registry and the owning peer.
    DisconnectLocal { client: ClientId },
    /// Waiting for the registry; then ask the owning peer.
    DisconnectLookup { client: ClientId },
    /// Waiting for the peer that holds the client.
    DisconnectRemote,
}

/// Which kind of [`Reply`] a request ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyKind {
    Delivered,
    Online,
    Disconnected,
}

impl Stage {
    fn reply_kind(&self) -> ReplyKind {
        match self {
            Stage::OnlineLocal { .. } | Stage::OnlineLookup => ReplyKind::Online,
            Stage::DisconnectLocal { .. }
            | Stage::DisconnectLookup { .. }
            | Stage::DisconnectRemote => ReplyKind::Disconnected,
            Stage::Count | Stage::EmitLocal { .. } | Stage::EmitLookup { .. } => {
                ReplyKind::Delivered
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    origin: Origin,
    kind: ReplyKind,
    waiting: u32,
    delivered: u64,
    online: Option<NodeId>,
    stage: Stage,
}

/// The node router's state. See the module docs for the invariants.
#[derive(Debug)]
pub struct Router {
    config: NodeConfig,
    room_shards: KeyedMap<RoomName, BTreeSet<u16>>,
    user_shards: KeyedMap<UserId, BTreeSet<u16>>,
    peers: BTreeSet<NodeId>,
    room_peers: KeyedMap<RoomName, BTreeSet<NodeId>>,
    /// The digest of this node's rooms (those in `room_shards`).
    own_digest: InterestDigest,
    /// The digest of each peer's rooms as `room_peers` records them.
    peer_digests: KeyedMap<NodeId, InterestDigest>,
    pending: FixedMap<u64, Pending>,
    deadlines: VecDeque<(Instant, u64)>,
    next_id: u64,
    outputs: VecDeque<Output>,
    stats: NodeStats,
    /// The history of rooms with history; `None` when no room keeps any.
    history: Option<MemoryHistory>,
    /// When rooms whose history expired are next forgotten.
    sweep_at: Option<Instant>,
    /// In a cluster: where each history room with members here is in its offsets.
    tracks: KeyedMap<RoomName, shared::Track>,
    presence: PresenceIndex,
    presence_buf: Vec<crate::presence::Transition>,
}

const INTERNAL_IDS: u64 = 1 << 63;

impl Router {
    /// A router with no peers.
    pub fn new(config: NodeConfig) -> Self {
        let keys = KeyedState::new(&config.seed);
        Self {
            presence: PresenceIndex::with_keys(config.node_id.clone(), &keys),
            presence_buf: Vec::new(),
            room_shards: keyed_map(&keys),
            user_shards: keyed_map(&keys),
            peers: BTreeSet::new(),
            room_peers: keyed_map(&keys),
            own_digest: InterestDigest::default(),
            peer_digests: keyed_map(&keys),
            pending: FixedMap::default(),
            deadlines: VecDeque::new(),
            next_id: INTERNAL_IDS,
            outputs: VecDeque::new(),
            stats: NodeStats::default(),
            history: (!config.history.is_empty() && config.mode == ClusterMode::Standalone)
                .then(|| MemoryHistory::new(config.history.clone(), &config.seed)),
            tracks: keyed_map(&keys),
            sweep_at: None,
            config,
        }
    }

    // ----- getters -----

    /// This node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.config.node_id
    }

    /// The router's settings.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Live peers (other nodes), sorted.
    pub fn peers(&self) -> impl Iterator<Item = &NodeId> {
        self.peers.iter()
    }

    /// Rooms with members on this node, sorted.
    pub fn rooms(&self) -> Vec<RoomName> {
        let mut rooms: Vec<RoomName> = self.room_shards.keys().cloned().collect();
        rooms.sort();
        rooms
    }

    /// How many rooms have members on this node; O(1).
    pub fn room_count(&self) -> usize {
        self.room_shards.len()
    }

    /// Peers known to have members of `room`.
    pub fn room_peers(&self, room: &str) -> Vec<NodeId> {
        self.room_peers
            .get(room)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Requests not answered yet.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// The counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    // ----- mutators -----

    /// Feeds one event. Drain [`Router::poll_output`] afterwards.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Command { req, command } => self.on_command(now, req, command),
            Input::Shard { shard, report } => self.on_report(now, shard, report),
            // A standalone node has no peers: what claims to come from one is ignored, so
            // nothing (not even a reply) ever leaves the node.
            Input::Peer { from, message } if self.is_clustered() => {
                self.on_peer(now, from, message)
            }
            Input::Peer { .. } => {}
            Input::PeerFailed { node: _, id } => {
                self.stats.peer_failures += 1;
                if let Some(id) = id {
                    self.answer(now, id, |_| {});
                }
            }
            Input::RegistryAnswer { req, node } => self.on_registry_answer(req.0, node),
            Input::Bus {
                origin,
                room,
                frame,
            } => {
                if origin == self.config.node_id {
                    self.stats.bus_echoes += 1;
                    return;
                }
                self.stats.bus_received += 1;
                if let Some(room) = room.as_ref().filter(|r| self.keeps_history(r.as_str())) {
                    return self.deliver_ordered(room.clone(), frame);
                }
                let target = room.map_or(Target::All, Target::Room);
                self.route(now, Origin::Nobody, target, frame, None, false);
            }
            Input::Cluster(event) => self.on_cluster(now, event),
            Input::History(answer) => self.on_history(now, answer),
            Input::Displaced { client, node } => {
                if node != self.config.node_id && self.is_clustered() {
                    let op = RemoteOp::Disconnect {
                        client,
                        code: close_code::REPLACED,
                    };
                    self.send_peer(node, PeerMessage::Request { id: None, op });
                }
            }
            Input::Superseded { client } => {
                if self.is_clustered() {
                    let code = close_code::REPLACED;
                    self.close_on_owner(now, Origin::Nobody, client, code, Stage::Count);
                }
            }
        }
    }

    /// Answers every request whose deadline is at or before `now` with what has arrived.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.sweep_history(now);
        while let Some(&(at, id)) = self.deadlines.front() {
            if at > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(pending) = self.pending.remove(&id) {
                self.stats.timeouts += 1;
                self.finish(pending);
            }
        }
    }

    // ----- polls -----

    /// The next thing for the runtime to do. Call until `None` after every mutation.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Router::handle_timeout`] must next be called; O(1). (It may name the deadline of
    /// a request already answered: calling early is harmless.)
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let request = self.deadlines.front().map(|(at, _)| *at);
        match (request, self.sweep_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- internals -----

    fn is_clustered(&self) -> bool {
        matches!(self.config.mode, ClusterMode::Cluster { .. })
    }

    fn bus(&self) -> Option<BusKind> {
        match self.config.mode {
            ClusterMode::Cluster { bus } => Some(bus),
            ClusterMode::Standalone => None,
        }
    }

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1) | INTERNAL_IDS;
        id
    }

    fn send_shard(&mut self, shard: u16, input: ShardInput) {
        self.outputs.push_back(Output::ToShard {
            shard: ShardId(shard),
            input,
        });
    }

    fn send_peer(&mut self, node: NodeId, message: PeerMessage) {
        if matches!(message, PeerMessage::Request { .. }) {
            self.stats.peer_requests += 1;
        }
        self.outputs.push_back(Output::ToPeer { node, message });
    }

    fn registry(&mut self, command: RegistryCommand) {
        self.stats.registry_commands += 1;
        self.outputs.push_back(Output::Registry(command));
    }

    fn owner_shard(&self, client: &str) -> u16 {
        shard_for(client, self.config.shard_count).0
    }

    fn start(
        &mut self,
        now: Instant,
        origin: Origin,
        stage: Stage,
        waiting: u32,
        remote: bool,
    ) -> u64 {
        let id = self.new_id();
        let kind = stage.reply_kind();
        self.pending.insert(
            id,
            Pending {
                origin,
                kind,
                waiting,
                delivered: 0,
                online: None,
                stage,
            },
        );
        if remote {
            self.deadlines
                .push_back((now + self.config.remote_timeout, id));
        }
        id
    }

    /// Asks `client`'s owner shard whether it is connected; the answer moves `stage` on.
    fn ask_owner(&mut self, now: Instant, origin: Origin, client: ClientId, stage: Stage) {
        let shard = self.owner_shard(client.as_str());
        let id = self.start(now, origin, stage, 1, false);
        self.send_shard(
            shard,
            ShardInput::Lookup {
                client,
                req: RequestId(id),
            },
        );
    }

    /// Closes `client` on its owner shard with `code`; the count moves `stage` on.
    fn close_on_owner(
        &mut self,
        now: Instant,
        origin: Origin,
        client: ClientId,
        code: u16,
        stage: Stage,
    ) {
        let reason = if code == close_code::REPLACED {
            "replaced by a newer connection"
        } else {
            "disconnected by the server"
        };
        let shard = self.owner_shard(client.as_str());
        let id = self.start(now, origin, stage, 1, false);
        let input = ShardInput::Disconnect {
            target: Target::Client(client),
            code,
            reason: reason.into(),
            req: Some(RequestId(id)),
        };
        self.send_shard(shard, input);
    }

    fn on_command(&mut self, now: Instant, req: RequestId, command: Command) {
        let origin = Origin::Local(req);
        match command {
            Command::Deliver { target, frame } => {
                self.route(now, origin, target, frame, None, true)
            }
            Command::DeliverLocal { target, frame } => {
                self.route(now, origin, target, frame, None, false)
            }
            Command::Online { client } => {
                let stage = Stage::OnlineLocal {
                    client: client.clone(),
                };
                self.ask_owner(now, origin, client, stage);
            }
            Command::Disconnect { client } => {
                let stage = Stage::DisconnectLocal {
                    client: client.clone(),
                };
                self.close_on_owner(now, origin, client, close_code::DISCONNECTED, stage);
            }
            Command::DisconnectUser { user } => {
                self.close_user(now, origin, user, close_code::DISCONNECTED, true);
            }
            Command::Join { client, room } => {
                let shard = self.owner_shard(client.as_str());
                let id = self.start(now, origin, Stage::Count, 1, false);
                self.send_shard(
                    shard,
                    ShardInput::Join {
                        target: Target::Client(client),
                        room,
                        req: Some(RequestId(id)),
                    },
                );
            }
            Command::History { room, since, limit } => {
                self.history_query(now, req, room, since, limit)
            }
            Command::Position { room } => self.position_query(now, req, room),
            Command::JoinAs {
                client,
                room,
                user,
                info,
            } => {
                let shard = self.owner_shard(client.as_str());
                let id = self.start(now, origin, Stage::Count, 1, false);
                let target = Target::Client(client);
                let req = Some(RequestId(id));
                let input = ShardInput::JoinAs {
                    target,
                    room,
                    user,
                    info,
                    req,
                };
                self.send_shard(shard, input);
            }
            Command::Presence { room, query } => self.presence_query(req, room.as_str(), query),
            Command::Leave { client, room } => {
                let shard = self.owner_shard(client.as_str());
                let id = self.start(now, origin, Stage::Count, 1, false);
                self.send_shard(
                    shard,
                    ShardInput::Leave {
                        target: Target::Client(client),
                        room,
                        req: Some(RequestId(id)),
                    },
                );
            }
        }
    }

    /// Sends `frame` to every local shard and (when `forward`) every peer or bus channel that
    /// `target` concerns, except the shard it came from.
    fn route(
        &mut self,
        now: Instant,
        origin: Origin,
        target: Target,
        frame: Bytes,
        from: Option<ShardId>,
        forward: bool,
    ) {
        if let Target::Room(room) = &target {
            if forward && self.keeps_history(room.as_str()) {
                return self.sequence(now, origin, room.clone(), frame);
            }
        }
        let skip = from.map(|s| s.0);
        let mut shards: Vec<u16> = Vec::new();
        let mut peers: Vec<NodeId> = Vec::new();
        let mut stage = Stage::Count;
        match &target {
            Target::Conn(conn) => shards.push(conn.shard.0),
            Target::Client(client) => {
                let owner = self.owner_shard(client.as_str());
                if Some(owner) != skip {
                    shards.push(owner);
                }
                if forward && self.is_clustered() {
                    stage = Stage::EmitLocal {
                        client: client.clone(),
                        frame: frame.clone(),
                    };
                }
            }
            Target::User(user) => {
                shards.extend(
                    self.user_shards
                        .get(user.as_str())
                        .into_iter()
                        .flatten()
                        .copied(),
                );
                if forward && self.is_clustered() {
                    peers.extend(self.peers.iter().cloned());
                }
            }
            // The exclusion travels with the target to shards and peers. Over the Redis bus
            // only the room does: the excluded connection is then reached only where the
            // target is checked (this node's shards and gRPC peers).
            Target::Room(room) | Target::RoomExcept { room, .. } => {
                shards.extend(
                    self.room_shards
                        .get(room.as_str())
                        .into_iter()
                        .flatten()
                        .copied(),
                );
                if forward {
                    match self.bus() {
                        Some(BusKind::Grpc) => peers.extend(
                            self.room_peers
                                .get(room.as_str())
                                .into_iter()
                                .flatten()
                                .filter(|n| self.peers.contains(*n))
                                .cloned(),
                        ),
                        Some(BusKind::Redis) => self.publish_bus(Some(room.clone()), frame.clone()),
                        None => {}
                    }
                }
            }
            Target::All => {
                shards.extend(0..self.config.shard_count);
                if forward {
                    match self.bus() {
                        Some(BusKind::Grpc) => peers.extend(self.peers.iter().cloned()),
                        Some(BusKind::Redis) => self.publish_bus(None, frame.clone()),
                        None => {}
                    }
                }
            }
        }
        shards.retain(|s| Some(*s) != skip && *s < self.config.shard_count);
        if matches!((&origin, &stage), (Origin::Nobody, Stage::Count)) {
            // Fire and forget: nobody reads the counts, so no request is recorded and no
            // shard or peer is asked to answer.
            self.fan_out(&target, &frame, shards, peers, None);
            return;
        }
        let waiting = (shards.len() + peers.len()) as u32;
        let id = self.start(now, origin, stage, waiting, !peers.is_empty());
        self.fan_out(&target, &frame, shards, peers, Some(id));
        if waiting == 0 {
            self.advance(now, id);
        }
    }

    /// Sends `frame` for `target` to `shards` and `peers`, asking for answers to request `id`
    /// when there is one.
    fn fan_out(
        &mut self,
        target: &Target,
        frame: &Bytes,
        shards: Vec<u16>,
        peers: Vec<NodeId>,
        id: Option<u64>,
    ) {
        for shard in shards {
            self.send_shard(
                shard,
                ShardInput::Deliver {
                    target: target.clone(),
                    frame: frame.clone(),
                    req: id.map(RequestId),
                },
            );
        }
        for node in peers {
            self.send_peer(
                node,
                PeerMessage::Request {
                    id,
                    op: RemoteOp::Deliver {
                        target: target.clone(),
                        frame: frame.clone(),
                    },
                },
            );
        }
    }

    fn publish_bus(&mut self, room: Option<RoomName>, frame: Bytes) {
        self.stats.bus_publishes += 1;
        self.outputs
            .push_back(Output::Bus(BusCommand::Publish { room, frame }));
    }

    /// Records one answer for request `id` and moves it on when all are in.
    fn answer(&mut self, now: Instant, id: u64, apply: impl FnOnce(&mut Pending)) {
        let Some(pending) = self.pending.get_mut(&id) else {
            return;
        };
        apply(pending);
        pending.waiting = pending.waiting.saturating_sub(1);
        if pending.waiting == 0 {
            self.advance(now, id);
        }
    }

    /// All answers of the current stage are in: finish, or start the next stage.
    fn advance(&mut self, now: Instant, id: u64) {
        let Some(mut pending) = self.pending.remove(&id) else {
            return;
        };
        let clustered = self.is_clustered();
        let stage = std::mem::replace(&mut pending.stage, Stage::Count);
        match stage {
            Stage::EmitLocal { client, frame } if pending.delivered == 0 && clustered => {
                pending.stage = Stage::EmitLookup {
                    client: client.clone(),
                    frame,
                };
                self.lookup(now, id, pending, client);
            }
            Stage::OnlineLocal { client } if pending.online.is_none() && clustered => {
                pending.stage = Stage::OnlineLookup;
                self.lookup(now, id, pending, client);
            }
            Stage::DisconnectLocal { client } if pending.delivered == 0 && clustered => {
                pending.stage = Stage::DisconnectLookup {
                    client: client.clone(),
                };
                self.lookup(now, id, pending, client);
            }
            _ => self.finish(pending),
        }
    }

    fn lookup(&mut self, now: Instant, id: u64, mut pending: Pending, client: ClientId) {
        pending.waiting = 1;
        self.pending.insert(id, pending);
        self.deadlines
            .push_back((now + self.config.remote_timeout, id));
        self.registry(RegistryCommand::Lookup {
            client,
            req: RequestId(id),
        });
    }

    fn on_registry_answer(&mut self, id: u64, node: Option<NodeId>) {
        let Some(mut pending) = self.pending.remove(&id) else {
            return;
        };
        // Only a live peer counts: an entry naming a dead node, or this node (whose own
        // shards already said no), is stale.
        let node = node.filter(|n| self.peers.contains(n));
        let stage = std::mem::replace(&mut pending.stage, Stage::Count);
        match (stage, node) {
            (Stage::EmitLookup { client, frame }, Some(node)) => {
                pending.waiting = 1;
                self.pending.insert(id, pending);
                let op = RemoteOp::Deliver {
                    target: Target::Client(client),
                    frame,
                };
                self.send_peer(node, PeerMessage::Request { id: Some(id), op });
            }
            (Stage::OnlineLookup, node) => {
                pending.online = node;
                self.finish(pending);
            }
            (Stage::DisconnectLookup { client }, Some(node)) => {
                pending.waiting = 1;
                pending.stage = Stage::DisconnectRemote;
                self.pending.insert(id, pending);
                self.send_peer(
                    node,
                    PeerMessage::Request {
                        id: Some(id),
                        op: RemoteOp::Disconnect {
                            client,
                            code: close_code::DISCONNECTED,
                        },
                    },
                );
            }
            _ => self.finish(pending),
        }
    }

    fn finish(&mut self, pending: Pending) {
        let reply = match pending.kind {
            ReplyKind::Online => Reply::Online(pending.online),
            ReplyKind::Disconnected => Reply::Disconnected(pending.delivered > 0),
            ReplyKind::Delivered => Reply::Delivered(pending.delivered),
        };
        match pending.origin {
            Origin::Local(req) => self.outputs.push_back(Output::Reply { req, reply }),
            Origin::Peer { node, id } => self.send_peer(node, PeerMessage::Reply { id, reply }),
            Origin::Nobody => {}
        }
    }
}

#[cfg(test)]
mod interest_tests;
#[cfg(test)]
mod presence_tests;
#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod tests;
