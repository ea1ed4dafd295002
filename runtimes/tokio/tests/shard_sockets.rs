//! TCP connections run by their shard task after the upgrade (hub-node `sockets.rs`), seen
//! from real clients: bytes that came with the upgrade request, a client that floods while
//! others talk, and the node's count of live connections as clients come and go.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hubbub_tokio::hub_core::{frame, ClientProtocol, ConnId};
use hubbub_tokio::{Handler, Hub, Server, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Long enough for anything that should happen at once, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(10);

/// Echoes every message back to its sender (raw protocol).
struct Echo;

impl Handler for Echo {
    fn on_message(&self, hub: &Hub, conn: ConnId, data: Bytes, binary: bool) {
        let reply = if binary {
            frame::binary(&data)
        } else {
            frame::text(&data)
        };
        hub.send_frame(conn, reply);
    }
}

/// An echo node with one shard (every connection on the same shard task), listening.
async fn echo_node() -> (Hub, std::net::SocketAddr) {
    let settings = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        shards: 1,
        ..Settings::default()
    };
    let server = Server::bind_with(settings, Some(Arc::new(Echo)), ClientProtocol::Raw)
        .await
        .expect("bind");
    let (hub, addr) = (server.hub(), server.local_addr());
    tokio::spawn(server.run(std::future::pending()));
    (hub, addr)
}

/// A client text frame: final, masked (with a fixed key), payload under 126 bytes.
fn masked_text(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut out = vec![0x81, 0x80 | payload.len() as u8];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// Waits until `check` holds, polling every 20 ms; whether it did within [`PATIENCE`].
async fn eventually(check: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

#[tokio::test]
async fn a_frame_sent_with_the_upgrade_request_is_answered() {
    let (_hub, addr) = echo_node().await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut bytes = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes();
    bytes.extend(masked_text(b"early"));
    // One write: the frame reaches the node in the same read as the request.
    stream.write_all(&bytes).await.expect("write");
    let mut got = Vec::new();
    let answer = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed early; got {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
            if got.ends_with(b"\x81\x05early") {
                return;
            }
        }
    })
    .await;
    assert!(
        answer.is_ok(),
        "no echo; got {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(got.starts_with(b"HTTP/1.1 101"));
}

#[tokio::test]
async fn a_flooding_client_does_not_hold_up_the_others_on_its_shard() {
    let (_hub, addr) = echo_node().await;
    let url = format!("ws://{addr}/ws");
    let (mut flooder, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("flooder");
    let (mut other, _) = tokio_tungstenite::connect_async(&url).await.expect("other");
    // The flooder sends without reading its echoes: its socket fills both ways.
    let flood = tokio::spawn(async move {
        let chunk = vec![7u8; 32 * 1024];
        for _ in 0..2_000 {
            if flooder.send(Message::binary(chunk.clone())).await.is_err() {
                break;
            }
        }
        flooder
    });
    for i in 0..20 {
        let text = format!("ping {i}");
        other.send(Message::text(text.clone())).await.expect("send");
        let echoed = tokio::time::timeout(PATIENCE, other.next()).await;
        let Ok(Some(Ok(message))) = echoed else {
            panic!("no echo of message {i} while another client floods: {echoed:?}");
        };
        assert_eq!(message, Message::text(text));
    }
    flood.abort();
}

#[tokio::test]
async fn every_ended_connection_is_counted_out() {
    let (hub, addr) = echo_node().await;
    let url = format!("ws://{addr}/ws");
    let mut clients = Vec::new();
    for _ in 0..60 {
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("connect");
        clients.push(ws);
    }
    assert!(eventually(|| hub.live_connections() == 60).await);
    // A third closes properly, a third just drops its socket, a third resets it.
    let mut rest = clients.split_off(20);
    let resets = rest.split_off(20);
    for mut ws in clients {
        ws.close(None).await.expect("close");
        while let Some(Ok(_)) = ws.next().await {}
    }
    drop(rest);
    for ws in resets {
        let stream = ws.into_inner();
        let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = stream else {
            panic!("plain TCP expected");
        };
        let socket = socket2::SockRef::from(&tcp);
        socket.set_linger(Some(Duration::ZERO)).expect("linger");
    }
    assert!(
        eventually(|| hub.live_connections() == 0).await,
        "{} connections still counted",
        hub.live_connections()
    );
    // The slots are reused: new connections still work.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("again");
    ws.send(Message::text("again")).await.expect("send");
    let echoed = tokio::time::timeout(PATIENCE, ws.next()).await;
    assert!(matches!(echoed, Ok(Some(Ok(m))) if m == Message::text("again")));
}
