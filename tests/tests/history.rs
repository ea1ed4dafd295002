//! Room history and recovery on one node (PROTOCOL.md, "History and recovery"), against the
//! real binary: offsets and epochs on messages, joins with `since`, the producer API's
//! history and position, and the `--history` flag.

use std::process::Command;
use std::time::Duration;

use hubbub_tests::{http, hubbub_bin, post, Client, TestNode};
use serde_json::{json, Value};

const HISTORY: &[&str] = &["--history", "h:*=5/10m", "--shards", "4"];

async fn get(node: &TestNode, path: &str) -> (u16, Value) {
    let reply = http(node.addr, "GET", path, None, &[]).await;
    (reply.status, reply.json())
}

async fn publish(node: &TestNode, room: &str, data: Value) {
    let body = json!({"room": room, "data": data}).to_string();
    let reply = post(node.addr, "/api/publish", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Joins `room` (with `since` when given) and returns the `joined` frame.
async fn join(c: &mut Client, room: &str, since: Option<(u64, &str)>) -> Value {
    let mut request = json!({"type":"join","room":room,"ref":"j"});
    if let Some((offset, epoch)) = since {
        request["since"] = json!({"offset": offset, "epoch": epoch});
    }
    c.send(request).await;
    let joined = c.recv().await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["room"], room);
    assert_eq!(joined["ref"], "j");
    assert_eq!(c.recv().await, json!({"type":"ack","ref":"j"}));
    joined
}

fn offsets(frames: &[Value]) -> Vec<u64> {
    frames.iter().filter_map(|f| f["offset"].as_u64()).collect()
}

#[tokio::test]
async fn rooms_without_history_carry_no_offsets_and_joins_are_acked_as_before() {
    let node = TestNode::start(HISTORY);
    let (mut c, _) = Client::connect(&node.ws_url("/ws?id=plain")).await;
    c.send(json!({"type":"join","room":"plain","ref":1})).await;
    assert_eq!(c.recv().await, json!({"type":"ack","ref":1}));
    publish(&node, "plain", json!(1)).await;
    assert_eq!(
        c.recv().await,
        json!({"type":"message","room":"plain","data":1})
    );
    let (status, body) = get(&node, "/api/position/plain").await;
    assert_eq!(status, 404, "{body}");
    // And a node without --history numbers nothing.
    let bare = TestNode::start(&[]);
    let (mut c, _) = Client::connect(&bare.ws_url("/ws?id=x")).await;
    c.send(json!({"type":"join","room":"h:1","ref":1})).await;
    assert_eq!(c.recv().await, json!({"type":"ack","ref":1}));
    publish(&bare, "h:1", json!(1)).await;
    assert_eq!(
        c.recv().await,
        json!({"type":"message","room":"h:1","data":1})
    );
}

#[tokio::test]
async fn a_rejoin_with_since_gets_exactly_what_it_missed_then_live() {
    let node = TestNode::start(HISTORY);
    let (mut a, _) = Client::connect(&node.ws_url("/ws?id=a")).await;
    let joined = join(&mut a, "h:room", None).await;
    assert!(joined.get("recovered").is_none(), "{joined}");
    assert_eq!(joined["offset"], 0);
    let epoch = joined["epoch"].as_str().expect("epoch").to_owned();
    a.send(json!({"type":"publish","room":"h:room","data":"first"}))
        .await;
    let first = a.recv().await;
    assert_eq!(
        first,
        json!({"type":"message","room":"h:room","from":"a","offset":1,"epoch":epoch,"data":"first"})
    );
    a.close().await;
    for i in 2..=4 {
        publish(&node, "h:room", json!(i)).await;
    }
    // Back, on a connection that lands on whatever shard: 2, 3, 4, then live 5.
    let (mut a, _) = Client::connect(&node.ws_url("/ws?id=a2")).await;
    let joined = join(&mut a, "h:room", Some((1, &epoch))).await;
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(joined["offset"], 4);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(a.recv().await);
    }
    assert_eq!(offsets(&got), [2, 3, 4]);
    assert_eq!(got[0]["data"], 2);
    publish(&node, "h:room", json!(5)).await;
    assert_eq!(a.recv().await["offset"], 5);
    assert!(
        a.silent_for(Duration::from_millis(200)).await,
        "nothing twice"
    );
    // Already up to date: recovered, nothing replayed.
    let (mut b, _) = Client::connect(&node.ws_url("/ws?id=b")).await;
    let joined = join(&mut b, "h:room", Some((5, &epoch))).await;
    assert_eq!(
        (joined["recovered"].as_bool(), joined["offset"].as_u64()),
        (Some(true), Some(5))
    );
    assert!(b.silent_for(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn a_wrong_epoch_or_a_gap_beyond_history_is_not_recovered_and_replays_nothing() {
    let node = TestNode::start(HISTORY);
    for i in 1..=8 {
        publish(&node, "h:gap", json!(i)).await;
    }
    let (status, position) = get(&node, "/api/position/h:gap").await;
    assert_eq!(status, 200);
    assert_eq!(position["offset"], 8);
    let epoch = position["epoch"].as_str().expect("epoch").to_owned();
    let (mut c, _) = Client::connect(&node.ws_url("/ws?id=c")).await;
    // History keeps 5 (offsets 4..=8): since 3 is complete, since 2 is not.
    let joined = join(&mut c, "h:gap", Some((2, &epoch))).await;
    assert_eq!(joined["recovered"], false, "{joined}");
    assert_eq!(joined["offset"], 8);
    publish(&node, "h:gap", json!(9)).await;
    assert_eq!(
        c.recv().await["offset"],
        9,
        "no partial replay: live at once"
    );
    let (mut d, _) = Client::connect(&node.ws_url("/ws?id=d")).await;
    let joined = join(&mut d, "h:gap", Some((3, "not-the-epoch"))).await;
    assert_eq!(joined["recovered"], false);
    assert_eq!(joined["epoch"], epoch.as_str());
    let (mut e, _) = Client::connect(&node.ws_url("/ws?id=e")).await;
    let joined = join(&mut e, "h:gap", Some((4, &epoch))).await;
    assert_eq!(joined["recovered"], true);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(e.recv().await);
    }
    assert_eq!(offsets(&got), [5, 6, 7, 8, 9]);
    // A bad `since` is a bad request, and the connection stays.
    e.send(json!({"type":"join","room":"h:x","since":{"offset":"1"},"ref":3}))
        .await;
    assert_eq!(e.recv().await["code"], "bad_request");
}

#[tokio::test]
async fn a_restarted_node_has_a_new_epoch_and_old_positions_do_not_recover() {
    let mut node = TestNode::start(HISTORY);
    publish(&node, "h:r", json!(1)).await;
    let (_, before) = get(&node, "/api/position/h:r").await;
    node.terminate();
    let node = TestNode::start(HISTORY);
    publish(&node, "h:r", json!(1)).await;
    let (_, after) = get(&node, "/api/position/h:r").await;
    assert_eq!(after["offset"], 1);
    assert_ne!(after["epoch"], before["epoch"]);
    let (mut c, _) = Client::connect(&node.ws_url("/ws?id=c")).await;
    let epoch = before["epoch"].as_str().expect("epoch");
    let joined = join(&mut c, "h:r", Some((0, epoch))).await;
    assert_eq!(joined["recovered"], false);
}

/// Publishes arriving while a rejoin is answered are held and sent after the replay: each
/// recovering client sees every offset once, in order, with no gap.
#[tokio::test]
async fn publishes_during_the_replay_are_neither_lost_nor_duplicated() {
    let node = TestNode::start(&["--history", "h:*=1000/10m", "--shards", "4"]);
    let (status, position) = get(&node, "/api/position/h:busy").await;
    assert_eq!((status, position["offset"].as_u64()), (200, Some(0)));
    let epoch = position["epoch"].as_str().expect("epoch").to_owned();
    const TOTAL: u64 = 600;
    let addr = node.addr;
    let publisher = tokio::spawn(async move {
        for i in 1..=TOTAL {
            let body = json!({"room":"h:busy","data":i}).to_string();
            let reply = post(addr, "/api/publish", &body).await;
            assert_eq!(reply.status, 200);
        }
    });
    let mut clients = Vec::new();
    // Clients rejoin from offset 0 at different moments of the run.
    for k in 0..6 {
        tokio::time::sleep(Duration::from_millis(15 * k)).await;
        let (mut c, _) = Client::connect(&node.ws_url(&format!("/ws?id=r{k}"))).await;
        let joined = join(&mut c, "h:busy", Some((0, &epoch))).await;
        assert_eq!(joined["recovered"], true, "{joined}");
        clients.push(c);
    }
    publisher.await.expect("publisher");
    for (k, c) in clients.iter_mut().enumerate() {
        let mut seen = Vec::new();
        while (seen.len() as u64) < TOTAL {
            let m = c.recv().await;
            assert_eq!(m["type"], "message", "{m}");
            assert_eq!(m["data"], m["offset"], "payload i has offset i");
            seen.push(m["offset"].as_u64().expect("offset"));
        }
        let want: Vec<u64> = (1..=TOTAL).collect();
        assert_eq!(seen, want, "client r{k}: every offset once, in order");
        assert!(c.silent_for(Duration::from_millis(100)).await);
    }
}

#[tokio::test]
async fn the_api_answers_history_and_position() {
    let node = TestNode::start(HISTORY);
    for i in 1..=7 {
        publish(&node, "h:api", json!({"n": i})).await;
    }
    let (status, position) = get(&node, "/api/position/h:api").await;
    assert_eq!(status, 200);
    assert_eq!(position["offset"], 7);
    let epoch = position["epoch"].as_str().expect("epoch").to_owned();
    let (status, page) = get(&node, "/api/history/h:api").await;
    assert_eq!(status, 200);
    assert_eq!(
        (page["offset"].as_u64(), page["recovered"].as_bool()),
        (Some(7), Some(true))
    );
    let kept: Vec<u64> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(kept, [3, 4, 5, 6, 7], "the last 5");
    assert_eq!(page["messages"][0]["data"], json!({"n": 3}));
    let (_, page) = get(
        &node,
        &format!("/api/history/h:api?since=4&epoch={epoch}&limit=2"),
    )
    .await;
    assert_eq!(page["recovered"], true);
    assert_eq!(
        page["messages"],
        json!([{"offset":5,"data":{"n":5}},{"offset":6,"data":{"n":6}}])
    );
    let (_, page) = get(&node, &format!("/api/history/h:api?since=1&epoch={epoch}")).await;
    assert_eq!(
        (
            page["recovered"].as_bool(),
            page["messages"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0))
    );
    let (_, page) = get(&node, "/api/history/h:api?since=6&epoch=other").await;
    assert_eq!(page["recovered"], false);
    let (status, body) = get(&node, "/api/history/h:api?since=6").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(&node, "/api/history/nohistory").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("history")));
}

