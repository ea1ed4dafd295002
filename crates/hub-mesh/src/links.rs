//! One long-lived gRPC stream to every peer, carrying batches of messages.
//!
//! A link that cannot connect fails its messages at once (the router answers with what it
//! has instead of waiting for its timeout) and retries with backoff while the peer is in the
//! registry. A dead or slow peer never holds up the links to the others.
//!
//! A link never stalls: envelopes carry at most [`BATCH`] messages and [`BATCH_BYTES`]
//! bytes (a larger single message travels alone), a message larger than the peer message
//! limit (see [`crate::peer_message_limit`]) is refused here, counted and logged, never sent;
//! every envelope must be taken by the stream within [`STALL_AFTER`]; and a link whose
//! stream ends (the receiver closes it on a decode error) or stalls is torn down and made
//! again, counted in `peer_link_resets`. After a link was down the router is told
//! ([`ClusterEvent::LinkUp`]) so that it resends its room interest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hub_core::node::{ClusterEvent, Input, PeerMessage};
use hub_core::NodeId;
use hub_proto::pb;
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::ClientTlsConfig;

use crate::health::{add, Health};
use crate::peer_auth::PeerAuth;
use crate::InputSink;

/// Messages that may wait for one peer before further ones fail.
const LINK_QUEUE: usize = 65_536;
/// Most messages in one envelope.
pub(crate) const BATCH: usize = 512;
/// Most bytes of messages in one envelope; a larger single message travels alone.
pub(crate) const BATCH_BYTES: usize = 1024 * 1024;
/// Envelopes handed to the gRPC stream ahead of the network.
const IN_FLIGHT: usize = 16;
/// How long the stream may take to accept one envelope before the link counts as stalled;
/// also the HTTP/2 keep-alive timeout of the link's connection.
pub(crate) const STALL_AFTER: Duration = Duration::from_secs(5);
/// An envelope's bytes besides its messages and sender id.
const ENVELOPE_OVERHEAD: usize = 32;
/// A message's bytes in an envelope besides its own encoding (tag and length).
const MESSAGE_OVERHEAD: usize = 11;

struct Link {
    addr: String,
    tx: mpsc::Sender<PeerMessage>,
    task: JoinHandle<()>,
    /// When the peer left the registry's view (the link is kept a while: a peer that comes
    /// back after a registry outage still gets its replies).
    missing_since: Option<tokio::time::Instant>,
}

/// How long a link outlives its peer's disappearance from the registry.
const LINK_GRACE: Duration = Duration::from_secs(30);

/// The links of this node to its peers.
pub(crate) struct Links {
    me: NodeId,
    links: HashMap<NodeId, Link>,
    sink: InputSink,
    health: Arc<Health>,
    op_timeout: Duration,
    limit: usize,
    auth: PeerAuth,
    tls: Option<ClientTlsConfig>,
}

impl Drop for Links {
    fn drop(&mut self) {
        for link in self.links.values() {
            link.task.abort();
        }
    }
}

impl Links {
    /// No links yet; `limit` is the peer message limit (bytes of one envelope).
    pub(crate) fn new(
        me: NodeId,
        sink: InputSink,
        health: Arc<Health>,
        op_timeout: Duration,
        limit: usize,
        auth: PeerAuth,
        tls: Option<ClientTlsConfig>,
    ) -> Self {
        Self {
            me,
            links: HashMap::new(),
            sink,
            health,
            op_timeout,
            limit,
            auth,
            tls,
        }
    }

    /// Opens links to new peers and closes those to peers that left.
    pub(crate) fn update(&mut self, peers: &[(NodeId, String)]) {
        let now = tokio::time::Instant::now();
        self.links.retain(|node, link| {
            let keep = match peers.iter().find(|(n, _)| n == node) {
                Some((_, addr)) if *addr == link.addr => {
                    link.missing_since = None;
                    true
                }
                // A new address: a new instance, a new link.
                Some(_) => false,
                None => now.duration_since(*link.missing_since.get_or_insert(now)) < LINK_GRACE,
            };
            if !keep {
                link.task.abort();
            }
            keep
        });
        for (node, addr) in peers {
            if *node == self.me || self.links.contains_key(node) {
                continue;
            }
            let (tx, rx) = mpsc::channel(LINK_QUEUE);
            let ctx = LinkCtx {
                me: self.me.clone(),
                peer: node.clone(),
                addr: addr.clone(),
                sink: self.sink.clone(),
                health: self.health.clone(),
                op_timeout: self.op_timeout,
                limit: self.limit,
                stall: STALL_AFTER,
                auth: self.auth.clone(),
                tls: self.tls.clone(),
            };
            let task = tokio::spawn(run_link(ctx, rx));
            self.links.insert(
                node.clone(),
                Link {
                    addr: addr.clone(),
                    tx,
                    task,
                    missing_since: None,
                },
            );
        }
    }

