//! Room history: which rooms keep it (rules), and the in-memory log of a node.
//!
//! A room matched by a [`HistoryRule`] keeps its last `max_len` messages, each for at most
//! `ttl`. Every message of such a room gets the next **offset** of the room (1, 2, 3, ...:
//! consecutive, so a client that sees offset N+2 after N knows it missed one) and carries the
//! room's **epoch**, a string that names one unbroken sequence of offsets: when a room's
//! history is lost (the node restarted, or the room was idle past its TTL and forgotten),
//! its next message starts a new epoch at offset 1.
//!
//! Who assigns offsets: the node router is the one sequencer of a node. A history room's
//! publish (from a client or the producer API) is not delivered by the shard it arrived on;
//! it goes to the router, which appends it to [`MemoryHistory`] (the offset, the finished
//! frame with `offset` and `epoch`), then sends that frame to every shard with members. The
//! router feeds each shard in order, so every member sees a room's offsets in order. In a
//! cluster the store that numbers messages is Redis, shared by every node, and each router
//! orders what its bus subscription brings (see the router's `shared` module).
//!
//! Recovery: a join of a history room holds the room's live messages for that connection
//! (the shard keeps them aside) and asks the router for the room's position and, with
//! `since`, the messages after it. The router answers from the log in the order of its
//! inputs: everything appended before the answer is in the replay (or counted in the
//! position), everything after reaches the shard after the answer. The shard then sends
//! `joined`, the replay, and the held messages whose offsets the replay did not cover: no
//! gap, no duplicate. Recovery is all or nothing: when the epoch differs or the oldest kept
//! message is past `since + 1`, nothing is replayed and `recovered` is false.
//!
//! Invariants:
//! - a room's offsets are consecutive within an epoch, starting at 1;
//! - a log holds at most `max_len` entries, and none older than `ttl` once it is read or
//!   written (expired entries are dropped lazily, and idle rooms by [`MemoryHistory::sweep`]);
//! - a replay is the complete run `since+1 ..= offset`, or nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_core::Rng;

use crate::hash::{keyed_map, KeyedMap, KeyedState};
use crate::ids::RoomName;
use crate::protocol;
use crate::seed::Seed;

/// The ChaCha20 stream epochs are drawn from.
const EPOCH_STREAM: u64 = u64::MAX - 1;

/// Which rooms keep history, and how much: `PATTERN=N/TTL` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRule {
    /// The room name, or with `wildcard` its prefix.
    prefix: String,
    /// Whether the pattern ended in `*` (any suffix, the empty one included).
    wildcard: bool,
    /// Most messages kept.
    pub max_len: usize,
    /// Longest a message is kept.
    pub ttl: Duration,
}

impl HistoryRule {
    /// A rule for rooms named `pattern` (a trailing `*` matches any suffix). `None` when the
    /// pattern is empty, has a `*` elsewhere, or `max_len` or `ttl` is zero.
    pub fn new(pattern: &str, max_len: usize, ttl: Duration) -> Option<Self> {
        let (prefix, wildcard) = match pattern.strip_suffix('*') {
            Some(prefix) => (prefix, true),
            None => (pattern, false),
        };
        if pattern.is_empty() || prefix.contains('*') || max_len == 0 || ttl.is_zero() {
            return None;
        }
        Some(Self {
            prefix: prefix.to_owned(),
            wildcard,
            max_len,
            ttl,
        })
    }

    /// The pattern as given.
    pub fn pattern(&self) -> String {
        if self.wildcard {
            format!("{}*", self.prefix)
        } else {
            self.prefix.clone()
        }
    }

    /// Whether `room` is one of this rule's rooms.
    pub fn matches(&self, room: &str) -> bool {
        if self.wildcard {
            room.starts_with(&self.prefix)
        } else {
            room == self.prefix
        }
    }
}

/// The history rules of a node; the first rule that matches a room decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryRules(Arc<[HistoryRule]>);

impl HistoryRules {
    /// These rules, tried in order.
    pub fn new(rules: Vec<HistoryRule>) -> Self {
        Self(rules.into())
    }

