//! Operations on every connection of a user, on this node and across the cluster.

use std::time::Instant;

use super::{Origin, PeerMessage, RemoteOp, Router, Stage};
use crate::ids::{NodeId, RequestId, UserId};
use crate::shard::{Input as ShardInput, Target};

impl Router {
    /// Closes every connection of `user` on this node's shards and (when `forward`) asks every
    /// peer to do the same; answers with the count closed.
    pub(super) fn close_user(
        &mut self,
        now: Instant,
        origin: Origin,
        user: UserId,
        code: u16,
        forward: bool,
    ) {
        let shards: Vec<u16> = self
            .user_shards
            .get(user.as_str())
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let peers: Vec<NodeId> = if forward && self.is_clustered() {
            self.peers.iter().cloned().collect()
        } else {
            Vec::new()
        };
        let waiting = (shards.len() + peers.len()) as u32;
        let id = self.start(now, origin, Stage::Count, waiting, !peers.is_empty());
        for shard in shards {
            self.send_shard(
                shard,
                ShardInput::Disconnect {
                    target: Target::User(user.clone()),
                    code,
                    reason: "disconnected by the server".into(),
                    req: Some(RequestId(id)),
                },
            );
        }
        for node in peers {
            let op = RemoteOp::DisconnectUser {
                user: user.clone(),
                code,
            };
            self.send_peer(node, PeerMessage::Request { id: Some(id), op });
        }
        if waiting == 0 {
            self.advance(now, id);
        }
    }
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
