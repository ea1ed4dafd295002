//! End-to-end runs against tiny WebSocket servers started inside the test: a broadcast
//! server, a Hubbub-like room server, a uWS-style topic server and a socket.io-style one
//! (Engine.IO framing, pings included). No timing thresholds:
//! only "everything arrived" and "latencies are positive".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hubbub_load::cli::{Cli, Command};
use hubbub_load::report::FanoutResult;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// Which server to imitate.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Whatever one client sends, every client receives.
    Broadcast,
    /// `/ws/{room}` joins; welcome frame; publish → `{"type":"message",...}` to members.
    Hubbub,
    /// join → `{"type":"joined"}`; publish → the raw data to members.
    Uws,
    /// Engine.IO open packet, `40` → `40{..}`, `42["join",R]` → `42["joined",R]`,
    /// `42["publish",R,D]` → `42["message",D]` to members; a ping `2` after the connect and
    /// after the join, whose pongs `3` are counted in [`PONGS`].
    Socketio,
}

/// Pongs the socket.io-style server received.
static PONGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

type Clients = Arc<Mutex<HashMap<u64, (Option<String>, mpsc::UnboundedSender<Message>)>>>;

async fn start_server(mode: Mode) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let clients: Clients = Arc::default();
    tokio::spawn(async move {
        let mut next_id = 0;
        while let Ok((stream, _)) = listener.accept().await {
            next_id += 1;
            tokio::spawn(serve(stream, next_id, mode, clients.clone()));
        }
    });
    addr
}

fn send_to(clients: &Clients, room: Option<&str>, message: &Message) {
    let clients = clients.lock().expect("lock");
    for (member_room, tx) in clients.values() {
        if room.is_none() || member_room.as_deref() == room {
            let _ = tx.send(message.clone());
        }
    }
}

