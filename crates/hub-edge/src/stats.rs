//! What `/stats`, `/metrics` and `/healthz` show, from one [`NodeSnapshot`].
//!
//! The runtime gathers a snapshot (asking each shard for its gauges and counters, the router
//! for its counters) and renders it with [`stats_json`], [`metrics_text`] or [`health`].
//! Credentials inside registry and bus addresses (`redis://:password@host`) and inside the
//! degraded reason are masked in every output.

use std::fmt::Write as _;

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

/// A label value escaped for the Prometheus text format (`\`, `"` and newlines).
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes metric families in the Prometheus text format 0.0.4.
struct Metrics {
    out: String,
}

impl Metrics {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP hubbub_{name} {help}");
        let _ = writeln!(self.out, "# TYPE hubbub_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str("hubbub_");
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        let name = format!("{name}_total");
        self.family(&name, "counter", help);
        self.sample(&name, &[], value);
    }

    fn per_shard(&mut self, name: &str, help: &str, values: impl Iterator<Item = usize>) {
        self.family(name, "gauge", help);
        for (i, v) in values.enumerate() {
            self.sample(name, &[("shard", &i.to_string())], v as u64);
        }
    }
}

/// The `/metrics` page: Prometheus text format 0.0.4, every name prefixed `hubbub_`.
pub fn metrics_text(s: &NodeSnapshot) -> String {
    let mut m = Metrics {
        out: String::with_capacity(4096),
    };
    let t = &s.totals;
    let r = &s.router;
    m.family("info", "gauge", "Node identity; the value is always 1.");
    let (registry, bus) = (redact_credentials(&s.registry), redact_credentials(&s.bus));
    let info = [
        ("node", s.node.as_str()),
        ("runtime", s.runtime),
        ("registry", registry.as_str()),
        ("bus", bus.as_str()),
    ];
    m.sample("info", &info, 1);
    m.gauge(
        "degraded",
        "1 when a configured registry or bus is unreachable, else 0.",
        u64::from(s.degraded.is_some()),
    );
    m.gauge(
        "uptime_seconds",
        "Seconds since the node started.",
        s.uptime_secs,
    );
    m.gauge(
        "connections",
        "Open client connections.",
        s.connections() as u64,
    );
    let shards = &s.shards;
    m.per_shard(
        "connections_per_shard",
        "Open client connections per shard.",
        shards.iter().map(|sh| sh.connections),
    );
    m.per_shard(
        "rooms_per_shard",
        "Rooms with members per shard.",
        shards.iter().map(|sh| sh.rooms),
    );
    m.per_shard(
        "queued_bytes_per_shard",
        "Bytes waiting in send queues per shard.",
        shards.iter().map(|sh| sh.queued_bytes),
    );
    m.gauge(
        "rooms",
        "Distinct rooms with members on this node.",
        s.rooms as u64,
    );
    m.gauge(
        "peers",
        "Cluster peers this node knows.",
        s.peers.len() as u64,
    );
    for (name, help, value) in [
        (
            "messages_in",
            "Messages received from clients.",
            t.messages_in,
        ),
        (
            "messages_out",
            "Message frames queued to clients.",
            t.messages_out,
        ),
        (
            "slow_consumer_closes",
            "Connections closed because their send queue was full.",
            t.slow_consumer_closes,
        ),
        (
            "heartbeat_closes",
            "Connections closed for missing a pong.",
            t.heartbeat_closes,
        ),
        (
            "dropped_frames",
            "Frames dropped by the drop-oldest overflow policy.",
            t.dropped_frames,
        ),
        ("connections_opened", "Client connections opened.", t.opened),
        ("connections_closed", "Client connections closed.", t.closed),
        (
            "replaced",
            "Connections replaced by a newer one with the same client id.",
            t.replaced,
        ),
        (
            "request_errors",
            "Client requests answered with an error frame.",
            t.request_errors,
        ),
        (
            "protocol_closes",
            "Connections closed for protocol violations or oversized messages.",
            t.protocol_closes,
        ),
        (
            "peer_requests",
            "Requests sent to peer nodes.",
            r.peer_requests,
        ),
        (
            "peer_replies",
            "Replies received from peer nodes.",
            r.peer_replies,
        ),
        (
            "peer_failures",
            "Sends to peer nodes that failed.",
            r.peer_failures,
        ),
        (
            "remote_timeouts",
            "Requests answered because the remote deadline passed.",
            r.timeouts,
        ),
        (
            "registry_commands",
            "Registry commands issued.",
            r.registry_commands,
        ),
        ("bus_publishes", "Bus publishes issued.", r.bus_publishes),
        (
            "bus_received",
            "Bus messages received from other nodes.",
            r.bus_received,
        ),
        (
            "bus_echoes",
            "Own bus messages that came back and were ignored.",
            r.bus_echoes,
        ),
        (
            "interest_resyncs",
            "Peer interest digests that disagreed and were healed with a snapshot.",
            r.interest_resyncs,
        ),
        (
            "registry_ops",
            "Registry commands applied.",
            s.cluster.registry_ops,
        ),
        (
            "registry_errors",
            "Registry calls that failed.",
            s.cluster.registry_errors,
        ),
        (
            "registry_joins",
            "Times the node (re)joined the registry.",
            s.cluster.registry_joins,
        ),
        (
            "registry_rewrites",
            "Times renewal found this node's client entries missing and wrote them again.",
            s.cluster.registry_rewrites,
        ),
        (
            "peer_messages_sent",
            "Messages sent to peer nodes over links.",
            s.cluster.peer_sent,
        ),
        (
            "peer_messages_received",
            "Messages received from peer nodes.",
            s.cluster.peer_received,
        ),
        (
            "peer_link_errors",
            "Messages that could not be sent to a peer.",
            s.cluster.peer_errors,
        ),
        (
            "peer_link_resets",
            "Peer links torn down and made again (ended, stalled or closed by the peer).",
            s.cluster.peer_link_resets,
        ),
        (
            "peer_oversize",
            "Peer messages refused as larger than the peer message limit.",
            s.cluster.peer_oversize,
        ),
        (
            "peer_decode_errors",
            "Inbound peer links closed on an envelope that could not be decoded.",
            s.cluster.peer_decode_errors,
        ),
        (
            "bus_reconnects",
            "Times the bus came (back) up.",
            s.cluster.bus_reconnects,
        ),
        (
            "bus_published",
            "Frames published on the bus.",
            s.cluster.bus_published,
        ),
        ("bus_errors", "Bus calls that failed.", s.cluster.bus_errors),
    ] {
        m.counter(name, help, value);
    }
    m.out
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
