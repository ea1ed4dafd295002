//! # hub-cluster — the cluster I/O every Hubbub runtime shares
//!
//! - [`Registry`]: where each client id is connected and which nodes are alive, in Redis
//!   ([`RedisRegistry`], key layout in [`redis_registry`]) or etcd ([`EtcdRegistry`], key
//!   layout in [`etcd_registry`]).
//! - [`RedisBus`]: room publishes and broadcast-to-all over Redis pub/sub ([`bus`]).
//!
//! Runtimes: the Redis side (registry and bus) runs on tokio by default, or on smol and
//! async-io after [`use_smol`] (the redis crate's smol support; timers are async-io's, which
//! work under any executor). The etcd backend needs tokio's reactor (etcd-client is
//! tokio-only); a node on another executor drives it through a compatibility layer such as
//! `async-compat`.
//!
//! ## How a runtime drives the registry
//!
//! 1. [`Registry::connect`], then [`Registry::join`] (clears what a previous instance of
//!    this node id left, then announces the node with a lease of `lease_ttl`).
//! 2. [`Registry::renew`] every `lease_ttl / 3`. It costs O(1) per node. When it reports
//!    fewer client entries than the node has connections, call [`Registry::restore`] with
//!    the local clients (entries were lost behind the node's back).
//! 3. Batches of the router's `RegistryCommand`s go to [`Registry::apply`], one round trip
//!    each. Answer each lookup with its result, and close (code 4000) the connection of every
//!    `displaced` client on the node named.
//! 4. When a call fails the backend is unreachable (or slow): local delivery goes on, and
//!    lookups answer none. Once calls succeed again — or at once when one returns
//!    [`ClusterError::LeaseExpired`] — call [`Registry::join`] and then re-register the local
//!    clients, preferably with [`Registry::restore`], which does not take a client id back
//!    from a node that got a newer connection with it meanwhile.
//! 5. On shutdown, [`Registry::leave`].
//!
//! ## Failure semantics
//!
//! Every call is bounded by [`RegistryConfig::op_timeout`] (default 2 s): a dead server
//! yields [`ClusterError::Unreachable`] or [`ClusterError::Timeout`], never a hang. A crashed
//! node's clients read as offline within its lease TTL. No error text carries a password.
//!
//! ## Panics, errors and unwraps
//!
//! Nothing here panics on input, on a server's answer or on a dead server; there is no
//! `unwrap`/`expect` outside tests.

#![warn(missing_docs)]

use std::time::Duration;

use hub_core::node::RegistryCommand;
use hub_core::{ClientId, NodeId, RequestId};
use hub_serve::RegistrySpec;

pub mod bus;
pub mod envelope;
mod error;
pub mod etcd_registry;
pub mod history;
mod ops;
mod redis_link;
pub mod redis_registry;
mod rt;

pub use bus::{BusEvent, RedisBus};
pub use error::ClusterError;
pub use etcd_registry::EtcdRegistry;
pub use history::RedisHistory;
pub use redis_registry::RedisRegistry;
pub use rt::{on_smol, use_smol};

use ops::{batch_result, Op, Outcome};

/// The default bound on every registry and bus call.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(2);

/// What a lease renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewed {
    /// How many client entries the registry holds for this node, where the backend counts
    /// them (Redis: the node's client set). `None` on etcd, whose entries live and die with
    /// the lease itself.
    pub clients: Option<u64>,
    /// The backend went back in time: it holds an older write generation of this node than
    /// the node wrote (etcd restored from an older snapshot while the lease lived). Write
    /// the entries again.
    pub rolled_back: bool,
}

/// A live node as the registry lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's id.
    pub id: NodeId,
    /// The node's advertised gRPC address.
    pub addr: String,
}

/// What a registry needs to know about this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// This node's id.
    pub node: NodeId,
    /// This node's advertised gRPC address (what other nodes dial).
    pub advertise: String,
    /// Lifetime of the node's lease; renew every third of it.
    pub lease_ttl: Duration,
    /// Bound on every call (default [`DEFAULT_OP_TIMEOUT`]).
    pub op_timeout: Duration,
}

impl RegistryConfig {
    /// A configuration with the default operation timeout.
    pub fn new(node: NodeId, advertise: impl Into<String>, lease_ttl: Duration) -> Self {
        Self {
            node,
            advertise: advertise.into(),
            lease_ttl,
            op_timeout: DEFAULT_OP_TIMEOUT,
        }
    }
}

/// The answers to one [`Registry::apply`] batch.
/// A boxed future that is `Send` (registry calls are awaited inside spawned tasks).
pub type SendFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What one [`Registry::apply`] produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchResult {
    /// Every lookup's answer, in batch order: the live node holding the client, if any.
    pub lookups: Vec<(RequestId, Option<NodeId>)>,
    /// Registered clients another live node held before: close them there (code 4000).
    pub displaced: Vec<(ClientId, NodeId)>,
}

impl BatchResult {
    /// What to answer when a batch failed: every lookup reads none, nothing displaced.
    pub fn failed(batch: &[RegistryCommand]) -> BatchResult {
        BatchResult {
            lookups: batch
                .iter()
                .filter_map(|c| match c {
                    RegistryCommand::Lookup { req, .. } => Some((*req, None)),
                    _ => None,
                })
                .collect(),
            displaced: Vec::new(),
        }
    }
}

