use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::stats::tests::snapshot;
use crate::stats::ShardSnapshot;

/// Label pairs of one sample.
type Labels = Vec<(String, String)>;

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
    let latencies = Latencies::default();
    latencies.observe("deliver", std::time::Duration::from_millis(3));
    let text = metrics_text(&s, &latencies);
    assert!(text.ends_with("# EOF\n"), "{text}");
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
            assert!(matches!(kind, "counter" | "gauge" | "histogram"), "{kind}");
            assert!(help.contains(name), "TYPE before HELP for {name}");
            assert!(types.insert(name.to_owned(), kind.to_owned()).is_none());
        } else {
            if line == "# EOF" {
                continue;
            }
            assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
            let (series, value) = line.rsplit_once(' ').expect("name value");
            let value: f64 = value.parse().expect("numeric value");
            let value = value as u64; // whole values here, except histogram sums
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
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|f| types.contains_key(*f)))
                .unwrap_or(name);
            assert!(types.contains_key(family), "sample before TYPE for {name}");
            samples
                .entry(name.to_owned())
                .or_default()
                .push((labels, value));
        }
    }
    assert_eq!(help.len(), types.len());
    for (name, kind) in &types {
        let with = |suffix: &str| samples.contains_key(&format!("{name}{suffix}"));
        match kind.as_str() {
            "counter" => assert!(with("_total"), "no samples for {name}"),
            "histogram" => assert!(with("_bucket") && with("_sum") && with("_count"), "{name}"),
            _ => assert!(with(""), "no samples for {name}"),
        }
    }
    let deliveries = &samples["hubbub_api_command_duration_seconds_count"];
    assert_eq!(
        deliveries,
        &vec![(vec![("command".to_owned(), "deliver".to_owned())], 1)]
    );
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
    // A family's series come in no particular order.
    let mut per_shard = samples["hubbub_connections_per_shard"].clone();
    per_shard.sort();
    assert_eq!(
        &per_shard,
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
    let text = metrics_text(&s, &Latencies::default());
    assert!(text.contains(r#"node="line\nbreak""#), "{text}");
    assert!(text.contains("hubbub_degraded 0\n"));
    assert!(text.contains("hubbub_connections_per_shard{shard=\"0\"} 0\n"));
}
