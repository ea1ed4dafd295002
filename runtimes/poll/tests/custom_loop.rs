//! The `custom_loop` example (a node in a loop of its own, on hub-core and hub-wire only) as a
//! real process against real WebSocket clients (tungstenite's blocking client).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::json;
use tungstenite::Message;

mod support;

use support::{close_code, join, recv, send};

/// The example process, killed when dropped.
struct Example {
    child: Child,
    addr: SocketAddr,
}

impl Example {
    /// Builds the example (a no-op when it is current) and starts it on a free port.
    fn start() -> Self {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "hubbub-poll", "--example", "custom_loop"])
            .status()
            .expect("cargo build");
        assert!(status.success(), "the example does not build");
        // target/debug/deps/<this test> -> target/debug/examples/custom_loop
        let exe = std::env::current_exe().expect("test path");
        let debug = exe.parent().and_then(|p| p.parent()).expect("target dir");
        let binary: PathBuf = debug.join("examples").join("custom_loop");
        let mut child = Command::new(binary)
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the example");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self { child, addr }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_example_serves_the_client_protocol() {
    let node = Example::start();
    let mut a = join(node.addr, "/ws?id=a");
    let mut b = join(node.addr, "/ws/lobby?id=b");
    send(&mut a, json!({"type": "join", "room": "lobby", "ref": 1}));
    assert_eq!(recv(&mut a), json!({"type": "ack", "ref": 1}));

    send(
        &mut a,
        json!({"type": "publish", "room": "lobby", "data": "hi", "ref": 2}),
    );
    let message = json!({"type": "message", "room": "lobby", "from": "a", "data": "hi"});
    assert_eq!(recv(&mut a), message);
    assert_eq!(recv(&mut a), json!({"type": "ack", "ref": 2}));
    assert_eq!(recv(&mut b), message);

    send(
        &mut b,
        json!({"type": "emit", "to": "a", "data": {"n": 1}, "ref": "e"}),
    );
    assert_eq!(recv(&mut b), json!({"type": "ack", "ref": "e"}));
    assert_eq!(
        recv(&mut a),
        json!({"type": "message", "from": "b", "data": {"n": 1}})
    );

    a.send(Message::text("not json")).expect("send");
    let error = recv(&mut a);
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("bad_json"))
    );
    send(&mut a, json!({"type": "leave", "room": "lobby", "ref": 3}));
    assert_eq!(recv(&mut a), json!({"type": "ack", "ref": 3}));
    send(&mut a, json!({"type": "ping"}));
    assert_eq!(recv(&mut a), json!({"type": "pong"}));
    a.send(Message::Ping(b"hb".to_vec().into())).expect("ping");
    loop {
        match a.read().expect("read") {
            Message::Pong(payload) => break assert_eq!(&payload[..], b"hb"),
            Message::Ping(_) => {}
            other => panic!("expected the pong, got {other:?}"),
        }
    }

    b.send(Message::binary(vec![1, 2, 3])).expect("send");
    assert_eq!(close_code(&mut b), 1003);
    a.close(None).expect("close");
    assert_eq!(close_code(&mut a), 1000);
}

#[test]
fn the_example_answers_plain_http() {
    let node = Example::start();
    for (path, status) in [("/healthz", "200"), ("/elsewhere", "404")] {
        let mut stream = TcpStream::connect(node.addr).expect("connect");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{path}: {answer}"
        );
    }
}
