//! The gRPC services a clustered node serves: `hubbub.v1.Producer` (the producer API) and
//! `hubbub.v1.Peer` (node-to-node).

use std::pin::Pin;
use std::sync::Arc;

use hub_core::node::{Command, Input, PresenceQuery, PresenceReply, Reply};
use hub_core::{protocol, ClientId, NodeId, RoomName, Scope, Target, UserId};
use hub_proto::pb;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::health::{add, Health};
use crate::peer_auth::{unix_now, PeerAuth};
use crate::{InputSink, NodeApi};

/// Checks `authorization: Bearer KEY` when a key is configured.
pub(crate) fn check_key(
    expected: &Option<String>,
    request: &tonic::metadata::MetadataMap,
) -> Result<(), Status> {
    let given = request.get("authorization").and_then(|v| v.to_str().ok());
    if hub_edge::auth::api_key_ok(expected.as_deref(), given) {
        Ok(())
    } else {
        Err(Status::unauthenticated(
            "missing or wrong API key (authorization: Bearer KEY)",
        ))
    }
}

pub(crate) fn name(field: &'static str, value: String) -> Result<String, Status> {
    if value.is_empty() || value.len() > 256 {
        return Err(Status::invalid_argument(format!(
            "{field} must be 1 to 256 bytes long"
        )));
    }
    if field == "room" && hub_core::ids::is_reserved_room(&value) {
        return Err(Status::invalid_argument(
            "room names starting with U+001F are reserved",
        ));
    }
    Ok(value)
}

fn data(value: &str) -> Result<&str, Status> {
    if protocol::is_json(value) {
        Ok(value)
    } else {
        Err(Status::invalid_argument("data must be one JSON value"))
    }
}

/// Whether a link's read error is an envelope this node cannot decode (too large for the
/// peer message limit, or malformed), rather than a broken connection.
fn undecodable(status: &Status) -> bool {
    status.code() == tonic::Code::OutOfRange || status.message().contains("decode")
}

/// The producer service.
pub(crate) struct ProducerService {
    pub(crate) api: Arc<dyn NodeApi>,
    pub(crate) api_key: Option<String>,
    /// Largest `data` accepted, in bytes.
    pub(crate) max_data: usize,
}

impl ProducerService {
    async fn run(&self, command: Command) -> Result<Reply, Status> {
        self.api
            .command(command)
            .await
            .ok_or_else(|| Status::unavailable("the node is shutting down"))
    }

    async fn deliver(
        &self,
        target: Target,
        room: Option<&str>,
        payload: &str,
    ) -> Result<Response<pb::Delivered>, Status> {
        if payload.len() > self.max_data {
            return Err(Status::resource_exhausted(format!(
                "data is {} bytes; this node accepts at most {} (--max-message-size)",
                payload.len(),
                self.max_data
            )));
        }
        let frame = protocol::message(room, None, data(payload)?);
        match self.run(Command::Deliver { target, frame }).await? {
            Reply::Delivered(delivered) => Ok(Response::new(pb::Delivered { delivered })),
            _ => Err(Status::internal("unexpected reply")),
        }
    }
}

#[tonic::async_trait]
impl pb::producer_server::Producer for ProducerService {
    async fn emit(
        &self,
        request: Request<pb::EmitRequest>,
    ) -> Result<Response<pb::Delivered>, Status> {
        check_key(&self.api_key, request.metadata())?;
        let r = request.into_inner();
        let to = name("to", r.to)?;
        self.deliver(Target::Client(ClientId::from(to)), None, &r.data)
            .await
    }

    async fn emit_user(
        &self,
        request: Request<pb::EmitUserRequest>,
    ) -> Result<Response<pb::Delivered>, Status> {
        check_key(&self.api_key, request.metadata())?;
        let r = request.into_inner();
        let user = name("user", r.user)?;
        self.deliver(Target::User(UserId::from(user)), None, &r.data)
            .await
    }

    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::Delivered>, Status> {
        check_key(&self.api_key, request.metadata())?;
        let r = request.into_inner();
        let room = name("room", r.room)?;
        self.deliver(
            Target::Room(RoomName::from(room.as_str())),
            Some(&room),
            &r.data,
        )
        .await
    }

    async fn broadcast(
        &self,
        request: Request<pb::BroadcastRequest>,
    ) -> Result<Response<pb::Delivered>, Status> {
        check_key(&self.api_key, request.metadata())?;
        self.deliver(Target::All, None, &request.into_inner().data)
            .await
    }

