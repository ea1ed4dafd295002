//! A whole Hubbub node in an event loop you own (mio, one thread): `hub_core::Hub` decides,
//! `hub_wire::server::ServerConn` speaks HTTP and WebSocket for each socket, and this loop
//! moves bytes and maps the events of one to the inputs of the other. It serves the client
//! protocol on `GET /ws` and `GET /ws/{room}` (`?id=`, `?user=`): welcome, join, leave,
//! publish, emit, acks and errors by `ref`, heartbeats and close codes; `/healthz` says 200.
//!
//! Run: `cargo run -p hubbub-poll --example custom_loop -- 127.0.0.1:8080`
//! Left out (hubbub-poll's lib.rs has them): tokens, per-address limits, a cap on reads per
//! turn, graceful shutdown, a secret seed (`Config::default()`'s is public), a timer heap.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use hub_core::shard::Input;
use hub_core::{ClientId, Config, ConnId, Hub, HubInput, HubOutput, NodeConfig, OpenParams};
use hub_core::{RoomName, UserId};
use hub_wire::http::{RequestHead, Response};
use hub_wire::server::{error_response, ConnConfig, ConnEvent, ServerConn, READ_BUFFER};
use hub_wire::ws::WsError;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// One socket, its sans-IO server side, and its id in the hub once it is a WebSocket.
struct Conn {
    socket: TcpStream,
    wire: ServerConn,
    id: Option<ConnId>,
}

/// The hub, the sockets by mio token, and the token of each WebSocket the hub knows.
struct Node {
    hub: Hub,
    conns: HashMap<usize, Conn>,
    tokens: HashMap<ConnId, usize>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1);
    let mut listener = TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:8080").parse()?)?;
    let config = Config::default();
    let router = NodeConfig::standalone(config.node_id.clone(), config.shard_count);
    let hub = Hub::new(config, router)?;
    let mut node = Node {
        hub,
        conns: HashMap::new(),
        tokens: HashMap::new(),
    };
    let (mut poll, mut events) = (Poll::new()?, Events::with_capacity(1024));
    let (wire, mut buf, mut next) = (Arc::new(ConnConfig::default()), vec![0; READ_BUFFER], 0);
    poll.registry()
        .register(&mut listener, Token(0), Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        // Sleep until a socket has news or the earliest deadline (O(n): fine for an example).
        let deadlines = node.conns.values().filter_map(|c| c.wire.poll_timeout());
        let wake = deadlines.chain(node.hub.poll_timeout()).min();
        let timeout = wake.map(|at| at.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        let now = Instant::now(); // once per turn, never earlier than the last: the core's clock
        if node.hub.poll_timeout().is_some_and(|at| at <= now) {
            node.hub.handle_timeout(now); // heartbeats: pings, and closes of silent clients
            node.drain(now);
        }
        let due = node
            .conns
            .iter()
            .filter(|(_, c)| c.wire.poll_timeout().is_some_and(|at| at <= now));
        let mut ready: Vec<usize> = due.map(|(token, _)| *token).collect();
        ready.extend(events.iter().map(|event| event.token().0));
        for token in ready {
            while let Some(Ok((mut socket, _))) = (token == 0).then(|| listener.accept()) {
                next += 1; // mio is edge-triggered: register once, for both directions
                let interest = Interest::READABLE | Interest::WRITABLE;
                poll.registry()
                    .register(&mut socket, Token(next), interest)?;
                let wire = ServerConn::new(now, wire.clone());
                node.conns.insert(
                    next,
                    Conn {
                        socket,
                        wire,
                        id: None,
                    },
                );
            }
            // Read until the socket is empty, acting on each read before the next.
            while let Some(c) = node.conns.get_mut(&token) {
                c.wire.handle_timeout(now); // a no-op unless its deadline is due
                let more = c.wire.read_from(now, &mut c.socket, &mut buf);
                node.service(token, now);
                node.drain(now);
                if !more {
                    break;
                }
            }
        }
    }
}

