//! The `/metrics` page, encoded by the `prometheus-client` crate (OpenMetrics text), every
//! name prefixed `hubbub_`: the gauges and counters of a [`NodeSnapshot`], and the latency
//! histograms a node keeps as it runs ([`Latencies`]).

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::stats::{redact_credentials, NodeSnapshot};

/// The content type of [`metrics_text`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a metric, as pairs.
type Labels = Vec<(String, String)>;

/// Latency histograms a node fills as it runs (cheap to clone: the histograms are shared).
#[derive(Debug, Clone)]
pub struct Latencies {
    /// Producer API calls (HTTP, gRPC, the Rust API), by command, until their answer.
    commands: Family<Labels, Histogram>,
}

/// Buckets from 50 µs to about 3.3 s, doubling.
fn buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            commands: Family::new_with_constructor(buckets),
        }
    }
}

impl Latencies {
    /// Records that a producer command of kind `command` (`deliver`, `online`, ...) took
    /// `took` from the call to its answer (for a delivery: every node's count included).
    pub fn observe(&self, command: &'static str, took: Duration) {
        let labels = vec![("command".to_owned(), command.to_owned())];
        self.commands
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

/// A label value escaped for the text format (`\`, `"` and newlines).
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

/// The `/metrics` page (see [`CONTENT_TYPE`]).
pub fn metrics_text(s: &NodeSnapshot, latencies: &Latencies) -> String {
    let mut r = Registry::with_prefix("hubbub");
    let t = &s.totals;
    let router = &s.router;
    let info: Family<Labels, Gauge> = Family::default();
    let (registry, bus) = (redact_credentials(&s.registry), redact_credentials(&s.bus));
    let labels = [
        ("node", s.node.as_str()),
        ("runtime", s.runtime),
        ("registry", registry.as_str()),
        ("bus", bus.as_str()),
    ];
    // The encoder writes label values as given: escape them (node names are free text).
    let labels: Labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), escape_label_value(v)))
        .collect();
    info.get_or_create(&labels).set(1);
    r.register("info", "Node identity; the value is always 1", info);
    let gauges = [
        (
            "degraded",
            "1 when a configured registry or bus is unreachable, else 0",
            u64::from(s.degraded.is_some()),
        ),
        (
            "uptime_seconds",
            "Seconds since the node started",
            s.uptime_secs,
        ),
        (
            "connections",
            "Open client connections",
            s.connections() as u64,
        ),
        (
            "rooms",
            "Distinct rooms with members on this node",
            s.rooms as u64,
        ),
        (
            "peers",
            "Cluster peers this node knows",
            s.peers.len() as u64,
        ),
    ];
    for (name, help, value) in gauges {
        r.register(
            name,
            help,
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)),
        );
    }
    let per_shard = [
        (
            "connections_per_shard",
            "Open client connections per shard",
            s.shards.iter().map(|sh| sh.connections).collect::<Vec<_>>(),
        ),
        (
            "rooms_per_shard",
            "Rooms with members per shard",
            s.shards.iter().map(|sh| sh.rooms).collect(),
        ),
        (
            "queued_bytes_per_shard",
            "Bytes waiting in send queues per shard",
            s.shards.iter().map(|sh| sh.queued_bytes).collect(),
        ),
    ];
    for (name, help, values) in per_shard {
        let family: Family<Labels, Gauge> = Family::default();
        for (i, v) in values.into_iter().enumerate() {
            let shard = vec![("shard".to_owned(), i.to_string())];
            family
                .get_or_create(&shard)
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
        r.register(name, help, family);
    }
    let counters = [
        (
            "messages_in",
            "Messages received from clients",
            t.messages_in,
        ),
        (
            "messages_out",
            "Message frames queued to clients",
            t.messages_out,
        ),
        (
            "slow_consumer_closes",
            "Connections closed because their send queue was full",
            t.slow_consumer_closes,
        ),
        (
            "heartbeat_closes",
            "Connections closed for missing a pong",
            t.heartbeat_closes,
        ),
        (
            "dropped_frames",
            "Frames dropped by the drop-oldest overflow policy",
            t.dropped_frames,
        ),
        ("connections_opened", "Client connections opened", t.opened),
        ("connections_closed", "Client connections closed", t.closed),
        (
            "replaced",
            "Connections replaced by a newer one with the same client id",
            t.replaced,
        ),
        (
            "request_errors",
            "Client requests answered with an error frame",
            t.request_errors,
        ),
        (
            "protocol_closes",
            "Connections closed for protocol violations or oversized messages",
            t.protocol_closes,
        ),
        (
            "peer_requests",
            "Requests sent to peer nodes",
            router.peer_requests,
        ),
        (
            "peer_replies",
            "Replies received from peer nodes",
            router.peer_replies,
        ),
        (
            "peer_failures",
            "Sends to peer nodes that failed",
            router.peer_failures,
        ),
        (
            "remote_timeouts",
            "Requests answered because the remote deadline passed",
            router.timeouts,
        ),
        (
            "registry_commands",
            "Registry commands issued",
            router.registry_commands,
        ),
        (
            "bus_publishes",
            "Bus publishes issued",
            router.bus_publishes,
        ),
        (
            "bus_received",
            "Bus messages received from other nodes",
            router.bus_received,
        ),
        (
            "bus_echoes",
            "Own bus messages that came back and were ignored",
            router.bus_echoes,
        ),
        (
            "interest_resyncs",
            "Peer interest digests that disagreed and were healed with a snapshot",
            router.interest_resyncs,
        ),
        (
            "presence_resyncs",
            "Peer presence digests that disagreed and were healed with a snapshot",
            router.presence_resyncs,
        ),
        (
            "registry_ops",
            "Registry commands applied",
            s.cluster.registry_ops,
        ),
        (
            "registry_errors",
            "Registry calls that failed",
            s.cluster.registry_errors,
        ),
        (
            "registry_joins",
            "Times the node (re)joined the registry",
            s.cluster.registry_joins,
        ),
        (
            "registry_rewrites",
            "Times renewal found this node's client entries missing and wrote them again",
            s.cluster.registry_rewrites,
        ),
        (
            "peer_messages_sent",
            "Messages sent to peer nodes over links",
            s.cluster.peer_sent,
        ),
        (
            "peer_messages_received",
            "Messages received from peer nodes",
            s.cluster.peer_received,
        ),
        (
            "peer_link_errors",
            "Messages that could not be sent to a peer",
            s.cluster.peer_errors,
        ),
        (
            "peer_link_resets",
            "Peer links torn down and made again (ended, stalled or closed by the peer)",
            s.cluster.peer_link_resets,
        ),
        (
            "peer_oversize",
            "Peer messages refused as larger than the peer message limit",
            s.cluster.peer_oversize,
        ),
        (
            "peer_decode_errors",
            "Inbound peer links closed on an envelope that could not be decoded",
            s.cluster.peer_decode_errors,
        ),
        (
            "bus_reconnects",
            "Times the bus came (back) up",
            s.cluster.bus_reconnects,
        ),
        (
            "bus_published",
            "Frames published on the bus",
            s.cluster.bus_published,
        ),
        ("bus_errors", "Bus calls that failed", s.cluster.bus_errors),
    ];
    for (name, help, value) in counters {
        r.register(name, help, ConstCounter::new(value));
    }
    r.register(
        "api_command_duration_seconds",
        "Producer API calls (HTTP, gRPC, the Rust API) from the call to the answer, by command; for deliver, until every node's count is in",
        latencies.commands.clone(),
    );
    let mut out = String::with_capacity(8192);
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
