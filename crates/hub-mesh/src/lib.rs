//! # hub-mesh — a node's place in the cluster
//!
//! Everything a clustered node does besides serving its own sockets, shared by every
//! runtime (the futures need a tokio reactor; the smol runtime runs them through a
//! compatibility layer):
//! - the gRPC server: `hubbub.v1.Producer` (the producer API) and `hubbub.v1.Peer`
//!   (node-to-node, with the batched `Link` stream);
//! - one outbound link per peer, batching the router's messages for it in envelopes bounded
//!   in messages and bytes below the peer message limit ([`peer_message_limit`]), with a
//!   deadline on every send; a link that stalls or that the peer closes is made again;
//! - the registry task: joins with a lease (clearing what a previous instance left), renews
//!   it (and writes this node's entries again when Redis lost some), batches the router's
//!   registry commands into single round trips, watches which nodes are alive (and reads a
//!   node's address at once when a lookup names one it has not met), after an outage joins
//!   again and restores every local client by itself without taking an id back, and asks
//!   the router every few seconds to send its peers the digest of its room interest;
//! - the bus task (Redis pub/sub), which resubscribes by itself after reconnecting;
//! - the history task (rooms with `--history`, in the bus's Redis): appends in the order the
//!   router asks for them, reads concurrently;
//! - [`PeerAuth`]: node-to-node calls carry proof of the cluster secret, bound to the
//!   sending node's id ([`peer_auth`] states the scheme).
//!
//! The runtime connects it to its router: [`Cluster::send`] takes the router's registry, bus
//! and peer outputs; the [`InputSink`] passed to [`Cluster::start`] receives the router's
//! cluster inputs; [`NodeApi`] lets the gRPC services run commands.

mod driver;
mod grpc;
mod health;
mod history;
mod links;
pub mod peer_auth;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_core::node::{
    BusCommand, Command, HistoryCommand, Input, PeerMessage, RegistryCommand, Reply,
};
use hub_core::NodeId;
use hub_proto::pb;
use hub_serve::{BusSpec, RegistrySpec, Settings};
use tokio::sync::{mpsc, oneshot};

pub use health::ClusterStats;
pub use peer_auth::PeerAuth;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Where the router's cluster inputs go (the runtime feeds them to its router task).
pub type InputSink = Arc<dyn Fn(Input) + Send + Sync>;

/// What the gRPC services need from the node.
pub trait NodeApi: Send + Sync + 'static {
    /// Runs a router command; `None` when the node is stopping.
    fn command(&self, command: Command) -> BoxFuture<Option<Reply>>;
    /// The node's `/stats` JSON.
    fn stats_json(&self) -> BoxFuture<String>;
}

/// A cluster output of the router, for [`Cluster::send`].
#[derive(Debug, Clone)]
pub enum ClusterCmd {
    /// A registry command.
    Registry(RegistryCommand),
    /// A bus command.
    Bus(BusCommand),
    /// A message for a peer.
    ToPeer {
        /// The peer.
        node: NodeId,
        /// The message.
        message: PeerMessage,
    },
    /// A command for the shared history (Redis).
    History(HistoryCommand),
}

/// Settings of the cluster plumbing.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's id.
    pub node: NodeId,
    /// Where the gRPC server listens.
    pub grpc_listen: SocketAddr,
    /// The gRPC address peers use to reach this node.
    pub advertise: String,
    /// The registry.
    pub registry: RegistrySpec,
    /// The bus.
    pub bus: BusSpec,
    /// Lease lifetime.
    pub lease_ttl: Duration,
    /// Bound of every registry and bus call.
    pub op_timeout: Duration,
    /// API key of the producer service.
    pub api_key: Option<String>,
    /// Largest producer `data` the producer service accepts (RESOURCE_EXHAUSTED beyond).
    pub max_producer_data: usize,
    /// Largest envelope a peer link carries and this node's Peer service decodes (see
    /// [`peer_message_limit`]).
    pub peer_limit: usize,
    /// The cluster secret node-to-node calls prove (none: peer calls are not authenticated).
    pub cluster_secret: Option<String>,
    /// Certificate and key of the gRPC listener (none: plaintext).
    pub tls: Option<hub_serve::TlsFiles>,
    /// The cluster CA: peers' certificates chain to it, and links connect over TLS.
    pub cluster_ca: Option<std::path::PathBuf>,
    /// The client certificate this node presents to peers (mutual TLS).
    pub cluster_tls: Option<hub_serve::TlsFiles>,
    /// Time a TLS handshake of the gRPC listener may take.
    pub handshake_timeout: Duration,
    /// The Redis that history rooms live in and travel through (`--history` in a cluster).
    pub history_redis: Option<String>,
}

/// The smallest peer message limit: gRPC's customary 4 MiB.
pub const MIN_PEER_LIMIT: usize = 4 * 1024 * 1024;

/// Room for an envelope's framing around its largest message.
const PEER_LIMIT_SLACK: usize = 64 * 1024;

