//! The connection registry in etcd (v3 API; etcd 3.4 and later).
//!
//! ## Key layout
//!
//! | key | value | lease |
//! |---|---|---|
//! | `/hubbub/nodes/{node}` | JSON `{"addr": "<advertised gRPC address>", "lease": <lease id>}` | the node's lease |
//! | `/hubbub/clients/{client}` | id of the node holding the client | the holding node's lease |
//! | `/hubbub/generation/{node}` | how many write batches the node applied | the node's lease |
//!
//! ## Invariants
//!
//! - One lease per node, granted for `lease_ttl` (rounded up to whole seconds; etcd may raise
//!   very short TTLs to its minimum, about 2 s with default election settings). Every entry a
//!   node writes is attached to it, so when the node crashes its entries vanish with the
//!   lease, and an entry that exists always belongs to a live node. Renewal is one keep-alive
//!   message per node on a long-lived stream, never per connection.
//! - `join` revokes the lease named by a previous instance's node key (deleting all of that
//!   instance's entries at once), then grants a new lease and writes the node key.
//! - A batch runs as transactions of at most [`MAX_TXN_OPS`] operations: half etcd's default
//!   `--max-txn-ops` of 128, because etcd also counts the operations nested in an
//!   Unregister's compare-and-delete. etcd refuses a transaction that writes one key twice, so the batch is
//!   cut into *waves*: the k-th operation on a client id goes into wave k. Waves run in
//!   order (keeping order per client id); the transactions of one wave run concurrently, up
//!   to [`TXN_CONCURRENCY`] in flight, so etcd's raft batches their commits.
//! - After each batch with writes the node puts its generation; renewal reads it back, and
//!   a value below the node's own (etcd restored from an older snapshot while the lease
//!   lived) reports `rolled_back`, and the node writes its entries again.
//! - Register is a put with `prev_kv` (the previous holder); Unregister is a nested
//!   transaction `value == this node → delete` (compare-and-delete); Lookup is a get.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, LeaseKeepAliveStream, LeaseKeeper,
    PutOptions, Txn, TxnOp, TxnOpResponse,
};
use futures_util::stream::{self, StreamExt};
use hub_core::{ClientId, NodeId};

use crate::error::etcd;
use crate::ops::{Op, Outcome};
use crate::{ClusterError, NodeInfo, RegistryConfig, Renewed};

/// Prefix of node keys.
pub const NODES_PREFIX: &str = "/hubbub/nodes/";
/// Prefix of client entries.
pub const CLIENTS_PREFIX: &str = "/hubbub/clients/";
/// Prefix of each node's write generation.
pub const GENERATION_PREFIX: &str = "/hubbub/generation/";
/// Operations per transaction (etcd's default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 64;
/// Transactions of one batch in flight at once.
pub const TXN_CONCURRENCY: usize = 16;

/// The value of a node key.
#[derive(serde::Serialize, serde::Deserialize)]
struct NodeRecord {
    addr: String,
    lease: i64,
}

/// An open keep-alive stream for one lease.
type Keeper = (LeaseKeeper, LeaseKeepAliveStream);

/// The registry backend on an etcd cluster.
pub struct EtcdRegistry {
    /// Boxed: the client is large, and `Registry` holds either backend inline.
    client: Box<Client>,
    config: RegistryConfig,
    node_key: String,
    /// The lease this node holds, once joined.
    lease: Mutex<Option<i64>>,
    /// The keep-alive stream of that lease, reused across renewals.
    keeper: tokio::sync::Mutex<Option<Box<Keeper>>>,
    /// `/hubbub/generation/{node}`.
    generation_key: String,
    /// How many write batches this node applied; written to `generation_key` after each, so
    /// a store that went back in time (restored from an older snapshot) reads lower.
    generation: AtomicU64,
}

