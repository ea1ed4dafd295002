//! The producer API mapped onto the router: requests become [`Command`]s with their frame
//! encoded once, and replies become HTTP responses.

use hub_core::node::{Command, Reply};
use hub_core::{protocol, ClientId, RoomName, Target, UserId};
use hub_edge::api::{delivered_body, disconnected_body, online_body, ApiRequest};
use hub_wire::http::Response;

/// The router command for an API request.
pub fn command(request: &ApiRequest) -> Command {
    let deliver = |target: Target, room: Option<&str>, data: &str| Command::Deliver {
        target,
        frame: protocol::message(room, None, data),
    };
    match request {
        ApiRequest::Emit { to, data } => {
            deliver(Target::Client(ClientId::from(to.as_str())), None, data)
        }
        ApiRequest::EmitUser { user, data } => {
            deliver(Target::User(UserId::from(user.as_str())), None, data)
        }
        ApiRequest::Publish { room, data } => deliver(
            Target::Room(RoomName::from(room.as_str())),
            Some(room),
            data,
        ),
        ApiRequest::Broadcast { data } => deliver(Target::All, None, data),
        ApiRequest::Online { client } => Command::Online {
            client: ClientId::from(client.as_str()),
        },
        ApiRequest::Disconnect { to } => Command::Disconnect {
            client: ClientId::from(to.as_str()),
        },
    }
}

/// The HTTP answer to a router reply.
pub fn response(reply: &Reply) -> Response {
    let body = match reply {
        Reply::Delivered(n) => delivered_body(*n),
        Reply::Online(node) => online_body(node.as_ref().map(|n| n.as_str())),
        Reply::Disconnected(yes) => disconnected_body(*yes),
    };
    Response::json(200, body)
}
