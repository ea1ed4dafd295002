//! `hubbub-load scale` against a fake cluster started inside the test: nodes that share one
//! client table, accept `/ws?id=ID` (welcome frame), answer `GET /stats` and
//! `POST /api/emit` on the same port, and deliver an emit to whichever node holds the
//! client. A faulty variant delivers each emit to the wrong client, which the run must
//! catch. No timing thresholds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hubbub_load::cli::{Cli, Command};
use hubbub_load::report::ScaleResult;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// What the fake nodes share.
#[derive(Default)]
struct Cluster {
    /// Client id → (node, frames to send it).
    clients: Mutex<HashMap<String, (usize, mpsc::UnboundedSender<String>)>>,
    /// Deliver the emit for `c{i}` to `c{i ^ 1}` instead (a routing bug).
    swap: bool,
    /// Emits that came through the client's own node.
    same_node: AtomicU64,
}

async fn start_cluster(nodes: usize, swap: bool) -> (Arc<Cluster>, Vec<String>) {
    let cluster = Arc::new(Cluster {
        swap,
        ..Cluster::default()
    });
    let mut urls = Vec::new();
    for node in 0..nodes {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        urls.push(format!("ws://{addr}"));
        let cluster = cluster.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, node, cluster.clone()));
            }
        });
    }
    (cluster, urls)
}

async fn serve(stream: TcpStream, node: usize, cluster: Arc<Cluster>) {
    let mut head = [0u8; 7];
    loop {
        match stream.peek(&mut head).await {
            Ok(n) if n >= head.len() => break,
            Ok(0) | Err(_) => return,
            Ok(_) => tokio::task::yield_now().await,
        }
    }
    if &head == b"GET /ws" {
        websocket(stream, node, cluster).await;
    } else {
        http(stream, node, cluster).await;
    }
}

// tungstenite's handshake callback type fixes its (large) error type.
#[allow(clippy::result_large_err)]
async fn websocket(stream: TcpStream, node: usize, cluster: Arc<Cluster>) {
    let mut id = String::new();
    let callback = |req: &Request, resp: Response| {
        id = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("id=")))
            .unwrap_or("")
            .to_string();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (mut sink, mut frames) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let welcome = format!(r#"{{"type":"welcome","id":"{id}","node":"n{node}"}}"#);
    if sink.send(Message::text(welcome)).await.is_err() {
        return;
    }
    cluster
        .clients
        .lock()
        .expect("lock")
        .insert(id.clone(), (node, tx));
    tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(frame)) = frames.next().await {
        if frame.is_close() {
            break;
        }
    }
    cluster.clients.lock().expect("lock").remove(&id);
}

/// Keep-alive HTTP/1.1: `GET /stats` and `POST /api/emit`.
async fn http(mut stream: TcpStream, node: usize, cluster: Arc<Cluster>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        while let Some((line, body, used)) = request(&buf) {
            let answer = handle(&line, &body, node, &cluster);
            buf.drain(..used);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One whole request at the start of `buf`: its request line, body and length.
fn request(buf: &[u8]) -> Option<(String, String, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    if buf.len() < end + length {
        return None;
    }
    let line = head.lines().next()?.to_string();
    let body = String::from_utf8_lossy(&buf[end..end + length]).into_owned();
    Some((line, body, end + length))
}

fn handle(line: &str, body: &str, node: usize, cluster: &Cluster) -> String {
    let clients = cluster.clients.lock().expect("lock");
    if line.starts_with("GET /stats") {
        let here = clients.values().filter(|(n, _)| *n == node).count();
        return format!(r#"{{"node":"n{node}","status":"ok","connections":{here}}}"#);
    }
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let mut to = v["to"].as_str().unwrap_or("").to_string();
    if clients.get(&to).is_some_and(|(n, _)| *n == node) {
        cluster.same_node.fetch_add(1, Ordering::Relaxed);
    }
    if cluster.swap {
        if let Some(i) = to.strip_prefix('c').and_then(|i| i.parse::<u64>().ok()) {
            to = format!("c{}", i ^ 1);
        }
    }
    let frame = serde_json::json!({"type": "message", "data": v["data"]}).to_string();
    let delivered = clients
        .get(&to)
        .map_or(0, |(_, tx)| u8::from(tx.send(frame).is_ok()));
    format!(r#"{{"delivered":{delivered}}}"#)
}

async fn scale(urls: &[String], extra: &[&str]) -> ScaleResult {
    let mut args = vec!["hubbub-load", "scale", "--workers", "0", "--settle", "0.1"];
    for url in urls {
        args.push("--url");
        args.push(url);
    }
    args.extend_from_slice(extra);
    let Command::Scale(s) = Cli::try_parse_from(args).expect("valid").command else {
        panic!("not scale")
    };
    hubbub_load::scale::run(&s).await.expect("scale run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_its_own_emit_through_another_node() {
    let (cluster, urls) = start_cluster(3, false).await;
    let me = std::process::id().to_string();
    let result = scale(
        &urls,
        &[
            "--connections",
            "300",
            "--api-connections",
            "2",
            "--api-window",
            "4",
            "--server-pid",
            &me,
            "--server-pid",
            &me,
            "--server-pid",
            &me,
            "--registry-pid",
            &me,
        ],
    )
    .await;
    assert!(result.passed, "{:?}", result.problems);
    assert_eq!((result.connect.ok, result.open_at_end), (300, 300));
    for node in &result.nodes {
        assert_eq!((node.expected, node.ready, node.emits_to), (100, 100, 100));
        assert_eq!(
            node.stats_connected.as_ref().map(|s| s.connections),
            Some(100)
        );
        assert_eq!(node.emits_via, 100);
        assert!(node.rss_connected.is_some());
    }
    let e = &result.emits;
    assert_eq!(
        (e.targets, e.answered_correctly, e.received_correctly),
        (300, 300, 300)
    );
    assert_eq!(
        (
            e.missing,
            e.duplicated,
            e.misdelivered,
            e.unexpected,
            e.unparsed
        ),
        (0, 0, 0, 0, 0)
    );
    assert_eq!((e.api_latency.count, e.delivery_latency.count), (300, 300));
    assert!(e.emits_per_sec > 0.0);
    assert!(result
        .registry
        .as_ref()
        .is_some_and(|r| r.emit_cpu.is_some()));
    assert_eq!(cluster.same_node.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_and_a_misrouted_emit_are_caught() {
    let (cluster, urls) = start_cluster(2, true).await;
    let result = scale(
        &urls,
        &["--connections", "40", "--emits", "10", "--drain", "0.5"],
    )
    .await;
    assert!(!result.passed);
    let e = &result.emits;
    assert_eq!(e.targets, 10);
    // The fake answers delivered 1: only the deliveries show the bug.
    assert_eq!(e.answered_correctly, 10);
    assert_eq!(e.received_correctly, 0);
    assert_eq!(e.missing, 10);
    assert_eq!(e.misdelivered, 10);
    assert!(e.misdelivered_example.is_some());
    assert!(result.problems.iter().any(|p| p.contains("wrong client")));
    assert_eq!(cluster.same_node.load(Ordering::Relaxed), 0);
    // Five targets per node, spread over its twenty clients.
    assert!(result.nodes.iter().all(|n| n.emits_to == 5));
}
