//! Binding a node, running its accept loop, and shutting it down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hub_core::shard::{Input, Shard};
use hub_core::{node, NodeId, ShardId};
use hub_serve::{Gate, IpLimiter, Settings};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};

use crate::hub::{Handler, Hub, Inner};
use crate::node_task::NodeMsg;
use crate::shard_task::{self, ShardMsg};
use crate::{node_task, ServeError};
use hub_mesh::{Cluster, ClusterConfig};

/// A bound node: listening, with its shard and router tasks running.
#[derive(Debug)]
pub struct Server {
    hub: Hub,
    listener: TcpListener,
}

impl Server {
    /// Validates `settings`, binds the listen address and starts the shard and router tasks
    /// on the current tokio runtime. `handler` receives application events.
    pub async fn bind(
        settings: Settings,
        handler: Option<Arc<dyn Handler>>,
    ) -> Result<Server, ServeError> {
        Self::bind_with(settings, handler, hub_core::ClientProtocol::Json).await
    }

    /// Like [`Server::bind`], choosing how client messages are read (JSON protocol or raw).
    pub async fn bind_with(
        settings: Settings,
        handler: Option<Arc<dyn Handler>>,
        protocol: hub_core::ClientProtocol,
    ) -> Result<Server, ServeError> {
        settings.validate().map_err(ServeError::Settings)?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| ServeError::Bind(settings.listen, e))?;
        let hub = Self::start_hub(settings, handler, protocol).await?;
        Ok(Server { hub, listener })
    }

    /// Starts a node's shards and router (and cluster plumbing) without a listener, for
    /// services that accept connections themselves (axum, hyper) and hand upgraded streams
    /// to [`Hub::serve_upgraded`]. `settings.listen` is not bound.
    pub async fn start_embedded(
        settings: Settings,
        handler: Option<Arc<dyn Handler>>,
        protocol: hub_core::ClientProtocol,
    ) -> Result<Hub, ServeError> {
        settings.validate().map_err(ServeError::Settings)?;
        Self::start_hub(settings, handler, protocol).await
    }

    async fn start_hub(
        settings: Settings,
        handler: Option<Arc<dyn Handler>>,
        protocol: hub_core::ClientProtocol,
    ) -> Result<Hub, ServeError> {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        let mut config = settings.core_config(seed);
        config.client_protocol = protocol;
        let (node_tx, node_rx) = mpsc::unbounded_channel();
        let mut txs = Vec::new();
        let mut rxs = Vec::new();
        for _ in 0..settings.shards {
            let (tx, rx) = shard_task::channels();
            txs.push(tx);
            rxs.push(rx);
        }
        let hub = Hub {
            inner: Arc::new(Inner {
                node_id: NodeId::from(settings.node_name()),
                gate: Gate::new(&settings),
                limiter: Mutex::new(IpLimiter::new(settings.max_connections_per_ip)),
                shards: txs.clone(),
                node: node_tx.clone(),
                handler,
                next_shard: AtomicUsize::new(0),
                live: AtomicUsize::new(0),
                all_closed: Notify::new(),
                shutting_down: AtomicBool::new(false),
                started: Instant::now(),
                drain_timeout: config.drain_timeout,
                settings: settings.clone(),
                cluster: std::sync::OnceLock::new(),
            }),
        };
        let cluster = match ClusterConfig::from_settings(&settings) {
            Some(config) => {
                let node = node_tx.clone();
                let sink: hub_mesh::InputSink = Arc::new(move |input| {
                    let _ = node.send(NodeMsg::Input(input));
                });
                let api = Arc::new(crate::hub::HubApi(hub.clone()));
                let cluster = Arc::new(
                    Cluster::start(config, sink, api)
                        .await
                        .map_err(|e| ServeError::Settings(e.to_string()))?,
                );
                let _ = hub.inner.cluster.set(cluster.clone());
                Some(cluster)
            }
            None => None,
        };
        for (i, rx) in rxs.into_iter().enumerate() {
            let shard = Shard::new(ShardId(i as u16), config.clone())
                .map_err(|e| ServeError::Settings(e.to_string()))?;
            tokio::spawn(shard_task::run(shard, rx, node_tx.clone(), hub.clone()));
        }
        let router = node::Node::new(settings.node_config());
        tokio::spawn(node_task::run(router, node_rx, txs, cluster));
        Ok(hub)
    }

    /// The address the node listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.hub.inner.settings.listen)
    }

    /// Where the gRPC service listens, for a clustered node.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.hub.inner.cluster.get().map(|c| c.grpc_addr())
    }

    /// A handle to the node.
    pub fn hub(&self) -> Hub {
        self.hub.clone()
    }

    /// Accepts connections until `shutdown` resolves, then closes every client with 1001,
    /// waits up to the shutdown timeout for queues to drain, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Server { hub, listener } = self;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tokio::spawn(crate::http::serve(hub.clone(), stream, peer));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        shutdown_hub(&hub).await;
        Ok(())
    }
}

/// Closes every connection with 1001 and waits (bounded) until they are gone.
pub(crate) async fn shutdown_hub(hub: &Hub) {
    let inner = &hub.inner;
    inner.shutting_down.store(true, Ordering::Release);
    tracing::info!(
        connections = inner.live.load(Ordering::Acquire),
        "shutting down: closing connections with 1001"
    );
    for shard in &inner.shards {
        let _ = shard.control.send(ShardMsg::Input(Input::Shutdown));
    }
    let deadline = tokio::time::Instant::now() + inner.settings.shutdown_timeout;
    while inner.live.load(Ordering::Acquire) > 0 {
        let notified = inner.all_closed.notified();
        if inner.live.load(Ordering::Acquire) == 0 {
            break;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            tracing::warn!(
                left = inner.live.load(Ordering::Acquire),
                "shutdown timeout: dropping remaining connections"
            );
            break;
        }
    }
}