impl Node {
    /// Writes what a connection has and acts on its events until it has none.
    fn service(&mut self, token: usize, now: Instant) {
        while let Some(c) = self.conns.get_mut(&token) {
            if c.wire.write_to(now, &mut c.socket) {
                let sent = c.id.map(|conn| HubInput::Conn(Input::Sent { conn }));
                sent.into_iter()
                    .for_each(|sent| self.hub.handle_input(now, sent));
            }
            let response = match c.wire.poll_event() {
                None => break,
                Some(ConnEvent::Request(head)) if head.path == "/healthz" => {
                    Response::json(200, r#"{"status":"ok"}"#)
                }
                Some(ConnEvent::Upgrade(head)) => match open_params(&head) {
                    Some(params) => match self.hub.open(now, params) {
                        Ok(id) => {
                            let _ = c.wire.accept(now); // the 101 goes before the welcome
                            c.id = Some(id);
                            self.tokens.insert(id, token);
                            continue;
                        }
                        Err(e) => error_response(400, &e.to_string()),
                    },
                    None => error_response(404, "no WebSocket endpoint here"),
                },
                Some(ConnEvent::Request(_) | ConnEvent::Body(_)) => error_response(404, "no"),
                Some(ConnEvent::ShutdownWrite) => {
                    let _ = c.socket.shutdown(std::net::Shutdown::Write);
                    continue;
                }
                Some(ConnEvent::Closed) => {
                    self.close(token, now);
                    break;
                }
                Some(event) => {
                    let input = c.id.and_then(|conn| hub_input(conn, event));
                    input
                        .into_iter()
                        .for_each(|input| self.hub.handle_input(now, input));
                    continue;
                }
            };
            let _ = c.wire.respond(now, &response);
        }
    }

    /// Carries out the hub's outputs until it has none (what they feed in may bring more).
    fn drain(&mut self, now: Instant) {
        while let Some(output) = self.hub.poll_output() {
            let (conn, frames, close) = match output {
                HubOutput::Transmit {
                    conn,
                    frames,
                    close,
                } => (conn, frames, close),
                HubOutput::Abort { conn } => {
                    let token = self.tokens.get(&conn).copied();
                    token.into_iter().for_each(|token| self.close(token, now));
                    continue;
                }
                _ => continue, // events for the application, answers to commands: none here
            };
            let Some(&token) = self.tokens.get(&conn) else {
                continue;
            };
            let Some(c) = self.conns.get_mut(&token) else {
                continue;
            };
            let _ = c.wire.send(frames); // encoded once for all the recipients
            if close {
                // The hub is done with it: the close frame is in `frames`.
                self.tokens.remove(&conn);
                c.id = None;
                let _ = c.wire.close(now);
            } else if !c.wire.wants_write() {
                self.hub
                    .handle_input(now, HubInput::Conn(Input::Sent { conn })); // 0 bytes
            }
            self.service(token, now);
        }
    }

    /// Drops a socket; the hub learns that its WebSocket is gone.
    fn close(&mut self, token: usize, now: Instant) {
        if let Some(conn) = self.conns.remove(&token).and_then(|c| c.id) {
            self.tokens.remove(&conn);
            self.hub
                .handle_input(now, HubInput::Conn(Input::Closed { conn }));
        }
    }
}

/// What `GET /ws` or `GET /ws/{room}` opens, with `?id=` and `?user=` (`None`: another path).
fn open_params(head: &RequestHead) -> Option<OpenParams> {
    let room = head
        .path
        .strip_prefix("/ws")
        .filter(|r| r.is_empty() || r.starts_with('/'))?;
    let rooms = room
        .strip_prefix('/')
        .map(RoomName::new)
        .into_iter()
        .collect();
    let client = head.query_param("id").map(ClientId::new);
    let user = head.query_param("user").map(UserId::new);
    Some(OpenParams {
        client,
        user,
        rooms,
        ..OpenParams::default()
    })
}

/// The hub's input for a WebSocket event of connection `conn`.
fn hub_input(conn: ConnId, event: ConnEvent) -> Option<HubInput> {
    let reason = String::new(); // a client's own close reason is not sent back
    Some(HubInput::Conn(match event {
        ConnEvent::Message { data, binary } => Input::Message { conn, data, binary },
        ConnEvent::Ping(payload) => Input::Ping { conn, payload },
        ConnEvent::Pong(_) => Input::Activity { conn },
        ConnEvent::PeerClose { code } => Input::Close { conn, code, reason },
        ConnEvent::ProtocolError(WsError { code, reason }) => {
            let reason = reason.to_owned();
            Input::Close { conn, code, reason }
        }
        _ => return None,
    }))
}
