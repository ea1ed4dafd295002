//! What the coordinator and a group of connections say to each other. A group runs either
//! as a task of the coordinator's process or in a worker process (`hubbub-load worker`),
//! which reads its [`GroupSpec`] and then [`Command`]s as JSON lines on stdin and writes
//! [`Event`]s as JSON lines on stdout.
//!
//! The exchange: the group opens its connections and answers [`Event::Connected`]; then, per
//! step, [`Command::Begin`] → [`Event::Began`], deliveries (reported by [`Event::Progress`]
//! about four times a second), [`Command::Collect`] → [`Event::Step`]; finally
//! [`Command::Stop`] (or end of stdin) closes every connection.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::hist::Compact;
use crate::proto::{Protocol, Role};
use crate::tally::SeqTable;

/// Everything a group needs to open and run its connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSpec {
    /// The URL every connection of the group opens.
    pub url: String,
    /// The server's address (resolved once by the coordinator).
    pub addr: SocketAddr,
    /// Protocol adapter.
    pub protocol: Protocol,
    /// What the connections are for.
    pub role: Role,
    /// Room (for protocols that join one by a frame).
    pub room: String,
    /// Number of connections.
    pub count: u64,
    /// Global number of the group's first connection (picks source addresses).
    pub first_index: u64,
    /// Connections per source address, when source addresses are spread.
    pub per_source: Option<u64>,
    /// Connections being opened at once, at most.
    pub concurrency: usize,
    /// Connections started per second, at most (none: as fast as `concurrency` allows).
    pub connect_rate: Option<f64>,
    /// Time allowed for one connection to become ready, ms.
    pub connect_timeout_ms: u64,
    /// Connections spread over several nodes, each with its own client id (`scale`); when
    /// absent, every connection opens `url` with no id.
    #[serde(default)]
    pub addressed: Option<Addressed>,
}

impl GroupSpec {
    /// A group of no connections yet, for the coordinator to size and place: one attempt at
    /// a time, no rate or time limit, the index from 0.
    pub fn template(
        url: String,
        addr: SocketAddr,
        protocol: Protocol,
        role: Role,
        room: String,
        addressed: Option<Addressed>,
    ) -> Self {
        GroupSpec {
            url,
            addr,
            protocol,
            role,
            room,
            count: 0,
            first_index: 0,
            per_source: None,
            concurrency: 1,
            connect_rate: None,
            connect_timeout_ms: 0,
            addressed,
        }
    }
}

/// Connection `i` (global index) opens `nodes[i % nodes.len()]` as client `{id_prefix}{i}`
/// and accepts only its own payload, the one whose sequence number is `i`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Addressed {
    /// The nodes, in order: their WebSocket URL (`.../ws`) and address.
    pub nodes: Vec<(String, SocketAddr)>,
    /// Client ids are this prefix followed by the connection's global index.
    pub id_prefix: String,
}

impl Addressed {
    /// The node index, URL and address of connection `index`.
    pub fn target(&self, index: u64) -> Option<(usize, String, SocketAddr)> {
        let k = u64::try_from(self.nodes.len()).ok().filter(|&k| k > 0)?;
        let node = usize::try_from(index % k).ok()?;
        let (url, addr) = self.nodes.get(node)?;
        let sep = if url.contains('?') { '&' } else { '?' };
        Some((
            node,
            format!("{url}{sep}id={}", self.client_id(index)),
            *addr,
        ))
    }

    /// The client id of connection `index`.
    pub fn client_id(&self, index: u64) -> String {
        format!("{}{index}", self.id_prefix)
    }
}

/// Coordinator → group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Start recording a step: messages `measure_from..end` are measured, others ignored.
    Begin {
        /// Step number.
        step: u32,
        /// First measured sequence number.
        measure_from: u64,
        /// One past the last measured sequence number.
        end: u64,
    },
    /// Stop recording the step and report it.
    Collect {
        /// Step number.
        step: u32,
    },
    /// Close every connection and end.
    Stop,
}

