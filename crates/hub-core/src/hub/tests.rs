use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::frame::payload_of;
use crate::ids::{ClientId, NodeId, RequestId, RoomName};
use crate::node::{ClusterEvent, Command, PeerMessage};
use crate::shard::{Event, Target};
use crate::ClusterMode;

const SHARDS: u16 = 4;

/// A hub whose embedder writes every transmit at once, as a real loop would.
struct Harness {
    hub: Hub,
    now: Instant,
    /// Text payloads each connection received, in order.
    received: std::collections::BTreeMap<ConnId, Vec<String>>,
    /// Everything but transmits.
    outputs: Vec<HubOutput>,
}

impl Harness {
    fn new(mode: ClusterMode) -> Self {
        let config = Config {
            shard_count: SHARDS,
            ..Config::default()
        };
        let router = NodeConfig {
            mode,
            ..NodeConfig::standalone(config.node_id.clone(), SHARDS)
        };
        Self {
            hub: Hub::new(config, router).expect("valid"),
            now: Instant::now(),
            received: Default::default(),
            outputs: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.hub.poll_output() {
            match out {
                HubOutput::Transmit { conn, frames, .. } => {
                    let texts = self.received.entry(conn).or_default();
                    for frame in &frames {
                        texts.push(String::from_utf8_lossy(&payload_of(frame)).into_owned());
                    }
                    self.hub
                        .handle_input(self.now, HubInput::Conn(ShardInput::Sent { conn }));
                }
                other => self.outputs.push(other),
            }
        }
    }

    fn open(&mut self, client: &str) -> ConnId {
        let params = OpenParams {
            client: Some(ClientId::from(client)),
            ..OpenParams::default()
        };
        let conn = self.hub.open(self.now, params).expect("opens");
        self.drain();
        conn
    }

    fn send(&mut self, conn: ConnId, json: &str) {
        let message = ShardInput::Message {
            conn,
            data: Bytes::copy_from_slice(json.as_bytes()),
            binary: false,
        };
        self.hub.handle_input(self.now, HubInput::Conn(message));
        self.drain();
    }

    fn command(&mut self, req: u64, command: Command) {
        let req = RequestId(req);
        self.hub
            .handle_input(self.now, HubInput::Command { req, command });
        self.drain();
    }

    fn messages(&self, conn: ConnId) -> Vec<&str> {
        self.received.get(&conn).map_or(Vec::new(), |texts| {
            texts
                .iter()
                .filter(|t| t.contains(r#""type":"message""#))
                .map(String::as_str)
                .collect()
        })
    }
}

/// Clients whose ids land on two different shards.
fn on_two_shards() -> (String, String) {
    let ids: Vec<String> = (0..64).map(|i| format!("c{i}")).collect();
    let a = ids[0].clone();
    let owner = shard_for(&a, SHARDS);
    let b = ids
        .iter()
        .find(|id| shard_for(id, SHARDS) != owner)
        .cloned()
        .expect("ids spread over shards");
    (a, b)
}

#[test]
fn a_room_publish_reaches_members_on_other_shards_through_the_router() {
    let mut h = Harness::new(ClusterMode::Standalone);
    let (a, b) = on_two_shards();
    let (ca, cb) = (h.open(&a), h.open(&b));
    assert_ne!(ca.shard, cb.shard);
    h.send(ca, r#"{"type":"join","room":"r"}"#);
    h.send(cb, r#"{"type":"join","room":"r"}"#);
    h.send(ca, r#"{"type":"publish","room":"r","data":1}"#);
    assert_eq!(h.messages(cb).len(), 1, "{:?}", h.received);
    assert_eq!(h.messages(ca).len(), 1);
    assert_eq!(
        h.hub.router().pending_requests(),
        0,
        "a publish is fire and forget"
    );
    h.send(cb, r#"{"type":"emit","to":"nobody","data":2}"#);
    h.send(cb, &format!(r#"{{"type":"emit","to":"{a}","data":3}}"#));
    assert_eq!(h.messages(ca).len(), 2);
    assert_eq!(h.hub.router().pending_requests(), 0);
}

#[test]
fn each_command_gets_its_own_kind_of_answer_with_its_request_id() {
    let mut h = Harness::new(ClusterMode::Standalone);
    let (a, b) = on_two_shards();
    let (ca, cb) = (h.open(&a), h.open(&b));
    let client = ClientId::from(a.as_str());
    h.command(
        7,
        Command::Join {
            client: client.clone(),
            room: RoomName::from("r"),
        },
    );
    h.command(
        8,
        Command::Deliver {
            target: Target::All,
            frame: crate::protocol::message(None, None, "1"),
        },
    );
    h.command(
        9,
        Command::Online {
            client: client.clone(),
        },
    );
    h.command(10, Command::Disconnect { client });
    h.command(
        11,
        Command::Online {
            client: ClientId::from(a.as_str()),
        },
    );
    let answers: Vec<String> = h
        .outputs
        .iter()
        .filter(|o| !matches!(o, HubOutput::Event(_)))
        .map(|o| format!("{o:?}"))
        .collect();
    let node = NodeId::from("node");
    let expected = [
        HubOutput::Delivered {
            req: RequestId(7),
            count: 1,
        },
        HubOutput::Delivered {
            req: RequestId(8),
            count: 2,
        },
        HubOutput::Online {
            req: RequestId(9),
            node: Some(node),
        },
        HubOutput::Disconnected {
            req: RequestId(10),
            closed: true,
        },
        HubOutput::Online {
            req: RequestId(11),
            node: None,
        },
    ]
    .map(|o| format!("{o:?}"));
    assert_eq!(answers, expected);
    assert_eq!(h.messages(cb).len(), 1);
    assert!(h.outputs.iter().any(|o| matches!(
        o,
        HubOutput::Event(Event::Disconnected { conn, code: 4003, .. }) if *conn == ca
    )));
}

#[test]
fn poll_timeout_moves_past_now_after_handle_timeout() {
    let mut h = Harness::new(ClusterMode::Standalone);
    assert_eq!(h.hub.poll_timeout(), None);
    for i in 0..8 {
        h.open(&format!("c{i}"));
        h.now += Duration::from_millis(700);
    }
    // The clients never answer a ping: each is pinged, then closed by the heartbeat.
    let mut fired = 0;
    while let Some(at) = h.hub.poll_timeout() {
        assert!(fired < 1_000, "the deadlines never run out");
        h.now = h.now.max(at);
        h.hub.handle_timeout(h.now);
        h.drain();
        fired += 1;
        if let Some(next) = h.hub.poll_timeout() {
            assert!(
                next > h.now,
                "poll_timeout {next:?} is not past now {:?}",
                h.now
            );
        }
    }
    assert!(fired >= 16, "a ping and a heartbeat close each: {fired}");
    assert_eq!(h.hub.connection_count(), 0);
    assert_eq!(
        h.hub.shards().iter().map(Shard::table_len).sum::<usize>(),
        0
    );
}

#[test]
fn an_earlier_now_counts_as_the_latest_one() {
    let mut h = Harness::new(ClusterMode::Standalone);
    let start = h.now;
    h.now += Duration::from_secs(60);
    h.hub.handle_timeout(h.now);
    let params = OpenParams {
        client: Some(ClientId::from("late")),
        ..OpenParams::default()
    };
    h.hub.open(start, params).expect("opens");
    h.drain();
    let ping = Config::default().ping_interval;
    assert_eq!(h.hub.poll_timeout(), Some(h.now + ping));
}

#[test]
fn inputs_that_name_no_connection_are_ignored_and_shutdown_closes_every_shard() {
    let mut h = Harness::new(ClusterMode::Standalone);
    let (a, b) = on_two_shards();
    h.open(&a);
    h.open(&b);
    h.hub
        .handle_input(h.now, HubInput::Conn(ShardInput::Shutdown));
    h.drain();
    assert_eq!(h.hub.connection_count(), 2);
    h.hub.handle_input(h.now, HubInput::Shutdown);
    h.drain();
    assert_eq!(h.hub.connection_count(), 0);
    let closes = h
        .outputs
        .iter()
        .filter(|o| matches!(o, HubOutput::Event(Event::Disconnected { code: 1001, .. })))
        .count();
    assert_eq!(closes, 2);
    let refused = h.hub.open(h.now, OpenParams::default());
    assert_eq!(refused, Err(OpenError::ShuttingDown));
}

#[test]
fn a_clustered_hub_registers_clients_and_nests_cluster_outputs() {
    let mut h = Harness::new(ClusterMode::Cluster {
        bus: crate::BusKind::Redis,
    });
    h.hub.handle_input(
        h.now,
        HubInput::Cluster(crate::node::Input::Cluster(ClusterEvent::NodeUp(
            NodeId::from("other"),
        ))),
    );
    let conn = h.open("alice");
    h.send(conn, r#"{"type":"join","room":"r"}"#);
    let cluster: Vec<&ClusterOutput> = h
        .outputs
        .iter()
        .filter_map(|o| match o {
            HubOutput::Cluster(c) => Some(c),
            _ => None,
        })
        .collect();
    let (presence, cluster): (Vec<&ClusterOutput>, Vec<&ClusterOutput>) =
        cluster.into_iter().partition(|c| {
            matches!(c, ClusterOutput::ToPeer { message, .. }
                if matches!(message, PeerMessage::PresenceJoin { .. } | PeerMessage::PresenceSnapshot { .. }))
        });
    // The peer gets this node's (empty) presence when met, then alice's join.
    assert!(matches!(
        &presence[..],
        [
            ClusterOutput::ToPeer { message: PeerMessage::PresenceSnapshot { first: true, .. }, .. },
            ClusterOutput::ToPeer { message: PeerMessage::PresenceJoin { room, member }, node },
        ] if room.as_str() == "r" && member.client.as_str() == "alice" && node.as_str() == "other"
    ));
    assert!(matches!(
        &cluster[..],
        [
            ClusterOutput::Registry(crate::node::RegistryCommand::Register { .. }),
            ClusterOutput::Bus(crate::node::BusCommand::Subscribe(room)),
        ] if room.as_str() == "r"
    ));
}

#[test]
fn router_and_shards_must_agree() {
    let config = Config {
        shard_count: 2,
        ..Config::default()
    };
    let router = NodeConfig::standalone(config.node_id.clone(), 3);
    let err = Hub::new(config.clone(), router).expect_err("shard counts differ");
    assert_eq!(err.setting, "shards");
    let router = NodeConfig::standalone(NodeId::from("elsewhere"), 2);
    let err = Hub::new(config.clone(), router).expect_err("node ids differ");
    assert_eq!(err.setting, "node-id");
    let bad = Config {
        ping_interval: Duration::ZERO,
        ..config
    };
    let router = NodeConfig::standalone(bad.node_id.clone(), 2);
    let err = Hub::new(bad, router).expect_err("shard settings are validated");
    assert_eq!(err.setting, "ping-interval");
}

#[test]
fn history_rooms_are_numbered_by_the_router_and_recovered_on_any_shard() {
    use crate::history::{HistoryRule, HistoryRules};
    let rules = HistoryRules::new(vec![
        HistoryRule::new("h:*", 3, Duration::from_secs(60)).expect("rule")
    ]);
    let config = Config {
        shard_count: SHARDS,
        history: rules.clone(),
        ..Config::default()
    };
    let router = NodeConfig {
        history: rules,
        ..NodeConfig::standalone(config.node_id.clone(), SHARDS)
    };
    let mut h = Harness {
        hub: Hub::new(config, router).expect("valid"),
        now: Instant::now(),
        received: Default::default(),
        outputs: Vec::new(),
    };
    let (a, b) = on_two_shards();
    let (ca, cb) = (h.open(&a), h.open(&b));
    h.send(ca, r#"{"type":"join","room":"h:x"}"#);
    h.send(cb, r#"{"type":"join","room":"plain"}"#);
    h.send(ca, r#"{"type":"publish","room":"h:x","data":1}"#);
    h.command(
        1,
        Command::Deliver {
            target: Target::Room(RoomName::from("h:x")),
            frame: crate::protocol::message(Some("h:x"), None, "2"),
        },
    );
    h.send(cb, r#"{"type":"publish","room":"plain","data":0}"#);
    let json = |t: &str| serde_json::from_str::<serde_json::Value>(t).expect("json");
    let got: Vec<serde_json::Value> = h.messages(ca).into_iter().map(json).collect();
    assert_eq!(got.len(), 2, "the publisher gets its own message once");
    assert_eq!(
        (got[0]["offset"].as_u64(), got[1]["offset"].as_u64()),
        (Some(1), Some(2))
    );
    let epoch = got[0]["epoch"].as_str().expect("epoch").to_owned();
    let plain = json(h.messages(cb)[0]);
    assert!(plain.get("offset").is_none() && plain.get("epoch").is_none());
    // b, on another shard, recovers from offset 1: gets 2, then live 3.
    h.send(
        cb,
        &format!(r#"{{"type":"join","room":"h:x","since":{{"offset":1,"epoch":"{epoch}"}}}}"#),
    );
    h.send(ca, r#"{"type":"publish","room":"h:x","data":3}"#);
    let texts = h.received.get(&cb).cloned().unwrap_or_default();
    let tail: Vec<serde_json::Value> = texts.iter().rev().take(3).rev().map(|t| json(t)).collect();
    assert_eq!(tail[0]["type"], "joined");
    assert_eq!(
        (tail[0]["offset"].as_u64(), tail[0]["recovered"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(
        (tail[1]["offset"].as_u64(), tail[2]["offset"].as_u64()),
        (Some(2), Some(3))
    );
    // The producer API's queries.
    h.command(
        2,
        Command::Position {
            room: RoomName::from("h:x"),
        },
    );
    h.command(
        3,
        Command::History {
            room: RoomName::from("h:x"),
            since: Some(crate::history::Since { offset: 0, epoch }),
            limit: 10,
        },
    );
    h.command(
        4,
        Command::Position {
            room: RoomName::from("plain"),
        },
    );
    let answers: Vec<&Reply> = h
        .outputs
        .iter()
        .filter_map(|o| match o {
            HubOutput::Answer { reply, .. } => Some(reply),
            _ => None,
        })
        .collect();
    assert!(matches!(answers[0], Reply::Position(Some(p)) if p.offset == 3));
    // Offsets 1..=3 are all kept (3 of them): a replay from 0 is complete.
    assert!(matches!(answers[1], Reply::History(Some(p)) if p.recovered && p.messages.len() == 3));
    assert_eq!(answers[2], &Reply::Position(None));
}
