//! What `/stats`, `/metrics` and `/healthz` show, from one [`NodeSnapshot`].
//!
//! The runtime gathers a snapshot (asking each shard for its gauges and counters, the router
//! for its counters) and renders it with [`stats_json`], [`crate::metrics::metrics_text`] or
//! [`health`].
//! Credentials inside registry and bus addresses (`redis://:password@host`) and inside the
//! degraded reason are masked in every output.

use hub_core::node::NodeStats;
use hub_core::ShardStats;
use serde_json::json;

use crate::api::json_string;

/// The gauges of one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardSnapshot {
    /// Open connections.
    pub connections: usize,
    /// Rooms with at least one member on this shard.
    pub rooms: usize,
    /// Bytes waiting in this shard's send queues.
    pub queued_bytes: usize,
}

/// Everything a node shows about itself at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// This node's name.
    pub node: String,
    /// The runtime driving the node (`"tokio"`, `"smol"`).
    pub runtime: &'static str,
    /// The registry in use (`"memory"`, a `redis://` or `etcd://` address).
    pub registry: String,
    /// The bus in use (`"grpc"`, a `redis://` address, or `"none"`).
    pub bus: String,
    /// Seconds since the node started.
    pub uptime_secs: u64,
    /// Per-shard gauges, in shard order.
    pub shards: Vec<ShardSnapshot>,
    /// Shard counters summed over the shards.
    pub totals: ShardStats,
    /// The router's counters.
    pub router: NodeStats,
    /// Distinct rooms with members on this node.
    pub rooms: usize,
    /// Names of the cluster peers this node knows.
    pub peers: Vec<String>,
    /// Why the node is degraded (registry or bus unreachable), or `None` when healthy.
    pub degraded: Option<String>,
    /// Counters of the cluster plumbing (all zero on a standalone node).
    pub cluster: ClusterCounters,
}

/// Counters of a node's cluster plumbing: registry, peer links, bus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterCounters {
    /// Registry commands applied.
    pub registry_ops: u64,
    /// Registry calls that failed.
    pub registry_errors: u64,
    /// Times the node (re)joined the registry.
    pub registry_joins: u64,
    /// Times renewal found this node's client entries missing and wrote them again.
    pub registry_rewrites: u64,
    /// Messages sent to peers.
    pub peer_sent: u64,
    /// Messages received from peers.
    pub peer_received: u64,
    /// Messages that could not be sent to a peer.
    pub peer_errors: u64,
    /// Peer links torn down and made again (stream ended, stalled, or closed by the peer).
    pub peer_link_resets: u64,
    /// Peer messages refused because they exceed the peer message limit.
    pub peer_oversize: u64,
    /// Inbound peer links closed because an envelope could not be decoded.
    pub peer_decode_errors: u64,
    /// Times the bus came (back) up.
    pub bus_reconnects: u64,
    /// Frames published on the bus.
    pub bus_published: u64,
    /// Bus calls that failed.
    pub bus_errors: u64,
}

impl NodeSnapshot {
    /// Open connections over all shards.
    pub fn connections(&self) -> usize {
        self.shards
            .iter()
            .fold(0usize, |n, s| n.saturating_add(s.connections))
    }

    /// Bytes queued for sending over all shards.
    pub fn queued_bytes(&self) -> usize {
        self.shards
            .iter()
            .fold(0usize, |n, s| n.saturating_add(s.queued_bytes))
    }
}

/// `text` with the user-info of every `scheme://user:pass@host` replaced by `***`.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | ',' | '"' | '\'') || c.is_whitespace())
            .unwrap_or(tail.len());
        let (authority, after) = tail.split_at(end);
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(authority.get(at..).unwrap_or_default());
            }
            None => out.push_str(authority),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The `/stats` JSON document.
pub fn stats_json(s: &NodeSnapshot) -> String {
    let t = &s.totals;
    let r = &s.router;
    let shards: Vec<_> = s
        .shards
        .iter()
        .map(|sh| {
            json!({
                "connections": sh.connections,
                "rooms": sh.rooms,
                "queued_bytes": sh.queued_bytes,
            })
        })
        .collect();
    let reason = s.degraded.as_deref().map(redact_credentials);
    json!({
        "node": s.node,
        "runtime": s.runtime,
        "status": if reason.is_some() { "degraded" } else { "ok" },
        "reason": reason,
        "uptime_secs": s.uptime_secs,
        "registry": redact_credentials(&s.registry),
        "bus": redact_credentials(&s.bus),
        "connections": s.connections(),
        "rooms": s.rooms,
        "queued_bytes": s.queued_bytes(),
        "messages_in": t.messages_in,
        "messages_out": t.messages_out,
        "slow_consumer_closes": t.slow_consumer_closes,
        "heartbeat_closes": t.heartbeat_closes,
        "dropped_frames": t.dropped_frames,
        "replaced": t.replaced,
        "request_errors": t.request_errors,
        "protocol_closes": t.protocol_closes,
        "opened": t.opened,
        "closed": t.closed,
        "peer_requests": r.peer_requests,
        "peer_replies": r.peer_replies,
        "peer_failures": r.peer_failures,
        "remote_timeouts": r.timeouts,
        "registry_commands": r.registry_commands,
        "bus_publishes": r.bus_publishes,
        "bus_received": r.bus_received,
        "bus_echoes": r.bus_echoes,
        "interest_resyncs": r.interest_resyncs,
        "presence_resyncs": r.presence_resyncs,
        "cluster": {
            "registry_ops": s.cluster.registry_ops,
            "registry_errors": s.cluster.registry_errors,
            "registry_joins": s.cluster.registry_joins,
            "registry_rewrites": s.cluster.registry_rewrites,
            "peer_sent": s.cluster.peer_sent,
            "peer_received": s.cluster.peer_received,
            "peer_errors": s.cluster.peer_errors,
            "peer_link_resets": s.cluster.peer_link_resets,
            "peer_oversize": s.cluster.peer_oversize,
            "peer_decode_errors": s.cluster.peer_decode_errors,
            "bus_reconnects": s.cluster.bus_reconnects,
            "bus_published": s.cluster.bus_published,
            "bus_errors": s.cluster.bus_errors,
        },
        "shards": shards,
        "peers": s.peers,
    })
    .to_string()
}

/// `/healthz`: `(200, {"status":"ok"})` or `(503, {"status":"degraded","reason":R})`.
pub fn health(s: &NodeSnapshot) -> (u16, String) {
    match &s.degraded {
        None => (200, r#"{"status":"ok"}"#.to_owned()),
        Some(reason) => (
            503,
            format!(
                r#"{{"status":"degraded","reason":{}}}"#,
                json_string(&redact_credentials(reason))
            ),
        ),
    }
}

#[cfg(test)]
#[path = "stats_tests.rs"]
pub(crate) mod tests;
