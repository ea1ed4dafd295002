//! One task per accepted TCP connection: read request heads, and either upgrade to a
//! WebSocket or answer HTTP requests (endpoints, producer API) with keep-alive.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::admission::{HttpSlot, IpSlot};
use crate::conn::Connection;
use crate::hub::Hub;
use crate::runtime::{linger_close, timeout, write_all, Conn, Runtime};
use crate::sockets::LINGER;
use bytes::BytesMut;
use hub_edge::api::MAX_API_BODY;
use hub_edge::metrics::{metrics_text, CONTENT_TYPE as METRICS_TYPE};
use hub_edge::stats::{health, stats_json};
use hub_serve::Decision;
use hub_wire::http::{parse_request, upgrade_response, Parsed, RequestHead, Response};
use hub_wire::server::{body_framing, error_response};

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// How long an idle keep-alive connection is kept (the deadline for its whole next request).
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Serves one accepted connection: HTTP requests until it closes, or a WebSocket.
///
/// The HTTP phase runs boxed and ends when the connection becomes a WebSocket: what it held
/// (read buffer, request head, timers, its place among the HTTP connections) is freed. A TCP
/// socket then goes to its shard task (see [`Conn::into_tcp`]) and this task ends; any other
/// stream stays in this task, which keeps only the connection's state.
pub fn serve<R: Runtime, C: Conn>(
    rt: R,
    hub: Hub,
    stream: C,
    peer: SocketAddr,
) -> impl Future<Output = ()> + Send {
    let requests = Box::pin(admit(rt.clone(), hub, stream, peer));
    async move {
        // Not `if let`, which would keep the `Option` in the future while the connection runs.
        let Some(connection) = requests.await else {
            return;
        };
        connection.run(rt).await;
    }
}

/// Takes the connection's places (among the HTTP connections, and in its address's limit)
/// or refuses it, then serves its requests.
async fn admit<R: Runtime, C: Conn>(
    rt: R,
    hub: Hub,
    stream: C,
    peer: SocketAddr,
) -> Option<Connection<C>> {
    let Some(http) = HttpSlot::acquire(&hub) else {
        tracing::warn!(%peer, "connection refused: too many HTTP connections");
        let refusal = error_response(503, "too many HTTP connections, try again later");
        finish(&rt, &hub, &stream, &refusal.to_bytes(false)).await;
        return None;
    };
    let Some(ip) = IpSlot::acquire(&hub, peer.ip()) else {
        tracing::warn!(ip = %peer.ip(), "connection refused: too many connections from this address");
        let refusal = error_response(429, "too many connections from this address");
        finish(&rt, &hub, &stream, &refusal.to_bytes(false)).await;
        return None;
    };
    let connection = serve_requests(rt, hub, stream, peer, ip).await;
    drop(http);
    connection
}

