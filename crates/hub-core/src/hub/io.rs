//! What goes into an embedded [`Hub`](super::Hub) and what comes out of it.

use bytes::Bytes;

use crate::ids::{ConnId, NodeId, RequestId};
use crate::node::{
    BusCommand, Command, HistoryCommand, Input as RouterInput, PeerMessage, PresenceReply,
    RegistryCommand, Reply,
};
use crate::presence::PresenceEvent;
use crate::shard::{Event, Input as ShardInput};

/// An event for the hub.
#[derive(Debug, Clone)]
pub enum HubInput {
    /// What a connection's socket did, for the shard that holds the connection:
    /// `Message`, `Activity`, `Ping`, `Close`, `Closed` or `Sent`. The other shard inputs
    /// name no connection and are ignored here (use [`HubInput::Command`] and
    /// [`HubInput::Shutdown`]); so is an input for a connection that is gone.
    Conn(ShardInput),
    /// A request of the producer API, answered by exactly one [`HubOutput::Delivered`],
    /// [`HubOutput::Online`], [`HubOutput::Disconnected`] or [`HubOutput::Answer`] carrying
    /// the same `req` (which one follows from the command). Request ids must be below 2^63.
    Command {
        /// The request id the answer carries.
        req: RequestId,
        /// What is asked.
        command: Command,
    },
    /// Cluster traffic for the router: peer messages and failures, registry answers, bus
    /// frames, cluster events, displaced clients (a standalone hub ignores peer messages).
    Cluster(RouterInput),
    /// Close every connection with 1001 after flushing what is queued; later opens fail
    /// with [`OpenError::ShuttingDown`](crate::OpenError::ShuttingDown).
    Shutdown,
}

/// Something the embedder must do, drained with [`Hub::poll_output`](super::Hub::poll_output).
#[derive(Debug, Clone)]
pub enum HubOutput {
    /// Write these frames to the connection, in order, then feed `Conn(Sent { conn })`; with
    /// `close`, shut the socket after writing instead (the hub has forgotten the connection).
    /// No further `Transmit` comes for the connection before `Sent`.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// Finished frames.
        frames: Vec<Bytes>,
        /// Close the socket after writing.
        close: bool,
    },
    /// Drop the connection's socket now without writing more; the hub has forgotten it.
    Abort {
        /// The connection.
        conn: ConnId,
    },
    /// An application event (connected, message, disconnected, refused request).
    Event(Event),
    /// The answer to a `Deliver`, `DeliverLocal`, `Join` or `Leave` command.
    Delivered {
        /// The request.
        req: RequestId,
        /// Connections reached (or joined, or left).
        count: u64,
    },
    /// The answer to an `Online` command.
    Online {
        /// The request.
        req: RequestId,
        /// The node holding the client, if it is online.
        node: Option<NodeId>,
    },
    /// The answer to a `Disconnect` command.
    Disconnected {
        /// The request.
        req: RequestId,
        /// Whether a connection was closed.
        closed: bool,
    },
    /// The answer to a `History` or `Position` command.
    Answer {
        /// The request.
        req: RequestId,
        /// The answer ([`Reply::History`] or [`Reply::Position`]).
        reply: Reply,
    },
    /// The answer to a `Presence` command.
    Presence {
        /// The request.
        req: RequestId,
        /// Who is in the room, or how many.
        reply: PresenceReply,
    },
    /// A presence event (when the router's `presence_events` is on).
    PresenceEvent(PresenceEvent),
    /// Something for the cluster: a peer, the registry or the bus.
    Cluster(ClusterOutput),
}

/// What a clustered hub asks of the cluster's transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterOutput {
    /// Send a message to another node; feed `Cluster(PeerFailed { .. })` if it cannot be sent.
    ToPeer {
        /// The receiving node.
        node: NodeId,
        /// The message.
        message: PeerMessage,
    },
    /// Perform a registry command (answer a lookup with `Cluster(RegistryAnswer { .. })`).
    Registry(RegistryCommand),
    /// Perform a bus command.
    Bus(BusCommand),
    /// Perform a command on the shared history (answer with `Cluster(History(..))`).
    History(HistoryCommand),
}
