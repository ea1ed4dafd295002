//! One long-lived gRPC stream to every peer, carrying batches of messages.
//!
//! A link that cannot connect fails its messages at once (the router answers with what it
//! has instead of waiting for its timeout) and retries with backoff while the peer is in the
//! registry. A dead or slow peer never holds up the links to the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hub_core::node::{Input, PeerMessage};
use hub_core::NodeId;
use hub_proto::pb;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::health::{add, Health};
use crate::InputSink;

/// Messages that may wait for one peer before further ones fail.
const LINK_QUEUE: usize = 65_536;
/// Most messages in one envelope.
const BATCH: usize = 512;

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
}

impl Drop for Links {
    fn drop(&mut self) {
        for link in self.links.values() {
            link.task.abort();
        }
    }
}

impl Links {
    pub(crate) fn new(
        me: NodeId,
        sink: InputSink,
        health: Arc<Health>,
        op_timeout: Duration,
    ) -> Self {
        Self {
            me,
            links: HashMap::new(),
            sink,
            health,
            op_timeout,
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
            let task = tokio::spawn(run_link(
                self.me.clone(),
                node.clone(),
                addr.clone(),
                rx,
                self.sink.clone(),
                self.health.clone(),
                self.op_timeout,
            ));
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
    add(&health.counters.peer_errors, 1);
    if let PeerMessage::Request { id: Some(id), .. } = message {
        sink(Input::PeerFailed {
            node: node.clone(),
            id: Some(*id),
        });
    }
}

async fn run_link(
    me: NodeId,
    peer: NodeId,
    addr: String,
    mut rx: mpsc::Receiver<PeerMessage>,
    sink: InputSink,
    health: Arc<Health>,
    op_timeout: Duration,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{addr}")) {
            Ok(e) => e
                .connect_timeout(op_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10)),
            Err(e) => {
                tracing::warn!(%peer, %addr, error = %e, "peer address is not usable");
                fail_while_waiting(&mut rx, &sink, &health, &peer, Duration::from_secs(5)).await;
                continue;
            }
        };
        match endpoint.connect().await {
            Ok(channel) => {
                backoff = Duration::from_millis(100);
                tracing::debug!(%peer, %addr, "peer link up");
                let (etx, erx) = mpsc::channel::<pb::PeerEnvelope>(64);
                let mut client = pb::peer_client::PeerClient::new(channel);
                let call = tokio::spawn(async move {
                    if let Ok(response) = client.link(ReceiverStream::new(erx)).await {
                        let mut answers = response.into_inner();
                        while let Some(Ok(_)) = answers.next().await {}
                    }
                });
                let open = pump(&me, &peer, &mut rx, etx, &sink, &health).await;
                call.abort();
                if !open {
                    return;
                }
                tracing::warn!(%peer, "peer link broke; reconnecting");
            }
            Err(e) => {
                tracing::warn!(%peer, %addr, error = %e, "cannot reach peer");
                fail_while_waiting(&mut rx, &sink, &health, &peer, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Sends batches until the stream breaks (true) or the link is closed (false).
async fn pump(
    me: &NodeId,
    peer: &NodeId,
    rx: &mut mpsc::Receiver<PeerMessage>,
    etx: mpsc::Sender<pb::PeerEnvelope>,
    sink: &InputSink,
    health: &Health,
) -> bool {
    loop {
        let Some(first) = rx.recv().await else {
            return false;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let envelope = pb::PeerEnvelope {
            from: me.to_string(),
            messages: batch.iter().filter_map(hub_proto::message_to_pb).collect(),
        };
        if etx.send(envelope).await.is_err() {
            for m in &batch {
                fail(sink, health, peer, m);
            }
            return true;
        }
        add(&health.counters.peer_sent, batch.len() as u64);
    }
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
