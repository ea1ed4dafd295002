//! A whole Hubbub node in an event loop you own (mio, one thread). `hub_core::Hub` decides;
//! `hub_wire::host::Host` keeps one sans-IO `ServerConn` per socket and carries bytes and
//! events between them and the hub; this loop only waits, accepts and says which socket is
//! ready. It serves the client protocol on `GET /ws` and `GET /ws/{room}` (`?id=`, `?user=`):
//! welcome, join, leave, publish, emit, acks and errors by `ref`, heartbeats and close codes;
//! `/healthz` answers 200 (the routes are `PlainRoutes`: write your own `Routes` for tokens).
//!
//! Run: `cargo run -p hubbub-poll --example custom_loop -- 127.0.0.1:8080`
//! Left out (hubbub-poll's lib.rs has them): tokens, per-address limits, graceful shutdown,
//! a secret seed (`Config::default()`'s is public, so generated ids are guessable).
use std::sync::Arc;
use std::time::Instant;

use hub_core::{Config, Hub, NodeConfig};
use hub_wire::host::{Host, PlainRoutes};
use hub_wire::server::ConnConfig;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

/// The listener's token; sockets use the tokens the host gives them.
const LISTENER: Token = Token(usize::MAX);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1);
    let mut listener = TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:8080").parse()?)?;
    let config = Config::default();
    let router = NodeConfig::standalone(config.node_id.clone(), config.shard_count);
    let mut host = Host::new(Hub::new(config, router)?, Arc::new(ConnConfig::default()));
    let mut routes = PlainRoutes;
    let (mut poll, mut events) = (Poll::new()?, Events::with_capacity(1024));
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        // Sleep until a socket has news or the host's next deadline.
        let wake = host.poll_timeout();
        let timeout = wake.map(|at| at.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        let now = Instant::now(); // once per turn: the core never reads a clock
        host.handle_timeout(now, &mut routes); // heartbeats, deadlines, reads left over
        for event in events.iter() {
            if event.token() != LISTENER {
                host.ready(now, event.token().0, &mut routes);
                continue;
            }
            while let Ok((socket, peer)) = listener.accept() {
                let token = host.insert(now, socket, Some(peer));
                // mio is edge-triggered: register once, for both directions.
                let both = Interest::READABLE | Interest::WRITABLE;
                if let Some(socket) = host.socket_mut(token) {
                    poll.registry().register(socket, Token(token), both)?;
                }
            }
        }
    }
}
