//! The connection registry in Redis.
//!
//! ## Key layout
//!
//! | key | type | value | lifetime |
//! |---|---|---|---|
//! | `hubbub:node:{node}` | string | the node's advertised gRPC address | `PX lease_ttl`, renewed by `SET … XX PX` |
//! | `hubbub:nodes` | set | ids of nodes that joined (listing; dead ids are pruned) | persistent |
//! | `hubbub:client:{client}` | string | id of the node holding the client | no TTL |
//! | `hubbub:node-clients:{node}` | set | client ids the node registered (for clearing) | persistent |
//!
//! ## Invariants
//!
//! - Liveness is per node: a client entry counts only while its node's key exists. An entry
//!   whose node key expired reads as offline at once; the lookup that finds it deletes it.
//!   Renewal is one `SET XX PX` per node, never per connection, pipelined with an `SCARD`
//!   of the node's client set: a count below the node's own (a server restored from an
//!   older snapshot, entries deleted behind its back) makes the node write its entries
//!   again with Restore.
//! - Register, Unregister, Lookup and Restore are Lua scripts (atomic, `EVALSHA` with the
//!   script cached; each pipeline starts with `SCRIPT LOAD` of the scripts it uses, so a
//!   restarted or flushed server needs no retry). A batch is one pipeline: one round trip,
//!   executed in order.
//! - Register and Restore fail with [`ClusterError::LeaseExpired`] when this node's key is
//!   gone, as etcd refuses a put with an expired lease: the node must join again first.
//! - Unregister is compare-and-delete: it deletes the entry only while it names this node, so
//!   an old connection's disconnect never removes a newer registration elsewhere.
//! - `join`/`leave` clear this node's entries in chunks of [`CLEAR_CHUNK`] (`SPOP` from the
//!   node's set, delete the entries that still name it), so no script blocks Redis for long;
//!   an interrupted clear resumes where it stopped. `nodes()` also sweeps one chunk of every
//!   dead node's entries per call and drops the node from `hubbub:nodes` once it has none, so
//!   a node that crashed and never came back leaves nothing behind for long.

use std::time::Duration;

use hub_core::{ClientId, NodeId};
use redis::{Script, Value};

use crate::error::REDIS_LEASE_EXPIRED;
use crate::ops::{Op, Outcome};
use crate::redis_link::RedisLink;
use crate::{ClusterError, NodeInfo, RegistryConfig, Renewed};

/// Prefix of node keys.
pub const NODE_PREFIX: &str = "hubbub:node:";
/// The set of joined node ids.
pub const NODES_KEY: &str = "hubbub:nodes";
/// Prefix of client entries.
pub const CLIENT_PREFIX: &str = "hubbub:client:";
/// Prefix of per-node client sets.
pub const NODE_CLIENTS_PREFIX: &str = "hubbub:node-clients:";
/// How many client entries one clearing script handles.
pub const CLEAR_CHUNK: usize = 2000;

/// KEYS: client entry, own client set, own node key. ARGV: node, client. Returns the
/// displaced live node; fails if this node's key is gone (its lease expired).
const REGISTER: &str = r"
if redis.call('EXISTS', KEYS[3]) == 0 then return redis.error_reply('@EXPIRED@') end
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
if old and old ~= ARGV[1] then
  redis.call('SREM', '@NODE_CLIENTS@' .. old, ARGV[2])
  if redis.call('EXISTS', '@NODE@' .. old) == 1 then return old end
end
return false
";

/// KEYS: client entry, own client set. ARGV: node, client. Returns 1 when deleted.
const UNREGISTER: &str = r"
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// KEYS: client entry. ARGV: client. Returns the live holder; deletes a dead holder's entry.
const LOOKUP: &str = r"
local n = redis.call('GET', KEYS[1])
if not n then return false end
if redis.call('EXISTS', '@NODE@' .. n) == 1 then return n end
redis.call('DEL', KEYS[1])
redis.call('SREM', '@NODE_CLIENTS@' .. n, ARGV[1])
return false
";