/// The peer message limit of a node: its send queue bound or its largest client message,
/// whichever is larger (no connection can take a larger frame), plus room for framing, and
/// at least [`MIN_PEER_LIMIT`]. Envelopes stay below it and the Peer service decodes up to
/// it, so nodes of a cluster should share `--send-queue-bytes` and `--max-message-size`.
pub fn peer_message_limit(send_queue_bytes: usize, max_message_size: usize) -> usize {
    send_queue_bytes
        .max(max_message_size)
        .saturating_add(PEER_LIMIT_SLACK)
        .max(MIN_PEER_LIMIT)
}

impl ClusterConfig {
    /// The gRPC and cluster settings of a node, or `None` when it serves no gRPC (a
    /// standalone node without `--grpc-listen`). A standalone node with `--grpc-listen`
    /// serves the producer service and has no registry.
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        let grpc_listen = settings.grpc_listen?;
        let advertise = settings
            .advertise
            .clone()
            .unwrap_or_else(|| grpc_listen.to_string());
        Some(Self {
            node: NodeId::from(settings.node_name()),
            grpc_listen,
            advertise,
            registry: settings.registry.clone(),
            bus: settings.bus.clone(),
            lease_ttl: settings.lease_ttl,
            op_timeout: Duration::from_secs(2).min(settings.lease_ttl / 2),
            api_key: settings.api_key.clone(),
            max_producer_data: settings.max_producer_data(),
            peer_limit: peer_message_limit(settings.send_queue_bytes, settings.max_message_size),
            cluster_secret: settings.cluster_secret.clone(),
            tls: settings.grpc_tls_files().cloned(),
            cluster_ca: settings.cluster_ca.clone(),
            cluster_tls: settings.cluster_tls.clone(),
            handshake_timeout: settings.handshake_timeout,
            history_redis: settings.history_redis(),
        })
    }
}

/// Smallest decoding limit of the producer service: producer calls up to 16 MiB get a
/// clear RESOURCE_EXHAUSTED when their data is over the node's cap.
const PRODUCER_DECODE_LIMIT: usize = 16 << 20;

/// Why the cluster plumbing could not start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The gRPC address could not be bound.
    #[error("--grpc-listen {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// The advertised address is not usable.
    #[error("--advertise: {0}")]
    Advertise(String),
    /// A certificate, key or CA file is not usable (the message names the flag).
    #[error("{0}")]
    Tls(String),
}

/// The running cluster plumbing of one node.
pub struct Cluster {
    registry: Option<mpsc::UnboundedSender<driver::RegistryMsg>>,
    bus: Option<mpsc::UnboundedSender<BusCommand>>,
    history: Option<mpsc::UnboundedSender<HistoryCommand>>,
    links: Arc<Mutex<Links>>,
    health: Arc<health::Health>,
    grpc_addr: SocketAddr,
    /// The gRPC listener's certificate store, with TLS.
    tls: Option<Arc<hub_serve::CertStore>>,
}

use links::Links;

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("grpc_addr", &self.grpc_addr)
            .finish()
    }
}