// tungstenite's handshake callback type fixes its (large) error type.
#[allow(clippy::result_large_err)]
async fn serve(stream: tokio::net::TcpStream, id: u64, mode: Mode, clients: Clients) {
    let mut path = String::new();
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (mut sink, mut frames) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
    });
    let room = match mode {
        Mode::Hubbub => path.strip_prefix("/ws/").map(str::to_string),
        _ => None,
    };
    if mode == Mode::Hubbub {
        let _ = tx.send(Message::text(format!(
            r#"{{"type":"welcome","id":"c{id}","node":"t"}}"#
        )));
    }
    if mode == Mode::Socketio {
        let _ = tx.send(Message::text(format!(
            r#"0{{"sid":"e{id}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
        )));
    }
    let member = mode == Mode::Broadcast || room.is_some();
    clients.lock().expect("lock").insert(
        id,
        (
            if member {
                room.or(Some(String::new()))
            } else {
                None
            },
            tx.clone(),
        ),
    );
    while let Some(Ok(frame)) = frames.next().await {
        let Message::Text(text) = frame else { continue };
        match mode {
            Mode::Socketio => {
                if text.as_str() == "3" {
                    PONGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else if text.as_str() == "40" {
                    let _ = tx.send(Message::text(format!(r#"40{{"sid":"s{id}"}}"#)));
                    let _ = tx.send(Message::text("2"));
                } else if let Some(event) = text.strip_prefix("42") {
                    let Ok(v) = serde_json::from_str::<Value>(event) else {
                        continue;
                    };
                    let r = v[1].as_str().unwrap_or("").to_string();
                    match v[0].as_str() {
                        Some("join") => {
                            if let Some(entry) = clients.lock().expect("lock").get_mut(&id) {
                                entry.0 = Some(r.clone());
                            }
                            let joined = serde_json::json!(["joined", r]);
                            let _ = tx.send(Message::text(format!("42{joined}")));
                            let _ = tx.send(Message::text("2"));
                        }
                        Some("publish") => {
                            let message = serde_json::json!(["message", v[2]]);
                            send_to(&clients, Some(&r), &Message::text(format!("42{message}")));
                        }
                        _ => {}
                    }
                }
            }
            Mode::Broadcast => send_to(&clients, None, &Message::Text(text)),
            Mode::Hubbub | Mode::Uws => {
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let r = v["room"].as_str().unwrap_or("").to_string();
                match v["type"].as_str() {
                    Some("join") => {
                        if let Some(entry) = clients.lock().expect("lock").get_mut(&id) {
                            entry.0 = Some(r);
                        }
                        let _ = tx.send(Message::text(r#"{"type":"joined"}"#));
                    }
                    Some("publish") => {
                        let data = v["data"].as_str().unwrap_or("");
                        let out = if mode == Mode::Hubbub {
                            serde_json::json!({"type":"message","room":r,"data":data}).to_string()
                        } else {
                            data.to_string()
                        };
                        send_to(&clients, Some(&r), &Message::text(out));
                    }
                    _ => {}
                }
            }
        }
    }
    clients.lock().expect("lock").remove(&id);
}

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("hubbub-load").chain(args.iter().copied()))
        .expect("valid command line")
}

fn assert_complete(result: &FanoutResult, subscribers: u64, messages: u64) {
    assert_eq!(result.connect.ok, subscribers);
    assert_eq!(result.steps.len(), 1);
    let step = &result.steps[0];
    assert_eq!(step.sent, messages);
    assert_eq!(step.subscribers, subscribers);
    assert_eq!(step.loss.expected, messages * subscribers);
    assert_eq!(step.loss.received, messages * subscribers, "{step:?}");
    assert_eq!(step.loss.lost, 0);
    assert_eq!(step.incomplete_messages, 0);
    assert!(step.closes.is_empty(), "{:?}", step.closes);
    assert_eq!(step.latency.count, messages * subscribers);
    assert!(step.latency.max_us > 0);
    assert!(step.latency.p50_us <= step.latency.max_us);
    assert_eq!(step.last_subscriber.count, messages);
    assert!(step.last_subscriber.max_us >= step.latency.p50_us);
    assert_eq!(step.per_message_max_us.len() as u64, messages);
    assert!(step.per_message_max_us.iter().all(|&us| us > 0));
    assert!(step.deliveries_per_sec > 0.0);
    assert!(step.held);
}

async fn fanout_in_process(args: &[&str]) -> FanoutResult {
    let Command::Fanout(f) = parse(args).command else {
        panic!("not fanout")
    };
    hubbub_load::fanout::run("fanout", &f.url, &f.url, &f.load)
        .await
        .expect("fanout run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_fanout_20_subscribers_at_50_per_second() {
    let addr = start_server(Mode::Broadcast).await;
    let url = format!("ws://{addr}/");
    let result = fanout_in_process(&[
        "fanout",
        "--protocol",
        "broadcast",
        "--url",
        &url,
        "--subscribers",
        "20",
        "--rate",
        "50",
        "--duration",
        "1",
        "--warmup",
        "0.3",
        "--drain",
        "3",
        "--workers",
        "0",
    ])
    .await;
    assert_complete(&result, 20, 50);
    // The generator measured itself.
    assert!(result.steps[0].generator_cpu.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uws_topic_fanout_and_a_sweep() {
    let addr = start_server(Mode::Uws).await;
    let url = format!("ws://{addr}");
    let result = fanout_in_process(&[
        "fanout",
        "--protocol",
        "uws",
        "--url",
        &url,
        "--subscribers",
        "10",
        "--rates",
        "20,40",
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
        "--drain",
        "3",
        "--workers",
        "0",
    ])
    .await;
    assert!(result.sweep);
    assert_eq!(result.steps.len(), 2);
    assert!(result.steps.iter().all(|s| s.loss.lost == 0 && s.held));
    assert_eq!(result.held_rate, Some(40.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_crossnode_with_engine_io_pings() {
    let addr = start_server(Mode::Socketio).await;
    let url = format!("ws://{addr}");
    let Command::Crossnode(c) = parse(&[
        "crossnode",
        "--protocol",
        "socketio",
        "--sub-url",
        &url,
        "--pub-url",
        &url,
        "--subscribers",
        "10",
        "--rate",
        "40",
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
        "--drain",
        "3",
        "--workers",
        "0",
    ])
    .command
    else {
        panic!("not crossnode")
    };
    let result = hubbub_load::fanout::run("crossnode", &c.sub_url, &c.pub_url, &c.load)
        .await
        .expect("crossnode run");
    assert_complete(&result, 10, 20);
    assert_eq!(result.steps[0].unparsed, 0, "pings are not deliveries");
    // Every connection (10 subscribers, the publisher) answered the ping after its connect,
    // and every subscriber the one after its join.
    assert!(PONGS.load(std::sync::atomic::Ordering::Relaxed) >= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubbub_fanout_through_two_worker_processes() {
    let addr = start_server(Mode::Hubbub).await;
    let url = format!("ws://{addr}");
    let dir = std::env::temp_dir().join(format!("hubbub-load-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("fanout.json");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubbub-load"))
        .args([
            "fanout",
            "--protocol",
            "hubbub",
            "--url",
            &url,
            "--subscribers",
            "20",
            "--rate",
            "50",
            "--duration",
            "1",
            "--warmup",
            "0.3",
            "--drain",
            "3",
            "--workers",
            "2",
            "--server-pid",
            &std::process::id().to_string(),
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .await
        .expect("run hubbub-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("deliveries"), "{stdout}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    assert_eq!(summary["placement"], "2 worker processes");
    let step = &summary["steps"][0];
    assert_eq!(step["loss"]["received"], 1000);
    assert_eq!(step["loss"]["lost"], 0);
    assert!(step["latency"]["p50_us"].as_u64().is_some());
    assert!(step["latency"]["max_us"].as_u64().unwrap_or(0) > 0);
    // This test process is the server: its CPU was measured.
    assert!(step["server_us_per_delivery"].as_f64().is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_connect_rate() {
    let addr = start_server(Mode::Hubbub).await;
    let url = format!("ws://{addr}");
    let me = std::process::id().to_string();
    let Command::Idle(idle) = parse(&[
        "idle",
        "--url",
        &url,
        "--connections",
        "40",
        "--connect-rate",
        "400",
        "--settle",
        "0.2",
        "--workers",
        "0",
        "--server-pid",
        &me,
    ])
    .command
    else {
        panic!("not idle")
    };
    let result = hubbub_load::connections::run_idle(&idle)
        .await
        .expect("idle run");
    assert_eq!(result.connect.ok, 40);
    assert!(result.server_rss_after.is_some());
    assert!(result.server_bytes_per_connection.is_some());
    assert!(result.connect.ready.p50_us > 0);

    let Command::ConnectRate(cr) = parse(&[
        "connect-rate",
        "--url",
        &url,
        "--connections",
        "60",
        "--connect-concurrency",
        "8",
        "--workers",
        "0",
    ])
    .command
    else {
        panic!("not connect-rate")
    };
    let result = hubbub_load::connections::run_connect_rate(&cr)
        .await
        .expect("connect-rate run");
    assert_eq!((result.connect.ok, result.connect.failed), (60, 0));
    assert!(result.connect.connects_per_sec > 0.0);
    assert!(result.connect.upgrade.count == 60);
}

#[tokio::test]
async fn refuses_an_unreachable_server_with_a_failure_count() {
    // A port nothing listens on: every connection fails, and the run says so.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let url = format!("ws://{addr}");
    let Command::ConnectRate(cr) = parse(&[
        "connect-rate",
        "--url",
        &url,
        "--connections",
        "5",
        "--workers",
        "0",
        "--connect-timeout",
        "2",
    ])
    .command
    else {
        panic!("not connect-rate")
    };
    let result = hubbub_load::connections::run_connect_rate(&cr)
        .await
        .expect("run completes");
    assert_eq!((result.connect.ok, result.connect.failed), (0, 5));
    assert_eq!(result.connect.errors[0].0, "connect");
}
