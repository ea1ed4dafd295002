//! An axum service that mounts Hubbub at `/ws` next to its own routes: axum accepts the
//! request, answers the upgrade, and hands the upgraded stream to the hub.
//!
//! ```sh
//! cargo run -p hubbub-tokio --example axum -- 127.0.0.1:3000
//! # then: websocat ws://127.0.0.1:3000/ws, and curl -XPOST 127.0.0.1:3000/announce -d hello
//! ```

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use hubbub_tokio::hub_core::{ClientProtocol, OpenParams};
use hubbub_tokio::{Hub, ServeUpgraded, Server, Settings};
use hyper_util::rt::TokioIo;

/// Answers a WebSocket upgrade and gives the connection to the hub.
async fn websocket(State(hub): State<Hub>, request: Request) -> Response {
    let Some(key) = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
    else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Body::from("expected a WebSocket upgrade"))
            .unwrap_or_default();
    };
    let accept = hub_wire::http::websocket_accept(key);
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                if let Err(e) = hub
                    .serve_upgraded(TokioIo::new(upgraded), OpenParams::default())
                    .await
                {
                    eprintln!("connection refused: {e}");
                }
            }
            Err(e) => eprintln!("upgrade failed: {e}"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_default()
}

/// The service's own route: publishes the request body to everyone.
async fn announce(State(hub): State<Hub>, body: String) -> String {
    let data = serde_json_string(&body);
    match hub.broadcast(&data).await {
        Ok(n) => format!("reached {n} connections\n"),
        Err(e) => format!("failed: {e}\n"),
    }
}

fn serde_json_string(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            '\n' => vec!['\\', 'n'],
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let hub = Server::start_embedded(Settings::default(), None, ClientProtocol::Json).await?;
    let app = Router::new()
        .route("/ws", get(websocket))
        .route("/announce", post(announce))
        .with_state(hub);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("axum with Hubbub on http://{listen}: WebSocket at /ws, POST /announce");
    axum::serve(listener, app).await?;
    Ok(())
}