    async fn online(
        &self,
        request: Request<pb::OnlineRequest>,
    ) -> Result<Response<pb::OnlineReply>, Status> {
        check_key(&self.api_key, request.metadata())?;
        let id = name("id", request.into_inner().id)?;
        match self
            .run(Command::Online {
                client: ClientId::from(id),
            })
            .await?
        {
            Reply::Online(node) => Ok(Response::new(pb::OnlineReply {
                online: node.is_some(),
                node: node.map(|n| n.to_string()).unwrap_or_default(),
            })),
            _ => Err(Status::internal("unexpected reply")),
        }
    }

    async fn disconnect(
        &self,
        request: Request<pb::DisconnectRequest>,
    ) -> Result<Response<pb::DisconnectReply>, Status> {
        check_key(&self.api_key, request.metadata())?;
        let to = name("to", request.into_inner().to)?;
        match self
            .run(Command::Disconnect {
                client: ClientId::from(to),
            })
            .await?
        {
            Reply::Disconnected(disconnected) => {
                Ok(Response::new(pb::DisconnectReply { disconnected }))
            }
            _ => Err(Status::internal("unexpected reply")),
        }
    }

    async fn presence(
        &self,
        request: Request<pb::PresenceRequest>,
    ) -> Result<Response<pb::PresenceReply>, Status> {
        check_key(&self.api_key, request.metadata())?;
        let room = RoomName::from(name("room", request.into_inner().room)?);
        let query = PresenceQuery::Members;
        match self.run(Command::Presence { room, query }).await? {
            Reply::Presence(PresenceReply::Members(members)) => {
                let clients = members
                    .into_iter()
                    .map(|m| pb::PresenceClient {
                        id: m.client.to_string(),
                        user: m.user.map(|u| u.to_string()),
                        info: m.info.map(|i| i.to_string()),
                    })
                    .collect();
                Ok(Response::new(pb::PresenceReply { clients }))
            }
            _ => Err(Status::internal("unexpected reply")),
        }
    }

    async fn presence_count(
        &self,
        request: Request<pb::PresenceRequest>,
    ) -> Result<Response<pb::PresenceCountReply>, Status> {
        check_key(&self.api_key, request.metadata())?;
        let room = RoomName::from(name("room", request.into_inner().room)?);
        let query = PresenceQuery::Count(Scope::Cluster);
        match self.run(Command::Presence { room, query }).await? {
            Reply::Presence(PresenceReply::Count(c)) => Ok(Response::new(pb::PresenceCountReply {
                clients: c.clients,
                users: c.users,
            })),
            _ => Err(Status::internal("unexpected reply")),
        }
    }

    async fn stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsReply>, Status> {
        check_key(&self.api_key, request.metadata())?;
        Ok(Response::new(pb::StatsReply {
            json: self.api.stats_json().await,
        }))
    }

