//! What a [`Host`](super::Host)'s owner decides ([`Routes`]), the plain routes of a node with
//! no authentication ([`PlainRoutes`]), and the mapping of WebSocket events to hub inputs.

use std::net::SocketAddr;

use hub_core::shard::Input;
use hub_core::{ClientId, ConnId, HubInput, HubOutput, OpenParams, RoomName, UserId};

use crate::http::{RequestHead, Response};
use crate::server::{error_response, ConnEvent};

/// The decisions a [`Host`](super::Host) leaves to its owner.
pub trait Routes {
    /// The answer to a plain HTTP request (no upgrade); the connection closes after it
    /// unless the configuration keeps it alive.
    fn request(&mut self, head: &RequestHead, peer: Option<SocketAddr>) -> Response;

    /// What an upgrade request opens in the hub, or the answer that refuses it.
    fn upgrade(
        &mut self,
        head: &RequestHead,
        peer: Option<SocketAddr>,
    ) -> Result<OpenParams, Response>;

    /// A socket whose upgrade [`Routes::upgrade`] admitted is gone (give back what it took).
    fn released(&mut self, _peer: Option<SocketAddr>) {}

    /// A hub output that is not for a socket: application events, answers to commands,
    /// cluster traffic. Ignored unless overridden.
    fn output(&mut self, _output: HubOutput) {}
}

/// The routes of a node with no authentication: `GET /ws` and `GET /ws/{room}` (with `?id=`
/// and `?user=`, claimed by whoever connects) and `GET /healthz`; 404 for the rest.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainRoutes;

impl Routes for PlainRoutes {
    fn request(&mut self, head: &RequestHead, _peer: Option<SocketAddr>) -> Response {
        match head.path.as_str() {
            "/healthz" => Response::json(200, r#"{"status":"ok"}"#),
            _ => error_response(404, "not found"),
        }
    }

    fn upgrade(
        &mut self,
        head: &RequestHead,
        _peer: Option<SocketAddr>,
    ) -> Result<OpenParams, Response> {
        ws_open_params(head).ok_or_else(|| error_response(404, "no WebSocket endpoint here"))
    }
}

/// What `GET /ws` or `GET /ws/{room}` opens, with `?id=` and `?user=` taken as given
/// (`None`: another path). Nodes with tokens decide this in `hub_serve::Gate` instead.
pub fn ws_open_params(head: &RequestHead) -> Option<OpenParams> {
    let rest = head.path.strip_prefix("/ws")?;
    let room = match rest.strip_prefix('/') {
        Some(room) => Some(RoomName::new(room)),
        None if rest.is_empty() => None,
        None => return None,
    };
    Some(OpenParams {
        client: head.query_param("id").map(ClientId::new),
        user: head.query_param("user").map(UserId::new),
        rooms: room.into_iter().collect(),
        ..OpenParams::default()
    })
}

/// The hub's input for a WebSocket event of connection `conn` (`None` for the events that
/// are not the hub's: requests, bodies, the write side, the end).
pub fn hub_input(conn: ConnId, event: ConnEvent) -> Option<HubInput> {
    let input = match event {
        ConnEvent::Message { data, binary } => Input::Message { conn, data, binary },
        ConnEvent::Ping(payload) => Input::Ping { conn, payload },
        ConnEvent::Pong(_) => Input::Activity { conn },
        // A client's own close reason is not sent back.
        ConnEvent::PeerClose { code } => Input::Close {
            conn,
            code,
            reason: String::new(),
        },
        ConnEvent::ProtocolError(e) => Input::Close {
            conn,
            code: e.code,
            reason: e.reason.to_owned(),
        },
        ConnEvent::Request(_)
        | ConnEvent::Body(_)
        | ConnEvent::Upgrade(_)
        | ConnEvent::ShutdownWrite
        | ConnEvent::Closed => return None,
    };
    Some(HubInput::Conn(input))
}
