//! What goes into a shard and what comes out of it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::history::{Recovery, Since};
use crate::ids::{ClientId, ConnId, RequestId, RoomName, ShardId, UserId};
use crate::presence::Member;
use crate::protocol::ErrorCode;

/// Who a delivery is for, as seen from one node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// One connection.
    Conn(ConnId),
    /// The connection with this client id.
    Client(ClientId),
    /// Every connection of this user.
    User(UserId),
    /// Every member of this room.
    Room(RoomName),
    /// Every member of this room but the connection of one client id (a sender that must
    /// not get its own message back, wherever the delivery is routed).
    RoomExcept {
        /// The room.
        room: RoomName,
        /// The client left out.
        except: ClientId,
    },
    /// Every connection.
    All,
}

/// A connection to open on a shard, as the runtime learned it from the upgrade request.
#[derive(Debug, Clone, Default)]
pub struct OpenParams {
    /// The client id asked for (query `id` or a token); one is generated when absent.
    pub client: Option<ClientId>,
    /// The user id (query `user` or a token's `sub`).
    pub user: Option<UserId>,
    /// The peer's address, for the application's information.
    pub peer: Option<SocketAddr>,
    /// Rooms to join at once (`GET /ws/{room}`).
    pub rooms: Vec<RoomName>,
    /// The only rooms the client may join and publish to (a token's `rooms` claim); `None`
    /// allows every room. Joins in `rooms` are the server's own and are not checked.
    pub allowed_rooms: Option<Vec<RoomName>>,
    /// The connection's protocol, when it differs from the node's
    /// ([`Config::client_protocol`](crate::Config::client_protocol)).
    pub protocol: Option<crate::config::ClientProtocol>,
    /// The application of a protocol layer above the shard that the connection belongs to
    /// (the Pusher app id), handed back in [`Event::Connected`]; the shard does not keep it.
    pub app: Option<Arc<str>>,
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// A client id, user id or room name is empty or too long.
    #[error("{what} must be 1 to {max} bytes long")]
    BadName {
        /// Which name.
        what: &'static str,
        /// The configured limit.
        max: usize,
    },
    /// The client id belongs on another shard (see [`crate::ids::shard_for`]).
    #[error("client id belongs on shard {0}")]
    WrongShard(ShardId),
    /// The shard is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// An event for a shard. Every input names its connection by [`ConnId`]; inputs for a
/// connection that is gone (a stale id) are ignored.
#[derive(Debug, Clone)]
pub enum Input {
    /// A complete message from the client (already de-framed and unmasked).
    Message {
        /// The sender.
        conn: ConnId,
        /// The payload.
        data: Bytes,
        /// Whether it came in a binary frame (text otherwise, already checked to be UTF-8).
        binary: bool,
    },
    /// A pong, or any other traffic from the connection: it is alive.
    Activity {
        /// The connection.
        conn: ConnId,
    },
    /// A WebSocket ping from the client; the shard queues the pong.
    Ping {
        /// The connection.
        conn: ConnId,
        /// The ping's payload, echoed in the pong.
        payload: Bytes,
    },
    /// Close the connection with this code: the client sent a close frame, or broke the
    /// protocol (the runtime's decoder names the code). What is already queued for it is
    /// written before the close frame (within the drain timeout).
    Close {
        /// The connection.
        conn: ConnId,
        /// The close code to send.
        code: u16,
        /// The reason to send.
        reason: String,
    },
    /// The socket is gone (EOF, reset, error); nothing more can be written.
    Closed {
        /// The connection.
        conn: ConnId,
    },
    /// The runtime finished writing the last [`Output::Transmit`] for this connection.
    Sent {
        /// The connection.
        conn: ConnId,
    },
    /// Deliver an encoded frame to local targets (from the node router).
    Deliver {
        /// Who gets it.
        target: Target,
        /// The finished server frame, shared by every recipient.
        frame: Bytes,
        /// Answer with [`Report::Delivered`] when given.
        req: Option<RequestId>,
    },
    /// Deliver a message of a room with history, numbered by the router, to the room's
    /// members here (a member whose join is still being answered gets it after the replay,
    /// unless the replay held it).
    Sequenced {
        /// The room.
        room: RoomName,
        /// The message's offset.
        offset: u64,
        /// The finished `message` frame (with `offset` and `epoch`).
        frame: Bytes,
        /// Answer with [`Report::Delivered`] when given.
        req: Option<RequestId>,
    },
    /// The router's answer to [`Report::Recover`]: send `joined`, the replay, then what was
    /// held meanwhile.
    Recovered {
        /// The joining connection.
        conn: ConnId,
        /// The room.
        room: RoomName,
        /// The position, and the replay of a join with `since`.
        recovery: Recovery,
    },
    /// Make `user` the connection's user (a protocol layer's sign-in): emits to the user and
    /// disconnects of the user reach it from then on.
    SetUser {
        /// The connection.
        conn: ConnId,
        /// Its user from now on.
        user: UserId,
    },
    /// Deliver an encoded frame to local targets and route it beyond this shard (other
    /// shards, other nodes), as a client's publish is: for protocol layers above the shard.
    Publish {
        /// Who gets it.
        target: Target,
        /// The finished server frame, shared by every recipient.
        frame: Bytes,
    },
    /// Add the connection of `client` to `room`.
    Join {
        /// Who joins.
        target: Target,
        /// The room.
        room: RoomName,
        /// Answer with [`Report::Delivered`] (count of connections that joined) when given.
        req: Option<RequestId>,
    },
    /// Add the connections of `target` to `room` as presence members with this user id
    /// (instead of the connection's) and information (JSON text, Pusher's `user_info`).
    JoinAs {
        /// Who joins.
        target: Target,
        /// The room.
        room: RoomName,
        /// The member's user id in this room; `None`: the connection's.
        user: Option<UserId>,
        /// The member's information, JSON text.
        info: Option<Arc<str>>,
        /// Answer with [`Report::Delivered`] (count of connections that joined) when given.
        req: Option<RequestId>,
    },
    /// Remove the connections of `target` from `room`.
    Leave {
        /// Who leaves.
        target: Target,
        /// The room.
        room: RoomName,
        /// Answer with [`Report::Delivered`] (count of connections that left) when given.
        req: Option<RequestId>,
    },
    /// Close the connections of `target` with `code`.
    Disconnect {
        /// Who is disconnected.
        target: Target,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
        /// Answer with [`Report::Delivered`] (count of connections closed) when given.
        req: Option<RequestId>,
    },
    /// Is `client` connected here? Answered with [`Report::Found`].
    Lookup {
        /// The client id.
        client: ClientId,
        /// The request to answer.
        req: RequestId,
    },
    /// Close every connection with 1001 after flushing what is queued.
    Shutdown,
}

/// An application event, for code that embeds the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A connection opened.
    Connected {
        /// The connection.
        conn: ConnId,
        /// Its client id.
        client: ClientId,
        /// Its user id.
        user: Option<UserId>,
        /// The peer's address, as the runtime gave it (the shard does not keep it).
        peer: Option<SocketAddr>,
        /// The application the connection belongs to, as [`OpenParams::app`] gave it.
        app: Option<Arc<str>>,
    },
    /// A message the hub did not handle itself (every message with
    /// [`ClientProtocol::Raw`](crate::ClientProtocol::Raw)).
    Message {
        /// The sender.
        conn: ConnId,
        /// The payload.
        data: Bytes,
        /// Whether it came in a binary frame.
        binary: bool,
    },
    /// A connection closed.
    Disconnected {
        /// The connection.
        conn: ConnId,
        /// Its client id.
        client: ClientId,
        /// The close code (1006 when the socket simply went away).
        code: u16,
    },
    /// A client request was refused (the client got an error frame too).
    Error {
        /// The connection.
        conn: ConnId,
        /// The error code sent.
        code: ErrorCode,
        /// The message sent.
        message: String,
    },
}