/// KEYS: client entry, own client set, own node key. ARGV: node, client. Returns the other
/// live holder (and leaves it), or nil after pointing the entry at this node; fails if this
/// node's key is gone.
const RESTORE: &str = r"
if redis.call('EXISTS', KEYS[3]) == 0 then return redis.error_reply('@EXPIRED@') end
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  if redis.call('EXISTS', '@NODE@' .. cur) == 1 then return cur end
  redis.call('SREM', '@NODE_CLIENTS@' .. cur, ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return false
";

/// KEYS: a node's client set. ARGV: node, chunk. Pops a chunk, deletes the entries still
/// naming the node; returns how many remain in the set.
const CLEAR: &str = r"
local members = redis.call('SPOP', KEYS[1], tonumber(ARGV[2]))
for _, c in ipairs(members) do
  local k = '@CLIENT@' .. c
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return redis.call('SCARD', KEYS[1])
";

/// KEYS: the node set. ARGV: chunk. Returns `[id, addr, id, addr, …]` of live nodes; sweeps
/// one chunk of each dead node's entries and forgets the node once it has none.
const NODES: &str = r"
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local addr = redis.call('GET', '@NODE@' .. id)
  if addr then
    table.insert(out, id)
    table.insert(out, addr)
  else
    local set = '@NODE_CLIENTS@' .. id
    for _, c in ipairs(redis.call('SPOP', set, tonumber(ARGV[1]))) do
      local k = '@CLIENT@' .. c
      if redis.call('GET', k) == id then redis.call('DEL', k) end
    end
    if redis.call('SCARD', set) == 0 then redis.call('SREM', KEYS[1], id) end
  end
end
return out
";

/// A script with the key prefixes filled in.
fn script(source: &str) -> Script {
    Script::new(
        &source
            .replace("@NODE_CLIENTS@", NODE_CLIENTS_PREFIX)
            .replace("@NODE@", NODE_PREFIX)
            .replace("@CLIENT@", CLIENT_PREFIX)
            .replace("@EXPIRED@", REDIS_LEASE_EXPIRED),
    )
}

/// The Lua scripts, hashed once.
struct Scripts {
    register: Script,
    unregister: Script,
    lookup: Script,
    restore: Script,
    clear: Script,
    nodes: Script,
}

/// The registry backend on one Redis server.
pub struct RedisRegistry {
    /// Boxed (with the scripts): `Registry` holds either backend inline.
    link: Box<RedisLink>,
    config: RegistryConfig,
    scripts: Box<Scripts>,
    node_key: String,
    own_clients: String,
}

impl RedisRegistry {
    /// Connects to `url` (`redis://[user:pass@]host:port[/db]`) and checks the server answers.
    pub async fn connect(url: &str, config: RegistryConfig) -> Result<RedisRegistry, ClusterError> {
        let link = RedisLink::open(url, config.op_timeout)?;
        let registry = RedisRegistry {
            link: Box::new(link),
            node_key: format!("{NODE_PREFIX}{}", config.node),
            own_clients: format!("{NODE_CLIENTS_PREFIX}{}", config.node),
            config,
            scripts: Box::new(Scripts {
                register: script(REGISTER),
                unregister: script(UNREGISTER),
                lookup: script(LOOKUP),
                restore: script(RESTORE),
                clear: script(CLEAR),
                nodes: script(NODES),
            }),
        };
        let mut ping = redis::pipe();
        ping.cmd("PING");
        registry.link.query::<Value>(&ping).await?;
        Ok(registry)
    }

    /// The configuration this registry was made with.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.config.lease_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Clears a previous instance's entries, then announces this node with its lease.
    pub async fn join(&self) -> Result<(), ClusterError> {
        self.clear_own().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&self.node_key)
            .arg(&self.config.advertise)
            .arg("PX")
            .arg(self.ttl_ms())
            .ignore()
            .cmd("SADD")
            .arg(NODES_KEY)
            .arg(self.config.node.as_str())
            .ignore();
        self.link.query::<()>(&pipe).await
    }

    /// Extends the node key's life; [`ClusterError::LeaseExpired`] if it is gone.
    pub async fn renew(&self) -> Result<Renewed, ClusterError> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&self.node_key)
            .arg(&self.config.advertise)
            .arg("XX")
            .arg("PX")
            .arg(self.ttl_ms());
        pipe.cmd("SCARD").arg(&self.own_clients);
        let (reply, clients): (Option<String>, u64) = self.link.query(&pipe).await?;
        match reply {
            Some(_) => Ok(Renewed {
                clients: Some(clients),
                rolled_back: false,
            }),
            None => Err(ClusterError::LeaseExpired),
        }
    }

    /// Runs `ops` in one pipeline; one outcome per op.
    pub(crate) async fn run(&self, ops: &[Op<'_>]) -> Result<Vec<Outcome>, ClusterError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let s = &self.scripts;
        let mut pipe = redis::pipe();
        let mut used = [false; 4];
        for op in ops {
            let index = match op {
                Op::Register(_) => 0,
                Op::Unregister(_) => 1,
                Op::Lookup(_) => 2,
                Op::Restore(_) => 3,
            };
            used[index] = true;
        }
        for (script, used) in [&s.register, &s.unregister, &s.lookup, &s.restore]
            .into_iter()
            .zip(used)
        {
            if used {
                pipe.load_script(script).ignore();
            }
        }
        let node = self.config.node.as_str();
        for op in ops {
            let client = op.client().as_str();
            let key = client_key(op.client());
            let mut call = match op {
                Op::Register(_) => s.register.key(&key),
                Op::Unregister(_) => s.unregister.key(&key),
                Op::Lookup(_) => s.lookup.key(&key),
                Op::Restore(_) => s.restore.key(&key),
            };
            match op {
                Op::Lookup(_) => call.arg(client),
                Op::Unregister(_) => call.key(&self.own_clients).arg(node).arg(client),
                Op::Register(_) | Op::Restore(_) => call
                    .key(&self.own_clients)
                    .key(&self.node_key)
                    .arg(node)
                    .arg(client),
            };
            pipe.invoke_script(&call);
        }
        let replies: Vec<Value> = self.link.query(&pipe).await?;
        if replies.len() != ops.len() {
            return Err(ClusterError::Protocol(format!(
                "expected {} replies, got {}",
                ops.len(),
                replies.len()
            )));
        }
        ops.iter()
            .zip(replies)
            .map(|(op, reply)| match op {
                Op::Register(_) => Ok(Outcome::Registered(node_reply(reply)?)),
                Op::Unregister(_) => Ok(Outcome::Unregistered(int_reply(&reply)? == 1)),
                Op::Lookup(_) => Ok(Outcome::Found(node_reply(reply)?)),
                Op::Restore(_) => Ok(Outcome::Restored(node_reply(reply)?)),
            })
            .collect()
    }

    /// Live nodes, this one included; sweeps a chunk of each dead node's entries.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let mut pipe = redis::pipe();
        pipe.load_script(&self.scripts.nodes).ignore();
        pipe.invoke_script(self.scripts.nodes.key(NODES_KEY).arg(CLEAR_CHUNK));
        let (flat,): (Vec<String>,) = self.link.query(&pipe).await?;
        let mut nodes: Vec<NodeInfo> = flat
            .chunks_exact(2)
            .map(|pair| NodeInfo {
                id: NodeId::from(pair[0].as_str()),
                addr: pair[1].clone(),
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// Deletes this node's entries and its node key now.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        self.clear_own().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("DEL")
            .arg(&self.node_key)
            .ignore()
            .cmd("SREM")
            .arg(NODES_KEY)
            .arg(self.config.node.as_str())
            .ignore();
        self.link.query::<()>(&pipe).await
    }

    /// Deletes every entry that names this node, a chunk per round trip, within one deadline.
    async fn clear_own(&self) -> Result<(), ClusterError> {
        let deadline = self.link.op_timeout();
        let work = async {
            loop {
                let mut pipe = redis::pipe();
                pipe.load_script(&self.scripts.clear).ignore();
                pipe.invoke_script(
                    self.scripts
                        .clear
                        .key(&self.own_clients)
                        .arg(self.config.node.as_str())
                        .arg(CLEAR_CHUNK),
                );
                let (left,): (u64,) = self.link.query(&pipe).await?;
                if left == 0 {
                    return Ok(());
                }
            }
        };
        crate::rt::within(deadline.max(Duration::from_millis(1)), work)
            .await
            .unwrap_or(Err(ClusterError::Timeout))
    }
}

/// `hubbub:client:{client}`.
fn client_key(client: &ClientId) -> String {
    format!("{CLIENT_PREFIX}{client}")
}

/// A script reply that is a node id or nil.
fn node_reply(reply: Value) -> Result<Option<NodeId>, ClusterError> {
    match reply {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => String::from_utf8(bytes)
            .map(|s| Some(NodeId::from(s)))
            .map_err(|_| ClusterError::Protocol("node id is not UTF-8".into())),
        Value::SimpleString(s) => Ok(Some(NodeId::from(s))),
        Value::ServerError(e) => Err(ClusterError::Protocol(format!("{e:?}"))),
        other => Err(ClusterError::Protocol(format!(
            "unexpected script reply {other:?}"
        ))),
    }
}

/// A script reply that is an integer.
fn int_reply(reply: &Value) -> Result<i64, ClusterError> {
    match reply {
        Value::Int(n) => Ok(*n),
        Value::ServerError(e) => Err(ClusterError::Protocol(format!("{e:?}"))),
        other => Err(ClusterError::Protocol(format!(
            "unexpected script reply {other:?}"
        ))),
    }
}
