//! Counters a shard keeps; the runtime sums them over shards for `/stats` and `/metrics`.

/// Monotonic counters of one shard (gauges live on the shard itself).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Connections opened.
    pub opened: u64,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// Messages received from clients.
    pub messages_in: u64,
    /// Message frames queued to clients (one per recipient).
    pub messages_out: u64,
    /// Connections closed because their send queue was full.
    pub slow_consumer_closes: u64,
    /// Frames dropped by the drop-oldest overflow policy.
    pub dropped_frames: u64,
    /// Connections closed by the heartbeat (no pong in time).
    pub heartbeat_closes: u64,
    /// Connections replaced by a newer one with the same client id.
    pub replaced: u64,
    /// Client requests answered with an error frame.
    pub request_errors: u64,
    /// Connections closed for breaking the WebSocket protocol or the size limit.
    pub protocol_closes: u64,
}

impl ShardStats {
    /// Adds `other` into `self` (for node-wide totals).
    pub fn add(&mut self, other: &ShardStats) {
        self.opened += other.opened;
        self.closed += other.closed;
        self.messages_in += other.messages_in;
        self.messages_out += other.messages_out;
        self.slow_consumer_closes += other.slow_consumer_closes;
        self.dropped_frames += other.dropped_frames;
        self.heartbeat_closes += other.heartbeat_closes;
        self.replaced += other.replaced;
        self.request_errors += other.request_errors;
        self.protocol_closes += other.protocol_closes;
    }
}
