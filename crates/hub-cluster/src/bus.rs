//! The broadcast bus on Redis pub/sub.
//!
//! Channels: [`ALL_CHANNEL`] (`hubbub:bus:all`, always subscribed) and
//! `hubbub:bus:room:{room}` ([`ROOM_CHANNEL_PREFIX`]) for each room this node wants. Payloads
//! are [envelopes](crate::envelope) carrying the publishing node, so the router can drop its
//! own publishes (echo prevention is the caller's).
//!
//! ## Invariants
//!
//! - Delivery is at-most-once (Redis pub/sub): messages published while this node is
//!   disconnected are lost.
//! - The receive task reconnects forever (backoff 100 ms doubling to 2 s) and, after each
//!   reconnect, subscribes every wanted channel before it reports [`BusEvent::Up`]. Going
//!   from up to down reports [`BusEvent::Down`] once. [`RedisBus::is_up`] is true exactly
//!   between the two, so health can say when cross-node messages are not being received.
//! - A connection that stops answering is not trusted: the task pings every
//!   [`PING_INTERVAL`] and reconnects when a ping is not answered within the operation
//!   timeout (a wedged subscriber looks connected but receives nothing).
//! - The set of wanted rooms is the truth; the task reconciles the server's subscriptions
//!   with it after every change, so any interleaving of subscribe/unsubscribe ends in the
//!   wanted state. A message for a room no longer wanted is dropped.
//! - A malformed envelope is counted ([`RedisBus::malformed`]) and dropped, never a panic.
//! - The task ends when every [`RedisBus`] handle, or the event receiver, is dropped.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use hub_core::{NodeId, RoomName};
use redis::aio::{PubSubSink, PubSubStream};
use std::time::Instant;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::envelope;
use crate::error::Redactor;
use crate::redis_link::RedisLink;
use crate::ClusterError;

/// The channel every node always receives (broadcast to all).
pub const ALL_CHANNEL: &str = "hubbub:bus:all";
/// Prefix of room channels.
pub const ROOM_CHANNEL_PREFIX: &str = "hubbub:bus:room:";
/// How often the receive task checks that its connection still answers.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the bus reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// A frame published by `origin` (possibly this node) to a room, or to all.
    Message {
        /// The publishing node.
        origin: NodeId,
        /// The room, or none for broadcast to all.
        room: Option<RoomName>,
        /// The frame as published.
        frame: Bytes,
    },
    /// (Re)connected, and every wanted channel is (re)subscribed.
    Up,
    /// The subscription connection is lost; reconnecting. Carries the reason.
    Down(String),
}

/// The channel of `room`, or of everyone.
pub fn channel(room: Option<&RoomName>) -> String {
    match room {
        Some(room) => format!("{ROOM_CHANNEL_PREFIX}{room}"),
        None => ALL_CHANNEL.to_owned(),
    }
}

/// State shared by the handles and the receive task.
struct Shared {
    wanted: Mutex<BTreeSet<RoomName>>,
    up: AtomicBool,
    malformed: AtomicU64,
}

impl Shared {
    fn wanted(&self) -> std::sync::MutexGuard<'_, BTreeSet<RoomName>> {
        self.wanted.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the handles own; dropping the last one stops the receive task.
struct Inner {
    link: Arc<RedisLink>,
    node: NodeId,
    shared: Arc<Shared>,
    ctl: UnboundedSender<()>,
}

/// A handle to the Redis bus: publish, and choose which rooms to receive. Cheap to clone.
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

impl RedisBus {
    /// Connects (failing within `op_timeout` if Redis cannot be reached), subscribes the
    /// global channel, and spawns the receive task on the current tokio runtime. The
    /// receiver's first event is [`BusEvent::Up`].
    pub async fn connect(
        url: &str,
        node: NodeId,
        op_timeout: Duration,
    ) -> Result<(RedisBus, UnboundedReceiver<BusEvent>), ClusterError> {
        let link = Arc::new(RedisLink::open(url, op_timeout)?);
        let shared = Arc::new(Shared {
            wanted: Mutex::new(BTreeSet::new()),
            up: AtomicBool::new(false),
            malformed: AtomicU64::new(0),
        });
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let mut task = Receiver {
            link: link.clone(),
            client: link.client().clone(),
            redactor: link.redactor().clone(),
            op_timeout,
            shared: shared.clone(),
            ctl: ctl_rx,
            events: events_tx,
        };
        let session = task.open().await.map_err(|e| match e {
            Lost::Error(e) => e,
            Lost::Reason(r) => ClusterError::Unreachable(r),
        })?;
        crate::rt::spawn(task.run(session));
        let inner = Inner {
            link,
            node,
            shared,
            ctl: ctl_tx,
        };
        Ok((
            RedisBus {
                inner: Arc::new(inner),
            },
            events_rx,
        ))
    }