    /// Queues `message` for `node`; fails it at once when there is no link or it is full.
    pub(crate) fn send(&self, node: NodeId, message: PeerMessage) {
        let rejected = match self.links.get(&node) {
            Some(link) => link.tx.try_send(message).err().map(|e| e.into_inner()),
            None => Some(message),
        };
        if let Some(message) = rejected {
            fail(&self.sink, &self.health, &node, &message);
        }
    }
}

fn fail(sink: &InputSink, health: &Health, node: &NodeId, message: &PeerMessage) {
    fail_request(sink, health, node, request_id(message));
}

/// The id a request waits under, if `message` is an answered request.
fn request_id(message: &PeerMessage) -> Option<u64> {
    match message {
        PeerMessage::Request { id, .. } => *id,
        _ => None,
    }
}

/// Counts a message that did not reach `node` and answers its request at once.
fn fail_request(sink: &InputSink, health: &Health, node: &NodeId, id: Option<u64>) {
    add(&health.counters.peer_errors, 1);
    if let Some(id) = id {
        sink(Input::PeerFailed {
            node: node.clone(),
            id: Some(id),
        });
    }
}

/// What a link task needs besides its queue.
struct LinkCtx {
    me: NodeId,
    peer: NodeId,
    addr: String,
    sink: InputSink,
    health: Arc<Health>,
    op_timeout: Duration,
    limit: usize,
    /// [`STALL_AFTER`] (shorter in tests).
    stall: Duration,
    /// Signs the link's calls.
    auth: PeerAuth,
    /// TLS towards the peer (with `--cluster-ca`).
    tls: Option<ClientTlsConfig>,
}

