//! Embedding the hub on smol: handlers, the raw protocol and the Hub API, driven by real
//! (blocking) WebSocket clients.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hubbub_smol::hub_core::{frame, ClientId, ClientProtocol, ConnId};
use hubbub_smol::{Handler, Hub, Server, Settings, SmolRuntime};
use tungstenite::Message;

#[derive(Default)]
struct Echo {
    seen: Mutex<Vec<String>>,
}

impl Handler for Echo {
    fn on_message(&self, hub: &Hub, conn: ConnId, data: Bytes, binary: bool) {
        hub.send_frame(
            conn,
            if binary {
                frame::binary(&data)
            } else {
                frame::text(&data)
            },
        );
    }
    fn on_disconnect(&self, _hub: &Hub, _conn: ConnId, client: &ClientId, code: u16) {
        self.seen
            .lock()
            .expect("lock")
            .push(format!("{client} {code}"));
    }
}

fn start(
    protocol: ClientProtocol,
    handler: Option<Arc<dyn Handler>>,
) -> (SmolRuntime, Hub, std::net::SocketAddr) {
    let rt = SmolRuntime::new(2).expect("executor");
    let settings = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        shards: 2,
        ..Settings::default()
    };
    let server = rt
        .block_on(Server::bind(rt.clone(), settings, handler, protocol))
        .expect("bind");
    let (hub, addr) = (server.hub(), server.local_addr());
    std::thread::spawn(move || smol::block_on(server.run(std::future::pending())));
    (rt, hub, addr)
}

#[test]
fn raw_echo_with_callbacks() {
    let echo = Arc::new(Echo::default());
    let (_rt, _hub, addr) = start(ClientProtocol::Raw, Some(echo.clone()));
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/ws?id=s1")).expect("connect");
    ws.send(Message::text("hello")).expect("send");
    ws.send(Message::binary(vec![0u8, 255])).expect("send");
    assert_eq!(ws.read().expect("read"), Message::text("hello"));
    assert_eq!(ws.read().expect("read"), Message::binary(vec![0u8, 255]));
    ws.close(None).expect("close");
    while ws.read().is_ok() {}
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(echo
        .seen
        .lock()
        .expect("lock")
        .iter()
        .any(|s| s.starts_with("s1 ")));
}

#[test]
fn hub_api_on_smol() {
    let (rt, hub, addr) = start(ClientProtocol::Json, None);
    let (mut ws, _) =
        tungstenite::connect(format!("ws://{addr}/ws/room?id=c1&user=u")).expect("connect");
    let welcome = ws.read().expect("welcome");
    assert!(welcome.to_text().expect("text").contains("\"id\":\"c1\""));
    assert_eq!(rt.block_on(hub.publish("room", "\"p\"")), Ok(1));
    assert_eq!(rt.block_on(hub.emit_user("u", "\"u\"")), Ok(1));
    assert!(ws
        .read()
        .expect("read")
        .to_text()
        .expect("text")
        .contains("\"p\""));
    assert!(ws
        .read()
        .expect("read")
        .to_text()
        .expect("text")
        .contains("\"u\""));
    let snapshot = rt.block_on(hub.snapshot());
    assert_eq!(snapshot.runtime, "smol");
    assert_eq!(snapshot.connections(), 1);
}
