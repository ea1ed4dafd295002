//! What goes into the node router and what comes out of it.

use std::sync::Arc;

use bytes::Bytes;

use std::time::Duration;

use crate::history::{HistoryPage, Position, Since};
use crate::ids::{ClientId, ConnId, NodeId, RequestId, RoomName, ShardId, UserId};
use crate::presence::{Member, PresenceCount, PresenceEvent, Scope};
use crate::shard::{Input as ShardInput, Report, Target};

/// A request from the runtime: the producer API or the embedding application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Deliver a finished frame to `target` anywhere in the cluster; replies
    /// [`Reply::Delivered`].
    Deliver {
        /// Who gets it.
        target: Target,
        /// The finished server frame.
        frame: Bytes,
    },
    /// Where is `client` connected? Replies [`Reply::Online`].
    Online {
        /// The client id.
        client: ClientId,
    },
    /// Close `client`'s connection with 4003, wherever it is; replies [`Reply::Disconnected`].
    Disconnect {
        /// The client id.
        client: ClientId,
    },
    /// Close every connection of `user` with 4003, on every node; replies
    /// [`Reply::Delivered`] with how many were closed (Pusher's `terminate_connections`).
    DisconnectUser {
        /// The user id.
        user: UserId,
    },
    /// Deliver a finished frame to `target` on this node only (never forwarded); replies
    /// [`Reply::Delivered`]. For the unary node-to-node calls.
    DeliverLocal {
        /// Who gets it.
        target: Target,
        /// The finished server frame.
        frame: Bytes,
    },
    /// Add `client`'s connection to `room` (on this node); replies [`Reply::Delivered`] with
    /// the number of connections that joined.
    Join {
        /// The client id.
        client: ClientId,
        /// The room.
        room: RoomName,
    },
    /// Remove `client`'s connection from `room` (on this node); replies [`Reply::Delivered`].
    Leave {
        /// The client id.
        client: ClientId,
        /// The room.
        room: RoomName,
    },
    /// The kept messages of a history room after `since` (the newest `limit` without it);
    /// replies [`Reply::History`].
    History {
        /// The room.
        room: RoomName,
        /// Where the caller left off.
        since: Option<Since>,
        /// Most messages to return.
        limit: usize,
    },
    /// A history room's position; replies [`Reply::Position`].
    Position {
        /// The room.
        room: RoomName,
    },
    /// Add `client`'s connection to `room` (on this node) as a presence member with this user
    /// id (`None`: the connection's) and information (JSON text); replies
    /// [`Reply::Delivered`].
    JoinAs {
        /// The client id.
        client: ClientId,
        /// The room.
        room: RoomName,
        /// The member's user id in this room.
        user: Option<UserId>,
        /// The member's information, JSON text.
        info: Option<Arc<str>>,
    },
    /// Who is in `room`, or how many; replies [`Reply::Presence`] at once, from what this
    /// node knows of every node's members.
    Presence {
        /// The room.
        room: RoomName,
        /// What is asked.
        query: PresenceQuery,
    },
}

/// A presence question about one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceQuery {
    /// Every member: [`PresenceReply::Members`].
    Members,
    /// The distinct users with their information: [`PresenceReply::Users`].
    Users,
    /// Connections and distinct users, of this node ([`Scope::Node`]) or of the cluster:
    /// [`PresenceReply::Count`]; O(1).
    Count(Scope),
    /// Every room with members anywhere whose name starts with the command's `room` (the
    /// empty name: every room), with its cluster-wide counts: [`PresenceReply::Rooms`].
    RoomsWithPrefix,
}

/// The answer to a [`PresenceQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceReply {
    /// The room's members on every node, sorted by client id.
    Members(Vec<Member>),
    /// The room's distinct users, sorted, each with one member's information.
    Users(Vec<(UserId, Option<Arc<str>>)>),
    /// How many.
    Count(PresenceCount),
    /// Rooms, sorted, with their cluster-wide counts.
    Rooms(Vec<(RoomName, PresenceCount)>),
}

impl Command {
    /// The command's name, for metrics and logs (`deliver`, `online`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Deliver { .. } => "deliver",
            Command::Online { .. } => "online",
            Command::Disconnect { .. } => "disconnect",
            Command::DisconnectUser { .. } => "disconnect_user",
            Command::DeliverLocal { .. } => "deliver_local",
            Command::Join { .. } => "join",
            Command::Leave { .. } => "leave",
            Command::History { .. } => "history",
            Command::Position { .. } => "position",
            Command::JoinAs { .. } => "join_as",
            Command::Presence { .. } => "presence",
        }
    }
}

/// The answer to a [`Command`] or a remote request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// How many connections the message reached (or joined, or left).
    Delivered(u64),
    /// The node holding the client, if it is online.
    Online(Option<NodeId>),
    /// Whether a connection was closed.
    Disconnected(bool),
    /// A history query's answer; `None` when the room keeps no history.
    History(Option<HistoryPage>),
    /// A position query's answer; `None` when the room keeps no history.
    Position(Option<Position>),
    /// The answer to [`Command::Presence`] (never sent between nodes).
    Presence(PresenceReply),
}