/// The connection registry: one backend behind one interface.
pub enum Registry {
    /// Redis.
    Redis(RedisRegistry),
    /// etcd.
    Etcd(EtcdRegistry),
}

impl Registry {
    /// Connects to the backend `spec` names and checks that it answers (within
    /// `config.op_timeout`). A memory spec has no backend and is refused.
    pub async fn connect(
        spec: &RegistrySpec,
        config: RegistryConfig,
    ) -> Result<Registry, ClusterError> {
        match spec {
            RegistrySpec::Memory => Err(ClusterError::Protocol(
                "memory registry has no backend".into(),
            )),
            RegistrySpec::Redis(url) => {
                Ok(Registry::Redis(RedisRegistry::connect(url, config).await?))
            }
            RegistrySpec::Etcd(endpoints) => Ok(Registry::Etcd(
                EtcdRegistry::connect(endpoints, config).await?,
            )),
        }
    }

    /// The backend's name: `redis` or `etcd`.
    pub fn backend(&self) -> &'static str {
        match self {
            Registry::Redis(_) => "redis",
            Registry::Etcd(_) => "etcd",
        }
    }

    /// The configuration the registry was made with.
    pub fn config(&self) -> &RegistryConfig {
        match self {
            Registry::Redis(r) => r.config(),
            Registry::Etcd(r) => r.config(),
        }
    }

    /// Announce this node with a lease of lease_ttl, first clearing everything a previous
    /// instance with the same node id left (its client entries). Called at start and again
    /// after the backend was unreachable (the caller then re-registers its local clients).
    pub async fn join(&self) -> Result<(), ClusterError> {
        match self {
            Registry::Redis(r) => r.join().await,
            Registry::Etcd(r) => r.join().await,
        }
    }

    /// Renew the lease (call it every lease_ttl/3). O(1) per node, never per connection.
    /// [`ClusterError::LeaseExpired`] means the lease is gone: join again and re-register.
    /// The answer says how many client entries the backend holds for this node where it
    /// keeps that count (Redis), and whether the backend went back in time (etcd): fewer
    /// entries than the node's own connections, or a rollback, means entries were lost (a
    /// server restored from an older snapshot): write them again with [`Registry::restore`].
    pub async fn renew(&self) -> Result<Renewed, ClusterError> {
        match self {
            Registry::Redis(r) => r.renew().await,
            Registry::Etcd(r) => r.renew().await,
        }
    }

    /// Apply a batch of Register/Unregister/Lookup in one round trip (Redis pipeline, etcd
    /// transactions), keeping order per client id.
    ///
    /// Register reports in `displaced` the node that held the client before if it was
    /// another live node. Unregister deletes the entry only while it points at this node
    /// (compare-and-delete). Lookup answers a node only while that node's lease is alive.
    /// A batch with a Register fails with [`ClusterError::LeaseExpired`] once this node's
    /// lease is gone (join again, then re-register). A failed batch may be partly applied;
    /// answer its lookups with [`BatchResult::failed`].
    pub fn apply<'a>(
        &'a self,
        batch: &'a [RegistryCommand],
    ) -> SendFuture<'a, Result<BatchResult, ClusterError>> {
        Box::pin(async move {
            let ops: Vec<Op<'_>> = batch.iter().map(Op::from_command).collect();
            let outcomes = self.run(&ops).await?;
            Ok(batch_result(batch, outcomes))
        })
    }

    /// Re-register `clients` after [`join`](Self::join) without taking any back: a client
    /// another live node holds now stays there and is returned with that node (the caller
    /// closes its own, older connection with 4000). One round trip, like `apply`.
    pub fn restore<'a>(
        &'a self,
        clients: &'a [ClientId],
    ) -> SendFuture<'a, Result<Vec<(ClientId, NodeId)>, ClusterError>> {
        Box::pin(async move {
            let ops: Vec<Op<'_>> = clients.iter().map(Op::Restore).collect();
            let outcomes = self.run(&ops).await?;
            Ok(clients
                .iter()
                .zip(outcomes)
                .filter_map(|(client, outcome)| match outcome {
                    Outcome::Restored(Some(node)) => Some((client.clone(), node)),
                    _ => None,
                })
                .collect())
        })
    }

    fn run<'a>(&'a self, ops: &'a [Op<'_>]) -> SendFuture<'a, Result<Vec<Outcome>, ClusterError>> {
        // Boxed as `Send` here, where the lifetimes are concrete: spawning a task that awaits
        // these futures otherwise trips rustc's "Send is not general enough" limitation.
        match self {
            Registry::Redis(r) => Box::pin(r.run(ops)),
            Registry::Etcd(r) => Box::pin(r.run(ops)),
        }
    }

    /// Live nodes (lease present), this one included, sorted by id.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        match self {
            Registry::Redis(r) => r.nodes().await,
            Registry::Etcd(r) => r.nodes().await,
        }
    }

    /// Graceful leave: delete this node's client entries and its node entry now, instead of
    /// waiting for expiry.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        match self {
            Registry::Redis(r) => r.leave().await,
            Registry::Etcd(r) => r.leave().await,
        }
    }
}
