//! An echo server on Hubbub's runtime path: every text or binary message a client sends
//! comes back to it. Uses the raw protocol (no JSON) and a `Handler`.
//!
//! ```sh
//! cargo run -p hubbub-tokio --example echo -- 127.0.0.1:9001 [MAX_MESSAGE_BYTES]
//! ```
//!
//! The optional second argument raises the largest message accepted (default 64 KiB) and the
//! send queue with it: the Autobahn test suite's section 9 sends messages of up to 16 MiB.

use std::sync::Arc;

use bytes::Bytes;
use hubbub_tokio::hub_core::{frame, ClientProtocol, ConnId};
use hubbub_tokio::{Handler, Hub, Server, Settings};

/// Sends every message back to its sender.
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let mut settings = Settings {
        listen: listen.parse()?,
        ..Settings::default()
    };
    if let Some(max) = std::env::args().nth(2) {
        settings.max_message_size = max.parse()?;
        settings.send_queue_bytes = settings.send_queue_bytes.max(2 * settings.max_message_size);
    }
    let server = Server::bind_with(settings, Some(Arc::new(Echo)), ClientProtocol::Raw).await?;
    println!("echo server on ws://{}/ws", server.local_addr());
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
