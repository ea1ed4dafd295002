//! The Pusher protocol of the connections of one node, as a state machine above the shards.
//!
//! The node hands [`Sessions`] the events of its Pusher connections (opened, a text message,
//! closed) and feeds what comes out of [`Sessions::poll_input`] to the shard that owns the
//! connection ([`ConnId::shard`]): answers to the connection, joins and leaves of channel
//! rooms, and channel events to publish (built once, delivered as ordinary room deliveries).
//!
//! Invariants:
//! - every input polled concerns the connection whose event caused it, so it belongs to that
//!   connection's shard;
//! - a presence channel's member list holds each user once, with the number of this node's
//!   connections subscribed as that user; `member_added` goes out when a user's first
//!   connection subscribes, `member_removed` when its last one leaves or closes;
//! - a connection's channels are those whose subscription succeeded, and nothing is kept of
//!   a connection after [`Sessions::closed`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use hub_core::shard::{Input, Target};
use hub_core::{ClientId, ConnId, RoomName, UserId};

use crate::app::{App, Apps};
use crate::channel::{parse_channel, room_name, Channel, ChannelKind, SERVER_TO_USER_PREFIX};
use crate::frame::{self, code};
use crate::message::{parse, ClientMessage, MessageError};
use crate::sign;

/// Seconds of silence after which a Pusher client pings (sent in `connection_established`).
pub const ACTIVITY_TIMEOUT_SECS: u64 = 120;

/// Longest `client-*` event name accepted (Pusher's limit).
pub const MAX_EVENT_NAME_LEN: usize = 200;

/// One Pusher connection.
#[derive(Debug)]
struct Session {
    app: Arc<App>,
    socket_id: ClientId,
    /// The user id given by a successful `pusher:signin`.
    user: Option<String>,
    /// Subscribed channels; presence ones with the member's user id.
    channels: BTreeMap<String, Option<String>>,
}

/// A presence channel member as this node knows it: its info and how many of this node's
/// connections subscribed as it.
#[derive(Debug)]
struct Member {
    info: String,
    connections: u32,
}

/// The Pusher sessions of one node.
#[derive(Debug, Default)]
pub struct Sessions {
    apps: Apps,
    sessions: HashMap<ConnId, Session>,
    presence: HashMap<RoomName, BTreeMap<String, Member>>,
    inputs: VecDeque<Input>,
}

impl Sessions {
    /// Sessions serving `apps`.
    pub fn new(apps: Apps) -> Self {
        Self {
            apps,
            ..Self::default()
        }
    }

    /// The apps served.
    pub fn apps(&self) -> &Apps {
        &self.apps
    }

    /// Whether `conn` is a Pusher connection of this node.
    pub fn contains(&self, conn: ConnId) -> bool {
        self.sessions.contains_key(&conn)
    }

    /// Connections open.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The next input for the shard of the connection concerned; drain after every call.
    #[must_use]
    pub fn poll_input(&mut self) -> Option<Input> {
        self.inputs.pop_front()
    }

    fn send(&mut self, conn: ConnId, frame: Bytes) {
        self.inputs.push_back(Input::Deliver {
            target: Target::Conn(conn),
            frame,
            req: None,
        });
    }

    fn error(&mut self, conn: ConnId, code: Option<u16>, message: &str) {
        self.send(conn, frame::error(code, message));
    }

    /// A connection opened for the app whose id is `app_id`, with `socket_id` as client id:
    /// it gets `pusher:connection_established`, or 4001 when the app is unknown, 4003 when
    /// it is disabled.
    pub fn opened(&mut self, conn: ConnId, socket_id: ClientId, app_id: &str) {
        let Some(app) = self.apps.by_id(app_id).cloned() else {
            self.refuse(conn, code::APP_NOT_FOUND, "no such app");
            return;
        };
        if !app.enabled {
            self.refuse(conn, code::APP_DISABLED, "the app is disabled");
            return;
        }
        self.send(
            conn,
            frame::connection_established(socket_id.as_str(), ACTIVITY_TIMEOUT_SECS),
        );
        self.sessions.insert(
            conn,
            Session {
                app,
                socket_id,
                user: None,
                channels: BTreeMap::new(),
            },
        );
    }

    /// Sends `pusher:error` with `code`, then closes with the same code.
    fn refuse(&mut self, conn: ConnId, code: u16, message: &str) {
        self.error(conn, Some(code), message);
        self.inputs.push_back(Input::Disconnect {
            target: Target::Conn(conn),
            code,
            reason: message.to_owned(),
            req: None,
        });
    }

