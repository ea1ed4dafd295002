//! The Pusher webhook sender: one thread per node that batches events per endpoint and POSTs
//! them, signed, retrying failures with backoff ([`hub_edge::pusher_api::webhook`]).
//!
//! Invariants:
//! - [`Webhooks::send`] never blocks and never fails: the event is queued (or dropped and
//!   counted when the endpoint's queue is full).
//! - One request per endpoint at a time, each within [`REQUEST_TIMEOUT`]; endpoints are served
//!   one after another, so a slow endpoint delays the others by at most that timeout.
//! - URLs are `http://` (the node's HTTP client is built without TLS).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hub_edge::pusher_api::webhook::{body, signature, Outcome, WebhookEvent, WebhookQueue};

/// Time allowed for one webhook request, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where one app's webhooks go.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL POSTed to.
    pub url: String,
    /// The app key (`X-Pusher-Key`).
    pub key: String,
    /// The app secret, which signs the body (`X-Pusher-Signature`).
    pub secret: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Counters of the sender.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Requests answered 2xx.
    pub delivered: AtomicU64,
    /// Requests that failed (each retry counts).
    pub failed: AtomicU64,
    /// Events given up on (retries exhausted, or the queue was full).
    pub dropped: AtomicU64,
}

/// A handle to the sender thread; cloning it shares the thread.
#[derive(Debug, Clone)]
pub struct Webhooks {
    tx: Sender<(usize, WebhookEvent)>,
    /// The sender's counters.
    pub stats: Arc<WebhookStats>,
}

impl Webhooks {
    /// Starts the sender thread for `endpoints` (events name an endpoint by its index).
    pub fn start(endpoints: Vec<Endpoint>) -> std::io::Result<Self> {
        let (tx, rx) = channel();
        let stats = Arc::new(WebhookStats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("hubbub-webhooks".into())
            .spawn(move || run(&endpoints, &rx, &thread_stats))?;
        Ok(Self { tx, stats })
    }

    /// Queues `event` for endpoint `endpoint`.
    pub fn send(&self, endpoint: usize, event: WebhookEvent) {
        // The thread lives as long as the process; a failed send means it is gone.
        let _ = self.tx.send((endpoint, event));
    }
}

/// Checks a webhook URL: `http://HOST[:PORT]/PATH` (the error says what is expected).
pub fn check_url(url: &str) -> Result<(), String> {
    let host = url
        .strip_prefix("http://")
        .map(|rest| rest.split(['/', '?']).next().unwrap_or_default());
    match host {
        Some(host) if !host.is_empty() && url.parse::<ureq::http::Uri>().is_ok() => Ok(()),
        _ => Err(format!(
            "expected http://HOST[:PORT]/PATH, got {url:.200?} (https is not supported)"
        )),
    }
}

/// The webhooks of a node's Pusher apps: every URL of `--pusher-webhook` receives the events
/// of every app, signed with that app's key and secret.
#[derive(Debug, Clone)]
pub struct PusherWebhooks {
    sender: Webhooks,
    /// Per app id, the endpoint indexes of its URLs.
    by_app: std::collections::HashMap<String, Vec<usize>>,
}

impl PusherWebhooks {
    /// Starts the sender when there are URLs (`None` otherwise).
    pub fn start(apps: &hub_pusher::Apps, urls: &[String]) -> std::io::Result<Option<Self>> {
        if urls.is_empty() || apps.is_empty() {
            return Ok(None);
        }
        let mut endpoints = Vec::new();
        let mut by_app = std::collections::HashMap::new();
        for app in apps.iter() {
            let indexes: &mut Vec<usize> = by_app.entry(app.id.clone()).or_default();
            for url in urls {
                indexes.push(endpoints.len());
                endpoints.push(Endpoint {
                    url: url.clone(),
                    key: app.key.clone(),
                    secret: app.secret.clone(),
                });
            }
        }
        Ok(Some(Self {
            sender: Webhooks::start(endpoints)?,
            by_app,
        }))
    }

    /// Queues `event` of app `app_id` for each of its URLs.
    pub fn send(&self, app_id: &str, event: &WebhookEvent) {
        for &endpoint in self.by_app.get(app_id).into_iter().flatten() {
            self.sender.send(endpoint, event.clone());
        }
    }

    /// The sender's counters.
    pub fn stats(&self) -> &WebhookStats {
        &self.sender.stats
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn run(endpoints: &[Endpoint], rx: &Receiver<(usize, WebhookEvent)>, stats: &WebhookStats) {
    let start = Instant::now();
    let now = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut queue = WebhookQueue::new();
    let mut dropped_seen = 0;
    loop {
        let wait = queue
            .next_due()
            .map(|due| Duration::from_millis(due.saturating_sub(now())));
        let received = match wait {
            Some(wait) => rx.recv_timeout(wait),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok((endpoint, event)) if endpoint < endpoints.len() => {
                queue.push(endpoint, event, now());
                // Take whatever else is waiting before sending.
                while let Ok((endpoint, event)) = rx.try_recv() {
                    if endpoint < endpoints.len() {
                        queue.push(endpoint, event, now());
                    }
                }
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Some(delivery) = queue.poll(now()) {
            let Some(endpoint) = endpoints.get(delivery.endpoint) else {
                continue;
            };
            let payload = body(unix_ms(), &delivery.events);
            let sig = signature(endpoint.secret.as_bytes(), payload.as_bytes());
            let result = agent
                .post(&endpoint.url)
                .header("Content-Type", "application/json")
                .header("X-Pusher-Key", &endpoint.key)
                .header("X-Pusher-Signature", &sig)
                .send(payload.as_str());
            let ok = match &result {
                Ok(response) => response.status().is_success(),
                Err(_) => false,
            };
            if !ok {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                let why = match result {
                    Ok(response) => format!("status {}", response.status()),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(url = %endpoint.url, attempt = delivery.attempt, "webhook failed: {why}");
            }
            match queue.finished(delivery.id, ok, now()) {
                Outcome::Delivered => {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Retrying => {}
                Outcome::Dropped => {
                    tracing::warn!(url = %endpoint.url, events = delivery.events.len(), "webhook given up after its retries");
                }
            }
        }
        if queue.dropped != dropped_seen {
            stats
                .dropped
                .fetch_add(queue.dropped - dropped_seen, Ordering::Relaxed);
            dropped_seen = queue.dropped;
        }
    }
}

#[cfg(test)]
#[path = "webhooks_tests.rs"]
mod tests;