impl EtcdRegistry {
    /// Connects to `endpoints` (`HOST:PORT` or `http://HOST:PORT` each) and checks that etcd
    /// answers.
    pub async fn connect(
        endpoints: &[String],
        config: RegistryConfig,
    ) -> Result<EtcdRegistry, ClusterError> {
        if endpoints.is_empty() {
            return Err(ClusterError::Protocol("no etcd endpoints".into()));
        }
        let op = config.op_timeout;
        // No per-request timeout on the channel: it would also cut the long-lived keep-alive
        // stream. Every call is bounded by `op_timeout` here instead.
        let options = ConnectOptions::new().with_connect_timeout(op);
        let client = tokio::time::timeout(op, Client::connect(endpoints, Some(options)))
            .await
            .map_err(|_| ClusterError::Timeout)?
            .map_err(|e| etcd(&e))?;
        let registry = EtcdRegistry {
            client: Box::new(client),
            node_key: format!("{NODES_PREFIX}{}", config.node),
            lease: Mutex::new(None),
            keeper: tokio::sync::Mutex::new(None),
            generation_key: format!("{GENERATION_PREFIX}{}", config.node),
            generation: AtomicU64::new(0),
            config,
        };
        let mut kv = registry.client.kv_client();
        registry
            .bounded(async { kv.get(registry.node_key.as_str(), None).await })
            .await?;
        Ok(registry)
    }

    /// The configuration this registry was made with.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The lease this node holds, if it joined.
    pub fn lease_id(&self) -> Option<i64> {
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_lease(&self, lease: Option<i64>) {
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner) = lease;
    }