/// Serves HTTP requests until the connection closes or is upgraded to a WebSocket and handed
/// to its shard (`None`), or opened on a shard to run in this task (`Some`).
pub(crate) async fn serve_requests<R: Runtime, C: Conn>(
    rt: R,
    hub: Hub,
    stream: C,
    peer: SocketAddr,
    ip: IpSlot,
) -> Option<Connection<C>> {
    let mut buf = BytesMut::with_capacity(1024);
    let mut first = true;
    loop {
        let wait = if first {
            hub.inner.settings.handshake_timeout
        } else {
            KEEP_ALIVE
        };
        first = false;
        // One deadline for the whole request: its head and its body.
        let deadline = Instant::now() + wait;
        let head = match timeout(&rt, wait, read_head(&stream, &mut buf)).await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) => return None,
            Err(()) if buf.is_empty() => return None,
            Err(()) => {
                let late = error_response(408, "the request was not complete in time");
                finish(&rt, &hub, &stream, &late.to_bytes(false)).await;
                return None;
            }
            Ok(Err(response)) => {
                finish(&rt, &hub, &stream, &response.to_bytes(false)).await;
                return None;
            }
        };
        let body_len = match body_framing(&head) {
            Ok(len) => len,
            Err(refusal) => {
                finish(&rt, &hub, &stream, &refusal.to_bytes(false)).await;
                return None;
            }
        };
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let decision = hub.inner.gate.decide(&head, now_unix);
        let api = matches!(decision, Decision::Api | Decision::PusherApi);
        let response = match decision {
            Decision::Upgrade { .. } if body_len > 0 => {
                error_response(400, "a WebSocket upgrade request has no body")
            }
            Decision::UpgradeAndClose { key, frames } => {
                let mut bytes = upgrade_response(&key).to_vec();
                bytes.extend_from_slice(&frames);
                finish(&rt, &hub, &stream, &bytes).await;
                return None;
            }
            Decision::Upgrade { params, shard, key } => {
                return upgrade(&rt, hub, stream, peer, buf, params, shard, key, ip).await;
            }
            Decision::Health => {
                let (status, body) = health(&hub.snapshot().await);
                Response::json(status, body)
            }
            Decision::Stats => Response::json(200, stats_json(&hub.snapshot().await)),
            Decision::Metrics => Response::new(
                200,
                METRICS_TYPE,
                metrics_text(&hub.snapshot().await, &hub.inner.latencies),
            ),
            Decision::Demo => Response::html(200, hub_edge::demo::DEMO_PAGE),
            Decision::Script => {
                use hub_edge::script::{SCRIPT, SCRIPT_CACHE_CONTROL, SCRIPT_CONTENT_TYPE};
                Response::new(200, SCRIPT_CONTENT_TYPE, SCRIPT)
                    .with_header("Cache-Control", SCRIPT_CACHE_CONTROL)
            }
            Decision::Api => match read_body(&rt, &stream, &mut buf, body_len, deadline).await {
                Ok(body) => match hub.inner.gate.api_request(&head, &body) {
                    Ok(request) => match hub.command(hub_serve::api::command(&request)).await {
                        Ok(reply) => hub_serve::api::response(&reply),
                        Err(e) => error_response(503, &e.to_string()),
                    },
                    Err(response) => response,
                },
                Err(response) => {
                    finish(&rt, &hub, &stream, &response.to_bytes(false)).await;
                    return None;
                }
            },
            Decision::PusherApi => {
                match read_body(&rt, &stream, &mut buf, body_len, deadline).await {
                    Ok(body) => match hub.inner.gate.pusher().call(&head, &body, now_unix) {
                        Ok(call) => crate::pusher_api::serve(&hub, call).await,
                        Err(response) => response,
                    },
                    Err(response) => {
                        finish(&rt, &hub, &stream, &response.to_bytes(false)).await;
                        return None;
                    }
                }
            }
            Decision::Respond(response) => response,
        };
        // A body is read for API routes only: after any other request that carries one, the
        // connection closes (the body is never taken for the next request).
        let keep_alive = head.keep_alive() && response.status < 500 && (api || body_len == 0);
        let mut bytes = response.to_bytes(keep_alive);
        if head.method == "HEAD" {
            // The head of the GET answer (with its Content-Length), without the body.
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                bytes.truncate(end + 4);
            }
        }
        if !keep_alive {
            finish(&rt, &hub, &stream, &bytes).await;
            return None;
        }
        if !send(&rt, &hub, &stream, &bytes).await {
            return None;
        }
    }
}

/// Writes `bytes` within the write deadline (the handshake timeout): a client that does not
/// read cannot hold the task. False when the write failed or did not finish in time.
async fn send<R: Runtime, C: Conn>(rt: &R, hub: &Hub, stream: &C, bytes: &[u8]) -> bool {
    let limit = hub.inner.settings.handshake_timeout;
    matches!(
        timeout(rt, limit, write_all(stream, bytes)).await,
        Ok(Ok(()))
    )
}

/// Writes a last answer within the write deadline, then closes gracefully: the write side is
/// shut and what the client still sends (a body nobody reads) is discarded for at most
/// [`LINGER`], so that the client reads the answer instead of a reset.
async fn finish<R: Runtime, C: Conn>(rt: &R, hub: &Hub, stream: &C, bytes: &[u8]) {
    if send(rt, hub, stream, bytes).await {
        linger_close(rt, stream, LINGER).await;
    }
}

