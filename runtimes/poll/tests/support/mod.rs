//! The WebSocket client helpers shared by the poll runtime's tests (tungstenite's blocking
//! client on a plain `TcpStream`).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use tungstenite::protocol::WebSocket;
use tungstenite::{Error, Message};

/// A blocking WebSocket client.
pub(crate) type Ws = WebSocket<TcpStream>;

/// Connects to `path` (5 s read timeout).
pub(crate) fn connect(addr: SocketAddr, path: &str) -> Ws {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (ws, _) =
        tungstenite::client::client(format!("ws://{addr}{path}"), stream).expect("handshake");
    ws
}

/// Connects and checks the welcome frame.
pub(crate) fn join(addr: SocketAddr, path: &str) -> Ws {
    let mut ws = connect(addr, path);
    assert_eq!(recv(&mut ws)["type"], "welcome");
    ws
}

pub(crate) fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).expect("send");
}

/// The next JSON frame (WebSocket pings and pongs are skipped).
pub(crate) fn recv(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("read") {
            Message::Text(text) => return serde_json::from_str(&text).expect("json"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads until the server's close frame, answers it and waits for the end of the stream, as a
/// well-behaved client does; the server's close code.
pub(crate) fn close_code(ws: &mut Ws) -> u16 {
    let code = loop {
        match ws.read() {
            Ok(Message::Close(frame)) => break frame.map_or(1005, |f| f.code.into()),
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => return code,
            Err(e) => panic!("unclean end after the close frame: {e}"),
        }
    }
}
