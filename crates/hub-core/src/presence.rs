//! Presence: who is in each room, on this node and in the whole cluster, with the counts kept
//! as members come and go.
//!
//! The router keeps one [`PresenceIndex`]. For every room it holds the members of each node
//! that has some (this node's from its shards' reports, other nodes' from their peer
//! messages), and beside them the counts: connections in the room, and connections per user,
//! cluster-wide and per node. A count is a map length or a counter: O(1) whatever the room's
//! size. A listing walks the room's members.
//!
//! Invariants, checked by the tests:
//! - a room exists only while it has a member, and a node's group in a room only while that
//!   node has a member there;
//! - a room's `clients` is the sum of its groups' member counts; `users[u]` is the number of
//!   the room's members with user `u` (over every node), and a group's `users[u]` the same
//!   within the group; a user with no member is in neither map;
//! - `node_rooms[n]` holds exactly the rooms where node `n` has a group;
//! - `digests[n]` is the [`PresenceDigest`] of node `n`'s (room, member) entries.
//!
//! A member without a user id counts as a connection, not as a user.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::hash::{keyed_map, KeyedMap, KeyedState};
use crate::ids::{ClientId, NodeId, RoomName, UserId};

/// One connection in a room, as presence shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The connection's client id.
    pub client: ClientId,
    /// The member's user id: the connection's, or the one given when it joined.
    pub user: Option<UserId>,
    /// Opaque per-member information, JSON text (Pusher's `user_info`).
    pub info: Option<Arc<str>>,
}

/// How many are in a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceCount {
    /// Connections in the room.
    pub clients: u64,
    /// Distinct user ids among them.
    pub users: u64,
}

/// Whether a presence event concerns this node's members or the whole cluster's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// This node's own members.
    Node,
    /// Every node's members (on a standalone node, the same as `Node`).
    Cluster,
}

/// What changed in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    /// The room got its first member.
    Occupied,
    /// The room's last member left.
    Vacated,
    /// A user's first connection joined the room.
    UserJoined {
        /// The user.
        user: UserId,
        /// The joining member's information.
        info: Option<Arc<str>>,
    },
    /// A user's last connection left the room.
    UserLeft {
        /// The user.
        user: UserId,
    },
}

/// A presence event, for the application (Pusher's member and channel events, webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEvent {
    /// The room.
    pub room: RoomName,
    /// Whether it is this node's view or the cluster's.
    pub scope: Scope,
    /// What changed.
    pub change: PresenceChange,
    /// Whether this node is the one to act on it for the whole cluster (a webhook, say):
    /// always for [`Scope::Node`]; for [`Scope::Cluster`], when this node's own member made
    /// the change, or when a lost node's members left and this node has the lowest id of the
    /// live nodes. Every node sees every cluster event; about one announces it.
    pub announce: bool,
}

/// An order-independent digest of a node's presence entries: a count and the XOR of
/// [`member_hash`] over them. Kept as entries come and go; nodes compare them to heal a lost
/// update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PresenceDigest {
    /// How many (room, member) entries.
    pub count: u64,
    /// The XOR of their hashes.
    pub hash: u64,
}

impl PresenceDigest {
    fn toggle(&mut self, room: &str, member: &Member, add: bool) {
        self.count = if add {
            self.count.wrapping_add(1)
        } else {
            self.count.wrapping_sub(1)
        };
        self.hash ^= member_hash(room, member);
    }
}

