//! The HTTP layer's limits, tried with raw TCP sockets: one deadline per request, write
//! deadlines, chunked bodies refused, bodies read for API routes only, the cap on HTTP
//! connections, and answers a client still sending its body can read.

use std::net::SocketAddr;
use std::time::Duration;

use hubbub_tests::{eventually, http, TestNode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// Far longer than any deadline the tests set: the node must have acted by then.
const BOUND: Duration = Duration::from_secs(15);

/// Reads until the node closes the connection (or resets it); what it sent.
async fn read_to_close(stream: &mut tokio::net::tcp::OwnedReadHalf) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status and JSON body of the first answer in `raw`.
fn first_answer(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer head in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .unwrap_or(0);
    let body = &rest.as_bytes()[..length.min(rest.len())];
    let json = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("answer body is not JSON ({e}): {text:?}"));
    (status, json)
}

/// Sends `request` on a new connection and reads everything until the node closes it,
/// within [`BOUND`].
async fn one_shot(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    write.write_all(request).await.expect("write");
    timeout(BOUND, read_to_close(&mut read))
        .await
        .expect("the node closes the connection")
}

#[tokio::test]
async fn a_slow_body_is_cut_at_the_request_deadline() {
    let node = TestNode::start(&["--handshake-timeout", "1s"]);
    let stream = TcpStream::connect(node.addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let head = "POST /api/broadcast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n";
    write.write_all(head.as_bytes()).await.expect("write");
    // One byte every 200 ms: 40 s for the whole body, each read well within any per-read wait.
    let trickle = tokio::spawn(async move {
        for _ in 0..200 {
            if write.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let started = Instant::now();
    let raw = timeout(BOUND, read_to_close(&mut read))
        .await
        .expect("the node closes a request that is not complete by its deadline");
    assert!(started.elapsed() < BOUND);
    let (status, body) = first_answer(&raw);
    assert_eq!(status, 408, "{body}");
    assert!(body["error"].is_string());
    trickle.abort();
}

#[tokio::test]
async fn a_pipelining_client_that_never_reads_does_not_hold_the_node() {
    let node = TestNode::start(&["--handshake-timeout", "1s"]);
    let stream = TcpStream::connect(node.addr).await.expect("connect");
    // Requests for the demo page, sent without end and never read: the node's answers fill
    // both socket buffers, and its write must give up.
    let writer = tokio::spawn(async move {
        let (_read, mut write) = stream.into_split();
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
        loop {
            if write.write_all(&request).await.is_err() {
                return;
            }
        }
    });
    // Meanwhile others are served.
    for _ in 0..3 {
        let reply = http(node.addr, "GET", "/healthz", None, &[]).await;
        assert_eq!(reply.status, 200);
    }
    timeout(BOUND, writer)
        .await
        .expect("the node drops a client that does not read its answers")
        .expect("writer task");
    let reply = http(node.addr, "GET", "/healthz", None, &[]).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn chunked_bodies_are_answered_411() {
    let node = TestNode::start(&[]);
    for path in ["/api/broadcast", "/healthz"] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let raw = one_shot(node.addr, request.as_bytes()).await;
        let (status, body) = first_answer(&raw);
        assert_eq!(status, 411, "{path}: {body}");
        assert!(body["error"].is_string());
        let text = String::from_utf8_lossy(&raw);
        assert_eq!(
            text.matches("HTTP/1.1 ").count(),
            1,
            "one answer only: {text}"
        );
    }
}

#[tokio::test]
async fn a_body_on_a_route_without_one_is_not_read() {
    let node = TestNode::start(&[]);
    // The body announced is never sent: the answer must not wait for it. What follows the
    // head is not taken for a request either.
    let smuggled = "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n";
    let request =
        format!("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{smuggled}");
    let raw = one_shot(node.addr, request.as_bytes()).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 "), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "one answer only: {text}"
    );
}

#[tokio::test]
async fn a_bad_content_length_is_answered_with_json() {
    let node = TestNode::start(&[]);
    for value in ["abc", "-1", "1, 2"] {
        let request =
            format!("POST /api/broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n");
        let raw = one_shot(node.addr, request.as_bytes()).await;
        let (status, body) = first_answer(&raw);
        assert_eq!(status, 400, "{value}: {body}");
        assert!(body["error"].is_string());
    }
}

/// Whether `raw` holds one whole answer (head and Content-Length body).
fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    raw.len() >= end + 4 + length
}

/// A connection that holds its place in the node: one keep-alive request answered 200, the
/// connection then idle in its HTTP phase. Retries while the node refuses (a connection the
/// node has not finished with yet may hold a place for a moment).
async fn holder(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + BOUND;
    while Instant::now() < deadline {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        while !complete(&raw) {
            match timeout(BOUND, stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => raw.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        if complete(&raw) && first_answer(&raw).0 == 200 {
            return stream;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no connection was kept open");
}

/// The status of `GET /healthz` on a new connection (0 when no answer came).
async fn health_status(addr: SocketAddr) -> u16 {
    let raw = one_shot(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&raw);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn http_connections_are_capped() {
    let node = TestNode::start(&["--max-http-connections", "2"]);
    let first = holder(node.addr).await;
    let _second = holder(node.addr).await;
    assert!(
        eventually(BOUND, || async { health_status(node.addr).await == 503 }).await,
        "a third HTTP connection is refused"
    );
    let raw = one_shot(node.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (status, body) = first_answer(&raw);
    assert_eq!(status, 503);
    assert!(body["error"].is_string());
    drop(first);
    assert!(
        eventually(BOUND, || async { health_status(node.addr).await == 200 }).await,
        "a place is free again"
    );
}

#[tokio::test]
async fn the_per_ip_limit_counts_http_connections() {
    let node = TestNode::start(&["--max-connections-per-ip", "1"]);
    let held = holder(node.addr).await;
    assert!(
        eventually(BOUND, || async { health_status(node.addr).await == 429 }).await,
        "a second connection from the address is refused"
    );
    drop(held);
    assert!(
        eventually(BOUND, || async { health_status(node.addr).await == 200 }).await,
        "a place is free again"
    );
}

#[tokio::test]
async fn a_large_publish_is_answered_413_and_the_client_reads_it() {
    let node = TestNode::start(&[]);
    let body = vec![b' '; 2 * 1024 * 1024];
    for _ in 0..5 {
        let stream = TcpStream::connect(node.addr).await.expect("connect");
        let (mut read, mut write) = stream.into_split();
        let head = format!(
            "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let sent = body.clone();
        let sender = tokio::spawn(async move {
            let _ = write.write_all(head.as_bytes()).await;
            let _ = write.write_all(&sent).await;
            write
        });
        let raw = timeout(BOUND, read_to_close(&mut read))
            .await
            .expect("the node closes the connection");
        let (status, answer) = first_answer(&raw);
        assert_eq!(status, 413, "{answer}");
        assert!(answer["error"].is_string());
        drop(sender.await);
    }
}