    /// Whether no room keeps history (O(1): the check on every publish).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rule of `room`, if it keeps history. Rooms of the reserved namespace (Pusher
    /// channels, [`crate::ids::is_reserved_room`]) never do: their frames are not `message`s.
    pub fn rule_for(&self, room: &str) -> Option<&HistoryRule> {
        if crate::ids::is_reserved_room(room) {
            return None;
        }
        self.0.iter().find(|r| r.matches(room))
    }

    /// Whether `room` keeps history.
    pub fn covers(&self, room: &str) -> bool {
        !self.0.is_empty() && self.rule_for(room).is_some()
    }
}

/// A position in a room's history: the last offset assigned, in this epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The last offset assigned (0 before the first message).
    pub offset: u64,
    /// The epoch the offsets belong to.
    pub epoch: Arc<str>,
}

/// Where a client or a producer left off: `since` of a join or of a history query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The last offset seen.
    pub offset: u64,
    /// The epoch it belongs to.
    pub epoch: String,
}

/// One kept message, for the producer API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    /// Its offset.
    pub offset: u64,
    /// Its payload, JSON text (a slice of the kept frame).
    pub data: Bytes,
}

/// The answer to a history query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The room's position now.
    pub position: Position,
    /// Whether `messages` start right after `since` (always true without `since`).
    pub recovered: bool,
    /// The messages, oldest first.
    pub messages: Vec<HistoryMessage>,
}

/// What a join of a history room gets: the position and, for a join with `since`, whether
/// the replay is complete and its frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The room's position now.
    pub position: Position,
    /// `Some` for a join with `since`: whether `frames` are exactly what was missed.
    pub recovered: Option<bool>,
    /// The `message` frames missed, oldest first (empty unless recovered).
    pub frames: Vec<Bytes>,
}

#[derive(Debug)]
struct Entry {
    offset: u64,
    at: Instant,
    frame: Bytes,
    data: Bytes,
}

#[derive(Debug)]
struct RoomLog {
    epoch: Arc<str>,
    offset: u64,
    entries: VecDeque<Entry>,
    max_len: usize,
    ttl: Duration,
    /// The last append or read.
    used: Instant,
}

impl RoomLog {
    fn trim(&mut self, now: Instant) {
        while self.entries.len() > self.max_len {
            self.entries.pop_front();
        }
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) >= self.ttl)
        {
            self.entries.pop_front();
        }
    }

    fn position(&self) -> Position {
        Position {
            offset: self.offset,
            epoch: self.epoch.clone(),
        }
    }

    /// The entries after `since`, when all of them are kept.
    fn after(&self, since: &Since) -> Option<impl Iterator<Item = &Entry>> {
        if *since.epoch != *self.epoch || since.offset > self.offset {
            return None;
        }
        if since.offset == self.offset {
            return Some(self.entries.range(self.entries.len()..));
        }
        let first = self.entries.front()?.offset;
        if first > since.offset + 1 {
            return None;
        }
        let skip = (since.offset + 1 - first) as usize;
        Some(self.entries.range(skip..))
    }
}

/// The history of a node's rooms, in memory.
#[derive(Debug)]
pub struct MemoryHistory {
    rules: HistoryRules,
    rooms: KeyedMap<RoomName, RoomLog>,
    epochs: chacha20::ChaCha20Rng,
}