#[test]
fn bad_history_values_stop_the_node_with_one_line_naming_the_flag() {
    for bad in ["chat", "chat=0/1m", "chat=5/never", "a*b=5/1m"] {
        let out = Command::new(hubbub_bin())
            .args(["serve", "--history", bad])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("--history"), "{stderr}");
    }
    let out = Command::new(hubbub_bin())
        .args([
            "serve",
            "--registry",
            "etcd://127.0.0.1:1",
            "--grpc-listen",
            "127.0.0.1:0",
        ])
        .env("HUBBUB_HISTORY", "chat:*=10/1m")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--history"), "{stderr}");
}

/// `hubbub history` and `hubbub position` (the Rust client over the gRPC producer service).
fn cli(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(hubbub_bin()).args(args).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), value, stderr)
}

#[tokio::test]
async fn grpc_and_the_cli_answer_history_and_position() {
    let grpc = format!("127.0.0.1:{}", hubbub_tests::free_port());
    let node = TestNode::start(&["--history", "h:*=5/10m", "--grpc-listen", &grpc]);
    for i in 1..=6 {
        publish(&node, "h:cli", json!({"n": i})).await;
    }
    let (code, position, stderr) = cli(&["position", "--server", &grpc, "h:cli"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(position["offset"], 6);
    let epoch = position["epoch"].as_str().expect("epoch").to_owned();
    let (code, page, stderr) = cli(&[
        "history", "--server", &grpc, "h:cli", "--since", "3", "--epoch", &epoch, "--limit", "2",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        page,
        json!({"epoch": epoch, "offset": 6, "recovered": true,
               "messages": [{"offset":4,"data":{"n":4}},{"offset":5,"data":{"n":5}}]})
    );
    let (_, page, _) = cli(&["history", "--server", &grpc, "h:cli"]);
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(5));
    let (_, page, _) = cli(&[
        "history", "--server", &grpc, "h:cli", "--since", "0", "--epoch", &epoch,
    ]);
    assert_eq!(
        (
            page["recovered"].as_bool(),
            page["messages"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0))
    );
    let (code, _, stderr) = cli(&["position", "--server", &grpc, "plain"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no history"), "{stderr}");
    let (code, _, stderr) = cli(&["history", "--server", &grpc, "h:cli", "--since", "1"]);
    assert_eq!(code, 2, "--since needs --epoch: {stderr}");
}
