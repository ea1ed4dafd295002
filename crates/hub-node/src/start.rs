//! Starting a node's tasks on a runtime, and shutting it down gracefully.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub_core::shard::{Input, Shard};
use hub_core::{node, ClientProtocol, NodeId, ShardId};
use hub_mesh::{Cluster, ClusterConfig};
use hub_serve::{Gate, IpLimiter, Settings};
use tokio::sync::{mpsc, Notify};

use crate::hub::{Handler, Hub, HubApi, Inner, PRESENCE_EVENTS};
use crate::node_task::{self, NodeMsg};
use crate::runtime::{timeout, Runtime};
use crate::shard_task::{self, ShardMsg};
use crate::sockets::Sockets;
use crate::tls::ListenerTls;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting is invalid; the message names the flag.
    #[error("{0}")]
    Settings(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(std::net::SocketAddr, #[source] std::io::Error),
    /// A shard's socket poller could not be created or watched.
    #[error("cannot create a shard's socket poller: {0}")]
    Poller(#[source] std::io::Error),
}

/// Validates `settings` and starts the node's shard and router tasks (and, with
/// `--grpc-listen`, its gRPC services and cluster plumbing) on `rt`. Connections are then
/// handed to [`crate::serve_http`] or [`Hub::serve_conn`].
pub async fn start<R: Runtime>(
    rt: &R,
    settings: Settings,
    handler: Option<Arc<dyn Handler>>,
    protocol: ClientProtocol,
) -> Result<Hub, ServeError> {
    settings.validate().map_err(ServeError::Settings)?;
    for warning in settings.exposure_warnings() {
        tracing::warn!("{warning}");
    }
    let seed = hub_serve::random_seed().map_err(ServeError::Settings)?;
    let tls = ListenerTls::open(&settings).map_err(ServeError::Settings)?;
    let mut config = settings.core_config(seed.clone());
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
            runtime: rt.name(),
            node_id: NodeId::from(settings.node_name()),
            gate: Gate::new(&settings).map_err(ServeError::Settings)?,
            limiter: Mutex::new(IpLimiter::new(settings.max_connections_per_ip)),
            shards: txs.clone(),
            node: node_tx.clone(),
            handler,
            next_shard: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            http_open: AtomicUsize::new(0),
            all_closed: Notify::new(),
            latencies: hub_edge::Latencies::default(),
            shutting_down: AtomicBool::new(false),
            started: Instant::now(),
            drain_timeout: config.drain_timeout,
            settings: settings.clone(),
            cluster: std::sync::OnceLock::new(),
            tls,
            webhooks: hub_serve::webhooks::PusherWebhooks::start(
                &settings.pusher_apps().apps,
                &settings.pusher_webhooks,
            )
            .map_err(|e| ServeError::Settings(format!("--pusher-webhook: cannot start: {e}")))?,
            presence: tokio::sync::broadcast::channel(PRESENCE_EVENTS).0,
            pusher: Mutex::new(hub_pusher::Sessions::new(settings.pusher_apps().apps)),
        }),
    };
    if let Some(tls) = &hub.inner.tls {
        rt.spawn(crate::tls::watch(rt.clone(), Arc::downgrade(&tls.store)));
    }
    let cluster = match ClusterConfig::from_settings(&settings) {
        Some(cluster_config) => {
            let node = node_tx.clone();
            let sink: hub_mesh::InputSink = Arc::new(move |input| {
                let _ = node.send(NodeMsg::Input(input));
            });
            let api = Arc::new(HubApi(hub.clone()));
            let started = rt
                .with_tokio(Cluster::start(cluster_config, sink, api))
                .await;
            let cluster = Arc::new(started.map_err(|e| ServeError::Settings(e.to_string()))?);
            let _ = hub.inner.cluster.set(cluster.clone());
            Some(cluster)
        }
        None => None,
    };
    for (i, rx) in rxs.into_iter().enumerate() {
        let id = ShardId(i as u16);
        let shard =
            Shard::new(id, config.clone()).map_err(|e| ServeError::Settings(e.to_string()))?;
        let sockets = Sockets::new(rt, id, settings.max_message_size, config.drain_timeout)
            .map_err(ServeError::Poller)?;
        rt.spawn(shard_task::run(
            rt.clone(),
            shard,
            sockets,
            rx,
            node_tx.clone(),
            hub.clone(),
        ));
    }
    let mut router_config = settings.node_config(seed);
    router_config.presence_events = true;
    let router = node::Router::new(router_config);
    let presence = hub.inner.presence.clone();
    rt.spawn(node_task::run(
        rt.clone(),
        router,
        node_rx,
        txs,
        cluster,
        presence,
    ));
    crate::pusher_api::spawn_webhook_pump(rt, &hub);
    Ok(hub)
}

/// Closes every connection with 1001, waits (up to the shutdown timeout) until they are
/// gone, and deletes a clustered node's registry entries.
pub async fn shutdown<R: Runtime>(rt: &R, hub: &Hub) {
    let inner = &hub.inner;
    inner.shutting_down.store(true, Ordering::Release);
    tracing::info!(
        connections = inner.live.load(Ordering::Acquire),
        "shutting down: closing connections with 1001"
    );
    for shard in &inner.shards {
        let _ = shard.control.send(ShardMsg::Input(Input::Shutdown));
    }
    let deadline = Instant::now() + inner.settings.shutdown_timeout;
    while inner.live.load(Ordering::Acquire) > 0 {
        let notified = inner.all_closed.notified();
        if inner.live.load(Ordering::Acquire) == 0 {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if timeout(rt, left, notified).await.is_err() {
            tracing::warn!(
                left = inner.live.load(Ordering::Acquire),
                "shutdown timeout: dropping remaining connections"
            );
            break;
        }
    }
    if let Some(cluster) = inner.cluster.get().cloned() {
        // Let the last unregistrations reach the registry, then delete what is left.
        rt.sleep_until(Instant::now() + Duration::from_millis(50))
            .await;
        rt.with_tokio(async move { cluster.leave(Duration::from_secs(3)).await })
            .await;
    }
}

/// Whether the node is shutting down (new connections are refused).
pub fn is_shutting_down(hub: &Hub) -> bool {
    hub.inner.shutting_down.load(Ordering::Acquire)
}
