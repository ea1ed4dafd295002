//! `tt-chat-server`: a peer server for `benches/compare/run.sh`, written the way
//! tokio-tungstenite's chat example is: a shared map from each peer's address to an
//! unbounded sender; a task per connection that forwards whatever arrives on its receiver
//! to the socket, and sends every text frame it reads to every *other* peer's sender
//! (the frame is cloned, a reference-counted buffer, not re-encoded per peer).
//!
//! ```text
//! tt-chat-server [--listen 127.0.0.1:9001] [--small-buffers]
//! ```
//!
//! `--small-buffers` sets tungstenite's read buffer and write buffer target to 4 KiB each
//! (defaults: 128 KiB each); everything else is the library's default configuration.
//! Serves any path; load it with `hubbub-load --protocol broadcast`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::{stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Every connected peer's outbox, by its address.
type Peers = Arc<Mutex<HashMap<SocketAddr, UnboundedSender<Message>>>>;

fn lock(peers: &Peers) -> MutexGuard<'_, HashMap<SocketAddr, UnboundedSender<Message>>> {
    peers.lock().unwrap_or_else(PoisonError::into_inner)
}

const USAGE: &str = "usage: tt-chat-server [--listen ADDR] [--small-buffers]";

fn main() -> ExitCode {
    let mut listen = String::from("127.0.0.1:9001");
    let mut small = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next() {
                Some(v) => listen = v,
                None => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--small-buffers" => small = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("tt-chat-server: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let config = if small {
        WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(4 * 1024)
    } else {
        WebSocketConfig::default()
    };
    // The default multi-threaded runtime: under `taskset -c 0` it has one worker thread.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tt-chat-server: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(&listen, config, small)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tt-chat-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(listen: &str, config: WebSocketConfig, small: bool) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!(
        "tt-chat-server listening on {listen} ({} buffers)",
        if small { "4 KiB" } else { "default" }
    );
    let peers = Peers::default();
    loop {
        match listener.accept().await {
            Ok((socket, addr)) => {
                tokio::spawn(peer(peers.clone(), socket, addr, config));
            }
            // Out of file descriptors and the like: keep serving the peers we have.
            Err(e) => {
                eprintln!("tt-chat-server: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// One connection: upgrade, register, relay until either direction ends, unregister.
async fn peer(peers: Peers, socket: TcpStream, addr: SocketAddr, config: WebSocketConfig) {
    let _ = socket.set_nodelay(true);
    let ws = match tokio_tungstenite::accept_async_with_config(socket, Some(config)).await {
        Ok(ws) => ws,
        Err(_) => return,
    };
    let (outbox, mut inbox) = unbounded_channel::<Message>();
    lock(&peers).insert(addr, outbox);
    let (sink, mut incoming) = ws.split();

    // Everything other peers send us goes out on the socket; `forward` batches what is
    // already queued before it flushes.
    let to_socket = stream::poll_fn(move |cx| inbox.poll_recv(cx))
        .map(Ok)
        .forward(sink);
    let from_socket = async {
        while let Some(Ok(message)) = incoming.next().await {
            match message {
                Message::Text(_) => {
                    for (other, outbox) in lock(&peers).iter() {
                        if *other != addr {
                            let _ = outbox.send(message.clone());
                        }
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::select! {
        _ = to_socket => {}
        () = from_socket => {}
    }
    lock(&peers).remove(&addr);
}
