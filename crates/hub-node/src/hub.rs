//! The embedding API: a cloneable [`Hub`] handle to a running node, and the [`Handler`]
//! callbacks an application can attach to it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use hub_core::node::{Command, PresenceQuery, PresenceReply, Reply};
use hub_core::protocol::{self, ErrorCode};
use hub_core::shard::{Event, Input, OpenError, OpenParams};
use hub_core::{frame, ClientId, ConnId, NodeId, RoomName, ShardId, ShardStats, Target, UserId};
use hub_core::{Member, PresenceCount, PresenceEvent, Scope};
use hub_edge::stats::{NodeSnapshot, ShardSnapshot};
use hub_serve::{Gate, IpLimiter, Settings};
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

use crate::node_task::{NodeMsg, NodeSnap};
use crate::runtime::{Conn, Runtime};
use crate::shard_task::{ShardMsg, ShardSnap, ShardTx};

/// Callbacks for an application that embeds the hub. Every method has a default that does
/// nothing. They run on the shard's task: keep them short and never block.
pub trait Handler: Send + Sync + 'static {
    /// A connection opened.
    fn on_connect(&self, hub: &Hub, conn: ConnId, client: &ClientId, user: Option<&UserId>) {
        let _ = (hub, conn, client, user);
    }
    /// A message the hub did not handle itself (all of them with the raw protocol).
    fn on_message(&self, hub: &Hub, conn: ConnId, data: Bytes, binary: bool) {
        let _ = (hub, conn, data, binary);
    }
    /// A connection closed with `code`.
    fn on_disconnect(&self, hub: &Hub, conn: ConnId, client: &ClientId, code: u16) {
        let _ = (hub, conn, client, code);
    }
    /// A client request was refused with an error frame.
    fn on_error(&self, hub: &Hub, conn: ConnId, code: ErrorCode, message: &str) {
        let _ = (hub, conn, code, message);
    }
}

/// Why a call on the hub failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// The payload is not valid JSON (the JSON protocol carries JSON `data`).
    #[error("data is not valid JSON")]
    BadData,
    /// The node is shutting down or its tasks are gone.
    #[error("the node is not running")]
    Stopped,
    /// The connection could not be opened.
    #[error("connection refused: {0}")]
    Open(#[from] OpenError),
    /// The router answered a command with a reply of another kind (a bug, never a result).
    #[error("the router answered {0} with the wrong kind of reply")]
    WrongReply(&'static str),
}

pub(crate) struct Inner {
    pub(crate) runtime: &'static str,
    pub(crate) settings: Settings,
    pub(crate) node_id: NodeId,
    pub(crate) gate: Gate,
    pub(crate) shards: Vec<ShardTx>,
    pub(crate) node: mpsc::UnboundedSender<NodeMsg>,
    pub(crate) handler: Option<Arc<dyn Handler>>,
    pub(crate) limiter: Mutex<IpLimiter>,
    pub(crate) next_shard: AtomicUsize,
    pub(crate) live: AtomicUsize,
    /// Connections in their HTTP phase (not WebSockets), capped by `max_http_connections`.
    pub(crate) http_open: AtomicUsize,
    pub(crate) all_closed: Notify,
    /// Latency histograms shown on `/metrics`.
    pub(crate) latencies: hub_edge::Latencies,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) started: Instant,
    pub(crate) drain_timeout: std::time::Duration,
    pub(crate) cluster: std::sync::OnceLock<Arc<hub_mesh::Cluster>>,
    /// The client listener's TLS (`None`: plaintext).
    pub(crate) tls: Option<crate::tls::ListenerTls>,
    /// The Pusher webhook sender, when `--pusher-webhook` names URLs.
    pub(crate) webhooks: Option<hub_serve::webhooks::PusherWebhooks>,
    /// Where the router's presence events go ([`Hub::presence_events`]).
    pub(crate) presence: broadcast::Sender<PresenceEvent>,
    /// The Pusher protocol of this node's Pusher connections (every shard task's).
    pub(crate) pusher: Mutex<hub_pusher::Sessions>,
}

/// How many presence events a slow [`Hub::presence_events`] receiver may fall behind before
/// it loses the oldest (it then gets `RecvError::Lagged` and should reload what it shows).
pub const PRESENCE_EVENTS: usize = 4096;

/// A handle to a running node: emit, publish, look up, disconnect. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node", &self.inner.node_id)
            .finish()
    }
}

fn json_data(data: &str) -> Result<&str, HubError> {
    if protocol::is_json(data) {
        Ok(data)
    } else {
        Err(HubError::BadData)
    }
}

