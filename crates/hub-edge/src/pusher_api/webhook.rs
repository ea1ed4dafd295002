//! Pusher webhooks, sans-IO: the events, the signed body, and a queue that batches events per
//! app and retries failed deliveries with exponential backoff.
//!
//! The runtime feeds [`WebhookQueue::push`] with events as they happen, asks
//! [`WebhookQueue::next_due`] when to wake, takes due [`Delivery`]s with
//! [`WebhookQueue::poll`], POSTs each (body, `X-Pusher-Key`, `X-Pusher-Signature`) and reports
//! the outcome with [`WebhookQueue::finished`]. Times are milliseconds on any monotonic clock,
//! except `time_ms` in bodies, which is Unix time.

use std::collections::VecDeque;

use serde_json::{json, Value};

/// Events one webhook request carries at most.
pub const MAX_BATCH: usize = 100;
/// How long an event waits for others to join its batch, in ms.
pub const BATCH_DELAY_MS: u64 = 50;
/// Attempts per delivery (the first one and the retries).
pub const MAX_ATTEMPTS: u32 = 6;
/// The wait before the first retry, in ms; it doubles for each further one.
pub const FIRST_RETRY_MS: u64 = 500;
/// Events held per app while its endpoint fails; beyond it the oldest are dropped.
pub const MAX_QUEUED: usize = 10_000;

/// One webhook event, as Pusher names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// The first subscriber joined a channel.
    ChannelOccupied {
        /// The channel.
        channel: String,
    },
    /// The last subscriber left a channel.
    ChannelVacated {
        /// The channel.
        channel: String,
    },
    /// A user's first connection joined a presence channel.
    MemberAdded {
        /// The presence channel.
        channel: String,
        /// The user id.
        user_id: String,
    },
    /// A user's last connection left a presence channel.
    MemberRemoved {
        /// The presence channel.
        channel: String,
        /// The user id.
        user_id: String,
    },
    /// A client sent a `client-*` event.
    ClientEvent {
        /// The channel.
        channel: String,
        /// The event name.
        event: String,
        /// The data as the client sent it (a JSON string in the body).
        data: String,
        /// The sender's socket id.
        socket_id: String,
        /// The sender's user id (presence channels).
        user_id: Option<String>,
    },
}

impl WebhookEvent {
    /// The event as one entry of `events` in the body.
    pub fn to_json(&self) -> Value {
        match self {
            Self::ChannelOccupied { channel } => {
                json!({"name": "channel_occupied", "channel": channel})
            }
            Self::ChannelVacated { channel } => {
                json!({"name": "channel_vacated", "channel": channel})
            }
            Self::MemberAdded { channel, user_id } => {
                json!({"name": "member_added", "channel": channel, "user_id": user_id})
            }
            Self::MemberRemoved { channel, user_id } => {
                json!({"name": "member_removed", "channel": channel, "user_id": user_id})
            }
            Self::ClientEvent {
                channel,
                event,
                data,
                socket_id,
                user_id,
            } => {
                let mut v = json!({
                    "name": "client_event", "channel": channel, "event": event,
                    "data": data, "socket_id": socket_id,
                });
                if let (Some(id), Some(map)) = (user_id, v.as_object_mut()) {
                    map.insert("user_id".into(), id.as_str().into());
                }
                v
            }
        }
    }
}

/// The body of a webhook request: `{"time_ms":T,"events":[...]}`.
pub fn body(time_ms: u64, events: &[WebhookEvent]) -> String {
    let events: Vec<Value> = events.iter().map(WebhookEvent::to_json).collect();
    json!({"time_ms": time_ms, "events": events}).to_string()
}

/// `X-Pusher-Signature`: the hex HMAC-SHA256 of the body, keyed with the app secret.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    hub_pusher::sign::hmac_hex(secret, body)
}

/// One request to make: a batch of events for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Identifies it in [`WebhookQueue::finished`].
    pub id: u64,
    /// Which endpoint (the index given to [`WebhookQueue::push`]).
    pub endpoint: usize,
    /// The events, in the order they happened.
    pub events: Vec<WebhookEvent>,
    /// 1 for the first try.
    pub attempt: u32,
}

/// What became of a delivery, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered (a 2xx answer).
    Delivered,
    /// Failed; retried later.
    Retrying,
    /// Failed for the last time; its events are dropped.
    Dropped,
}

#[derive(Debug)]
struct Pending {
    endpoint: usize,
    events: Vec<WebhookEvent>,
    attempt: u32,
    due: u64,
}

/// Batches and retries, per endpoint; at most one request per endpoint in flight, so an
/// endpoint receives its events in order.
#[derive(Debug, Default)]
pub struct WebhookQueue {
    /// Per endpoint: events waiting for a batch, and since when.
    open: Vec<(VecDeque<WebhookEvent>, u64)>,
    /// Batches waiting to be (re)tried.
    waiting: Vec<Pending>,
    /// Per endpoint: whether a request is out.
    busy: Vec<bool>,
    in_flight: Vec<(u64, Pending)>,
    next_id: u64,
    /// Events dropped because an endpoint's queue was full or its retries ran out.
    pub dropped: u64,
}