/// What one node asks another (the node-to-node service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteOp {
    /// Deliver to the receiving node's own matching connections only (never forwarded again).
    /// Only `message` frames cross nodes: the wire carries their content and the receiver
    /// builds the frame again (see `protocol::message_parts`).
    Deliver {
        /// Who gets it.
        target: Target,
        /// The finished frame.
        frame: Bytes,
    },
    /// Is `client` connected on the receiving node?
    Online {
        /// The client id.
        client: ClientId,
    },
    /// Close `client`'s connection on the receiving node with `code`.
    Disconnect {
        /// The client id.
        client: ClientId,
        /// The close code: 4003 by the API or 4000 when replaced elsewhere; the router
        /// refuses any other (`close_code::peer_may_request`).
        code: u16,
    },
    /// Close every connection of `user` on the receiving node with `code` (as for
    /// `Disconnect`); answered with the count closed.
    DisconnectUser {
        /// The user id.
        user: UserId,
        /// The close code (see `Disconnect`).
        code: u16,
    },
}

/// A message between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMessage {
    /// A request; answer with `Reply` carrying the same `id` (when `id` is set).
    Request {
        /// The asking node's request id, or none when no answer is wanted.
        id: Option<u64>,
        /// What is asked.
        op: RemoteOp,
    },
    /// An answer to a request.
    Reply {
        /// The request's id.
        id: u64,
        /// The answer.
        reply: Reply,
    },
    /// The sending node gained (`true`) or lost its members of `room`.
    Interest {
        /// The room.
        room: RoomName,
        /// Whether the sender now has members.
        active: bool,
    },
    /// Every room the sending node has members of (sent to a node that just came up).
    InterestSnapshot {
        /// The rooms.
        rooms: Vec<RoomName>,
        /// The receiver should answer with its own snapshot (sent when a peer (re)appears,
        /// since that peer may have dropped this node's interests while it seemed gone).
        reply: bool,
    },
    /// A digest of every room the sending node has members of (sent periodically); a
    /// receiver whose view of the sender differs answers with a snapshot asking for one.
    InterestDigest {
        /// How many rooms.
        count: u64,
        /// The XOR of the rooms' hashes ([`room_hash`](super::room_hash)).
        hash: u64,
    },
    /// A member of the sending node joined `room` (or its entry there changed).
    PresenceJoin {
        /// The room.
        room: RoomName,
        /// The member.
        member: Member,
    },
    /// A member of the sending node left `room`.
    PresenceLeave {
        /// The room.
        room: RoomName,
        /// The member's client id.
        client: ClientId,
    },
    /// Part of every presence entry of the sending node, sent in parts of at most
    /// [`PRESENCE_PART`](super::PRESENCE_PART) entries: the `first` part replaces all that the
    /// receiver holds of the sender, the others add to it.
    PresenceSnapshot {
        /// (room, member) entries.
        entries: Vec<(RoomName, Member)>,
        /// Whether this is the first part.
        first: bool,
        /// The receiver should answer with its own snapshot.
        reply: bool,
    },
    /// The digest of the sending node's presence entries (sent periodically); a receiver whose
    /// view of the sender differs asks for a snapshot.
    PresenceDigest {
        /// How many entries.
        count: u64,
        /// The XOR of their hashes ([`member_hash`](crate::presence::member_hash)).
        hash: u64,
    },
}

/// A change in the cluster, as the registry or the transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A node is alive (its lease exists).
    NodeUp(NodeId),
    /// A node is gone (lease expired, or it left).
    NodeDown(NodeId),
    /// The link to a node came back after it was down (or had never come up): messages to
    /// it may have been lost meanwhile, so room interest is sent again.
    LinkUp(NodeId),
    /// Time to send every peer the digest of this node's room interest (the cluster
    /// plumbing sends it every few seconds; gRPC bus only).
    InterestCheck,
}

/// A command for the connection registry. The runtime may batch them; order per client id
/// must be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryCommand {
    /// `client` is connected on this node.
    Register {
        /// The client id.
        client: ClientId,
        /// Its user id.
        user: Option<UserId>,
    },
    /// `client` is no longer connected on this node.
    Unregister {
        /// The client id.
        client: ClientId,
    },
    /// Where is `client`? Answer with [`Input::RegistryAnswer`].
    Lookup {
        /// The client id.
        client: ClientId,
        /// The request to answer.
        req: RequestId,
    },
}

/// A command for the broadcast bus (Redis pub/sub).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusCommand {
    /// Publish to a room's channel, or to the global channel when `room` is none.
    Publish {
        /// The room, or none for everyone.
        room: Option<RoomName>,
        /// The finished frame.
        frame: Bytes,
    },
    /// Start receiving a room's channel.
    Subscribe(RoomName),
    /// Stop receiving a room's channel.
    Unsubscribe(RoomName),
}

