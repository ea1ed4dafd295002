use super::*;
use serde_json::Value;

/// A snapshot with every field set (also used by the `/metrics` tests).
pub(crate) fn snapshot() -> NodeSnapshot {
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
            presence_resyncs: 0,
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
