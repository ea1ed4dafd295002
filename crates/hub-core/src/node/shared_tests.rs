//! History rooms in a cluster: bus frames go to the shards in offset order, a gap is filled
//! from the store, duplicates are dropped, a new epoch starts over.

use std::time::{Duration, Instant};

use super::tests::drain;
use super::*;
use crate::history::{HistoryMessage, HistoryPage, HistoryRule, Position};
use crate::protocol;
use crate::shard::Input as ShardInput;

fn history_node() -> Router {
    let rule = HistoryRule::new("h:*", 10, Duration::from_secs(60)).expect("rule");
    let mut config = NodeConfig::standalone("a".into(), 1);
    config.mode = ClusterMode::Cluster {
        bus: BusKind::Redis,
    };
    config.history = HistoryRules::new(vec![rule]);
    Router::new(config)
}

fn frame(offset: u64, epoch: &str) -> Bytes {
    protocol::sequenced_message("h:r", None, offset, epoch, &offset.to_string())
}

fn bus(n: &mut Router, now: Instant, offset: u64, epoch: &str) -> Vec<Output> {
    n.handle_input(
        now,
        Input::Bus {
            origin: "".into(),
            room: Some("h:r".into()),
            frame: frame(offset, epoch),
        },
    );
    drain(n)
}

fn delivered(outputs: &[Output]) -> Vec<u64> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ToShard {
                input: ShardInput::Sequenced { offset, .. },
                ..
            } => Some(*offset),
            _ => None,
        })
        .collect()
}

#[test]
fn bus_frames_go_out_in_offset_order_and_a_gap_is_filled_from_the_store() {
    let now = Instant::now();
    let mut n = history_node();
    n.handle_input(
        now,
        Input::Shard {
            shard: ShardId(0),
            report: Report::RoomActive("h:r".into()),
        },
    );
    drain(&mut n);
    assert_eq!(delivered(&bus(&mut n, now, 1, "e")), [1]);
    assert_eq!(delivered(&bus(&mut n, now, 2, "e")), [2]);
    assert_eq!(
        delivered(&bus(&mut n, now, 2, "e")),
        [] as [u64; 0],
        "a duplicate"
    );
    // 3 and 4 were lost on the bus: 5 waits while they are read from the store.
    let out = bus(&mut n, now, 5, "e");
    assert!(delivered(&out).is_empty());
    let read = out.iter().find_map(|o| match o {
        Output::History(HistoryCommand::Read {
            since,
            limit,
            purpose: ReadPurpose::Fill,
            ..
        }) => Some((since.clone(), *limit)),
        _ => None,
    });
    let (since, limit) = read.expect("a fill");
    assert_eq!((since.map(|s| s.offset), limit), (Some(2), 2));
    assert!(
        delivered(&bus(&mut n, now, 6, "e")).is_empty(),
        "held behind the fill"
    );
    let texts: Vec<Bytes> = [3u64, 4]
        .iter()
        .map(|o| crate::frame::payload_of(&frame(*o, "e")))
        .collect();
    let page = HistoryPage {
        position: Position {
            offset: 6,
            epoch: "e".into(),
        },
        recovered: true,
        messages: [3u64, 4]
            .iter()
            .map(|o| HistoryMessage {
                offset: *o,
                data: Bytes::new(),
            })
            .collect(),
    };
    n.handle_input(
        now,
        Input::History(HistoryAnswer::Read {
            room: "h:r".into(),
            purpose: ReadPurpose::Fill,
            page: Some(page),
            texts,
        }),
    );
    assert_eq!(delivered(&drain(&mut n)), [3, 4, 5, 6]);
    assert!(delivered(&bus(&mut n, now, 4, "e")).is_empty());
    // The store lost the room: a new epoch starts over wherever it starts.
    assert_eq!(delivered(&bus(&mut n, now, 1, "f")), [1]);
    // A publish here goes to the store, not to the shards.
    n.handle_input(
        now,
        Input::Command {
            req: RequestId(1),
            command: Command::Deliver {
                target: Target::Room("h:r".into()),
                frame: protocol::message(Some("h:r"), None, "7"),
            },
        },
    );
    let out = drain(&mut n);
    assert!(delivered(&out).is_empty());
    assert!(out.iter().any(|o| matches!(
        o,
        Output::History(HistoryCommand::Append { id: Some(_), .. })
    )));
}

#[test]
fn with_the_grpc_bus_history_rooms_are_still_subscribed_on_redis() {
    let now = Instant::now();
    let rule = HistoryRule::new("h:*", 10, Duration::from_secs(60)).expect("rule");
    let mut config = NodeConfig::standalone("a".into(), 1);
    config.mode = ClusterMode::Cluster { bus: BusKind::Grpc };
    config.history = HistoryRules::new(vec![rule]);
    let mut n = Router::new(config);
    let active = |n: &mut Router, room: &str, on: bool| {
        let report = if on {
            Report::RoomActive(room.into())
        } else {
            Report::RoomIdle(room.into())
        };
        n.handle_input(
            now,
            Input::Shard {
                shard: ShardId(0),
                report,
            },
        );
        drain(n)
            .into_iter()
            .filter_map(|o| match o {
                Output::Bus(command) => Some(command),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        active(&mut n, "h:r", true),
        [BusCommand::Subscribe("h:r".into())]
    );
    assert_eq!(active(&mut n, "plain", true), []);
    assert_eq!(
        active(&mut n, "h:r", false),
        [BusCommand::Unsubscribe("h:r".into())]
    );
}
