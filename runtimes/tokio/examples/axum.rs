//! An axum service that mounts Hubbub at `/ws` and `/ws/{room}` next to its own routes
//! (`hubbub_tokio::axum::routes`): axum accepts the request, the node's own rules decide the
//! upgrade (tokens, origins, ids), and the upgraded stream goes to the hub.
//!
//! ```sh
//! cargo run -p hubbub-tokio --example axum -- 127.0.0.1:3000
//! # then: websocat ws://127.0.0.1:3000/ws, and curl -XPOST 127.0.0.1:3000/announce -d hello
//! ```

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use hubbub_tokio::hub_core::ClientProtocol;
use hubbub_tokio::{Hub, Server, Settings};

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
        .route("/announce", post(announce))
        .with_state(hub.clone())
        .merge(hubbub_tokio::axum::routes(hub));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("axum with Hubbub on http://{listen}: WebSocket at /ws, POST /announce");
    axum::serve(listener, app).await?;
    Ok(())
}