    async fn history(
        &self,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryReply>, Status> {
        check_key(&self.api_key, request.metadata())?;
        let command = crate::history::history_command(request.into_inner())?;
        crate::history::history_reply(self.run(command).await?).map(Response::new)
    }

    async fn position(
        &self,
        request: Request<pb::PositionRequest>,
    ) -> Result<Response<pb::PositionReply>, Status> {
        check_key(&self.api_key, request.metadata())?;
        let room = name("room", request.into_inner().room)?;
        let command = Command::Position {
            room: RoomName::from(room),
        };
        crate::history::position_reply(self.run(command).await?).map(Response::new)
    }
}

/// The frame a peer's content makes, or INVALID_ARGUMENT.
fn content_frame(content: Option<pb::Content>) -> Result<bytes::Bytes, Status> {
    hub_proto::frame_from_content(content).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The node-to-node service. Every call is checked with [`PeerAuth::verify`] first.
pub(crate) struct PeerService {
    pub(crate) api: Arc<dyn NodeApi>,
    pub(crate) sink: InputSink,
    pub(crate) health: Arc<Health>,
    pub(crate) auth: PeerAuth,
}

type EnvelopeStream = Pin<Box<dyn Stream<Item = Result<pb::PeerEnvelope, Status>> + Send>>;

impl PeerService {
    /// The authenticated caller (`None` when peers are not authenticated), or
    /// UNAUTHENTICATED.
    fn caller<T>(&self, request: &Request<T>) -> Result<Option<NodeId>, Status> {
        // The listener verified any certificate against the cluster CA in the handshake.
        let certified = request.peer_certs().is_some_and(|certs| !certs.is_empty());
        self.auth
            .verify_call(request.metadata(), certified, unix_now())
            .inspect_err(|status| {
                tracing::debug!(reason = status.message(), "refused a node-to-node call");
            })
    }

    async fn local(
        &self,
        target: Target,
        frame: bytes::Bytes,
    ) -> Result<Response<pb::Delivered>, Status> {
        match self
            .api
            .command(Command::DeliverLocal { target, frame })
            .await
        {
            Some(Reply::Delivered(delivered)) => Ok(Response::new(pb::Delivered { delivered })),
            _ => Err(Status::unavailable("the node is shutting down")),
        }
    }
}

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    async fn emit(
        &self,
        request: Request<pb::PeerEmit>,
    ) -> Result<Response<pb::Delivered>, Status> {
        self.caller(&request)?;
        let r = request.into_inner();
        self.local(
            Target::Client(ClientId::from(name("client", r.client)?)),
            content_frame(r.content)?,
        )
        .await
    }

    async fn online(
        &self,
        request: Request<pb::OnlineRequest>,
    ) -> Result<Response<pb::OnlineReply>, Status> {
        self.caller(&request)?;
        let id = name("id", request.into_inner().id)?;
        match self
            .api
            .command(Command::Online {
                client: ClientId::from(id),
            })
            .await
        {
            Some(Reply::Online(node)) => Ok(Response::new(pb::OnlineReply {
                online: node.is_some(),
                node: node.map(|n| n.to_string()).unwrap_or_default(),
            })),
            _ => Err(Status::unavailable("the node is shutting down")),
        }
    }

    async fn broadcast(
        &self,
        request: Request<pb::PeerBroadcast>,
    ) -> Result<Response<pb::Delivered>, Status> {
        self.caller(&request)?;
        let r = request.into_inner();
        let target = if r.room.is_empty() {
            Target::All
        } else {
            Target::Room(RoomName::from(r.room))
        };
        self.local(target, content_frame(r.content)?).await
    }

    type LinkStream = EnvelopeStream;

    async fn link(
        &self,
        request: Request<Streaming<pb::PeerEnvelope>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let caller = self.caller(&request)?;
        let mut inbound = request.into_inner();
        let sink = self.sink.clone();
        let health = self.health.clone();
        // The answer stream ends when this node stops reading the link: with an error after
        // an envelope it cannot decode, so the sender makes a new link instead of writing
        // into a stream nobody reads.
        let (end_tx, end_rx) = tokio::sync::mpsc::channel::<Result<pb::PeerEnvelope, Status>>(1);
        tokio::spawn(async move {
            loop {
                let envelope = match inbound.next().await {
                    Some(Ok(envelope)) => envelope,
                    Some(Err(status)) => {
                        if undecodable(&status) {
                            add(&health.counters.peer_decode_errors, 1);
                            tracing::warn!(error = %status.message(), "closed an inbound peer link that sent what this node cannot decode");
                        } else {
                            tracing::debug!(error = %status.message(), "an inbound peer link broke");
                        }
                        let _ = end_tx.send(Err(status)).await;
                        return;
                    }
                    None => return,
                };
                if caller.as_ref().is_some_and(|c| c.as_str() != envelope.from) {
                    tracing::warn!(
                        caller = %caller.as_ref().map(NodeId::as_str).unwrap_or_default(),
                        "refused a peer link: its messages claim another node as sender"
                    );
                    let status = Status::unauthenticated(
                        "node-to-node call refused: `from` is not the authenticated node",
                    );
                    let _ = end_tx.send(Err(status)).await;
                    return;
                }
                let from = NodeId::from(envelope.from);
                add(
                    &health.counters.peer_received,
                    envelope.messages.len() as u64,
                );
                for message in envelope.messages {
                    match hub_proto::message_from_pb(message) {
                        Ok(message) => sink(Input::Peer {
                            from: from.clone(),
                            message,
                        }),
                        Err(e) => {
                            tracing::warn!(peer = %from, error = %e, "ignored a peer message")
                        }
                    }
                }
            }
        });
        // Replies travel on this node's own link back; the answer stream carries nothing.
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(end_rx),
        )))
    }
}