    /// Publishes `frame` to `room`'s channel, or to everyone, in an envelope naming this node.
    pub async fn publish(&self, room: Option<&RoomName>, frame: Bytes) -> Result<(), ClusterError> {
        let payload = envelope::encode(&self.inner.node, &frame)
            .map_err(|e| ClusterError::Protocol(e.to_string()))?;
        let mut pipe = redis::pipe();
        pipe.cmd("PUBLISH")
            .arg(channel(room))
            .arg(&payload[..])
            .ignore();
        self.inner.link.query_once::<()>(&pipe).await
    }

    /// Starts receiving `room` (remembered across reconnects; applied now if connected).
    pub fn subscribe(&self, room: RoomName) {
        if self.inner.shared.wanted().insert(room) {
            let _ = self.inner.ctl.send(());
        }
    }

    /// Stops receiving `room`.
    pub fn unsubscribe(&self, room: &RoomName) {
        if self.inner.shared.wanted().remove(room) {
            let _ = self.inner.ctl.send(());
        }
    }

    /// Whether the bus is connected with every wanted channel subscribed.
    pub fn is_up(&self) -> bool {
        self.inner.shared.up.load(Ordering::Acquire)
    }

    /// How many malformed envelopes were received and dropped.
    pub fn malformed(&self) -> u64 {
        self.inner.shared.malformed.load(Ordering::Relaxed)
    }

