use std::collections::{BTreeMap, BTreeSet};

use super::*;
use serde_json::Value;

/// Label pairs of one sample.
type Labels = Vec<(String, String)>;

fn snapshot() -> NodeSnapshot {
    NodeSnapshot {
        node: "node-\"a\"\\1".into(),
        runtime: "tokio",
        registry: "redis://:hunter2@10.0.0.5:6379/0".into(),
        bus: "grpc".into(),
        uptime_secs: 42,
        shards: vec![
            ShardSnapshot {
                connections: 3,
                rooms: 2,
                queued_bytes: 100,
            },
            ShardSnapshot {
                connections: 4,
                rooms: 1,
                queued_bytes: 0,
            },
        ],
        totals: ShardStats {
            opened: 10,
            closed: 3,
            messages_in: 7,
            messages_out: 21,
            slow_consumer_closes: 1,
            dropped_frames: 2,
            heartbeat_closes: 1,
            replaced: 1,
            request_errors: 5,
            protocol_closes: 1,
        },
        router: NodeStats {
            peer_requests: 8,
            peer_replies: 7,
            peer_failures: 1,
            timeouts: 1,
            registry_commands: 12,
            bus_publishes: 4,
            bus_received: 3,
            bus_echoes: 0,
            interest_resyncs: 0,
        },
        rooms: 2,
        peers: vec!["node-b".into(), "node-c".into()],
        degraded: None,
        cluster: Default::default(),
    }
}

#[test]
fn stats_json_has_every_field() {
    let v: Value = serde_json::from_str(&stats_json(&snapshot())).expect("json");
    assert_eq!(v["node"], "node-\"a\"\\1");
    assert_eq!(v["runtime"], "tokio");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["reason"], Value::Null);
    assert_eq!(v["connections"], 7);
    assert_eq!(v["rooms"], 2);
    assert_eq!(v["queued_bytes"], 100);
    assert_eq!(v["messages_in"], 7);
    assert_eq!(v["messages_out"], 21);
    assert_eq!(v["slow_consumer_closes"], 1);
    assert_eq!(v["heartbeat_closes"], 1);
    assert_eq!(v["dropped_frames"], 2);
    assert_eq!(v["replaced"], 1);
    assert_eq!(v["request_errors"], 5);
    assert_eq!(v["protocol_closes"], 1);
    assert_eq!(v["opened"], 10);
    assert_eq!(v["closed"], 3);
    assert_eq!(v["peer_requests"], 8);
    assert_eq!(v["remote_timeouts"], 1);
    assert_eq!(v["registry_commands"], 12);
    assert_eq!(v["bus_publishes"], 4);
    assert_eq!(v["uptime_secs"], 42);
    assert_eq!(v["registry"], "redis://***@10.0.0.5:6379/0");
    assert_eq!(v["bus"], "grpc");
    assert_eq!(v["peers"], serde_json::json!(["node-b", "node-c"]));
    assert_eq!(
        v["shards"],
        serde_json::json!([
            {"connections": 3, "rooms": 2, "queued_bytes": 100},
            {"connections": 4, "rooms": 1, "queued_bytes": 0},
        ])
    );
    let empty: Value = serde_json::from_str(&stats_json(&NodeSnapshot::default())).expect("json");
    assert_eq!(empty["connections"], 0);
    assert_eq!(empty["shards"], serde_json::json!([]));
}

#[test]
fn degraded_shows_in_stats_and_health() {
    let mut s = snapshot();
    assert_eq!(health(&s), (200, r#"{"status":"ok"}"#.to_owned()));
    s.degraded = Some("registry redis://u:pw@r:6379 unreachable: \"refused\"".into());
    let (code, body) = health(&s);
    assert_eq!(code, 503);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["status"], "degraded");
    assert_eq!(
        v["reason"],
        "registry redis://***@r:6379 unreachable: \"refused\""
    );
    let v: Value = serde_json::from_str(&stats_json(&s)).expect("json");
    assert_eq!(v["status"], "degraded");
    assert!(!stats_json(&s).contains("pw"));
    assert!(metrics_text(&s).contains("hubbub_degraded 1\n"));
}

#[test]
fn credentials_are_redacted() {
    assert_eq!(redact_credentials("memory"), "memory");
    assert_eq!(redact_credentials("redis://h:6379"), "redis://h:6379");
    assert_eq!(
        redact_credentials("redis://:p@h:6379/1"),
        "redis://***@h:6379/1"
    );
    assert_eq!(
        redact_credentials("etcd://u:p@a:2379,b:2379"),
        "etcd://***@a:2379,b:2379"
    );
    assert_eq!(
        redact_credentials("x redis://a:b@c@d/e y redis://f"),
        "x redis://***@d/e y redis://f"
    );
    assert_eq!(redact_credentials("://@"), "://***@");
    assert_eq!(redact_credentials("é://é@é"), "é://***@é");
}

/// Parses a label set `k="v",...` (the text between braces); returns the pairs.
fn parse_labels(text: &str) -> Labels {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad label name {key:?}"
        );
        assert_eq!(chars.next(), Some('"'), "label value must be quoted");
        let mut value = String::new();
        loop {
            match chars.next().expect("unterminated label value") {
                '"' => break,
                '\\' => match chars.next().expect("dangling escape") {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => panic!("bad escape \\{other}"),
                },
                '\n' => panic!("raw newline in label value"),
                c => value.push(c),
            }
        }
        pairs.push((key, value));
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(other) => panic!("expected , between labels, got {other:?}"),
        }
    }
    pairs
}

