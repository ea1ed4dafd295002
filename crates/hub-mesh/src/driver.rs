//! The cluster tasks: the registry (join, lease renewal, membership, batched commands,
//! recovery) and the Redis bus.
//!
//! Recovery: after an outage (or a lease that expired while the node was paused) the node
//! joins again and restores its clients' entries with [`Registry::restore`]: an entry that
//! now points at another live node stays there and this node's older connection is closed
//! with 4000. A renewal that finds fewer entries for this node than it has clients (Redis
//! restored from an older snapshot, entries deleted) restores them the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_cluster::{BusEvent, RedisBus, Registry, RegistryConfig, Renewed};
use hub_core::node::{BusCommand, ClusterEvent, Input, RegistryCommand};
use hub_core::{ClientId, NodeId, UserId};
use tokio::sync::{mpsc, oneshot};

use crate::health::{add, Health};
use crate::links::Links;
use crate::{ClusterConfig, InputSink};

/// Registry commands applied in one round trip at most.
const REGISTRY_BATCH: usize = 10_000;

/// How often the router sends its peers the digest of its room interest (gRPC bus), so a
/// lost `Interest` heals within this period and a round trip.
pub(crate) const INTEREST_CHECK: Duration = Duration::from_secs(3);

/// A message for the registry task.
pub(crate) enum RegistryMsg {
    Command(RegistryCommand),
    Leave(oneshot::Sender<()>),
}

/// Keeps this node's registration, lease and view of the cluster up to date.
pub(crate) async fn registry_task(
    config: ClusterConfig,
    mut rx: mpsc::UnboundedReceiver<RegistryMsg>,
    sink: InputSink,
    health: Arc<Health>,
    links: Arc<Mutex<Links>>,
) {
    let mut state = RegistryState {
        registry: None,
        joined: false,
        local: HashMap::new(),
        peers: BTreeMap::new(),
        sink,
        health,
        links,
        config,
    };
    let poll =
        (state.config.lease_ttl / 3).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let renew_every = state.config.lease_ttl / 3;
    let mut last_renew = tokio::time::Instant::now();
    let mut last_check = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(RegistryMsg::Command(first)) => {
                    let mut batch = vec![first];
                    while batch.len() < REGISTRY_BATCH {
                        match rx.try_recv() {
                            Ok(RegistryMsg::Command(c)) => batch.push(c),
                            Ok(RegistryMsg::Leave(done)) => {
                                state.apply(batch).await;
                                state.leave(done).await;
                                return;
                            }
                            Err(_) => break,
                        }
                    }
                    state.apply(batch).await;
                }
                Some(RegistryMsg::Leave(done)) => {
                    state.leave(done).await;
                    return;
                }
                None => return,
            },
            _ = tick.tick() => {
                if !state.joined {
                    state.join().await;
                    last_renew = tokio::time::Instant::now();
                } else if last_renew.elapsed() >= renew_every {
                    last_renew = tokio::time::Instant::now();
                    let renewed = match state.registry() {
                        Ok(r) => bounded(state.limit(), r.renew()).await,
                        Err(e) => Err(e),
                    };
                    let mine = state.local.len() as u64;
                    match renewed {
                        Ok(Renewed { clients: Some(held), .. }) if held < mine => {
                            state.rewrite(&format!("it holds {held} of {mine} entries")).await;
                        }
                        Ok(Renewed { rolled_back: true, .. }) if mine > 0 => {
                            state.rewrite("it went back to an older write generation").await;
                        }
                        Ok(_) => {}
                        Err(e) => state.lost(format!("lease renewal failed: {e}")),
                    }
                }
                if state.joined {
                    state.refresh_members().await;
                }
                if last_check.elapsed() >= INTEREST_CHECK {
                    last_check = tokio::time::Instant::now();
                    (state.sink)(Input::Cluster(ClusterEvent::InterestCheck));
                }
            }
        }
    }
}

struct RegistryState {
    registry: Option<Registry>,
    joined: bool,
    /// This node's clients, to register again after the registry comes back.
    local: HashMap<ClientId, Option<UserId>>,
    /// Live peers and their addresses.
    peers: BTreeMap<NodeId, String>,
    sink: InputSink,
    health: Arc<Health>,
    links: Arc<Mutex<Links>>,
    config: ClusterConfig,
}