/// Why the router reads a room's shared history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPurpose {
    /// A join of a history room on this node (`since`: whether the join had one).
    Recover {
        /// The joining connection.
        conn: ConnId,
        /// Whether the join carried `since`.
        since: bool,
    },
    /// The producer API's history query.
    Query(RequestId),
    /// The producer API's position query.
    Position(RequestId),
    /// Messages this node missed on the bus (a gap in a room's offsets).
    Fill,
}

/// A command for the history a cluster shares (Redis): see `hub_cluster::history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryCommand {
    /// Number and keep a message of a history room, and publish it on the room's bus
    /// channel for every node (this one included). Answer [`HistoryAnswer::Appended`].
    Append {
        /// The room.
        room: RoomName,
        /// The `message` JSON up to `from` (`protocol::message_head`).
        head: String,
        /// The payload, JSON text.
        data: Bytes,
        /// Most messages the room keeps.
        max_len: usize,
        /// Longest a message is kept.
        ttl: Duration,
        /// The router's request to answer, if any.
        id: Option<u64>,
    },
    /// Read the room's position and messages. Answer [`HistoryAnswer::Read`].
    Read {
        /// The room.
        room: RoomName,
        /// The messages after this position (none: the newest `limit`).
        since: Option<Since>,
        /// Most messages to read.
        limit: usize,
        /// Longest a message is kept.
        ttl: Duration,
        /// What the answer is for.
        purpose: ReadPurpose,
    },
}

/// The answer to a [`HistoryCommand`].
#[derive(Debug, Clone)]
pub enum HistoryAnswer {
    /// The message was numbered, kept and published (`ok`), or not.
    Appended {
        /// The request of the command.
        id: Option<u64>,
        /// Whether it was.
        ok: bool,
    },
    /// A read's result; `None` when the store could not be read.
    Read {
        /// The room.
        room: RoomName,
        /// The purpose of the command.
        purpose: ReadPurpose,
        /// The position, `recovered` and the messages' payloads.
        page: Option<HistoryPage>,
        /// The messages' whole `message` JSON texts, in the order of `page.messages`.
        texts: Vec<Bytes>,
    },
}

/// An event for the node router.
#[derive(Debug, Clone)]
pub enum Input {
    /// A request from the runtime; answered by [`Output::Reply`] with the same `req`.
    /// Runtime request ids must be below 2^63 (the router uses the upper half itself).
    Command {
        /// The request id the answer carries.
        req: RequestId,
        /// What is asked.
        command: Command,
    },
    /// A report from one of this node's shards.
    Shard {
        /// The shard.
        shard: ShardId,
        /// The report.
        report: Report,
    },
    /// A message from another node.
    Peer {
        /// The sender.
        from: NodeId,
        /// The message.
        message: PeerMessage,
    },
    /// A message sending to a peer failed (connection refused, timed out).
    PeerFailed {
        /// The peer.
        node: NodeId,
        /// The request id of the failed request, if it had one.
        id: Option<u64>,
    },
    /// The registry's answer to [`RegistryCommand::Lookup`].
    RegistryAnswer {
        /// The request.
        req: RequestId,
        /// The node holding the client, if any.
        node: Option<NodeId>,
    },
    /// A frame from the broadcast bus.
    Bus {
        /// The node that published it.
        origin: NodeId,
        /// The room, or none for everyone.
        room: Option<RoomName>,
        /// The finished frame.
        frame: Bytes,
    },
    /// A change in the cluster.
    Cluster(ClusterEvent),
    /// The shared history's answer to a [`HistoryCommand`].
    History(HistoryAnswer),
    /// The registry says `client`, which just connected here, was registered on `node`
    /// before: that node must close its connection with 4000 (client ids are unique in the
    /// cluster).
    Displaced {
        /// The client id.
        client: ClientId,
        /// The node that held it.
        node: NodeId,
    },
    /// Another live node holds `client` now: when this node wrote its entries again after
    /// an outage, the registry kept that newer registration. This node's connection with the
    /// id is the older one and is closed with 4000.
    Superseded {
        /// The client id.
        client: ClientId,
    },
}

/// Something the runtime must do, drained with [`Router::poll_output`](super::Router::poll_output).
#[derive(Debug, Clone)]
pub enum Output {
    /// Feed this input to one of this node's shards.
    ToShard {
        /// The shard.
        shard: ShardId,
        /// The input.
        input: ShardInput,
    },
    /// The answer to a [`Command`].
    Reply {
        /// The request.
        req: RequestId,
        /// The answer.
        reply: Reply,
    },
    /// Send a message to another node.
    ToPeer {
        /// The receiving node.
        node: NodeId,
        /// The message.
        message: PeerMessage,
    },
    /// A registry command.
    Registry(RegistryCommand),
    /// A bus command.
    Bus(BusCommand),
    /// A command for the history a cluster shares.
    History(HistoryCommand),
    /// A presence event for the application (only with `NodeConfig::presence_events`).
    Presence(PresenceEvent),
}