    /// This node's id (the origin of its publishes).
    pub fn node(&self) -> &NodeId {
        &self.inner.node
    }
}

/// One subscription connection and the channels it is subscribed to.
struct Session {
    sink: PubSubSink,
    stream: PubSubStream,
    subscribed: HashSet<String>,
}

/// Why a session ended.
enum Lost {
    /// A failed call.
    Error(ClusterError),
    /// Anything else (connection closed).
    Reason(String),
}

impl Lost {
    fn describe(&self) -> String {
        match self {
            Lost::Error(e) => e.to_string(),
            Lost::Reason(r) => r.clone(),
        }
    }
}

/// The receive task's state.
struct Receiver {
    /// The publishing connection, discarded when Redis goes down.
    link: Arc<RedisLink>,
    client: redis::Client,
    redactor: Redactor,
    op_timeout: Duration,
    shared: Arc<Shared>,
    ctl: UnboundedReceiver<()>,
    events: UnboundedSender<BusEvent>,
}

impl Receiver {
    /// Serves `session`, then reconnects forever; returns when the handles or the receiver
    /// are gone.
    async fn run(mut self, first: Session) {
        let mut next = Some(first);
        let mut backoff = MIN_BACKOFF;
        loop {
            if let Some(session) = next.take() {
                let started = Instant::now();
                match self.serve(session).await {
                    None => return,
                    Some(lost) => {
                        self.down(lost.describe());
                        // The publishing connection most likely died too.
                        self.link.discard(None).await;
                    }
                }
                if started.elapsed() > MAX_BACKOFF {
                    backoff = MIN_BACKOFF;
                }
            }
            if !self.pause(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            match self.open().await {
                Ok(session) => next = Some(session),
                Err(lost) => {
                    tracing::debug!(reason = %lost.describe(), "redis bus reconnect failed");
                    self.down(lost.describe());
                }
            }
        }
    }

    /// Connects, subscribes every wanted channel, and reports [`BusEvent::Up`].
    async fn open(&mut self) -> Result<Session, Lost> {
        let pubsub = crate::rt::within(self.op_timeout, self.client.get_async_pubsub())
            .await
            .ok_or(Lost::Error(ClusterError::Timeout))?
            .map_err(|e| Lost::Error(self.redactor.redis(&e)))?;
        let (sink, stream) = pubsub.split();
        let mut session = Session {
            sink,
            stream,
            subscribed: HashSet::new(),
        };
        // Changes asked for until now are covered by this first reconcile.
        while self.ctl.try_recv().is_ok() {}
        self.reconcile(&mut session).await?;
        self.shared.up.store(true, Ordering::Release);
        let _ = self.events.send(BusEvent::Up);
        tracing::info!("redis bus up");
        Ok(session)
    }

    /// Receives until the connection is lost (`Some`) or the owner is gone (`None`).
    async fn serve(&mut self, mut session: Session) -> Option<Lost> {
        let mut next_ping = Instant::now() + PING_INTERVAL;
        loop {
            let ping = async_io::Timer::at(next_ping);
            if self.events.is_closed() {
                return None;
            }
            tokio::select! {
                msg = session.stream.next() => match msg {
                    Some(msg) => self.deliver(&msg),
                    None => return Some(Lost::Reason("subscription connection closed".into())),
                },
                ctl = self.ctl.recv() => {
                    ctl?;
                    while self.ctl.try_recv().is_ok() {}
                    if let Err(lost) = self.reconcile(&mut session).await {
                        return Some(lost);
                    }
                }
                _ = ping => {
                    next_ping = Instant::now() + PING_INTERVAL;
                    let pong = session.sink.ping::<redis::Value>();
                    match crate::rt::within(self.op_timeout, pong).await {
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Some(Lost::Error(self.redactor.redis(&e))),
                        None => return Some(Lost::Reason("ping not answered in time".into())),
                    }
                }
            }
        }
    }

    /// Subscribes the wanted channels not yet subscribed and unsubscribes the others
    /// (one command per channel, pipelined).
    async fn reconcile(&self, session: &mut Session) -> Result<(), Lost> {
        let mut wanted: HashSet<String> = self
            .shared
            .wanted()
            .iter()
            .map(|room| channel(Some(room)))
            .collect();
        wanted.insert(ALL_CHANNEL.to_owned());
        let add: Vec<String> = wanted.difference(&session.subscribed).cloned().collect();
        let remove: Vec<String> = session.subscribed.difference(&wanted).cloned().collect();
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let calls = add
            .iter()
            .map(|c| (true, c))
            .chain(remove.iter().map(|c| (false, c)))
            .map(|(subscribe, name)| {
                let mut sink = session.sink.clone();
                async move {
                    if subscribe {
                        sink.subscribe(name.as_str()).await
                    } else {
                        sink.unsubscribe(name.as_str()).await
                    }
                }
            });
        let results = crate::rt::within(self.op_timeout, futures_util::future::join_all(calls))
            .await
            .ok_or(Lost::Error(ClusterError::Timeout))?;
        for result in results {
            result.map_err(|e| Lost::Error(self.redactor.redis(&e)))?;
        }
        session.subscribed = wanted;
        Ok(())
    }

    /// Decodes one message and hands it to the owner.
    fn deliver(&self, msg: &redis::Msg) {
        let name = msg.get_channel_name();
        let room = if name == ALL_CHANNEL {
            None
        } else if let Some(room) = name.strip_prefix(ROOM_CHANNEL_PREFIX) {
            if !self.shared.wanted().contains(room) {
                return;
            }
            Some(RoomName::from(room))
        } else {
            return;
        };
        match envelope::decode(Bytes::copy_from_slice(msg.get_payload_bytes())) {
            Ok((origin, frame)) => {
                let _ = self.events.send(BusEvent::Message {
                    origin,
                    room,
                    frame,
                });
            }
            Err(e) => {
                self.shared.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(channel = name, error = %e, "dropping a malformed bus envelope");
            }
        }
    }

    /// Reports the loss once per up→down transition.
    fn down(&self, reason: String) {
        if self.shared.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(%reason, "redis bus down; reconnecting");
            let _ = self.events.send(BusEvent::Down(reason));
        }
    }

    /// Sleeps `wait`; false if the owner went away meanwhile.
    async fn pause(&mut self, wait: Duration) -> bool {
        let sleep = crate::rt::sleep(wait);
        tokio::pin!(sleep);
        loop {
            if self.events.is_closed() {
                return false;
            }
            tokio::select! {
                _ = &mut sleep => return true,
                ctl = self.ctl.recv() => if ctl.is_none() { return false },
            }
        }
    }
}