/// Group → coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// Every connection attempt has finished.
    Connected(ConnectReport),
    /// A step began.
    Began {
        /// Step number.
        step: u32,
        /// Connections open now.
        alive: u64,
    },
    /// What happened since the last progress event.
    Progress(Progress),
    /// The report of a collected step.
    Step(StepReport),
    /// The group cannot go on.
    Fatal {
        /// Why.
        message: String,
    },
}

/// How opening a group's connections went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectReport {
    /// Connections ready.
    pub ok: u64,
    /// Connections that failed.
    pub failed: u64,
    /// Time from the first attempt to the last outcome, seconds.
    pub elapsed_secs: f64,
    /// Connect start → upgrade answer, µs.
    pub upgrade: Compact,
    /// Connect start → ready (upgrade, plus the first frame where the protocol waits), µs.
    pub ready: Compact,
    /// Failures by kind, with one example message each: (kind, count, example).
    pub errors: Vec<(String, u64, String)>,
    /// Connections ready per node (addressed groups only; empty otherwise).
    #[serde(default)]
    pub per_node_ok: Vec<u64>,
}

/// Deliveries and connection counts since the last progress event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Measured deliveries since the last event.
    pub delivered: u64,
    /// Their latencies.
    pub hist: Compact,
    /// Connections open now.
    pub alive: u64,
    /// Connections ready so far.
    pub ok: u64,
    /// Connections failed so far.
    pub failed: u64,
}

/// One group's record of one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Step number.
    pub step: u32,
    /// Deliveries per measured message.
    pub table: SeqTable,
    /// Per-delivery latency, µs.
    pub hist: Compact,
    /// Payloads outside the measured range (warm-up, late ones of earlier steps).
    pub ignored: u64,
    /// Text frames without a payload.
    pub unparsed: u64,
    /// Connections open at the end.
    pub alive: u64,
    /// Connections that ended during the step, by how: close code, `reset` or `eof`.
    pub closes: Vec<(String, u64)>,
    /// Payloads that reached a connection they were not addressed to (addressed groups).
    #[serde(default)]
    pub misdelivered: u64,
    /// The first of them: (receiving connection's index, the payload's sequence number).
    #[serde(default)]
    pub misdelivered_example: Option<(u64, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_json_lines() {
        let events = vec![
            Event::Began { step: 2, alive: 10 },
            Event::Progress(Progress {
                delivered: 3,
                hist: Compact(vec![(10, 3)]),
                ..Progress::default()
            }),
            Event::Step(StepReport {
                table: SeqTable::new(5, 2),
                ..StepReport::default()
            }),
            Event::Fatal {
                message: "x\ny".into(),
            },
            Event::Step(StepReport {
                misdelivered: 2,
                misdelivered_example: Some((4, 9)),
                ..StepReport::default()
            }),
        ];
        for event in events {
            let line = serde_json::to_string(&event).expect("serialize");
            assert!(!line.contains('\n'));
            let back: Event = serde_json::from_str(&line).expect("parse");
            assert_eq!(back, event);
        }
        let cmd = Command::Begin {
            step: 1,
            measure_from: 10,
            end: 20,
        };
        let line = serde_json::to_string(&cmd).expect("serialize");
        assert_eq!(serde_json::from_str::<Command>(&line).ok(), Some(cmd));
    }

    #[test]
    fn addressed_targets_cycle_over_the_nodes() {
        let a = Addressed {
            nodes: vec![
                (
                    "ws://127.0.0.1:1/ws".into(),
                    "127.0.0.1:1".parse().expect("addr"),
                ),
                (
                    "ws://127.0.0.1:2/ws?x=1".into(),
                    "127.0.0.1:2".parse().expect("addr"),
                ),
            ],
            id_prefix: "c".into(),
        };
        let (node, url, addr) = a.target(5).expect("target");
        assert_eq!(
            (node, url.as_str(), addr.port()),
            (1, "ws://127.0.0.1:2/ws?x=1&id=c5", 2)
        );
        assert_eq!(
            a.target(4).map(|t| t.1).as_deref(),
            Some("ws://127.0.0.1:1/ws?id=c4")
        );
        let none = Addressed {
            nodes: Vec::new(),
            id_prefix: "c".into(),
        };
        assert_eq!(none.target(0), None);
    }
}