/// A (room, member) entry's 64-bit hash, the same on every node and build (FNV-1a over the
/// fields with a separator no UTF-8 text holds, then the splitmix64 finalizer).
pub fn member_hash(room: &str, member: &Member) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let fields = [
        Some(room),
        Some(member.client.as_str()),
        member.user.as_ref().map(|u| u.as_str()),
        member.info.as_deref(),
    ];
    for field in fields {
        let bytes = field.map_or(&[0xfe][..], str::as_bytes);
        for &byte in bytes.iter().chain([0xff].iter()) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// One node's members of one room.
#[derive(Debug)]
struct Group {
    members: KeyedMap<ClientId, Member>,
    users: KeyedMap<UserId, u32>,
}

/// One room's members, by node, with the cluster-wide counts.
#[derive(Debug)]
struct RoomPresence {
    groups: BTreeMap<NodeId, Group>,
    clients: u64,
    users: KeyedMap<UserId, u32>,
}

/// A change the index made, before the router turns it into events.
pub type Transition = (Scope, PresenceChange);

/// Who is in each room, on every node this node knows of. See the module docs.
#[derive(Debug)]
pub struct PresenceIndex {
    me: NodeId,
    keys: KeyedState,
    rooms: KeyedMap<RoomName, RoomPresence>,
    node_rooms: KeyedMap<NodeId, BTreeSet<RoomName>>,
    digests: KeyedMap<NodeId, PresenceDigest>,
}

/// Adds one to `map[key]`; whether it was the first.
fn increment(map: &mut KeyedMap<UserId, u32>, key: &UserId) -> bool {
    let n = map.entry(key.clone()).or_insert(0);
    *n += 1;
    *n == 1
}

/// Takes one from `map[key]`; whether it was the last.
fn decrement(map: &mut KeyedMap<UserId, u32>, key: &str) -> bool {
    match map.get_mut(key) {
        Some(n) if *n > 1 => {
            *n -= 1;
            false
        }
        Some(_) => {
            map.remove(key);
            true
        }
        None => false,
    }
}

impl PresenceIndex {
    /// An empty index for node `me`, hashing names with keys drawn from `seed`.
    pub fn new(me: NodeId, seed: &crate::Seed) -> Self {
        Self::with_keys(me, &KeyedState::new(seed))
    }

    /// An empty index for node `me`, hashing names with `keys`.
    pub(crate) fn with_keys(me: NodeId, keys: &KeyedState) -> Self {
        Self {
            me,
            keys: keys.clone(),
            rooms: keyed_map(keys),
            node_rooms: keyed_map(keys),
            digests: keyed_map(keys),
        }
    }

    /// This node's id.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// Cluster-wide counts of `room`; O(1).
    pub fn count(&self, room: &str) -> PresenceCount {
        self.rooms
            .get(room)
            .map_or_else(PresenceCount::default, |r| PresenceCount {
                clients: r.clients,
                users: r.users.len() as u64,
            })
    }

    /// Counts of `node`'s members of `room`; O(1).
    pub fn node_count(&self, room: &str, node: &NodeId) -> PresenceCount {
        self.rooms
            .get(room)
            .and_then(|r| r.groups.get(node))
            .map_or_else(PresenceCount::default, |g| PresenceCount {
                clients: g.members.len() as u64,
                users: g.users.len() as u64,
            })
    }

    /// Every member of `room` on every node, sorted by client id (then node).
    pub fn members(&self, room: &str) -> Vec<(NodeId, Member)> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        let mut out: Vec<(NodeId, Member)> = r
            .groups
            .iter()
            .flat_map(|(node, g)| g.members.values().map(move |m| (node.clone(), m.clone())))
            .collect();
        out.sort_by(|a, b| (&a.1.client, &a.0).cmp(&(&b.1.client, &b.0)));
        out
    }

    /// The distinct users of `room`, sorted, each with the information of one of its members
    /// (the first by client id that has some).
    pub fn users(&self, room: &str) -> Vec<(UserId, Option<Arc<str>>)> {
        let mut by_user: BTreeMap<UserId, (ClientId, Option<Arc<str>>)> = BTreeMap::new();
        for (_, m) in self.members(room) {
            let Some(user) = m.user else { continue };
            let slot = by_user.entry(user).or_insert((m.client.clone(), None));
            if slot.1.is_none() {
                slot.1 = m.info;
            }
        }
        by_user.into_iter().map(|(u, (_, i))| (u, i)).collect()
    }

    /// Rooms with at least one member anywhere; O(1).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The rooms with members anywhere whose names start with `prefix`, sorted, with their
    /// cluster-wide counts; O(rooms).
    pub fn rooms_with_prefix(&self, prefix: &str) -> Vec<(RoomName, PresenceCount)> {
        let mut out: Vec<(RoomName, PresenceCount)> = self
            .rooms
            .iter()
            .filter(|(name, _)| name.as_str().starts_with(prefix))
            .map(|(name, r)| {
                let count = PresenceCount {
                    clients: r.clients,
                    users: r.users.len() as u64,
                };
                (name.clone(), count)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Names of the rooms with members anywhere, sorted.
    pub fn rooms(&self) -> Vec<RoomName> {
        let mut names: Vec<RoomName> = self.rooms.keys().cloned().collect();
        names.sort();
        names
    }

    /// The digest of `node`'s entries.
    pub fn digest(&self, node: &NodeId) -> PresenceDigest {
        self.digests.get(node).copied().unwrap_or_default()
    }

    /// Every (room, member) entry of `node`, sorted by room.
    pub fn node_entries(&self, node: &NodeId) -> Vec<(RoomName, Member)> {
        let mut out = Vec::new();
        for room in self.node_rooms.get(node).into_iter().flatten() {
            if let Some(g) = self
                .rooms
                .get(room.as_str())
                .and_then(|r| r.groups.get(node))
            {
                let mut members: Vec<&Member> = g.members.values().collect();
                members.sort_by(|a, b| a.client.cmp(&b.client));
                out.extend(members.into_iter().map(|m| (room.clone(), m.clone())));
            }
        }
        out
    }

    /// Nodes that have members anywhere, sorted.
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self.node_rooms.keys().cloned().collect();
        nodes.sort();
        nodes
    }

    /// Adds `member` of `node` to `room` (replacing an entry with its client id there) and
    /// appends what changed to `out`; false when the same entry was there already.
    pub fn join(
        &mut self,
        node: &NodeId,
        room: &RoomName,
        member: Member,
        out: &mut Vec<Transition>,
    ) -> bool {
        let present = self
            .rooms
            .get(room.as_str())
            .and_then(|r| r.groups.get(node))
            .and_then(|g| g.members.get(member.client.as_str()));
        match present {
            Some(old) if *old == member => return false,
            Some(_) => {
                let client = member.client.clone();
                self.leave(node, room.as_str(), client.as_str(), out);
            }
            None => {}
        }
        let mine = *node == self.me;
        let keys = &self.keys;
        let entry = self.rooms.entry(room.clone()).or_insert_with(|| {
            out.push((Scope::Cluster, PresenceChange::Occupied));
            RoomPresence {
                groups: BTreeMap::new(),
                clients: 0,
                users: keyed_map(keys),
            }
        });
        let group = entry.groups.entry(node.clone()).or_insert_with(|| {
            if mine {
                out.push((Scope::Node, PresenceChange::Occupied));
            }
            Group {
                members: keyed_map(keys),
                users: keyed_map(keys),
            }
        });
        if group.members.is_empty() {
            self.node_rooms
                .entry(node.clone())
                .or_default()
                .insert(room.clone());
        }
        if let Some(user) = &member.user {
            let info = member.info.clone();
            if increment(&mut group.users, user) && mine {
                let change = PresenceChange::UserJoined {
                    user: user.clone(),
                    info: info.clone(),
                };
                out.push((Scope::Node, change));
            }
            if increment(&mut entry.users, user) {
                let change = PresenceChange::UserJoined {
                    user: user.clone(),
                    info,
                };
                out.push((Scope::Cluster, change));
            }
        }
        entry.clients += 1;
        self.digests
            .entry(node.clone())
            .or_default()
            .toggle(room.as_str(), &member, true);
        group.members.insert(member.client.clone(), member);
        true
    }

    /// Removes `client` of `node` from `room`, appending what changed to `out`; the member
    /// it was, if it was one.
    pub fn leave(
        &mut self,
        node: &NodeId,
        room: &str,
        client: &str,
        out: &mut Vec<Transition>,
    ) -> Option<Member> {
        let mine = *node == self.me;
        let entry = self.rooms.get_mut(room)?;
        let group = entry.groups.get_mut(node)?;
        let member = group.members.remove(client)?;
        if let Some(user) = &member.user {
            if decrement(&mut group.users, user.as_str()) && mine {
                out.push((Scope::Node, PresenceChange::UserLeft { user: user.clone() }));
            }
            if decrement(&mut entry.users, user.as_str()) {
                out.push((
                    Scope::Cluster,
                    PresenceChange::UserLeft { user: user.clone() },
                ));
            }
        }
        entry.clients -= 1;
        if let Some(d) = self.digests.get_mut(node) {
            d.toggle(room, &member, false);
            if d.count == 0 {
                self.digests.remove(node);
            }
        }
        if group.members.is_empty() {
            entry.groups.remove(node);
            if mine {
                out.push((Scope::Node, PresenceChange::Vacated));
            }
            if let Some(rooms) = self.node_rooms.get_mut(node) {
                rooms.remove(room);
                if rooms.is_empty() {
                    self.node_rooms.remove(node);
                }
            }
        }
        if entry.groups.is_empty() {
            self.rooms.remove(room);
            out.push((Scope::Cluster, PresenceChange::Vacated));
        }
        Some(member)
    }

    /// Removes every member of `node`, calling `changed` with each room and what changed
    /// there.
    pub fn remove_node(&mut self, node: &NodeId, mut changed: impl FnMut(RoomName, Transition)) {
        let Some(rooms) = self.node_rooms.get(node).cloned() else {
            return;
        };
        let mut out = Vec::new();
        for room in rooms {
            let clients: Vec<ClientId> = self
                .rooms
                .get(room.as_str())
                .and_then(|r| r.groups.get(node))
                .map(|g| g.members.keys().cloned().collect())
                .unwrap_or_default();
            let mut clients = clients;
            clients.sort();
            for client in clients {
                self.leave(node, room.as_str(), client.as_str(), &mut out);
                for t in out.drain(..) {
                    changed(room.clone(), t);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "presence_tests.rs"]
mod tests;