/// Awaits a registry call, bounded by `limit`.
async fn bounded<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, hub_cluster::ClusterError>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

impl RegistryState {
    fn registry_config(&self) -> RegistryConfig {
        RegistryConfig {
            node: self.config.node.clone(),
            advertise: self.config.advertise.clone(),
            lease_ttl: self.config.lease_ttl,
            op_timeout: self.config.op_timeout,
        }
    }

    fn registry(&self) -> Result<&Registry, String> {
        self.registry
            .as_ref()
            .ok_or_else(|| "not connected".to_owned())
    }

    fn limit(&self) -> Duration {
        self.config.op_timeout * 2
    }

    fn lost(&mut self, why: String) {
        if self.joined {
            tracing::warn!(reason = %why, "registry unreachable: local delivery goes on, cross-node calls fail fast");
        }
        add(&self.health.counters.registry_errors, 1);
        self.joined = false;
        self.health
            .set_registry(Some(format!("registry unreachable: {why}")));
    }

    /// Connects and joins (clearing a previous instance's entries), then registers every
    /// local client again.
    async fn join(&mut self) {
        if self.registry.is_none() {
            match tokio::time::timeout(
                self.config.op_timeout * 2,
                Registry::connect(&self.config.registry, self.registry_config()),
            )
            .await
            {
                Ok(Ok(r)) => self.registry = Some(r),
                Ok(Err(e)) => return self.lost(e.to_string()),
                Err(_) => return self.lost("connect timed out".into()),
            }
        }
        let joined = match self.registry() {
            Ok(r) => bounded(self.limit(), r.join()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = joined {
            return self.lost(e);
        }
        let count = match self.restore_local().await {
            Ok(count) => count,
            Err(e) => return self.lost(e),
        };
        self.joined = true;
        add(&self.health.counters.registry_joins, 1);
        self.health.set_registry(None);
        tracing::info!(registry = %self.config.registry.describe(), clients = count, "joined the cluster registry");
        self.refresh_members().await;
    }

    /// Writes every local client's entry again without taking any back (restore semantics):
    /// a client that another live node holds now stays there, and this node's older
    /// connection with its id is closed with 4000. Returns how many clients were written.
    async fn restore_local(&mut self) -> Result<usize, String> {
        let clients: Vec<ClientId> = self.local.keys().cloned().collect();
        let mut written = clients.len();
        for chunk in clients.chunks(REGISTRY_BATCH) {
            let restored = match self.registry() {
                Ok(r) => bounded(self.limit(), r.restore(chunk)).await,
                Err(e) => Err(e),
            }?;
            for (client, holder) in restored {
                tracing::info!(%client, %holder, "another node holds this client now; closing the older connection here (4000)");
                self.local.remove(&client);
                written -= 1;
                (self.sink)(Input::Superseded { client });
            }
        }
        Ok(written)
    }

    /// Renewal found that the registry lost entries of this node (`why`: restored from an
    /// older snapshot, or deleted behind its back). Writes them again.
    async fn rewrite(&mut self, why: &str) {
        tracing::warn!(
            reason = why,
            "the registry lost client entries of this node; writing them again"
        );
        add(&self.health.counters.registry_rewrites, 1);
        if let Err(e) = self.restore_local().await {
            self.lost(e);
        }
    }

    /// Applies a batch; lookups are answered (with "nowhere" when the registry is down).
    async fn apply(&mut self, batch: Vec<RegistryCommand>) {
        for command in &batch {
            match command {
                RegistryCommand::Register { client, user } => {
                    self.local.insert(client.clone(), user.clone());
                }
                RegistryCommand::Unregister { client } => {
                    self.local.remove(client);
                }
                RegistryCommand::Lookup { .. } => {}
            }
        }
        let lookups: Vec<_> = batch
            .iter()
            .filter_map(|c| match c {
                RegistryCommand::Lookup { req, .. } => Some(*req),
                _ => None,
            })
            .collect();
        if !self.joined {
            for req in lookups {
                (self.sink)(Input::RegistryAnswer { req, node: None });
            }
            return;
        }
        let size = batch.len() as u64;
        let applied = match self.registry() {
            Ok(r) => bounded(self.limit(), r.apply(&batch)).await,
            Err(e) => Err(e),
        };
        match applied {
            Ok(result) => {
                add(&self.health.counters.registry_ops, size);
                // A lookup naming a node this node has not met yet (it joined since the last
                // membership poll): read its address now, so the router knows the peer and
                // has a link to it before the answer arrives.
                let me = &self.config.node;
                let unmet = result.lookups.iter().any(|(_, node)| {
                    node.as_ref()
                        .is_some_and(|n| n != me && !self.peers.contains_key(n))
                });
                if unmet {
                    self.refresh_members().await;
                }
                for (req, node) in result.lookups {
                    (self.sink)(Input::RegistryAnswer { req, node });
                }
                for (client, node) in result.displaced {
                    (self.sink)(Input::Displaced { client, node });
                }
            }
            Err(e) => {
                for req in lookups {
                    (self.sink)(Input::RegistryAnswer { req, node: None });
                }
                self.lost(e);
            }
        }
    }

    /// Compares the registry's live nodes with the known peers; reports ups and downs.
    async fn refresh_members(&mut self) {
        let listed = match self.registry() {
            Ok(r) => bounded(self.limit(), r.nodes()).await,
            Err(e) => Err(e),
        };
        let nodes = match listed {
            Ok(nodes) => nodes,
            Err(e) => return self.lost(e),
        };
        let me = &self.config.node;
        let now: BTreeMap<NodeId, String> = nodes
            .into_iter()
            .filter(|n| &n.id != me)
            .map(|n| (n.id, n.addr))
            .collect();
        if now == self.peers {
            return;
        }
        if let Ok(mut links) = self.links.lock() {
            links.update(
                &now.iter()
                    .map(|(n, a)| (n.clone(), a.clone()))
                    .collect::<Vec<_>>(),
            );
        }
        for gone in self.peers.keys().filter(|n| !now.contains_key(*n)) {
            tracing::info!(peer = %gone, "node left the cluster");
            (self.sink)(Input::Cluster(ClusterEvent::NodeDown(gone.clone())));
        }
        for (new, addr) in now.iter().filter(|(n, _)| !self.peers.contains_key(*n)) {
            tracing::info!(peer = %new, %addr, "node joined the cluster");
            (self.sink)(Input::Cluster(ClusterEvent::NodeUp(new.clone())));
        }
        self.peers = now;
    }

    async fn leave(&mut self, done: oneshot::Sender<()>) {
        if self.registry.is_some() {
            let left = match self.registry() {
                Ok(r) => bounded(self.limit(), r.leave()).await,
                Err(e) => Err(e),
            };
            match left {
                Ok(()) => tracing::info!("left the cluster registry"),
                Err(e) => {
                    tracing::warn!(error = %e, "could not delete this node's registry entries; they expire with its lease")
                }
            }
        }
        let _ = done.send(());
    }
}

/// Carries bus commands to Redis and bus messages to the router; reconnects by itself.
pub(crate) async fn bus_task(
    url: String,
    node: NodeId,
    op_timeout: Duration,
    mut rx: mpsc::UnboundedReceiver<BusCommand>,
    sink: InputSink,
    health: Arc<Health>,
) {
    let (bus, mut events) = loop {
        match RedisBus::connect(&url, node.clone(), op_timeout).await {
            Ok(connected) => break connected,
            Err(e) => {
                health.set_bus(Some(format!("bus unreachable: {e}")));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(BusCommand::Publish { room, frame }) => {
                    match bus.publish(room.as_ref(), frame).await {
                        Ok(()) => add(&health.counters.bus_published, 1),
                        Err(e) => {
                            add(&health.counters.bus_errors, 1);
                            tracing::debug!(error = %e, "bus publish failed");
                        }
                    }
                }
                Some(BusCommand::Subscribe(room)) => bus.subscribe(room),
                Some(BusCommand::Unsubscribe(room)) => bus.unsubscribe(&room),
                None => return,
            },
            event = events.recv() => match event {
                Some(BusEvent::Message { origin, room, frame }) => sink(Input::Bus { origin, room, frame }),
                Some(BusEvent::Up) => {
                    add(&health.counters.bus_reconnects, 1);
                    health.set_bus(None);
                    tracing::info!("bus subscribed");
                }
                Some(BusEvent::Down(reason)) => {
                    tracing::warn!(%reason, "bus unreachable");
                    health.set_bus(Some(format!("bus unreachable: {reason}")));
                }
                None => return,
            },
        }
    }
}