impl Cluster {
    /// Binds the gRPC server and starts the registry, bus and link tasks (on the current
    /// tokio runtime). An unreachable registry or bus does not stop the start: the node
    /// reports itself degraded and keeps trying.
    pub async fn start(
        config: ClusterConfig,
        sink: InputSink,
        api: Arc<dyn NodeApi>,
    ) -> Result<Cluster, MeshError> {
        if config.advertise.starts_with("0.0.0.0") || config.advertise.starts_with("[::]") {
            return Err(MeshError::Advertise(format!(
                "{} is not reachable by peers; pass the address they should use",
                config.advertise
            )));
        }
        let mtls = config.cluster_tls.is_some() && config.cluster_ca.is_some();
        let listener_tls = match &config.tls {
            Some(files) => Some(tls::ListenerTls::open(files, config.cluster_ca.as_deref())?),
            None => None,
        };
        let link_tls = match &config.cluster_ca {
            Some(ca) => Some(tls::link_config(ca, config.cluster_tls.as_ref())?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.grpc_listen)
            .await
            .map_err(|e| MeshError::Bind(config.grpc_listen, e))?;
        let grpc_addr = listener
            .local_addr()
            .map_err(|e| MeshError::Bind(config.grpc_listen, e))?;
        let mut config = config;
        if config.advertise.ends_with(":0") {
            config.advertise = grpc_addr.to_string();
        }
        let with_registry = config.registry != RegistrySpec::Memory;
        // History rooms travel over Redis pub/sub even when the bus is gRPC.
        let bus_url = match (&config.bus, &config.history_redis) {
            (BusSpec::Redis(url), _) | (_, Some(url)) if with_registry => Some(url.clone()),
            _ => None,
        };
        let with_bus = bus_url.is_some();
        let health = Arc::new(health::Health::new(with_registry, with_bus));
        let auth = PeerAuth::new(
            config.node.clone(),
            config.cluster_secret.as_deref().map(str::as_bytes),
        )
        .with_mtls(mtls);
        if with_registry && !auth.required() {
            tracing::warn!(
                grpc = %grpc_addr,
                "node-to-node calls are not authenticated (no --cluster-secret): only safe \
                 while the gRPC listener stays on loopback"
            );
        }
        let links = Arc::new(Mutex::new(Links::new(
            config.node.clone(),
            sink.clone(),
            health.clone(),
            config.op_timeout,
            config.peer_limit,
            auth.clone(),
            link_tls,
        )));

        let producer = pb::producer_server::ProducerServer::new(grpc::ProducerService {
            api: api.clone(),
            api_key: config.api_key.clone(),
            max_data: config.max_producer_data,
        })
        // Calls up to this size are decoded and answered RESOURCE_EXHAUSTED when their data is
        // over the cap; larger ones are refused by the decoder itself (OUT_OF_RANGE).
        .max_decoding_message_size(
            PRODUCER_DECODE_LIMIT.max(config.max_producer_data + (64 << 10)),
        );
        // A standalone node has no peers: it serves no node-to-node service at all.
        let peer = with_registry.then(|| {
            pb::peer_server::PeerServer::new(grpc::PeerService {
                api,
                sink: sink.clone(),
                health: health.clone(),
                auth,
            })
            .max_decoding_message_size(config.peer_limit)
            .max_encoding_message_size(config.peer_limit)
        });
        let router = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(producer)
            .add_optional_service(peer);
        let store = listener_tls.as_ref().map(|t| t.store.clone());
        match &listener_tls {
            Some(listener_tls) => {
                let incoming = listener_tls.incoming(listener, config.handshake_timeout);
                tokio::spawn(async move {
                    if let Err(e) = router.serve_with_incoming(incoming).await {
                        tracing::error!(error = %e, "gRPC server stopped");
                    }
                });
            }
            None => {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                tokio::spawn(async move {
                    if let Err(e) = router.serve_with_incoming(incoming).await {
                        tracing::error!(error = %e, "gRPC server stopped");
                    }
                });
            }
        }
        if let Some(store) = &store {
            tokio::spawn(tls::watch(Arc::downgrade(store)));
        }

        let registry = with_registry.then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(driver::registry_task(
                config.clone(),
                rx,
                sink.clone(),
                health.clone(),
                links.clone(),
            ));
            tx
        });
        let history = match &config.history_redis {
            Some(url) if with_registry => {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(history::history_task(
                    url.clone(),
                    config.op_timeout,
                    rx,
                    sink.clone(),
                ));
                Some(tx)
            }
            _ => None,
        };
        let bus = match &bus_url {
            Some(url) => {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(driver::bus_task(
                    url.clone(),
                    config.node.clone(),
                    config.op_timeout,
                    rx,
                    sink,
                    health.clone(),
                ));
                Some(tx)
            }
            _ => None,
        };
        Ok(Cluster {
            registry,
            bus,
            history,
            links,
            health,
            grpc_addr,
            tls: store,
        })
    }

    /// Loads the gRPC listener's certificate and key again now (SIGHUP); `None` without TLS,
    /// else how it went (also logged).
    pub fn reload_tls(&self) -> Option<Result<(), String>> {
        let store = self.tls.as_ref()?;
        let result = store.reload();
        tls::log_reload(store, &result);
        Some(result)
    }

    /// Carries out one of the router's cluster outputs.
    pub fn send(&self, command: ClusterCmd) {
        match command {
            ClusterCmd::Registry(c) => {
                if let Some(registry) = &self.registry {
                    let _ = registry.send(driver::RegistryMsg::Command(c));
                }
            }
            ClusterCmd::Bus(c) => {
                if let Some(bus) = &self.bus {
                    let _ = bus.send(c);
                }
            }
            ClusterCmd::History(c) => match &self.history {
                Some(history) => {
                    let _ = history.send(c);
                }
                None => {
                    tracing::warn!("a history command without a shared history (--bus redis://)")
                }
            },
            ClusterCmd::ToPeer { node, message } => {
                if let Ok(links) = self.links.lock() {
                    links.send(node, message);
                }
            }
        }
    }

    /// Why the node is degraded (registry or bus unreachable), if it is.
    pub fn degraded(&self) -> Option<String> {
        self.health.degraded()
    }

    /// The plumbing's counters.
    pub fn stats(&self) -> ClusterStats {
        self.health.stats()
    }

    /// Where the gRPC server listens.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Deletes this node's registry entries (graceful shutdown), waiting at most `wait`.
    pub async fn leave(&self, wait: Duration) {
        let Some(registry) = &self.registry else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        if registry.send(driver::RegistryMsg::Leave(tx)).is_ok() {
            let _ = tokio::time::timeout(wait, rx).await;
        }
    }
}