    /// A text message from `conn`.
    pub fn message(&mut self, conn: ConnId, text: &[u8]) {
        if !self.sessions.contains_key(&conn) {
            return;
        }
        match parse(text) {
            Ok(ClientMessage::Ping) => self.send(conn, frame::pong()),
            Ok(ClientMessage::Pong) => {}
            Ok(ClientMessage::Subscribe {
                channel,
                auth,
                channel_data,
            }) => self.subscribe(conn, channel, auth, channel_data),
            Ok(ClientMessage::Unsubscribe { channel }) => self.unsubscribe(conn, &channel),
            Ok(ClientMessage::Signin { auth, user_data }) => self.signin(conn, &auth, &user_data),
            Ok(ClientMessage::ClientEvent {
                event,
                channel,
                data,
            }) => self.client_event(conn, &event, &channel, &data),
            Err(MessageError::UnknownEvent(name)) => {
                self.error(conn, None, &format!("unknown event {name:?}"));
            }
            Err(e) => self.error(conn, None, &e.to_string()),
        }
    }

    fn subscribe(
        &mut self,
        conn: ConnId,
        channel: String,
        auth: Option<String>,
        channel_data: Option<String>,
    ) {
        let Some(session) = self.sessions.get(&conn) else {
            return;
        };
        let kind = match parse_channel(&channel) {
            Ok(kind) => kind,
            Err(e) => {
                let f = frame::subscription_error(&channel, "InvalidChannel", &e.to_string(), 400);
                self.send(conn, f);
                return;
            }
        };
        if let Err((status, message)) =
            check_subscription(session, &channel, kind, &auth, &channel_data)
        {
            let f = frame::subscription_error(&channel, "AuthError", &message, status);
            self.send(conn, f);
            return;
        }
        let room = room_name(&session.app.id, &channel);
        let member = match kind.kind {
            ChannelKind::Presence => match presence_member(channel_data.as_deref()) {
                Some(member) => Some(member),
                None => {
                    let message = "channel_data must be a JSON object with a user_id";
                    let f = frame::subscription_error(&channel, "AuthError", message, 400);
                    self.send(conn, f);
                    return;
                }
            },
            _ => None,
        };
        let already = session.channels.contains_key(&channel);
        let socket_id = session.socket_id.clone();
        let max_members = session.app.max_presence_members;
        if !already {
            if let Some((user, _)) = &member {
                let members = self.presence.get(&room);
                let full = members.is_some_and(|m| m.len() >= max_members && !m.contains_key(user));
                if full {
                    let message = format!("presence channels hold at most {max_members} members");
                    let f = frame::subscription_error(&channel, "LimitReached", &message, 403);
                    self.send(conn, f);
                    return;
                }
            }
            // A presence member joins as its Pusher user, with its user_info, so that the
            // node's presence index (channel users and counts, cluster-wide) lists it so.
            self.inputs.push_back(Input::JoinAs {
                target: Target::Conn(conn),
                room: room.clone(),
                user: member.as_ref().map(|(u, _)| UserId::from(u.as_str())),
                info: member.as_ref().map(|(_, i)| Arc::from(i.as_str())),
                req: None,
            });
            if let Some(session) = self.sessions.get_mut(&conn) {
                session
                    .channels
                    .insert(channel.clone(), member.as_ref().map(|(u, _)| u.clone()));
            }
            if let Some((user, info)) = &member {
                let members = self.presence.entry(room.clone()).or_default();
                let entry = members.entry(user.clone()).or_insert_with(|| Member {
                    info: info.clone(),
                    connections: 0,
                });
                entry.connections += 1;
                if entry.connections == 1 {
                    let added = frame::member_added(&channel, user, info);
                    self.inputs.push_back(Input::Publish {
                        target: Target::RoomExcept {
                            room: room.clone(),
                            except: socket_id,
                        },
                        frame: added,
                    });
                }
            }
        }
        let succeeded = match kind.kind {
            ChannelKind::Presence => {
                let members = self.presence.get(&room);
                let list: Vec<(&str, &str)> = members
                    .into_iter()
                    .flatten()
                    .map(|(id, m)| (id.as_str(), m.info.as_str()))
                    .collect();
                frame::presence_subscription_succeeded(&channel, list)
            }
            _ => frame::subscription_succeeded(&channel),
        };
        self.send(conn, succeeded);
        if kind.cache {
            self.send(conn, frame::cache_miss(&channel));
        }
    }

    fn unsubscribe(&mut self, conn: ConnId, channel: &str) {
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        let Some(member) = session.channels.remove(channel) else {
            return;
        };
        let room = room_name(&session.app.id, channel);
        self.inputs.push_back(Input::Leave {
            target: Target::Conn(conn),
            room: room.clone(),
            req: None,
        });
        if let Some(user) = member {
            self.member_left(&room, channel, &user);
        }
    }

