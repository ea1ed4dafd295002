//! Real Redis and etcd servers for tests, each on free ports of 127.0.0.1.
//!
//! A server is a child process killed (`kill -9`) when its handle is dropped; `stop` and
//! `restart` simulate a crash and a recovery on the same port (etcd keeps its data dir);
//! `freeze` and `thaw` (SIGSTOP/SIGCONT) simulate a server that hangs.
//! A missing binary fails the test with the Debian package to install, never a skip.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::free_port;

/// How long a server may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Spawns `program`, or panics naming the Debian package that provides it.
fn spawn(program: &str, package: &str, args: &[String], log: Stdio) -> Child {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{program}` is not installed: install the Debian package {package} \
             (apt-get install -y {package})"
        ),
        Err(e) => panic!("cannot start {program}: {e}"),
    }
}

/// Kills `child` (SIGKILL) and reaps it.
fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Sends `request` on a fresh connection to `port` and returns what came back (empty on any
/// failure), reading at most until `done` accepts the answer.
fn exchange(port: u16, request: &[u8], done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return Vec::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(request).is_err() {
        return Vec::new();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !done(&answer) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    answer
}

/// Sends `signal` (e.g. `STOP`, `CONT`) to `child` with `kill(1)`.
fn signal(child: &Option<Child>, signal: &str) {
    if let Some(c) = child {
        let status = Command::new("kill")
            .args([format!("-{signal}"), c.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }
}

/// Polls `ready` until it holds (true), or until the child exits during start (false: the
/// caller retries, e.g. on another port); panics after [`START_TIMEOUT`].
fn wait_until(what: &str, child: &mut Option<Child>, ready: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        if let Some(c) = child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                eprintln!("{what} exited during start ({status}); retrying");
                *child = None;
                return false;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not answer within {START_TIMEOUT:?}");
}

/// Runs `launch` until it succeeds (at most 5 times), calling `reset` between tries.
fn with_retries(what: &str, mut launch: impl FnMut() -> bool, mut reset: impl FnMut()) {
    for _ in 0..5 {
        if launch() {
            return;
        }
        reset();
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what} would not start (see the messages above)");
}

/// A `redis-server` (no persistence) on a free port.
pub struct RedisServer {
    /// The port it listens on (kept across restarts).
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        let port = std::cell::Cell::new(server.port);
        with_retries(
            "redis-server",
            || {
                server.port = port.get();
                server.launch()
            },
            || port.set(free_port()),
        );
        server
    }

    fn launch(&mut self) -> bool {
        let args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        self.child = Some(spawn("redis-server", "redis-server", &args, Stdio::null()));
        let port = self.port;
        wait_until("redis-server", &mut self.child, || {
            exchange(port, b"PING\r\n", |a| a.ends_with(b"\r\n")).starts_with(b"+PONG")
        })
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Stops the server if it runs, then starts it again on the same port (empty).
    pub fn restart(&mut self) {
        self.stop();
        with_retries("redis-server restart", || self.launch(), || {});
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers.
    pub fn freeze(&self) {
        signal(&self.child, "STOP");
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        signal(&self.child, "CONT");
    }

    /// Sends one raw RESP/inline command and returns the raw answer (for tests that poke
    /// the server directly, e.g. `PUBLISH` of a malformed payload).
    pub fn raw(&self, command: &[u8]) -> Vec<u8> {
        exchange(self.port, command, |a| a.ends_with(b"\r\n"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A single-member etcd cluster on free ports, with its own data dir.
pub struct EtcdServer {
    /// The client port.
    pub port: u16,
    /// The peer port.
    pub peer_port: u16,
    data_dir: PathBuf,
    child: Option<Child>,
}

/// Distinguishes the data dirs of one test process.
static ETCD_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl EtcdServer {
    /// Starts etcd and waits until it accepts connections and answers `/health`.
    pub fn start() -> EtcdServer {
        let n = ETCD_COUNTER.fetch_add(1, Ordering::Relaxed);
        let data_dir = std::env::temp_dir().join(format!("hubbub-etcd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).expect("create etcd data dir");
        let mut server = EtcdServer {
            port: free_port(),
            peer_port: free_port(),
            data_dir,
            child: None,
        };
        let ports = std::cell::Cell::new((server.port, server.peer_port));
        with_retries(
            "etcd",
            || {
                (server.port, server.peer_port) = ports.get();
                server.launch()
            },
            || ports.set((free_port(), free_port())),
        );
        server
    }

    fn launch(&mut self) -> bool {
        let client = format!("http://127.0.0.1:{}", self.port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let args: Vec<String> = vec![
            "--name".into(),
            "n".into(),
            "--data-dir".into(),
            self.data_dir.join("data").display().to_string(),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("n={peer}"),
        ];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("etcd.log"))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        self.child = Some(spawn("etcd", "etcd-server", &args, log));
        let port = self.port;
        let request =
            format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        wait_until("etcd", &mut self.child, || {
            let answer = exchange(port, request.as_bytes(), |_| false);
            String::from_utf8_lossy(&answer).contains("\"health\":\"true\"")
        })
    }

    /// Freezes etcd (SIGSTOP): connections stay open but nothing answers.
    pub fn freeze(&self) {
        signal(&self.child, "STOP");
    }

    /// Lets a frozen etcd run again (SIGCONT).
    pub fn thaw(&self) {
        signal(&self.child, "CONT");
    }

    /// `127.0.0.1:PORT` (the form `etcd://` registry specs list).
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills etcd (SIGKILL), as a crash would.
    pub fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Stops etcd if it runs, then starts it again on the same ports and data dir.
    pub fn restart(&mut self) {
        self.stop();
        with_retries("etcd restart", || self.launch(), || {});
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        kill(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