/// A message from a shard to its node's router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A client-originated delivery that must reach beyond this shard; the shard already
    /// delivered to its own matching connections.
    Route {
        /// Who it is for.
        target: Target,
        /// The finished frame.
        frame: Bytes,
    },
    /// Answer to a request: how many local connections were reached.
    Delivered {
        /// The request.
        req: RequestId,
        /// Connections reached.
        count: u64,
    },
    /// Answer to [`Input::Lookup`].
    Found {
        /// The request.
        req: RequestId,
        /// Whether the client is connected on this shard.
        found: bool,
    },
    /// A connection joined a room with history (after [`Report::RoomActive`], when it was
    /// the first here): answer with [`Input::Recovered`].
    Recover {
        /// The connection.
        conn: ConnId,
        /// The room.
        room: RoomName,
        /// Where the client left off (a join with `since`).
        since: Option<Since>,
    },
    /// The first member of a room joined on this shard.
    RoomActive(RoomName),
    /// The last member of a room left this shard.
    RoomIdle(RoomName),
    /// A user's first connection opened on this shard.
    UserActive(UserId),
    /// A user's last connection on this shard closed.
    UserIdle(UserId),
    /// A connection joined a room (for presence); sent after `RoomActive`.
    MemberJoined {
        /// The room.
        room: RoomName,
        /// The member.
        member: Member,
    },
    /// A connection left a room, or closed while in it (for presence).
    MemberLeft {
        /// The room.
        room: RoomName,
        /// The member's client id.
        client: ClientId,
    },
    /// A client connected (for the registry).
    ClientUp {
        /// The client id.
        client: ClientId,
        /// The user id.
        user: Option<UserId>,
        /// The connection.
        conn: ConnId,
    },
    /// A client disconnected (for the registry). Not sent when a newer connection with the
    /// same id replaced it.
    ClientDown {
        /// The client id.
        client: ClientId,
        /// The connection that closed.
        conn: ConnId,
    },
}

/// Something the runtime must do, drained with [`Shard::poll_output`](super::Shard::poll_output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these frames to the connection, in order, in as few writes as possible; then
    /// report [`Input::Sent`]. No further `Transmit` comes for the connection before that.
    /// With `close`, the last frame is the close frame: after writing, shut the socket; the
    /// shard has already forgotten the connection.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// Finished frames.
        frames: Vec<Bytes>,
        /// Close the socket after writing.
        close: bool,
    },
    /// Drop the connection's socket now without writing more (it did not drain in time).
    /// The shard has already forgotten the connection.
    Abort {
        /// The connection.
        conn: ConnId,
    },
    /// An application event.
    Event(Event),
    /// A message for the node router.
    Report(Report),
}