    /// One connection of `user` left presence channel `channel` (room `room`).
    fn member_left(&mut self, room: &RoomName, channel: &str, user: &str) {
        let Some(members) = self.presence.get_mut(room) else {
            return;
        };
        let Some(entry) = members.get_mut(user) else {
            return;
        };
        entry.connections = entry.connections.saturating_sub(1);
        if entry.connections > 0 {
            return;
        }
        members.remove(user);
        if members.is_empty() {
            self.presence.remove(room);
        }
        self.inputs.push_back(Input::Publish {
            target: Target::Room(room.clone()),
            frame: frame::member_removed(channel, user),
        });
    }

    fn signin(&mut self, conn: ConnId, auth: &str, user_data: &str) {
        let Some(session) = self.sessions.get(&conn) else {
            return;
        };
        let socket_id = session.socket_id.as_str();
        if sign::check_signin_auth(&session.app, socket_id, user_data, auth).is_err() {
            self.refuse(conn, code::UNAUTHORIZED, "invalid signin signature");
            return;
        }
        let id = serde_json::from_str::<serde_json::Value>(user_data)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str().map(str::to_owned)))
            .filter(|id| !id.is_empty());
        let Some(id) = id else {
            self.error(
                conn,
                None,
                "user_data must be a JSON object with a string id",
            );
            return;
        };
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.user = Some(id.clone());
        }
        self.inputs.push_back(Input::SetUser {
            conn,
            user: UserId::from(id),
        });
        self.send(conn, frame::signin_success(user_data));
    }

    fn client_event(&mut self, conn: ConnId, event: &str, channel: &str, data: &str) {
        let Some(session) = self.sessions.get(&conn) else {
            return;
        };
        if !session.app.client_events {
            let message = "client events are not enabled for this app";
            self.error(conn, Some(code::CLIENT_EVENT_REJECTED), message);
            return;
        }
        if event.len() > MAX_EVENT_NAME_LEN {
            let message = "event names are at most 200 bytes long";
            self.error(conn, Some(code::CLIENT_EVENT_REJECTED), message);
            return;
        }
        let allowed = parse_channel(channel).is_ok_and(Channel::allows_client_events);
        let Some(member) = session.channels.get(channel).filter(|_| allowed) else {
            let message = "client events go to a subscribed private or presence channel";
            self.error(conn, Some(code::CLIENT_EVENT_REJECTED), message);
            return;
        };
        let f = frame::event(event, channel, data, member.as_deref());
        self.inputs.push_back(Input::Publish {
            target: Target::RoomExcept {
                room: room_name(&session.app.id, channel),
                except: session.socket_id.clone(),
            },
            frame: f,
        });
    }

    /// `conn` closed: its presence memberships end (its rooms are the shard's to leave).
    pub fn closed(&mut self, conn: ConnId) {
        let Some(session) = self.sessions.remove(&conn) else {
            return;
        };
        for (channel, member) in &session.channels {
            if let Some(user) = member {
                let room = room_name(&session.app.id, channel);
                self.member_left(&room, channel, user);
            }
        }
    }
}

/// Checks what a subscription needs: a valid auth for private and presence channels, the
/// signed-in user for a server-to-user channel. The error is an HTTP-like status and a text.
fn check_subscription(
    session: &Session,
    channel: &str,
    kind: Channel,
    auth: &Option<String>,
    channel_data: &Option<String>,
) -> Result<(), (u16, String)> {
    if kind.kind == ChannelKind::ServerToUser {
        let user = channel
            .strip_prefix(SERVER_TO_USER_PREFIX)
            .unwrap_or_default();
        return match &session.user {
            Some(signed_in) if signed_in == user => Ok(()),
            _ => Err((403, "sign in as this user first".into())),
        };
    }
    if !kind.needs_auth() {
        return Ok(());
    }
    let Some(auth) = auth else {
        return Err((401, "this channel needs an auth signature".into()));
    };
    let data = match kind.kind {
        ChannelKind::Presence => channel_data.as_deref(),
        _ => None,
    };
    sign::check_channel_auth(
        &session.app,
        session.socket_id.as_str(),
        channel,
        data,
        auth,
    )
    .map_err(|e| (401, format!("Invalid signature: {e}")))
}

/// A presence member's user id (a string, or a number as Pusher allows) and `user_info` (JSON
/// text, `null` when absent) from `channel_data`.
fn presence_member(channel_data: Option<&str>) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_str(channel_data?).ok()?;
    let user = match value.get("user_id")? {
        serde_json::Value::String(s) if !s.is_empty() => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let info = value
        .get("user_info")
        .map_or_else(|| "null".to_owned(), |v| v.to_string());
    Some((user, info))
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
