//! Helpers shared by the integration tests: start real `hubbub` processes on free ports,
//! connect real WebSocket clients, call the HTTP API.
//!
//! The binary is the one cargo built next to the test executable (`target/<profile>/hubbub`);
//! `tests/run-all.sh` builds it first. A missing binary fails the test with a message saying
//! so, never a skip.

pub mod cluster;
pub mod servers;
pub mod tls;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A byte stream to a node: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection to the node at `addr`: TLS (verified against the test CA) when the node
/// serves TLS (see [`tls`]), plain TCP otherwise.
pub async fn connect_stream(addr: SocketAddr) -> std::io::Result<Box<dyn Io>> {
    if tls::is_tls(addr) {
        Ok(Box::new(tls::connect(addr).await?))
    } else {
        Ok(Box::new(TcpStream::connect(addr).await?))
    }
}

/// How long a test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(5);

/// The `hubbub` binary built alongside the tests.
pub fn hubbub_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let bin = dir.join("hubbub");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p hubbub` first (tests/run-all.sh does)",
        bin.display()
    );
    bin
}

/// The runtime node number `index` runs on, from `HUBBUB_TEST_RUNTIME`: `tokio` (the
/// default), `smol`, or `mixed` (even-numbered nodes on smol, odd ones on tokio, so one
/// cluster runs both and single-node tests run on smol). The suite is the same for every
/// runtime; `tests/run-all.sh` runs it once with `tokio` and once with `mixed`.
pub fn runtime_for(index: usize) -> &'static str {
    match std::env::var("HUBBUB_TEST_RUNTIME").as_deref() {
        Ok("smol") => "smol",
        Ok("mixed") if index.is_multiple_of(2) => "smol",
        Ok("tokio") | Ok("mixed") | Err(_) => "tokio",
        Ok(other) => panic!("HUBBUB_TEST_RUNTIME must be tokio, smol or mixed, not {other:?}"),
    }
}

/// The cluster secret every node started by [`TestNode::start_clustered`] shares.
pub const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789abcdef";

/// A free TCP port on 127.0.0.1 (bound and released; the node binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `hubbub serve` process, killed when dropped.
pub struct TestNode {
    child: Option<Child>,
    /// The node's HTTP/WebSocket address.
    pub addr: SocketAddr,
}

impl TestNode {
    /// Starts a cluster node: `--node-id NAME --grpc-listen 127.0.0.1:PORT --cluster-secret
    /// CLUSTER_SECRET` plus `flags`; returns the node and its gRPC address. The node's position (the digits ending
    /// `name`) picks its runtime in the `mixed` mode of [`runtime_for`].
    pub fn start_clustered(name: &str, flags: &[&str]) -> (TestNode, String) {
        let grpc = format!("127.0.0.1:{}", free_port());
        let index: usize = name
            .trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or(0);
        let mut all = vec![
            "--node-id",
            name,
            "--grpc-listen",
            grpc.as_str(),
            "--cluster-secret",
            CLUSTER_SECRET,
        ];
        all.extend_from_slice(flags);
        (TestNode::start_on(runtime_for(index), &all), grpc)
    }

    /// Starts `hubbub serve --listen 127.0.0.1:PORT FLAGS...` on the runtime under test and
    /// waits until it answers; over TLS (a certificate of the test CA) with
    /// `HUBBUB_TEST_TLS=1`.
    pub fn start(flags: &[&str]) -> TestNode {
        if !tls::tls_mode() {
            return TestNode::start_on(runtime_for(0), flags);
        }
        TestNode::start_tls(tls::node_cert(), flags)
    }

    /// Like [`TestNode::start`], serving `wss://` and `https://` with `cert`
    /// (`--tls-cert`, `--tls-key`); the helpers of this crate then speak TLS to it.
    pub fn start_tls(cert: &tls::Issued, flags: &[&str]) -> TestNode {
        let (cert, key) = cert.paths();
        let mut all = vec!["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
        all.extend_from_slice(flags);
        let node = TestNode::start_on(runtime_for(0), &all);
        tls::mark_tls(node.addr);
        node
    }

    /// Like [`TestNode::start`], on the given runtime (`tokio` or `smol`).
    pub fn start_on(runtime: &str, flags: &[&str]) -> TestNode {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let listen = addr.to_string();
        let mut args = vec!["serve", "--runtime", runtime, "--listen", listen.as_str()];
        args.extend_from_slice(flags);
        let child = Command::new(hubbub_bin())
            .args(&args)
            .env(
                "HUBBUB_LOG",
                std::env::var("HUBBUB_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn hubbub");
        let node = TestNode {
            child: Some(child),
            addr,
        };
        node.wait_ready();
        node
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("hubbub did not start listening on {}", self.addr);
    }

    /// `ws://ADDR` + `path` (`wss://` for a node that serves TLS).
    pub fn ws_url(&self, path: &str) -> String {
        let scheme = if tls::is_tls(self.addr) { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// Sends a signal (`KILL`, `STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([&format!("-{name}"), &child.id().to_string()])
                .status();
        }
    }

    /// Kills the process at once (no graceful shutdown) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit status (None if it did not exit in 15 s).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A WebSocket client.
pub struct Client {
    ws: WebSocketStream<Box<dyn Io>>,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// A close frame with this code.
    Close(u16),
    /// The socket ended without a close frame.
    Dropped,
}

impl Client {
    /// Connects to `url` and returns the client with its `welcome` frame.
    pub async fn connect(url: &str) -> (Client, Value) {
        let mut client = Self::connect_raw(url, &[])
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let welcome = client.recv().await;
        assert_eq!(
            welcome["type"], "welcome",
            "first frame is welcome: {welcome}"
        );
        (client, welcome)
    }

    /// Connects with extra headers; the error says how the upgrade was refused.
    pub async fn connect_raw(url: &str, headers: &[(&str, &str)]) -> Result<Client, String> {
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        for (name, value) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                name.parse().map_err(|_| "bad header name".to_string())?;
            request.headers_mut().insert(
                name,
                value.parse().map_err(|_| "bad header value".to_string())?,
            );
        }
        let addr: SocketAddr = request
            .uri()
            .authority()
            .and_then(|a| a.as_str().parse().ok())
            .ok_or_else(|| format!("{url}: the tests connect to IP:PORT"))?;
        let tls = request.uri().scheme_str() == Some("wss");
        let connect = async {
            let stream: std::io::Result<Box<dyn Io>> = if tls {
                tls::connect(addr).await.map(|s| Box::new(s) as Box<dyn Io>)
            } else {
                TcpStream::connect(addr)
                    .await
                    .map(|s| Box::new(s) as Box<dyn Io>)
            };
            let stream = stream.map_err(tokio_tungstenite::tungstenite::Error::Io)?;
            tokio_tungstenite::client_async(request, stream).await
        };
        let connected = tokio::time::timeout(WAIT, connect).await;
        match connected {
            Ok(Ok((ws, _))) => Ok(Client { ws }),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                Err(format!("HTTP {}", response.status().as_u16()))
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timeout".into()),
        }
    }

    /// Sends a JSON value as a text frame.
    pub async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Sends a raw frame message.
    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The next JSON text frame (pings are skipped); panics after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        match self.try_recv(WAIT).await {
            Some(v) => v,
            None => panic!("no message within {WAIT:?}"),
        }
    }

    /// The next JSON text frame within `wait`, or None.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match next {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).expect("server sends JSON"))
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(other) => panic!("unexpected frame {other:?}"),
                Err(e) => panic!("connection error: {e}"),
            }
        }
    }

    /// Reads until the connection ends; how it ended.
    pub async fn ended(&mut self) -> Ended {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("connection did not end"),
                Ok(None) | Ok(Some(Err(_))) => return Ended::Dropped,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Ended::Close(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Closes the connection normally.
    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }

    /// Whether nothing arrives within `wait`.
    pub async fn silent_for(&mut self, wait: Duration) -> bool {
        self.try_recv(wait).await.is_none()
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl HttpReply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// Idle keep-alive connections per node address: the tests make thousands of API calls, and
/// a fresh connection each would exhaust loopback's ephemeral ports with TIME_WAIT sockets.
static POOL: std::sync::Mutex<Vec<(SocketAddr, Box<dyn Io>)>> = std::sync::Mutex::new(Vec::new());

fn pooled(addr: SocketAddr) -> Option<Box<dyn Io>> {
    let mut pool = POOL.lock().ok()?;
    let i = pool.iter().position(|(a, _)| *a == addr)?;
    Some(pool.swap_remove(i).1)
}

/// One HTTP/1.1 request over a pooled keep-alive connection (a fresh one when none is idle,
/// or when the pooled one turns out closed).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> HttpReply {
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    for attempt in 0..2 {
        let stream = match (attempt, pooled(addr)) {
            (0, Some(s)) => s,
            _ => connect_stream(addr).await.expect("connect"),
        };
        if let Some((reply, stream)) = exchange(stream, request.as_bytes()).await {
            if let (Some(stream), Ok(mut pool)) = (stream, POOL.lock()) {
                pool.push((addr, stream));
            }
            return reply;
        }
    }
    panic!("no HTTP answer from {addr} for {method} {path}");
}

/// Sends one request and reads one response; the stream comes back when it may be reused.
async fn exchange(
    mut stream: Box<dyn Io>,
    request: &[u8],
) -> Option<(HttpReply, Option<Box<dyn Io>>)> {
    stream.write_all(request).await.ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).into_owned();
                let reusable = !head.to_ascii_lowercase().contains("connection: close");
                return Some((HttpReply { status, body }, reusable.then_some(stream)));
            }
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// Polls `check` every 50 ms until it returns true or `within` passes; whether it did.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST path` with a JSON body.
pub async fn post(addr: SocketAddr, path: &str, body: &str) -> HttpReply {
    http(
        addr,
        "POST",
        path,
        Some(body),
        &[("Content-Type", "application/json")],
    )
    .await
}