impl Hub {
    /// This node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.inner.node_id
    }

    /// Where the gRPC service listens, when it runs.
    pub fn grpc_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.cluster.get().map(|c| c.grpc_addr())
    }

    /// The node's settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Runs a router command and waits for its reply.
    pub async fn command(&self, command: Command) -> Result<Reply, HubError> {
        let (kind, started) = (command.kind(), Instant::now());
        let (tx, rx) = oneshot::channel();
        self.inner
            .node
            .send(NodeMsg::Command { command, reply: tx })
            .map_err(|_| HubError::Stopped)?;
        let reply = rx.await.map_err(|_| HubError::Stopped);
        self.inner.latencies.observe(kind, started.elapsed());
        reply
    }

    async fn deliver(
        &self,
        target: Target,
        room: Option<&str>,
        data: &str,
    ) -> Result<u64, HubError> {
        let frame = protocol::message(room, None, json_data(data)?);
        match self.command(Command::Deliver { target, frame }).await? {
            Reply::Delivered(n) => Ok(n),
            _ => Err(HubError::WrongReply("a delivery")),
        }
    }

    /// Sends `{"type":"message","data":DATA}` to client `id` wherever it is; returns how many
    /// connections it reached. `data` is JSON text.
    pub async fn emit(&self, id: &str, data: &str) -> Result<u64, HubError> {
        self.deliver(Target::Client(ClientId::from(id)), None, data)
            .await
    }

    /// Sends `data` to every connection of `user`.
    pub async fn emit_user(&self, user: &str, data: &str) -> Result<u64, HubError> {
        self.deliver(Target::User(UserId::from(user)), None, data)
            .await
    }

    /// Publishes `data` to every member of `room`.
    pub async fn publish(&self, room: &str, data: &str) -> Result<u64, HubError> {
        self.deliver(Target::Room(RoomName::from(room)), Some(room), data)
            .await
    }

    /// Sends `data` to every connection.
    pub async fn broadcast(&self, data: &str) -> Result<u64, HubError> {
        self.deliver(Target::All, None, data).await
    }

    /// The node holding client `id`, if it is online.
    pub async fn online(&self, id: &str) -> Result<Option<NodeId>, HubError> {
        match self
            .command(Command::Online {
                client: ClientId::from(id),
            })
            .await?
        {
            Reply::Online(node) => Ok(node),
            _ => Err(HubError::WrongReply("an online lookup")),
        }
    }

    /// Closes client `id`'s connection with 4003; whether one was closed.
    pub async fn disconnect(&self, id: &str) -> Result<bool, HubError> {
        match self
            .command(Command::Disconnect {
                client: ClientId::from(id),
            })
            .await?
        {
            Reply::Disconnected(yes) => Ok(yes),
            _ => Err(HubError::WrongReply("a disconnect")),
        }
    }

    /// Adds client `id` to `room`; whether it was found and joined.
    pub async fn join(&self, id: &str, room: &str) -> Result<bool, HubError> {
        let command = Command::Join {
            client: ClientId::from(id),
            room: RoomName::from(room),
        };
        match self.command(command).await? {
            Reply::Delivered(n) => Ok(n > 0),
            _ => Err(HubError::WrongReply("a join")),
        }
    }

    /// Adds client `id` to `room` as a presence member with user id `user` (`None`: the
    /// connection's) and `info` (JSON text, shown to whoever lists the room's members);
    /// whether it was found and joined.
    pub async fn join_as(
        &self,
        id: &str,
        room: &str,
        user: Option<&str>,
        info: Option<&str>,
    ) -> Result<bool, HubError> {
        let info = info.map(json_data).transpose()?;
        let command = Command::JoinAs {
            client: ClientId::from(id),
            room: RoomName::from(room),
            user: user.map(UserId::from),
            info: info.map(Arc::from),
        };
        Ok(matches!(self.command(command).await?, Reply::Delivered(n) if n > 0))
    }

    /// Removes client `id` from `room`; whether it was a member.
    pub async fn leave(&self, id: &str, room: &str) -> Result<bool, HubError> {
        let command = Command::Leave {
            client: ClientId::from(id),
            room: RoomName::from(room),
        };
        Ok(matches!(self.command(command).await?, Reply::Delivered(n) if n > 0))
    }

    async fn presence_query(
        &self,
        room: &str,
        query: PresenceQuery,
    ) -> Result<PresenceReply, HubError> {
        let room = RoomName::from(room);
        match self.command(Command::Presence { room, query }).await? {
            Reply::Presence(reply) => Ok(reply),
            _ => Err(HubError::Stopped),
        }
    }

    /// Every member of `room` on every node of the cluster, sorted by client id.
    pub async fn presence(&self, room: &str) -> Result<Vec<Member>, HubError> {
        match self.presence_query(room, PresenceQuery::Members).await? {
            PresenceReply::Members(members) => Ok(members),
            _ => Ok(Vec::new()),
        }
    }

    /// The distinct users of `room` on every node, sorted, each with one of its members'
    /// information (for Pusher's `subscription_succeeded`).
    pub async fn presence_users(
        &self,
        room: &str,
    ) -> Result<Vec<(UserId, Option<Arc<str>>)>, HubError> {
        match self.presence_query(room, PresenceQuery::Users).await? {
            PresenceReply::Users(users) => Ok(users),
            _ => Ok(Vec::new()),
        }
    }

    /// Connections and distinct users in `room`, on this node ([`Scope::Node`]) or on every
    /// node; O(1) whatever the room's size.
    pub async fn presence_count(
        &self,
        room: &str,
        scope: Scope,
    ) -> Result<PresenceCount, HubError> {
        match self
            .presence_query(room, PresenceQuery::Count(scope))
            .await?
        {
            PresenceReply::Count(count) => Ok(count),
            _ => Ok(PresenceCount::default()),
        }
    }

    /// The rooms with members on any node whose names start with `prefix` (`""`: every
    /// room), sorted, each with its cluster-wide counts (for Pusher's channel lists).
    pub async fn presence_rooms(
        &self,
        prefix: &str,
    ) -> Result<Vec<(RoomName, PresenceCount)>, HubError> {
        match self
            .presence_query(prefix, PresenceQuery::RoomsWithPrefix)
            .await?
        {
            PresenceReply::Rooms(rooms) => Ok(rooms),
            _ => Ok(Vec::new()),
        }
    }

    /// The router's presence events from now on: rooms occupied and vacated, users joining
    /// and leaving, for this node and for the cluster (see [`PresenceEvent`]).
    pub fn presence_events(&self) -> broadcast::Receiver<PresenceEvent> {
        self.inner.presence.subscribe()
    }

    /// Sends one finished frame to one connection, without waiting (for raw-protocol apps).
    pub fn send_frame(&self, conn: ConnId, frame: Bytes) {
        let input = Input::Deliver {
            target: Target::Conn(conn),
            frame,
            req: None,
        };
        if let Some(shard) = self.inner.shards.get(usize::from(conn.shard.0)) {
            let _ = shard.control.send(ShardMsg::Input(input));
        }
    }

    /// Sends a text message to one connection.
    pub fn send_text(&self, conn: ConnId, text: &str) {
        self.send_frame(conn, frame::text(text.as_bytes()));
    }

    /// Sends a binary message to one connection.
    pub fn send_binary(&self, conn: ConnId, data: &[u8]) {
        self.send_frame(conn, frame::binary(data));
    }

    /// Node-wide gauges and counters, as `/stats` shows them.
    pub async fn snapshot(&self) -> NodeSnapshot {
        let mut shards = Vec::with_capacity(self.inner.shards.len());
        for shard in &self.inner.shards {
            let (tx, rx) = oneshot::channel();
            let _ = shard.control.send(ShardMsg::Snapshot(tx));
            shards.push(rx.await.unwrap_or_default());
        }
        let (tx, rx) = oneshot::channel();
        let _ = self.inner.node.send(NodeMsg::Snapshot(tx));
        let router: NodeSnap = rx.await.unwrap_or_default();
        let mut totals = ShardStats::default();
        for s in &shards {
            totals.add(&s.stats);
        }
        let settings = &self.inner.settings;
        NodeSnapshot {
            node: self.inner.node_id.to_string(),
            runtime: self.inner.runtime,
            registry: settings.registry.describe(),
            bus: settings.bus.describe(),
            uptime_secs: self.inner.started.elapsed().as_secs(),
            shards: shards
                .iter()
                .map(|s: &ShardSnap| ShardSnapshot {
                    connections: s.connections,
                    rooms: s.rooms,
                    queued_bytes: s.queued_bytes,
                })
                .collect(),
            totals,
            router: router.stats,
            rooms: router.rooms,
            peers: router.peers.iter().map(|p| p.to_string()).collect(),
            degraded: self.inner.cluster.get().and_then(|c| c.degraded()),
            cluster: self
                .inner
                .cluster
                .get()
                .map(|c| c.stats())
                .unwrap_or_default(),
        }
    }

    /// Connections currently held by this node's tasks.
    pub fn live_connections(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// What the node's own listener answers to this upgrade request (tokens, origins, the
    /// id rules, room names): the connection to open, or the refusal to send. For servers
    /// that accept WebSocket upgrades themselves and hand them over ([`Hub::serve_conn`]).
    pub fn admit(
        &self,
        head: &hub_wire::http::RequestHead,
    ) -> Result<OpenParams, hub_wire::http::Response> {
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match self.inner.gate.decide(head, now_unix) {
            hub_serve::Decision::Upgrade { params, .. } => Ok(params),
            hub_serve::Decision::Respond(refusal) => Err(refusal),
            _ => Err(hub_wire::server::error_response(
                404,
                "no WebSocket endpoint here",
            )),
        }
    }

    /// Serves a WebSocket over a connection that was already upgraded elsewhere (the
    /// `101` response has been sent; the stream now carries frames), on runtime `rt`.
    /// Returns when the connection ends. The runtime adapters wrap this for their streams.
    pub async fn serve_conn<R: Runtime, C: Conn>(
        &self,
        rt: &R,
        conn: C,
        params: OpenParams,
    ) -> Result<(), HubError> {
        let shard = params
            .client
            .as_ref()
            .map(|c| hub_core::shard_for(c.as_str(), self.inner.settings.shards));
        crate::conn::open_and_run(rt, self.clone(), conn, Bytes::new(), params, shard).await
    }

    /// Counts a connection that opened on a shard.
    pub(crate) fn connection_started(&self, conn: ConnId) {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        tracing::debug!(%conn, "connected");
    }

    /// Gives back what an ended connection held in the node: its place among the live
    /// connections (the last one wakes a shutdown waiting for them) and, when `limited`, its
    /// address's place in the connection limiter.
    pub(crate) fn connection_ended(&self, conn: ConnId, limited: Option<std::net::IpAddr>) {
        tracing::debug!(%conn, "disconnected");
        if self.inner.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.all_closed.notify_waiters();
        }
        if let Some(ip) = limited {
            crate::http::release(self, ip);
        }
    }

    /// Hands an upgraded TCP socket to its shard task (see `sockets.rs`), which opens the
    /// connection and from then on gives `limited`'s place in the limiter back; false when
    /// the shard is gone (the socket is dropped).
    pub(crate) fn adopt(
        &self,
        socket: std::net::TcpStream,
        leftover: Bytes,
        params: OpenParams,
        shard: Option<ShardId>,
        limited: std::net::IpAddr,
    ) -> bool {
        let Some(tx) = self.shard_tx(self.pick_shard(shard)) else {
            return false;
        };
        let msg = ShardMsg::Adopt {
            params,
            socket,
            leftover,
            limited: Some(limited),
        };
        tx.control.send(msg).is_ok()
    }

    pub(crate) fn pick_shard(&self, wanted: Option<ShardId>) -> ShardId {
        wanted.unwrap_or_else(|| {
            let n = self.inner.shards.len().max(1);
            ShardId((self.inner.next_shard.fetch_add(1, Ordering::Relaxed) % n) as u16)
        })
    }

    pub(crate) fn shard_tx(&self, shard: ShardId) -> Option<&ShardTx> {
        self.inner.shards.get(usize::from(shard.0))
    }
}

/// Hands an application event to the handler, if there is one.
pub(crate) fn dispatch_event(hub: &Hub, event: &Event) {
    let Some(handler) = &hub.inner.handler else {
        return;
    };
    match event {
        Event::Connected {
            conn, client, user, ..
        } => handler.on_connect(hub, *conn, client, user.as_ref()),
        Event::Message { conn, data, binary } => {
            handler.on_message(hub, *conn, data.clone(), *binary)
        }
        Event::Disconnected { conn, client, code } => {
            handler.on_disconnect(hub, *conn, client, *code)
        }
        Event::Error {
            conn,
            code,
            message,
        } => handler.on_error(hub, *conn, *code, message),
    }
}

/// The node as the gRPC services see it.
pub(crate) struct HubApi(pub(crate) Hub);

impl hub_mesh::NodeApi for HubApi {
    fn command(&self, command: Command) -> hub_mesh::BoxFuture<Option<Reply>> {
        let hub = self.0.clone();
        Box::pin(async move { hub.command(command).await.ok() })
    }

    fn stats_json(&self) -> hub_mesh::BoxFuture<String> {
        let hub = self.0.clone();
        Box::pin(async move { hub_edge::stats::stats_json(&hub.snapshot().await) })
    }
}
