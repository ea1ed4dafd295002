//! What the router does with its shards' reports: routes to carry further, answers to sum,
//! room and user activity to index, clients to register.

use std::time::Instant;

use super::{Origin, RegistryCommand, Router};
use crate::ids::ShardId;
use crate::shard::Report;

impl Router {
    pub(super) fn on_report(&mut self, now: Instant, shard: ShardId, report: Report) {
        match report {
            Report::Route { target, frame } => {
                self.route(now, Origin::Nobody, target, frame, Some(shard), true)
            }
            Report::Delivered { req, count } => self.answer(now, req.0, |p| p.delivered += count),
            Report::Found { req, found } => {
                let me = self.config.node_id.clone();
                self.answer(now, req.0, |p| {
                    if found {
                        p.online = Some(me);
                    }
                });
            }
            Report::Recover { conn, room, since } => self.recover(now, conn, room, since),
            Report::RoomActive(room) => {
                let shards = self.room_shards.entry(room.clone()).or_default();
                let first = shards.is_empty();
                shards.insert(shard.0);
                if first {
                    self.room_interest(room, true);
                }
            }
            Report::RoomIdle(room) => {
                let Some(shards) = self.room_shards.get_mut(room.as_str()) else {
                    return;
                };
                shards.remove(&shard.0);
                if shards.is_empty() {
                    self.room_shards.remove(room.as_str());
                    self.tracks.remove(room.as_str());
                    self.room_interest(room, false);
                }
            }
            Report::UserActive(user) => {
                self.user_shards.entry(user).or_default().insert(shard.0);
            }
            Report::UserIdle(user) => {
                if let Some(shards) = self.user_shards.get_mut(user.as_str()) {
                    shards.remove(&shard.0);
                    if shards.is_empty() {
                        self.user_shards.remove(user.as_str());
                    }
                }
            }
            Report::MemberJoined { room, member } => self.member_joined(now, room, member),
            Report::MemberLeft { room, client } => self.member_left(now, room, client),
            Report::ClientUp { client, user, .. } => {
                if self.is_clustered() {
                    self.registry(RegistryCommand::Register { client, user });
                }
            }
            Report::ClientDown { client, .. } => {
                if self.is_clustered() {
                    self.registry(RegistryCommand::Unregister { client });
                }
            }
        }
    }
}
