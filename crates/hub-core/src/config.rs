//! Configuration of a shard and a node, with documented defaults and validation.

use std::time::Duration;

use crate::history::HistoryRules;
use crate::ids::NodeId;
use crate::seed::Seed;

/// What a shard does when a connection's send queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Close the connection with 4008 "slow consumer" (the default).
    #[default]
    Close,
    /// Drop the oldest queued frames until the new one fits, and count the drops.
    DropOldest,
}

/// How a shard treats text frames from clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientProtocol {
    /// The JSON protocol of PROTOCOL.md: join, leave, publish, emit, broadcast, ping.
    #[default]
    Json,
    /// No protocol: every message becomes an [`Event::Message`](crate::Event::Message) for the
    /// embedding application to answer.
    Raw,
    /// The Pusher Channels protocol, spoken by a layer above the shard: text messages become
    /// [`Event::Message`](crate::Event::Message)s for it (binary frames close with 1003), no
    /// `welcome` is sent, generated client ids are Pusher socket ids (`"N.M"`), and the
    /// shard's own close codes are Pusher's ([`ClientProtocol::close_code`]).
    Pusher,
}

impl ClientProtocol {
    /// The close code a connection of this protocol gets for the shard's `code`: Pusher
    /// clients read 4000-4099 as "do not reconnect", so a heartbeat timeout is 4201 (pong
    /// not received), a slow consumer 4100 (over capacity: back off) and a replaced
    /// connection 4200 (reconnect); other protocols keep Hubbub's codes.
    pub fn close_code(self, code: u16) -> u16 {
        use crate::frame::close_code as c;
        match (self, code) {
            (Self::Pusher, c::HEARTBEAT_TIMEOUT) => 4201,
            (Self::Pusher, c::SLOW_CONSUMER) => 4100,
            (Self::Pusher, c::REPLACED) => 4200,
            _ => code,
        }
    }
}

/// Settings shared by every shard of a node. `Config::default()` is a safe single node.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's name, sent to clients in `welcome` and used in the cluster. Default `"node"`.
    pub node_id: NodeId,
    /// Number of shards on the node. Default 1; the runtimes default to one per core.
    pub shard_count: u16,
    /// How often the server pings each connection. Default 25 s.
    pub ping_interval: Duration,
    /// How long after a ping a connection may stay silent before it is closed. Default 10 s.
    pub pong_timeout: Duration,
    /// Largest client message accepted, in bytes. Default 64 KiB.
    pub max_message_size: usize,
    /// Bound of a connection's send queue in bytes. Default 1 MiB.
    pub send_queue_bytes: usize,
    /// Bound of a connection's send queue in frames. Default 1,024.
    pub send_queue_messages: usize,
    /// What happens when a send queue is full. Default [`OverflowPolicy::Close`].
    pub overflow_policy: OverflowPolicy,
    /// Most frames handed to the runtime in one write. Default 64.
    pub batch_frames: usize,
    /// Most bytes handed to the runtime in one write (a single larger frame still goes alone).
    /// Default 64 KiB.
    pub batch_bytes: usize,
    /// How long a closing connection may take to flush before it is aborted. Default 5 s.
    pub drain_timeout: Duration,
    /// Most rooms one connection may be in. Default 128.
    pub max_rooms_per_connection: usize,
    /// Longest client id, user id or room name, in bytes. Default 256.
    pub max_name_len: usize,
    /// Whether clients may send `{"type":"broadcast"}`. Default false.
    pub allow_client_broadcast: bool,
    /// How client text frames are interpreted. Default [`ClientProtocol::Json`].
    pub client_protocol: ClientProtocol,
    /// Secret seed of generated client ids and of the keys of name-keyed maps; runtimes pass
    /// 32 bytes from the OS's CSPRNG, tests a fixed seed. Default: a fixed, public seed.
    pub seed: Seed,
    /// The rooms that keep history (their publishes go through the router, which numbers
    /// them; their joins are answered with `joined`). The router's
    /// [`NodeConfig::history`](crate::NodeConfig::history) must be the same. Default: none.
    pub history: HistoryRules,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: NodeId::from("node"),
            shard_count: 1,
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(10),
            max_message_size: 64 * 1024,
            send_queue_bytes: 1024 * 1024,
            send_queue_messages: 1024,
            overflow_policy: OverflowPolicy::Close,
            batch_frames: 64,
            batch_bytes: 64 * 1024,
            drain_timeout: Duration::from_secs(5),
            max_rooms_per_connection: 128,
            max_name_len: 256,
            allow_client_broadcast: false,
            client_protocol: ClientProtocol::Json,
            seed: Seed::default(),
            history: HistoryRules::default(),
        }
    }
}