#[test]
fn metrics_follow_the_text_format() {
    let mut s = snapshot();
    s.degraded = Some("bus down".into());
    let text = metrics_text(&s);
    assert!(text.ends_with('\n'));
    let mut help = BTreeSet::new();
    let mut types = BTreeMap::new();
    let mut samples: BTreeMap<String, Vec<(Labels, u64)>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').expect("HELP name text");
            assert!(!doc.is_empty());
            assert!(help.insert(name.to_owned()), "duplicate HELP {name}");
            assert!(!samples.contains_key(name), "HELP after samples of {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(matches!(kind, "counter" | "gauge"), "{kind}");
            assert!(help.contains(name), "TYPE before HELP for {name}");
            assert!(types.insert(name.to_owned(), kind.to_owned()).is_none());
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
            let (series, value) = line.rsplit_once(' ').expect("name value");
            let value: u64 = value.parse().expect("integer value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("closing brace");
                    (name, parse_labels(inner))
                }
                None => (series, Vec::new()),
            };
            assert!(name.starts_with("hubbub_"), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
            assert!(types.contains_key(name), "sample before TYPE for {name}");
            samples
                .entry(name.to_owned())
                .or_default()
                .push((labels, value));
        }
    }
    assert_eq!(help.len(), types.len());
    for (name, kind) in &types {
        assert!(samples.contains_key(name), "no samples for {name}");
        assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
    }
    let one = |name: &str| {
        let v = &samples[name];
        assert_eq!(v.len(), 1, "{name}");
        v[0].1
    };
    for name in [
        "hubbub_slow_consumer_closes_total",
        "hubbub_heartbeat_closes_total",
        "hubbub_peer_failures_total",
        "hubbub_remote_timeouts_total",
        "hubbub_degraded",
    ] {
        assert_eq!(one(name), 1, "{name}");
    }
    assert_eq!(one("hubbub_connections"), 7);
    assert_eq!(one("hubbub_rooms"), 2);
    assert_eq!(one("hubbub_messages_in_total"), 7);
    assert_eq!(one("hubbub_messages_out_total"), 21);
    assert_eq!(one("hubbub_dropped_frames_total"), 2);
    assert_eq!(one("hubbub_connections_opened_total"), 10);
    assert_eq!(one("hubbub_connections_closed_total"), 3);
    assert_eq!(one("hubbub_replaced_total"), 1);
    assert_eq!(one("hubbub_request_errors_total"), 5);
    assert_eq!(one("hubbub_protocol_closes_total"), 1);
    assert_eq!(one("hubbub_peer_requests_total"), 8);
    assert_eq!(one("hubbub_registry_commands_total"), 12);
    assert_eq!(one("hubbub_bus_publishes_total"), 4);
    assert_eq!(one("hubbub_peers"), 2);
    assert_eq!(one("hubbub_uptime_seconds"), 42);
    let per_shard = &samples["hubbub_connections_per_shard"];
    assert_eq!(
        per_shard,
        &vec![
            (vec![("shard".to_owned(), "0".to_owned())], 3),
            (vec![("shard".to_owned(), "1".to_owned())], 4),
        ]
    );
    let info = &samples["hubbub_info"];
    assert_eq!(info.len(), 1);
    let labels: BTreeMap<_, _> = info[0].0.iter().cloned().collect();
    assert_eq!(labels["node"], "node-\"a\"\\1");
    assert_eq!(labels["runtime"], "tokio");
    assert_eq!(labels["registry"], "redis://***@10.0.0.5:6379/0");
    assert!(!text.contains("hunter2"));
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape_label_value("plain"), "plain");
    assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    let mut s = NodeSnapshot {
        node: "line\nbreak".into(),
        ..NodeSnapshot::default()
    };
    s.shards.push(ShardSnapshot::default());
    let text = metrics_text(&s);
    assert!(text.contains(r#"node="line\nbreak""#), "{text}");
    assert!(text.contains("hubbub_degraded 0\n"));
    assert!(text.contains("hubbub_connections_per_shard{shard=\"0\"} 0\n"));
}
