//! Embedding the hub in a Rust program: handlers, the raw protocol, the Hub API, and
//! connections upgraded by axum.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hubbub_tokio::hub_core::{frame, ClientId, ClientProtocol, ConnId, OpenParams, UserId};
use hubbub_tokio::{Handler, Hub, ServeUpgraded, Server, Settings};
use tokio_tungstenite::tungstenite::Message;

fn local() -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        shards: 2,
        ..Settings::default()
    }
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl Handler for Recorder {
    fn on_connect(&self, _hub: &Hub, _conn: ConnId, client: &ClientId, user: Option<&UserId>) {
        self.events.lock().expect("lock").push(format!(
            "connect {client} {}",
            user.map_or("-", |u| u.as_str())
        ));
    }
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
        self.events
            .lock()
            .expect("lock")
            .push(format!("disconnect {client} {code}"));
    }
}

async fn run(server: Server) -> std::net::SocketAddr {
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

#[tokio::test]
async fn raw_protocol_echo_with_callbacks() {
    let recorder = Arc::new(Recorder::default());
    let server = Server::bind_with(local(), Some(recorder.clone()), ClientProtocol::Raw)
        .await
        .expect("bind");
    let addr = run(server).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?id=e1&user=u"))
        .await
        .expect("connect");
    ws.send(Message::text("hello")).await.expect("send");
    ws.send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .expect("send");
    assert_eq!(
        ws.next().await.and_then(Result::ok),
        Some(Message::text("hello"))
    );
    assert_eq!(
        ws.next().await.and_then(Result::ok),
        Some(Message::binary(vec![0u8, 159, 146, 150]))
    );
    ws.close(None).await.expect("close");
    while ws.next().await.is_some() {}
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let events = recorder.events.lock().expect("lock").clone();
    assert_eq!(events.first().map(String::as_str), Some("connect e1 u"));
    assert!(
        events.iter().any(|e| e.starts_with("disconnect e1")),
        "{events:?}"
    );
}

#[tokio::test]
async fn hub_api_emits_publishes_and_looks_up() {
    let server = Server::bind(local(), None).await.expect("bind");
    let hub = server.hub();
    let addr = run(server).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/news?id=c1&user=ann"))
            .await
            .expect("connect");
    let _welcome = ws.next().await;
    assert_eq!(hub.emit("c1", r#"{"a":1}"#).await, Ok(1));
    assert_eq!(hub.emit_user("ann", "2").await, Ok(1));
    assert_eq!(hub.publish("news", "3").await, Ok(1));
    assert_eq!(hub.broadcast("4").await, Ok(1));
    assert_eq!(
        hub.emit("c1", "not json").await,
        Err(hubbub_tokio::HubError::BadData)
    );
    for expected in [serde_json::json!({"a":1}), 2.into(), 3.into(), 4.into()] {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("message expected")
        };
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["data"], expected);
    }
    assert_eq!(
        hub.online("c1")
            .await
            .expect("online")
            .map(|n| n.to_string()),
        Some(hub.node_id().to_string())
    );
    assert_eq!(hub.online("zz").await, Ok(None));
    assert_eq!(hub.disconnect("c1").await, Ok(true));
    let snapshot = hub.snapshot().await;
    assert_eq!(snapshot.shards.len(), 2);
}

#[tokio::test]
async fn axum_upgraded_streams_join_the_hub() {
    use axum::extract::{Request, State};
    use axum::http::{header, StatusCode};
    use axum::response::Response;

    async fn websocket(State(hub): State<Hub>, request: Request) -> Response {
        let key = request
            .headers()
            .get(header::SEC_WEBSOCKET_KEY)
            .and_then(|k| k.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let on_upgrade = hyper::upgrade::on(request);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let params = OpenParams {
                    client: Some("via-axum".into()),
                    ..OpenParams::default()
                };
                let _ = hub
                    .serve_upgraded(hyper_util::rt::TokioIo::new(upgraded), params)
                    .await;
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header(
                header::SEC_WEBSOCKET_ACCEPT,
                hub_wire::http::websocket_accept(&key),
            )
            .body(axum::body::Body::empty())
            .expect("response")
    }

    let hub = Server::start_embedded(local(), None, ClientProtocol::Json)
        .await
        .expect("start");
    let app = axum::Router::new()
        .route("/ws", axum::routing::get(websocket))
        .with_state(hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("connect");
    let Some(Ok(Message::Text(welcome))) = ws.next().await else {
        panic!("welcome expected")
    };
    assert!(welcome.contains("\"id\":\"via-axum\""), "{welcome}");
    ws.send(Message::text(r#"{"type":"join","room":"r","ref":1}"#))
        .await
        .expect("send");
    let Some(Ok(Message::Text(ack))) = ws.next().await else {
        panic!("ack expected")
    };
    assert_eq!(ack.as_str(), r#"{"type":"ack","ref":1}"#);
    assert_eq!(hub.publish("r", "\"from the service\"").await, Ok(1));
    let Some(Ok(Message::Text(m))) = ws.next().await else {
        panic!("message expected")
    };
    assert!(m.contains("from the service"));
}

/// Serves `app` on a free loopback port.
async fn serve_axum(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The status line of a plain request.
async fn status_of(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = vec![0; 512];
    let n = stream.read(&mut answer).await.expect("read");
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_axum_routes_serve_the_client_protocol_merged_and_nested() {
    let hub = Server::start_embedded(local(), None, ClientProtocol::Json)
        .await
        .expect("start");
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the service" }))
        .merge(hubbub_tokio::axum::routes(hub.clone()))
        .nest("/hub", hubbub_tokio::axum::routes(hub.clone()));
    let addr = serve_axum(app).await;

    let (mut a, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?id=a"))
        .await
        .expect("connect /ws");
    let Some(Ok(Message::Text(welcome))) = a.next().await else {
        panic!("welcome expected")
    };
    assert!(welcome.contains("\"id\":\"a\""), "{welcome}");
    // `/ws/{room}` joins the room; nested under /hub it works the same.
    let (mut b, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/hub/ws/lobby?id=b"))
        .await
        .expect("connect /hub/ws/lobby");
    let Some(Ok(Message::Text(_welcome))) = b.next().await else {
        panic!("welcome expected")
    };
    assert_eq!(hub.publish("lobby", "7").await, Ok(1));
    let Some(Ok(Message::Text(m))) = b.next().await else {
        panic!("message expected")
    };
    assert_eq!(m.as_str(), r#"{"type":"message","room":"lobby","data":7}"#);
    // The application's own route, and a GET /ws that is no upgrade.
    let plain = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert!(status_of(addr, plain).await.contains(" 200 "));
    let not_upgrade = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert!(status_of(addr, not_upgrade).await.contains(" 400 "));
}

#[tokio::test]
async fn the_axum_routes_apply_the_nodes_token_rules() {
    let settings = Settings {
        jwt_secret: Some("a-test-secret-that-is-32-bytes-long!".into()),
        ..local()
    };
    let hub = Server::start_embedded(settings, None, ClientProtocol::Json)
        .await
        .expect("start");
    let addr = serve_axum(hubbub_tokio::axum::routes(hub)).await;
    let upgrade = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let status = status_of(addr, upgrade).await;
    assert!(status.contains(" 401 "), "no token: {status}");
    let with_bad_token = upgrade.replace("GET /ws ", "GET /ws?token=not.a.token ");
    let status = status_of(addr, &with_bad_token).await;
    assert!(status.contains(" 401 "), "bad token: {status}");
}