/// A setting that makes no sense, named so the user can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {setting}: {problem}")]
pub struct ConfigError {
    /// The setting's name, as the command line spells it.
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl Config {
    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(setting: &'static str, problem: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError {
                setting,
                problem: problem.into(),
            })
        }
        if self.node_id.as_str().is_empty() || self.node_id.as_str().len() > self.max_name_len {
            return bad("node-id", "must be 1 to max-name-len bytes long");
        }
        if self.shard_count == 0 {
            return bad("shards", "must be at least 1");
        }
        if self.ping_interval < Duration::from_millis(10) {
            return bad("ping-interval", "must be at least 10ms");
        }
        if self.pong_timeout < Duration::from_millis(10) {
            return bad("pong-timeout", "must be at least 10ms");
        }
        if self.max_message_size < 128 {
            return bad("max-message-size", "must be at least 128 bytes");
        }
        if self.max_message_size > 256 * 1024 * 1024 {
            return bad("max-message-size", "must be at most 256MiB");
        }
        if self.send_queue_bytes < self.max_message_size.min(64 * 1024) {
            return bad(
                "send-queue-bytes",
                "must hold at least one message (max-message-size, or 64KiB)",
            );
        }
        if self.send_queue_messages < 2 {
            return bad("send-queue-messages", "must be at least 2");
        }
        if self.batch_frames == 0 || self.batch_bytes == 0 {
            return bad("batch", "frames and bytes per write must be at least 1");
        }
        if self.drain_timeout.is_zero() {
            return bad("drain-timeout", "must be above zero");
        }
        if self.max_rooms_per_connection == 0 {
            return bad("max-rooms-per-connection", "must be at least 1");
        }
        if self.max_name_len == 0 {
            return bad("max-name-len", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = Config::default();
        c.validate().expect("defaults validate");
        assert_eq!(c.ping_interval, Duration::from_secs(25));
        assert_eq!(c.pong_timeout, Duration::from_secs(10));
        assert_eq!(c.max_message_size, 65536);
        assert_eq!(c.send_queue_bytes, 1 << 20);
        assert_eq!(c.send_queue_messages, 1024);
        assert_eq!(c.overflow_policy, OverflowPolicy::Close);
    }

    #[test]
    fn nonsense_is_rejected_with_the_setting_named() {
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("shards", Box::new(|c| c.shard_count = 0)),
            (
                "ping-interval",
                Box::new(|c| c.ping_interval = Duration::ZERO),
            ),
            (
                "pong-timeout",
                Box::new(|c| c.pong_timeout = Duration::ZERO),
            ),
            ("max-message-size", Box::new(|c| c.max_message_size = 1)),
            ("send-queue-bytes", Box::new(|c| c.send_queue_bytes = 10)),
            (
                "send-queue-messages",
                Box::new(|c| c.send_queue_messages = 0),
            ),
            ("node-id", Box::new(|c| c.node_id = NodeId::from(""))),
        ];
        for (name, mutate) in cases {
            let mut c = Config::default();
            mutate(&mut c);
            let err = c.validate().expect_err(name);
            assert_eq!(err.setting, name);
            assert!(err.to_string().contains(name));
        }
    }
}
