//! # hubbub-client — push to Hubbub from any Rust service
//!
//! A small client of the producer API (`hubbub.v1.Producer` over gRPC) that any node of a
//! cluster serves on its `--grpc-listen` address:
//!
//! ```no_run
//! # async fn demo() -> Result<(), hubbub_client::ClientError> {
//! let mut hub = hubbub_client::Client::connect("127.0.0.1:8081", None).await?;
//! let reached = hub.publish("lobby", r#"{"text":"hello"}"#).await?;
//! let where_is = hub.online("client-42").await?;
//! # let _ = (reached, where_is); Ok(()) }
//! ```
//!
//! A node whose gRPC listener serves TLS is reached with [`Client::connect_tls`] and the PEM
//! of the CA that signed its certificate.
//!
//! `data` arguments are JSON text: they become the `data` of the `message` frames clients
//! receive. Every call answers how many connections the message reached (delivery is
//! at-most-once).

use std::time::Duration;

use hub_proto::pb;
use hub_proto::pb::producer_client::ProducerClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not a usable endpoint.
    #[error("bad server address {0:?}")]
    Address(String),
    /// The node could not be reached.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// The address tried.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The node refused or failed the call.
    #[error("{}", .0.message())]
    Status(#[from] tonic::Status),
}

/// A connection to one node's producer service.
#[derive(Debug, Clone)]
pub struct Client {
    inner: ProducerClient<Channel>,
    api_key: Option<String>,
}

impl Client {
    /// Connects to `addr` (`HOST:PORT` or `http://HOST:PORT`); `api_key` is sent as
    /// `authorization: Bearer KEY` when given.
    pub async fn connect(addr: &str, api_key: Option<String>) -> Result<Client, ClientError> {
        Self::connect_tls(addr, api_key, None).await
    }

    /// Like [`Client::connect`]; with `ca_pem` (the PEM certificate of the CA that signed the
    /// node's certificate) over TLS, verifying the node's certificate against it: `HOST:PORT`
    /// or `https://HOST:PORT`, the host being a name or address the certificate holds.
    pub async fn connect_tls(
        addr: &str,
        api_key: Option<String>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Client, ClientError> {
        let scheme = if ca_pem.is_some() { "https" } else { "http" };
        let url = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("{scheme}://{addr}")
        };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|_| ClientError::Address(addr.to_owned()))?;
        if let Some(ca) = ca_pem {
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| ClientError::Unreachable {
                    addr: addr.to_owned(),
                    reason: e.to_string(),
                })?;
        }
        let endpoint = endpoint
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| ClientError::Unreachable {
                addr: addr.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Client {
            inner: ProducerClient::new(channel),
            api_key,
        })
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(key) = &self.api_key {
            if let Ok(value) = format!("Bearer {key}").parse() {
                request.metadata_mut().insert("authorization", value);
            }
        }
        request
    }

    /// Delivers `data` to client `to`, wherever it is connected.
    pub async fn emit(&mut self, to: &str, data: &str) -> Result<u64, ClientError> {
        let request = self.request(pb::EmitRequest {
            to: to.into(),
            data: data.into(),
        });
        Ok(self.inner.emit(request).await?.into_inner().delivered)
    }

    /// Delivers `data` to every connection of `user`.
    pub async fn emit_user(&mut self, user: &str, data: &str) -> Result<u64, ClientError> {
        let request = self.request(pb::EmitUserRequest {
            user: user.into(),
            data: data.into(),
        });
        Ok(self.inner.emit_user(request).await?.into_inner().delivered)
    }

    /// Delivers `data` to every member of `room`.
    pub async fn publish(&mut self, room: &str, data: &str) -> Result<u64, ClientError> {
        let request = self.request(pb::PublishRequest {
            room: room.into(),
            data: data.into(),
        });
        Ok(self.inner.publish(request).await?.into_inner().delivered)
    }

    /// Delivers `data` to every connection of the cluster.
    pub async fn broadcast(&mut self, data: &str) -> Result<u64, ClientError> {
        let request = self.request(pb::BroadcastRequest { data: data.into() });
        Ok(self.inner.broadcast(request).await?.into_inner().delivered)
    }

    /// The node holding client `id`, or `None` when it is offline.
    pub async fn online(&mut self, id: &str) -> Result<Option<String>, ClientError> {
        let request = self.request(pb::OnlineRequest { id: id.into() });
        let reply = self.inner.online(request).await?.into_inner();
        Ok(reply.online.then_some(reply.node))
    }

    /// The kept messages of a room with history after `since` (offset and epoch), at most
    /// `limit` (0: 100), oldest first; without `since`, the newest kept. `NOT_FOUND` for a
    /// room without history.
    pub async fn history(
        &mut self,
        room: &str,
        since: Option<(u64, &str)>,
        limit: u32,
    ) -> Result<pb::HistoryReply, ClientError> {
        let request = self.request(pb::HistoryRequest {
            room: room.into(),
            since: since.map(|(offset, _)| offset),
            epoch: since.map(|(_, epoch)| epoch.to_owned()),
            limit,
        });
        Ok(self.inner.history(request).await?.into_inner())
    }

    /// A room with history's last offset and epoch: `(offset, epoch)`.
    pub async fn position(&mut self, room: &str) -> Result<(u64, String), ClientError> {
        let request = self.request(pb::PositionRequest { room: room.into() });
        let reply = self.inner.position(request).await?.into_inner();
        Ok((reply.offset, reply.epoch))
    }

    /// Closes client `id`'s connection (code 4003); whether one was closed.
    pub async fn disconnect(&mut self, id: &str) -> Result<bool, ClientError> {
        let request = self.request(pb::DisconnectRequest { to: id.into() });
        Ok(self
            .inner
            .disconnect(request)
            .await?
            .into_inner()
            .disconnected)
    }

    /// The node's `/stats` JSON.
    pub async fn stats(&mut self) -> Result<String, ClientError> {
        let request = self.request(pb::StatsRequest {});
        Ok(self.inner.stats(request).await?.into_inner().json)
    }

    /// Every connection in `room` on every node of the cluster, sorted by client id.
    pub async fn presence(&mut self, room: &str) -> Result<Vec<PresenceMember>, ClientError> {
        let request = self.request(pb::PresenceRequest { room: room.into() });
        let reply = self.inner.presence(request).await?.into_inner();
        Ok(reply
            .clients
            .into_iter()
            .map(|c| PresenceMember {
                id: c.id,
                user: c.user,
                info: c.info,
            })
            .collect())
    }

    /// How many are in `room` on every node: `(connections, distinct user ids)`.
    pub async fn presence_count(&mut self, room: &str) -> Result<(u64, u64), ClientError> {
        let request = self.request(pb::PresenceRequest { room: room.into() });
        let reply = self.inner.presence_count(request).await?.into_inner();
        Ok((reply.clients, reply.users))
    }
}

/// One connection in a room, as [`Client::presence`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceMember {
    /// The client id.
    pub id: String,
    /// The member's user id, when it has one.
    pub user: Option<String>,
    /// The member's information (JSON text), when it has some.
    pub info: Option<String>,
}