impl MemoryHistory {
    /// An empty history for the rooms `rules` cover.
    pub fn new(rules: HistoryRules, seed: &Seed) -> Self {
        Self {
            rules,
            rooms: keyed_map(&KeyedState::new(seed)),
            epochs: seed.stream(EPOCH_STREAM),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &HistoryRules {
        &self.rules
    }

    /// Rooms with a log.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The log of `room`, created (with a new epoch) when it has none; `None` when the room
    /// keeps no history.
    fn log(&mut self, now: Instant, room: &RoomName) -> Option<&mut RoomLog> {
        let rule = self.rules.rule_for(room.as_str())?;
        let (max_len, ttl) = (rule.max_len, rule.ttl);
        if !self.rooms.contains_key(room.as_str()) {
            let epoch: Arc<str> = format!("{:016x}", self.epochs.next_u64()).into();
            self.rooms.insert(
                room.clone(),
                RoomLog {
                    epoch,
                    offset: 0,
                    entries: VecDeque::new(),
                    max_len,
                    ttl,
                    used: now,
                },
            );
        }
        let log = self.rooms.get_mut(room.as_str())?;
        log.used = now;
        log.trim(now);
        Some(log)
    }

    /// Appends a message to `room`: its offset, and its `message` frame with the offset and
    /// the epoch, to be sent to every member. `None` when the room keeps no history.
    pub fn append(
        &mut self,
        now: Instant,
        room: &RoomName,
        from: Option<&str>,
        data: &str,
    ) -> Option<(u64, Bytes)> {
        let log = self.log(now, room)?;
        log.offset += 1;
        let offset = log.offset;
        let frame = protocol::sequenced_message(room.as_str(), from, offset, &log.epoch, data);
        // The data is the frame's last bytes but its closing brace.
        let end = frame.len() - 1;
        let data = frame.slice(end - data.len()..end);
        log.entries.push_back(Entry {
            offset,
            at: now,
            frame: frame.clone(),
            data,
        });
        log.trim(now);
        Some((offset, frame))
    }

    /// The position of `room`; `None` when the room keeps no history.
    pub fn position(&mut self, now: Instant, room: &RoomName) -> Option<Position> {
        self.log(now, room).map(|log| log.position())
    }

    /// What a join of `room` gets; `None` when the room keeps no history.
    pub fn recover(
        &mut self,
        now: Instant,
        room: &RoomName,
        since: Option<&Since>,
    ) -> Option<Recovery> {
        let log = self.log(now, room)?;
        let position = log.position();
        let Some(since) = since else {
            return Some(Recovery {
                position,
                recovered: None,
                frames: Vec::new(),
            });
        };
        Some(match log.after(since) {
            Some(entries) => Recovery {
                position,
                recovered: Some(true),
                frames: entries.map(|e| e.frame.clone()).collect(),
            },
            None => Recovery {
                position,
                recovered: Some(false),
                frames: Vec::new(),
            },
        })
    }

    /// The messages of `room` after `since` (at most `limit`, the oldest first), or without
    /// `since` the newest `limit` kept; `None` when the room keeps no history. With `since`,
    /// `recovered` is false (and no message returned) when the epoch differs or messages
    /// after `since` are no longer kept.
    pub fn read(
        &mut self,
        now: Instant,
        room: &RoomName,
        since: Option<&Since>,
        limit: usize,
    ) -> Option<HistoryPage> {
        let log = self.log(now, room)?;
        let position = log.position();
        let message = |e: &Entry| HistoryMessage {
            offset: e.offset,
            data: e.data.clone(),
        };
        let (recovered, messages) = match since {
            None => {
                let skip = log.entries.len().saturating_sub(limit);
                (true, log.entries.range(skip..).map(message).collect())
            }
            Some(since) => match log.after(since) {
                Some(entries) => (true, entries.take(limit).map(message).collect()),
                None => (false, Vec::new()),
            },
        };
        Some(HistoryPage {
            position,
            recovered,
            messages,
        })
    }

    /// Forgets the rooms whose messages have all expired, that nobody used for their TTL
    /// and that `keep` does not name (rooms with members here): their next message starts a
    /// new epoch. O(rooms); call it now and then.
    pub fn sweep(&mut self, now: Instant, keep: impl Fn(&str) -> bool) {
        self.rooms.retain(|room, log| {
            log.trim(now);
            !log.entries.is_empty()
                || now.saturating_duration_since(log.used) < log.ttl
                || keep(room.as_str())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(pattern: &str, n: usize, ttl: u64) -> HistoryRules {
        HistoryRules::new(vec![
            HistoryRule::new(pattern, n, Duration::from_secs(ttl)).expect("rule")
        ])
    }

    fn data_of(frame: &Bytes) -> serde_json::Value {
        serde_json::from_slice(&crate::frame::payload_of(frame)).expect("json")
    }

    #[test]
    fn patterns_match_names_or_prefixes() {
        let r = HistoryRule::new("chat:*", 1, Duration::from_secs(1)).expect("rule");
        assert!(r.matches("chat:") && r.matches("chat:a") && !r.matches("cha"));
        assert_eq!(r.pattern(), "chat:*");
        let r = HistoryRule::new("news", 1, Duration::from_secs(1)).expect("rule");
        assert!(r.matches("news") && !r.matches("news2"));
        assert!(HistoryRule::new("", 1, Duration::from_secs(1)).is_none());
        assert!(HistoryRule::new("a*b", 1, Duration::from_secs(1)).is_none());
        assert!(HistoryRule::new("a", 0, Duration::from_secs(1)).is_none());
        assert!(HistoryRule::new("a", 1, Duration::ZERO).is_none());
        assert!(HistoryRule::new("*", 1, Duration::from_secs(1)).is_some_and(|r| r.matches("x")));
        assert!(!HistoryRules::default().covers("x"));
        let all = HistoryRules::new(vec![
            HistoryRule::new("*", 1, Duration::from_secs(1)).expect("rule")
        ]);
        assert!(all.covers("x") && !all.covers("\u{1f}pusher"));
    }

    #[test]
    fn offsets_are_consecutive_and_recovery_is_all_or_nothing() {
        let now = Instant::now();
        let mut h = MemoryHistory::new(rules("r*", 3, 60), &Seed::from_u64(1));
        let room = RoomName::from("r1");
        assert!(h.append(now, &RoomName::from("x"), None, "1").is_none());
        let frames: Vec<Bytes> = (1..=5)
            .map(|i| {
                h.append(now, &room, Some("c"), &i.to_string())
                    .expect("kept")
                    .1
            })
            .collect();
        for (i, f) in frames.iter().enumerate() {
            let v = data_of(f);
            assert_eq!(v["offset"], i as u64 + 1);
            assert_eq!(v["data"], i as u64 + 1);
            assert_eq!(v["room"], "r1");
            assert_eq!(v["from"], "c");
        }
        let pos = h.position(now, &room).expect("kept");
        assert_eq!(pos.offset, 5);
        let epoch = pos.epoch.to_string();
        let since = |offset| Since {
            offset,
            epoch: epoch.clone(),
        };
        // Offsets 3..=5 are kept: since 2 and later recover, since 1 does not.
        let r = h.recover(now, &room, Some(&since(2))).expect("kept");
        assert_eq!(r.recovered, Some(true));
        assert_eq!(r.frames, frames[2..].to_vec());
        let r = h.recover(now, &room, Some(&since(5))).expect("kept");
        assert_eq!((r.recovered, r.frames.len()), (Some(true), 0));
        for bad in [
            since(1),
            since(6),
            Since {
                offset: 2,
                epoch: "other".into(),
            },
        ] {
            let r = h.recover(now, &room, Some(&bad)).expect("kept");
            assert_eq!((r.recovered, r.frames.len()), (Some(false), 0), "{bad:?}");
        }
        assert_eq!(h.recover(now, &room, None).expect("kept").recovered, None);
        let page = h.read(now, &room, Some(&since(2)), 2).expect("kept");
        assert!(page.recovered);
        let offsets: Vec<u64> = page.messages.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, [3, 4]);
        assert_eq!(&page.messages[0].data[..], b"3");
        let page = h.read(now, &room, None, 2).expect("kept");
        let offsets: Vec<u64> = page.messages.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, [4, 5]);
    }

    #[test]
    fn expired_messages_go_and_idle_rooms_get_a_new_epoch() {
        let t0 = Instant::now();
        let mut h = MemoryHistory::new(rules("r", 10, 10), &Seed::from_u64(1));
        let room = RoomName::from("r");
        h.append(t0, &room, None, "1");
        let epoch = h.position(t0, &room).expect("kept").epoch;
        let later = t0 + Duration::from_secs(11);
        let since = Since {
            offset: 0,
            epoch: epoch.to_string(),
        };
        let r = h.recover(later, &room, Some(&since)).expect("kept");
        assert_eq!(r.recovered, Some(false), "offset 1 expired");
        h.sweep(later + Duration::from_secs(11), |_| true);
        assert_eq!(h.room_count(), 1, "kept while it has members");
        h.sweep(later + Duration::from_secs(11), |_| false);
        assert_eq!(h.room_count(), 0);
        let pos = h.position(later, &room).expect("kept");
        assert_eq!(pos.offset, 0);
        assert_ne!(pos.epoch, epoch);
    }
}
