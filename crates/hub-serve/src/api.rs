//! The producer API mapped onto the router: requests become [`Command`]s with their frame
//! encoded once, and replies become HTTP responses.

use hub_core::history::Since;
use hub_core::node::{Command, PresenceQuery, PresenceReply, Reply};
use hub_core::{protocol, ClientId, RoomName, Scope, Target, UserId};
use hub_edge::api::{
    delivered_body, disconnected_body, online_body, presence_body, presence_count_body,
    presence_rooms_body, ApiRequest,
};
use hub_edge::history_api::{history_body, no_history, position_body};
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
        ApiRequest::History { room, since, limit } => Command::History {
            room: RoomName::from(room.as_str()),
            since: since.as_ref().map(|(offset, epoch)| Since {
                offset: *offset,
                epoch: epoch.clone(),
            }),
            limit: *limit,
        },
        ApiRequest::Position { room } => Command::Position {
            room: RoomName::from(room.as_str()),
        },
        ApiRequest::Presence { room } => Command::Presence {
            room: RoomName::from(room.as_str()),
            query: PresenceQuery::Members,
        },
        ApiRequest::PresenceCount { room } => Command::Presence {
            room: RoomName::from(room.as_str()),
            query: PresenceQuery::Count(Scope::Cluster),
        },
    }
}

/// The HTTP answer to a router reply.
pub fn response(reply: &Reply) -> Response {
    let body = match reply {
        Reply::Delivered(n) => delivered_body(*n),
        Reply::Online(node) => online_body(node.as_ref().map(|n| n.as_str())),
        Reply::Disconnected(yes) => disconnected_body(*yes),
        Reply::History(Some(page)) => history_body(
            &page.position.epoch,
            page.position.offset,
            page.recovered,
            page.messages.iter().map(|m| (m.offset, &m.data[..])),
        ),
        Reply::Position(Some(position)) => position_body(&position.epoch, position.offset),
        Reply::History(None) | Reply::Position(None) => {
            let error = no_history();
            return Response::json(error.status, error.body());
        }
        Reply::Presence(PresenceReply::Members(members)) => {
            presence_body(members.iter().map(|m| {
                (
                    m.client.as_str(),
                    m.user.as_ref().map(|u| u.as_str()),
                    m.info.as_deref(),
                )
            }))
        }
        Reply::Presence(PresenceReply::Count(c)) => presence_count_body(c.clients, c.users),
        Reply::Presence(PresenceReply::Rooms(rooms)) => {
            presence_rooms_body(rooms.iter().map(|(r, c)| (r.as_str(), c.clients, c.users)))
        }
        Reply::Presence(PresenceReply::Users(users)) => presence_body(
            users
                .iter()
                .map(|(u, info)| (u.as_str(), Some(u.as_str()), info.as_deref())),
        ),
    };
    Response::json(200, body)
}