impl WebhookQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn grow(&mut self, endpoint: usize) {
        if self.open.len() <= endpoint {
            self.open.resize_with(endpoint + 1, || (VecDeque::new(), 0));
            self.busy.resize(endpoint + 1, false);
        }
    }

    /// Queues `event` for `endpoint` at time `now`.
    pub fn push(&mut self, endpoint: usize, event: WebhookEvent, now: u64) {
        self.grow(endpoint);
        let held = self.held(endpoint);
        let Some((events, since)) = self.open.get_mut(endpoint) else {
            return;
        };
        if held >= MAX_QUEUED {
            events.pop_front();
            self.dropped += 1;
        }
        if events.is_empty() {
            *since = now;
        }
        events.push_back(event);
    }

    /// Events held for `endpoint` (open, waiting and in flight).
    fn held(&self, endpoint: usize) -> usize {
        let open = self.open.get(endpoint).map_or(0, |(e, _)| e.len());
        let waiting: usize = self
            .waiting
            .iter()
            .chain(self.in_flight.iter().map(|(_, p)| p))
            .filter(|p| p.endpoint == endpoint)
            .map(|p| p.events.len())
            .sum();
        open + waiting
    }

    /// The earliest time something is due, if anything is queued and not in flight.
    pub fn next_due(&self) -> Option<u64> {
        let open = self
            .open
            .iter()
            .enumerate()
            .filter(|(i, (events, _))| {
                !events.is_empty()
                    && !self.is_busy(*i)
                    && !self.waiting.iter().any(|p| p.endpoint == *i)
            })
            .map(|(_, (events, since))| {
                if events.len() >= MAX_BATCH {
                    *since
                } else {
                    since + BATCH_DELAY_MS
                }
            });
        let waiting = self
            .waiting
            .iter()
            .filter(|p| !self.is_busy(p.endpoint))
            .map(|p| p.due);
        open.chain(waiting).min()
    }

    fn is_busy(&self, endpoint: usize) -> bool {
        self.busy.get(endpoint).copied().unwrap_or(false)
    }

    /// The next delivery due at `now`, if any (call until `None`).
    pub fn poll(&mut self, now: u64) -> Option<Delivery> {
        // A retry first: it holds older events than any open batch of its endpoint.
        let retry = self
            .waiting
            .iter()
            .position(|p| p.due <= now && !self.is_busy(p.endpoint));
        let pending = if let Some(i) = retry {
            self.waiting.swap_remove(i)
        } else {
            let endpoint = self
                .open
                .iter()
                .enumerate()
                .position(|(i, (events, since))| {
                    !events.is_empty()
                        && !self.is_busy(i)
                        && !self.waiting.iter().any(|p| p.endpoint == i)
                        && (events.len() >= MAX_BATCH || since + BATCH_DELAY_MS <= now)
                })?;
            let (events, since) = self.open.get_mut(endpoint)?;
            let take = events.len().min(MAX_BATCH);
            let batch: Vec<WebhookEvent> = events.drain(..take).collect();
            *since = now;
            Pending {
                endpoint,
                events: batch,
                attempt: 0,
                due: now,
            }
        };
        if let Some(b) = self.busy.get_mut(pending.endpoint) {
            *b = true;
        }
        let id = self.next_id;
        self.next_id += 1;
        let delivery = Delivery {
            id,
            endpoint: pending.endpoint,
            events: pending.events.clone(),
            attempt: pending.attempt + 1,
        };
        self.in_flight.push((
            id,
            Pending {
                attempt: pending.attempt + 1,
                ..pending
            },
        ));
        Some(delivery)
    }

    /// Reports the outcome of delivery `id` at `now`: a failure is retried after
    /// [`FIRST_RETRY_MS`] doubled per attempt, until [`MAX_ATTEMPTS`].
    pub fn finished(&mut self, id: u64, ok: bool, now: u64) -> Outcome {
        let Some(i) = self.in_flight.iter().position(|(d, _)| *d == id) else {
            return Outcome::Dropped;
        };
        let (_, mut pending) = self.in_flight.swap_remove(i);
        if let Some(b) = self.busy.get_mut(pending.endpoint) {
            *b = false;
        }
        if ok {
            return Outcome::Delivered;
        }
        if pending.attempt >= MAX_ATTEMPTS {
            self.dropped += pending.events.len() as u64;
            return Outcome::Dropped;
        }
        pending.due = now + (FIRST_RETRY_MS << (pending.attempt - 1).min(16));
        self.waiting.push(pending);
        Outcome::Retrying
    }
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