/// Reads until a full request head is in `buf`; `Ok(None)` when the peer closed first.
async fn read_head<C: Conn>(
    stream: &C,
    buf: &mut BytesMut,
) -> Result<Option<RequestHead>, Response> {
    loop {
        if !buf.is_empty() {
            match parse_request(buf, MAX_HEAD) {
                Ok(Parsed::Complete { head, head_len }) => {
                    let _ = buf.split_to(head_len);
                    return Ok(Some(head));
                }
                Ok(Parsed::Partial) => {}
                Err(e) => return Err(error_response(e.status(), &e.to_string())),
            }
        }
        match stream.read_with(|bytes| buf.extend_from_slice(bytes)).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// Reads until `buf` holds `len` bytes; false on end of stream.
async fn fill<C: Conn>(stream: &C, buf: &mut BytesMut, len: usize) -> bool {
    while buf.len() < len {
        match stream.read_with(|bytes| buf.extend_from_slice(bytes)).await {
            Ok(n) if n > 0 => {}
            _ => return false,
        }
    }
    true
}

/// Reads a request body of `len` bytes (its Content-Length) by the request's `deadline`.
async fn read_body<R: Runtime, C: Conn>(
    rt: &R,
    stream: &C,
    buf: &mut BytesMut,
    len: usize,
    deadline: Instant,
) -> Result<Vec<u8>, Response> {
    if len > MAX_API_BODY {
        let message = format!("request bodies are limited to {MAX_API_BODY} bytes");
        return Err(error_response(413, &message));
    }
    let left = deadline.saturating_duration_since(Instant::now());
    match timeout(rt, left, fill(stream, buf, len)).await {
        Ok(true) => Ok(buf.split_to(len).to_vec()),
        Ok(false) => Err(error_response(400, "body shorter than Content-Length")),
        Err(()) => Err(error_response(408, "the request was not complete in time")),
    }
}

/// Admits an upgrade request, answers it and opens the connection on a shard; the address's
/// place in the limiter goes to the WebSocket.
#[allow(
    clippy::too_many_arguments,
    reason = "what the HTTP phase hands to the WebSocket"
)]
async fn upgrade<R: Runtime, C: Conn>(
    rt: &R,
    hub: Hub,
    stream: C,
    peer: SocketAddr,
    leftover: BytesMut,
    params: hub_core::OpenParams,
    shard: Option<hub_core::ShardId>,
    key: String,
    slot: IpSlot,
) -> Option<Connection<C>> {
    if hub
        .inner
        .shutting_down
        .load(std::sync::atomic::Ordering::Acquire)
    {
        let refusal = error_response(503, "the node is shutting down");
        finish(rt, &hub, &stream, &refusal.to_bytes(false)).await;
        return None;
    }
    let ip = peer.ip();
    let mut params = params;
    params.peer = Some(peer);
    if !send(rt, &hub, &stream, &upgrade_response(&key)).await {
        return None;
    }
    match stream.into_tcp() {
        // The shard task owns the socket from here, and gives the address's place back.
        Ok(Ok(socket)) => {
            if hub.adopt(socket, leftover.freeze(), params, shard, ip) {
                slot.hand_over();
            }
        }
        Ok(Err(stream)) => {
            let opened = crate::conn::open(hub.clone(), stream, leftover.freeze(), params, shard);
            match opened.await {
                Ok(mut connection) => {
                    // Given back when the connection ends.
                    connection.limited = slot.hand_over();
                    return Some(connection);
                }
                Err(e) => tracing::warn!(%peer, error = %e, "connection not opened"),
            }
        }
        Err(e) => tracing::warn!(%peer, error = %e, "connection lost at the upgrade"),
    }
    None
}

/// Gives back `ip`'s place in the connection limiter.
pub(crate) fn release(hub: &Hub, ip: IpAddr) {
    if let Ok(mut limiter) = hub.inner.limiter.lock() {
        limiter.release(ip);
    }
}