    /// Runs an etcd call within the operation timeout.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, ClusterError> {
        match tokio::time::timeout(self.config.op_timeout, call).await {
            Ok(result) => result.map_err(|e| etcd(&e)),
            Err(_) => Err(ClusterError::Timeout),
        }
    }

    /// Revokes a previous instance's lease (deleting its entries), then grants this node's
    /// lease and writes the node key.
    pub async fn join(&self) -> Result<(), ClusterError> {
        let work = async {
            let mut kv = self.client.kv_client();
            let mut leases = self.client.lease_client();
            let previous = kv.get(self.node_key.as_str(), None).await?;
            let mut stale: Vec<i64> = previous.kvs().iter().map(|kv| kv.lease()).collect();
            stale.extend(self.lease_id());
            stale.retain(|l| *l != 0);
            stale.sort_unstable();
            stale.dedup();
            for lease in stale {
                if let Err(e) = leases.revoke(lease).await {
                    if etcd(&e) != ClusterError::LeaseExpired {
                        return Err(e);
                    }
                }
            }
            let ttl = i64::try_from(self.config.lease_ttl.as_millis().div_ceil(1000))
                .unwrap_or(i64::MAX)
                .max(1);
            let lease = leases.grant(ttl, None).await?.id();
            let record = NodeRecord {
                addr: self.config.advertise.clone(),
                lease,
            };
            let value = serde_json::to_vec(&record)
                .map_err(|e| etcd_client::Error::InvalidArgs(e.to_string()))?;
            kv.put(
                self.node_key.as_str(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
            let generation = self.generation.load(Ordering::Relaxed).to_string();
            kv.put(
                self.generation_key.as_str(),
                generation,
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
            Ok(lease)
        };
        let lease = self.bounded(work).await?;
        self.set_lease(Some(lease));
        *self.keeper.lock().await = None;
        Ok(())
    }

    /// Sends one keep-alive for this node's lease; [`ClusterError::LeaseExpired`] if it is gone.
    pub async fn renew(&self) -> Result<Renewed, ClusterError> {
        let Some(lease) = self.lease_id() else {
            return Err(ClusterError::LeaseExpired);
        };
        let mut slot = self.keeper.lock().await;
        // Taken out while in use: if the call fails or times out, the stream is dropped and
        // the next renewal opens a new one.
        let reused = slot.take().filter(|k| k.0.id() == lease);
        let work = async {
            match reused.map(|boxed| *boxed) {
                Some((mut keeper, mut stream)) => {
                    keeper.keep_alive().await?;
                    match stream.message().await? {
                        Some(resp) if resp.ttl() > 0 => Ok(Some((keeper, stream))),
                        Some(_) => Ok(None),
                        None => Err(etcd_client::Error::LeaseKeepAliveError(
                            "keep-alive stream closed".into(),
                        )),
                    }
                }
                // Opening the stream sends the first keep-alive and checks its answer.
                None => self.client.lease_client().keep_alive(lease).await.map(Some),
            }
        };
        match self.bounded(work).await {
            Ok(Some(keeper)) => {
                *slot = Some(Box::new(keeper));
                drop(slot);
                // Entries live and die with the lease: nothing to count; but a store restored
                // from an older snapshot reads an older generation.
                let mut kv = self.client.kv_client();
                let stored = self
                    .bounded(kv.get(self.generation_key.as_str(), None))
                    .await?
                    .kvs()
                    .first()
                    .and_then(|kv| std::str::from_utf8(kv.value()).ok()?.parse::<u64>().ok())
                    .unwrap_or(0);
                Ok(Renewed {
                    clients: None,
                    rolled_back: stored < self.generation.load(Ordering::Relaxed),
                })
            }
            Ok(None) | Err(ClusterError::LeaseExpired) => {
                self.forget_lease(lease);
                Err(ClusterError::LeaseExpired)
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets `lease` if it is still the current one.
    fn forget_lease(&self, lease: i64) {
        let mut current = self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        if *current == Some(lease) {
            *current = None;
        }
    }

    /// Runs `ops` as waves of concurrent transactions; one outcome per op.
    pub(crate) async fn run(&self, ops: &[Op<'_>]) -> Result<Vec<Outcome>, ClusterError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let writes = ops
            .iter()
            .any(|op| matches!(op, Op::Register(_) | Op::Restore(_)));
        let lease = self.lease_id();
        if writes && lease.is_none() {
            return Err(ClusterError::LeaseExpired);
        }
        let lease = lease.unwrap_or(0);
        let mut waves: Vec<Vec<usize>> = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            let wave = seen.entry(op.client().as_str()).or_insert(0);
            if waves.len() <= *wave {
                waves.push(Vec::new());
            }
            waves[*wave].push(i);
            *wave += 1;
        }
        let mut outcomes: Vec<Option<Outcome>> = vec![None; ops.len()];
        let work = async {
            for wave in &waves {
                // Boxed one by one (no closure): a closure here makes the future fail
                // rustc's higher-ranked `Send` check when a spawned task awaits it.
                let mut txns: Vec<crate::SendFuture<'_, Result<Vec<Outcome>, ClusterError>>> =
                    Vec::new();
                for chunk in wave.chunks(MAX_TXN_OPS) {
                    txns.push(Box::pin(self.txn(ops, chunk, lease)));
                }
                let results: Vec<_> = stream::iter(txns).buffered(TXN_CONCURRENCY).collect().await;
                for (chunk, result) in wave.chunks(MAX_TXN_OPS).zip(results) {
                    for (&i, outcome) in chunk.iter().zip(result?) {
                        outcomes[i] = Some(outcome);
                    }
                }
            }
            Ok::<(), ClusterError>(())
        };
        let done = tokio::time::timeout(self.config.op_timeout, work)
            .await
            .unwrap_or(Err(ClusterError::Timeout));
        if done == Err(ClusterError::LeaseExpired) {
            self.forget_lease(lease);
        }
        done?;
        if writes {
            let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
            let mut kv = self.client.kv_client();
            self.bounded(kv.put(
                self.generation_key.as_str(),
                generation.to_string(),
                Some(PutOptions::new().with_lease(lease)),
            ))
            .await?;
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| ClusterError::Protocol("etcd answered too few ops".into())))
            .collect()
    }

    /// One transaction with the ops at `indexes`.
    async fn txn(
        &self,
        ops: &[Op<'_>],
        indexes: &[usize],
        lease: i64,
    ) -> Result<Vec<Outcome>, ClusterError> {
        let node = self.config.node.as_str();
        let put = |key: &str| {
            TxnOp::put(
                key,
                node,
                Some(PutOptions::new().with_lease(lease).with_prev_key()),
            )
        };
        let then: Vec<TxnOp> = indexes
            .iter()
            .map(|&i| {
                let key = client_key(ops[i].client());
                match ops[i] {
                    Op::Register(_) => put(&key),
                    Op::Unregister(_) => TxnOp::txn(
                        Txn::new()
                            .when([Compare::value(key.as_str(), CompareOp::Equal, node)])
                            .and_then([TxnOp::delete(key.as_str(), None)]),
                    ),
                    Op::Lookup(_) => TxnOp::get(key, None),
                    Op::Restore(_) => TxnOp::txn(
                        Txn::new()
                            .when([Compare::version(key.as_str(), CompareOp::Equal, 0)])
                            .and_then([put(&key)])
                            .or_else([TxnOp::get(key.as_str(), None)]),
                    ),
                }
            })
            .collect();
        let mut kv = self.client.kv_client();
        let response = kv
            .txn(Txn::new().and_then(then))
            .await
            .map_err(|e| etcd(&e))?;
        let replies = response.op_responses();
        if replies.len() != indexes.len() {
            return Err(ClusterError::Protocol(format!(
                "etcd answered {} of {} ops",
                replies.len(),
                indexes.len()
            )));
        }
        indexes
            .iter()
            .zip(replies)
            .map(|(&i, reply)| self.outcome(ops[i], reply))
            .collect()
    }

    /// Reads one op's answer.
    fn outcome(&self, op: Op<'_>, reply: TxnOpResponse) -> Result<Outcome, ClusterError> {
        let other = |value: &[u8]| -> Result<Option<NodeId>, ClusterError> {
            let id = std::str::from_utf8(value)
                .map_err(|_| ClusterError::Protocol("node id is not UTF-8".into()))?;
            Ok((id != self.config.node.as_str()).then(|| NodeId::from(id)))
        };
        match (op, reply) {
            (Op::Register(_), TxnOpResponse::Put(put)) => match put.prev_key() {
                Some(prev) => Ok(Outcome::Registered(other(prev.value())?)),
                None => Ok(Outcome::Registered(None)),
            },
            (Op::Unregister(_), TxnOpResponse::Txn(txn)) => {
                Ok(Outcome::Unregistered(txn.succeeded()))
            }
            (Op::Lookup(_), TxnOpResponse::Get(get)) => match get.kvs().first() {
                Some(kv) => {
                    let id = std::str::from_utf8(kv.value())
                        .map_err(|_| ClusterError::Protocol("node id is not UTF-8".into()))?;
                    Ok(Outcome::Found(Some(NodeId::from(id))))
                }
                None => Ok(Outcome::Found(None)),
            },
            (Op::Restore(_), TxnOpResponse::Txn(txn)) => {
                if txn.succeeded() {
                    return Ok(Outcome::Restored(None));
                }
                let holder = txn.op_responses().into_iter().find_map(|r| match r {
                    TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
                    _ => None,
                });
                match holder {
                    Some(value) => Ok(Outcome::Restored(other(&value)?)),
                    None => Ok(Outcome::Restored(None)),
                }
            }
            (op, reply) => Err(ClusterError::Protocol(format!(
                "unexpected etcd answer {reply:?} to {op:?}"
            ))),
        }
    }

    /// Live nodes (their keys exist only while their lease does), this one included.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let mut kv = self.client.kv_client();
        let response = self
            .bounded(kv.get(NODES_PREFIX, Some(GetOptions::new().with_prefix())))
            .await?;
        let mut nodes = Vec::new();
        for entry in response.kvs() {
            let Some(id) = entry
                .key()
                .strip_prefix(NODES_PREFIX.as_bytes())
                .and_then(|id| std::str::from_utf8(id).ok())
            else {
                continue;
            };
            match serde_json::from_slice::<NodeRecord>(entry.value()) {
                Ok(record) => nodes.push(NodeInfo {
                    id: NodeId::from(id),
                    addr: record.addr,
                }),
                Err(e) => {
                    tracing::warn!(node = id, error = %e, "ignoring a malformed etcd node key")
                }
            }
        }
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// Revokes this node's lease now: its node key and every entry go with it.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        let Some(lease) = self.lease_id() else {
            return Ok(());
        };
        *self.keeper.lock().await = None;
        let mut leases = self.client.lease_client();
        match self.bounded(leases.revoke(lease)).await {
            Ok(_) | Err(ClusterError::LeaseExpired) => {
                self.forget_lease(lease);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// `/hubbub/clients/{client}`.
fn client_key(client: &ClientId) -> String {
    format!("{CLIENTS_PREFIX}{client}")
}