async fn run_link(ctx: LinkCtx, mut rx: mpsc::Receiver<PeerMessage>) {
    let LinkCtx {
        peer,
        addr,
        sink,
        health,
        ..
    } = &ctx;
    let mut backoff = Duration::from_millis(100);
    // Whether the link went down (or never came up) since it was made: the peer may then
    // have missed messages, and the router resends its room interest when it is back.
    let mut troubled = false;
    loop {
        let scheme = if ctx.tls.is_some() { "https" } else { "http" };
        let endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))
            .and_then(|e| match &ctx.tls {
                Some(tls) => e.tls_config(tls.clone()),
                None => Ok(e),
            });
        let endpoint = match endpoint {
            Ok(e) => e
                .connect_timeout(ctx.op_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(ctx.stall),
            Err(e) => {
                tracing::warn!(%peer, %addr, error = %e, "peer address is not usable");
                fail_while_waiting(&mut rx, sink, health, peer, Duration::from_secs(5)).await;
                continue;
            }
        };
        match endpoint.connect().await {
            Ok(channel) => {
                backoff = Duration::from_millis(100);
                tracing::debug!(%peer, %addr, "peer link up");
                let (etx, erx) = mpsc::channel::<pb::PeerEnvelope>(IN_FLIGHT);
                let mut client = pb::peer_client::PeerClient::with_interceptor(
                    channel,
                    ctx.auth.interceptor(peer.clone()),
                )
                .max_decoding_message_size(ctx.limit)
                .max_encoding_message_size(ctx.limit);
                let (closed_tx, mut closed) = oneshot::channel::<String>();
                let call = tokio::spawn(async move {
                    let why = match client.link(ReceiverStream::new(erx)).await {
                        Ok(response) => {
                            let mut answers = response.into_inner();
                            loop {
                                match answers.next().await {
                                    Some(Ok(_)) => continue,
                                    Some(Err(status)) => {
                                        break format!(
                                            "the peer closed the link: {}",
                                            status.message()
                                        )
                                    }
                                    None => break "the peer ended the link".to_owned(),
                                }
                            }
                        }
                        Err(status) => format!("the peer refused the link: {}", status.message()),
                    };
                    let _ = closed_tx.send(why);
                });
                if troubled {
                    sink(Input::Cluster(ClusterEvent::LinkUp(peer.clone())));
                }
                let ended = pump(&ctx, &mut rx, etx, &mut closed).await;
                call.abort();
                let Some(why) = ended else {
                    return;
                };
                troubled = true;
                add(&health.counters.peer_link_resets, 1);
                tracing::warn!(%peer, reason = %why, "peer link broke; reconnecting");
            }
            Err(e) => {
                troubled = true;
                tracing::warn!(%peer, %addr, error = %e, "cannot reach peer");
                fail_while_waiting(&mut rx, sink, health, peer, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// One envelope being filled: the wire messages and the request ids to fail if it is lost.
#[derive(Default)]
struct Batch {
    messages: Vec<pb::PeerMessage>,
    ids: Vec<Option<u64>>,
    bytes: usize,
}

impl Batch {
    fn full(&self) -> bool {
        self.messages.len() >= BATCH || self.bytes >= BATCH_BYTES
    }
}

/// Sends batches until the stream breaks or stalls (`Some(why)`) or the link is closed
/// (`None`). Messages too large for the peer's decode limit are refused here, never sent.
async fn pump(
    ctx: &LinkCtx,
    rx: &mut mpsc::Receiver<PeerMessage>,
    etx: mpsc::Sender<pb::PeerEnvelope>,
    closed: &mut oneshot::Receiver<String>,
) -> Option<String> {
    let ended = |why: Result<String, oneshot::error::RecvError>| {
        why.unwrap_or_else(|_| "the link's call ended".to_owned())
    };
    // A message taken from the queue that did not fit the previous envelope.
    let mut carry: Option<PeerMessage> = None;
    let room = ctx
        .limit
        .saturating_sub(ENVELOPE_OVERHEAD + ctx.me.as_str().len());
    loop {
        let mut next = match carry.take() {
            Some(m) => Some(m),
            None => tokio::select! {
                m = rx.recv() => Some(m?),
                why = &mut *closed => return Some(ended(why)),
            },
        };
        let mut batch = Batch::default();
        while let Some(message) = next.take() {
            if let Some(wire) = hub_proto::message_to_pb(&message) {
                let size = wire.encoded_len() + MESSAGE_OVERHEAD;
                if size > room {
                    refuse(ctx, &message, size);
                } else if !batch.messages.is_empty() && batch.bytes + size > BATCH_BYTES {
                    carry = Some(message);
                    break;
                } else {
                    batch.bytes += size;
                    batch.ids.push(request_id(&message));
                    batch.messages.push(wire);
                }
            } else {
                // Only `message` frames leave the node (the receiver rebuilds them from their
                // content): answer anything else at once instead of letting it time out.
                fail(&ctx.sink, &ctx.health, &ctx.peer, &message);
            }
            if !batch.full() {
                next = rx.try_recv().ok();
            }
        }
        if batch.messages.is_empty() {
            continue;
        }
        let count = batch.messages.len() as u64;
        let envelope = pb::PeerEnvelope {
            from: ctx.me.to_string(),
            messages: batch.messages,
        };
        let broke = tokio::select! {
            sent = tokio::time::timeout(ctx.stall, etx.send(envelope)) => match sent {
                Ok(Ok(())) => None,
                Ok(Err(_)) => Some("the stream closed".to_owned()),
                Err(_) => Some(format!("the peer took nothing for {:?}", ctx.stall)),
            },
            why = &mut *closed => Some(ended(why)),
        };
        if let Some(why) = broke {
            for id in batch.ids.into_iter().chain(carry.as_ref().map(request_id)) {
                fail_request(&ctx.sink, &ctx.health, &ctx.peer, id);
            }
            return Some(why);
        }
        add(&ctx.health.counters.peer_sent, count);
    }
}

/// Refuses a message larger than the peer can decode: counted, logged, its request failed.
fn refuse(ctx: &LinkCtx, message: &PeerMessage, size: usize) {
    add(&ctx.health.counters.peer_oversize, 1);
    tracing::warn!(
        peer = %ctx.peer,
        bytes = size,
        limit = ctx.limit,
        "refused a peer message larger than the peer message limit (raise --send-queue-bytes on every node to carry it)"
    );
    fail(&ctx.sink, &ctx.health, &ctx.peer, message);
}

/// Fails every message that arrives during `wait` (the peer is unreachable).
async fn fail_while_waiting(
    rx: &mut mpsc::Receiver<PeerMessage>,
    sink: &InputSink,
    health: &Health,
    peer: &NodeId,
    wait: Duration,
) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(message)) => fail(sink, health, peer, &message),
            Ok(None) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::node::RemoteOp;
    use hub_core::Target;
    use std::sync::Mutex;

    fn deliver(id: u64, size: usize) -> PeerMessage {
        PeerMessage::Request {
            id: Some(id),
            op: RemoteOp::Deliver {
                target: Target::Room("r".into()),
                // A `message` frame whose data (a JSON string) is `size` bytes long.
                frame: hub_core::protocol::message(
                    None,
                    None,
                    &format!("\"{}\"", "x".repeat(size.saturating_sub(2))),
                ),
            },
        }
    }

    fn ctx(limit: usize, stall: Duration) -> (LinkCtx, Arc<Mutex<Vec<Input>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let sink: InputSink = Arc::new(move |input| log.lock().expect("log").push(input));
        let ctx = LinkCtx {
            me: "me".into(),
            peer: "peer".into(),
            addr: "127.0.0.1:1".into(),
            sink,
            health: Arc::new(Health::default()),
            op_timeout: Duration::from_secs(1),
            limit,
            stall,
            auth: PeerAuth::new("me".into(), None),
            tls: None,
        };
        (ctx, seen)
    }

    fn failed(seen: &Mutex<Vec<Input>>) -> Vec<u64> {
        seen.lock()
            .expect("log")
            .iter()
            .filter_map(|i| match i {
                Input::PeerFailed { id, .. } => *id,
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_message_above_the_limit_is_refused_and_the_rest_goes() {
        let (ctx, seen) = ctx(4096, STALL_AFTER);
        let (tx, mut rx) = mpsc::channel(8);
        let (etx, mut erx) = mpsc::channel(8);
        let (_closed_tx, mut closed) = oneshot::channel();
        tx.send(deliver(1, 5000)).await.expect("queue");
        tx.send(deliver(2, 100)).await.expect("queue");
        drop(tx);
        assert_eq!(pump(&ctx, &mut rx, etx, &mut closed).await, None);
        let envelope = erx.recv().await.expect("one envelope");
        assert_eq!(envelope.messages.len(), 1);
        assert!(erx.recv().await.is_none(), "nothing else sent");
        assert_eq!(failed(&seen), vec![1], "the refused request is answered");
        let stats = ctx.health.stats();
        assert_eq!((stats.peer_oversize, stats.peer_sent), (1, 1));
    }

    #[tokio::test]
    async fn envelopes_are_bounded_in_bytes() {
        let (ctx, _) = ctx(64 * 1024 * 1024, STALL_AFTER);
        let (tx, mut rx) = mpsc::channel(16);
        let (etx, mut erx) = mpsc::channel(16);
        let (_closed_tx, mut closed) = oneshot::channel();
        for id in 0..5 {
            tx.send(deliver(id, 300 * 1024)).await.expect("queue");
        }
        // A single message larger than a batch travels alone.
        tx.send(deliver(9, 3 * 1024 * 1024)).await.expect("queue");
        drop(tx);
        assert_eq!(pump(&ctx, &mut rx, etx, &mut closed).await, None);
        let mut sizes = Vec::new();
        while let Some(envelope) = erx.recv().await {
            assert!(
                envelope.messages.len() == 1 || envelope.encoded_len() <= BATCH_BYTES,
                "an envelope of several messages stays within the batch bound"
            );
            sizes.push(envelope.messages.len());
        }
        assert_eq!(sizes, vec![3, 2, 1]);
    }

    #[tokio::test]
    async fn a_stream_that_takes_nothing_breaks_the_link() {
        let (ctx, seen) = ctx(64 * 1024, Duration::from_millis(50));
        let (tx, mut rx) = mpsc::channel(8);
        let (etx, _erx) = mpsc::channel(1);
        let (_closed_tx, mut closed) = oneshot::channel();
        let broke = tokio::spawn(async move {
            let why = pump(&ctx, &mut rx, etx, &mut closed).await;
            (why, ctx)
        });
        // The first envelope fills the stream's buffer; the second cannot be taken.
        tx.send(deliver(1, 10)).await.expect("queue");
        tokio::task::yield_now().await;
        tx.send(deliver(2, 10)).await.expect("queue");
        let (why, ctx) = broke.await.expect("pump");
        assert!(why.is_some_and(|w| w.contains("took nothing")));
        assert!(
            failed(&seen).contains(&2),
            "the stalled request is answered"
        );
        assert_eq!(ctx.health.stats().peer_errors as usize, failed(&seen).len());
    }

    #[tokio::test]
    async fn a_closed_call_breaks_an_idle_link() {
        let (ctx, _) = ctx(64 * 1024, STALL_AFTER);
        let (_tx, mut rx) = mpsc::channel(8);
        let (etx, _erx) = mpsc::channel(1);
        let (closed_tx, mut closed) = oneshot::channel();
        closed_tx.send("gone".to_owned()).expect("signal");
        assert_eq!(
            pump(&ctx, &mut rx, etx, &mut closed).await,
            Some("gone".to_owned())
        );
    }
}
