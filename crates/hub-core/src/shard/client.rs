//! Messages from clients: the JSON protocol, or raw messages for the application.

use std::time::Instant;

use bytes::Bytes;

use super::conn::ConnState;
use super::{CloseMode, Event, Output, Report, Shard, Target};
use crate::config::ClientProtocol;
use crate::frame::close_code;
use crate::ids::{is_reserved_room, shard_for, ClientId, ConnId, RoomName};
use crate::protocol::{self, ClientRequest, ErrorCode, RequestError};

impl Shard {
    pub(super) fn on_message(&mut self, now: Instant, conn: ConnId, data: Bytes, binary: bool) {
        let Some(slot) = self.open_slot(conn) else {
            return;
        };
        self.saw_traffic(slot);
        self.stats.messages_in += 1;
        if data.len() > self.config.max_message_size {
            self.stats.protocol_closes += 1;
            self.close_slot(
                now,
                slot,
                close_code::TOO_BIG,
                "message too big",
                CloseMode::Now,
                true,
            );
            return;
        }
        let protocol = self
            .conns
            .get(slot as usize)
            .map_or(self.config.client_protocol, |c| c.protocol);
        if protocol == ClientProtocol::Raw || (protocol == ClientProtocol::Pusher && !binary) {
            self.outputs
                .push_back(Output::Event(Event::Message { conn, data, binary }));
            return;
        }
        if binary {
            self.stats.protocol_closes += 1;
            self.close_slot(
                now,
                slot,
                close_code::UNSUPPORTED_DATA,
                "binary frames are not part of the JSON protocol",
                CloseMode::Now,
                true,
            );
            return;
        }
        match protocol::parse_request(&data) {
            Ok(request) => {
                let reference = request.reference;
                match self.on_request(now, slot, conn, request.kind, reference.as_deref()) {
                    Ok(()) => {}
                    Err((code, message)) => self.refuse(
                        now,
                        slot,
                        conn,
                        RequestError {
                            code,
                            message,
                            reference,
                        },
                    ),
                }
            }
            Err(error) => self.refuse(now, slot, conn, error),
        }
    }

    fn refuse(&mut self, now: Instant, slot: u32, conn: ConnId, error: RequestError) {
        self.stats.request_errors += 1;
        let frame = protocol::error(error.reference.as_deref(), error.code, &error.message);
        self.outputs.push_back(Output::Event(Event::Error {
            conn,
            code: error.code,
            message: error.message,
        }));
        self.enqueue(now, slot, frame);
    }

    fn check_name(&self, what: &str, name: &str) -> Result<(), (ErrorCode, String)> {
        if name.is_empty() || name.len() > self.config.max_name_len {
            return Err((
                ErrorCode::BadName,
                format!(
                    "{what} must be 1 to {} bytes long",
                    self.config.max_name_len
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a room name of the reserved namespace (other protocols' rooms) as `forbidden`.
    fn check_room(&self, room: &str) -> Result<(), (ErrorCode, String)> {
        self.check_name("room", room)?;
        if is_reserved_room(room) {
            return Err((
                ErrorCode::Forbidden,
                "room names starting with U+001F are reserved".into(),
            ));
        }
        Ok(())
    }

    /// Refuses a room the connection's token does not list (`forbidden`).
    fn check_allowed(&self, slot: u32, room: &str) -> Result<(), (ErrorCode, String)> {
        match self
            .conns
            .get(slot as usize)
            .and_then(|c| c.allowed_rooms.as_deref())
        {
            Some(allowed) if !allowed.allows(room) => Err((
                ErrorCode::Forbidden,
                "this connection's token does not allow that room".into(),
            )),
            _ => Ok(()),
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        slot: u32,
        conn: ConnId,
        request: ClientRequest,
        reference: Option<&str>,
    ) -> Result<(), (ErrorCode, String)> {
        match request {
            ClientRequest::Join { room, since } => {
                self.check_room(&room)?;
                self.check_allowed(slot, &room)?;
                let in_rooms = self.conns.get(slot as usize).map_or(0, |c| c.rooms.len());
                let room = RoomName::from(room);
                let already = self.rooms.contains(room.as_str(), slot);
                if !already && in_rooms >= self.config.max_rooms_per_connection {
                    return Err((
                        ErrorCode::TooManyRooms,
                        format!(
                            "a connection may be in at most {} rooms",
                            self.config.max_rooms_per_connection
                        ),
                    ));
                }
                self.join_slot(slot, &room);
                if self.config.history.covers(room.as_str()) {
                    // `joined` and the ack come with the router's answer.
                    return self.start_recovery(slot, conn, room, since, reference);
                }
            }
            ClientRequest::Leave { room } => {
                self.check_room(&room)?;
                self.leave_slot(slot, &room);
            }
            ClientRequest::Publish { room, data } => {
                self.check_room(&room)?;
                self.check_allowed(slot, &room)?;
                let from = self.client_of(slot);
                let frame = protocol::message(Some(&room), Some(from.as_str()), &data);
                let history = self.config.history.covers(&room);
                let target = Target::Room(RoomName::from(room));
                if !history {
                    self.deliver(now, &target, &frame, None);
                }
                // A history room's publish is numbered by the router, which sends it here too.
                self.report(Report::Route { target, frame });
            }
            ClientRequest::Emit { to, data } => {
                self.check_name("client id", &to)?;
                let from = self.client_of(slot);
                let frame = protocol::message(None, Some(from.as_str()), &data);
                let to = ClientId::from(to);
                let target = Target::Client(to.clone());
                if shard_for(to.as_str(), self.config.shard_count) == self.id
                    && self.clients.contains_key(to.as_str())
                {
                    self.deliver(now, &target, &frame, None);
                } else {
                    self.report(Report::Route { target, frame });
                }
            }
            ClientRequest::Broadcast { data } => {
                if !self.config.allow_client_broadcast {
                    return Err((
                        ErrorCode::Forbidden,
                        "client broadcast is disabled on this node (--allow-client-broadcast)"
                            .into(),
                    ));
                }
                let from = self.client_of(slot);
                let frame = protocol::message(None, Some(from.as_str()), &data);
                self.deliver(now, &Target::All, &frame, None);
                self.report(Report::Route {
                    target: Target::All,
                    frame,
                });
            }
            ClientRequest::Ping => {
                self.enqueue(now, slot, protocol::pong(reference));
                return Ok(());
            }
        }
        if let Some(reference) = reference {
            if self
                .conns
                .get(slot as usize)
                .is_some_and(|c| c.state == ConnState::Open)
            {
                self.enqueue(now, slot, protocol::ack(reference));
            }
        }
        Ok(())
    }

    fn client_of(&self, slot: u32) -> ClientId {
        self.conns
            .get(slot as usize)
            .map(|c| c.client.clone())
            .unwrap_or_else(|| ClientId::from(""))
    }
}
