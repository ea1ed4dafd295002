//! One task per accepted TCP connection: read request heads, and either upgrade to a
//! WebSocket or answer HTTP requests (endpoints, producer API) with keep-alive.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::conn::Connection;
use crate::hub::Hub;
use crate::runtime::{timeout, write_all, Conn, Runtime};
use bytes::BytesMut;
use hub_edge::api::MAX_API_BODY;
use hub_edge::stats::{health, metrics_text, stats_json};
use hub_serve::Decision;
use hub_wire::http::{parse_request, upgrade_response, Parsed, RequestHead, Response};

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// How long an idle keep-alive connection is kept.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Serves one accepted connection: HTTP requests until it closes, or a WebSocket.
///
/// The HTTP phase runs boxed and ends when the connection becomes a WebSocket: what it held
/// (read buffer, request head, timers) is freed. A TCP socket then goes to its shard task
/// (see [`Conn::into_tcp`]) and this task ends; any other stream stays in this task, which
/// keeps only the connection's state.
pub fn serve<R: Runtime, C: Conn>(
    rt: R,
    hub: Hub,
    stream: C,
    peer: SocketAddr,
) -> impl Future<Output = ()> + Send {
    let requests = Box::pin(serve_requests(rt.clone(), hub, stream, peer));
    async move {
        // Not `if let`, which would keep the `Option` in the future while the connection runs.
        let Some(connection) = requests.await else {
            return;
        };
        connection.run(rt).await;
    }
}

/// Serves HTTP requests until the connection closes or is upgraded to a WebSocket and handed
/// to its shard (`None`), or opened on a shard to run in this task (`Some`).
async fn serve_requests<R: Runtime, C: Conn>(
    rt: R,
    hub: Hub,
    stream: C,
    peer: SocketAddr,
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
        let head = match timeout(&rt, wait, read_head(&stream, &mut buf)).await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) | Err(_) => return None,
            Ok(Err(response)) => {
                let _ = write_all(&stream, &response.to_bytes(false)).await;
                return None;
            }
        };
        let keep_alive = head.keep_alive();
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let decision = hub.inner.gate.decide(&head, now_unix);
        let decision_kind = if matches!(decision, Decision::Api) {
            Kind::Api
        } else {
            Kind::Other
        };
        let response = match decision {
            Decision::Upgrade { params, shard, key } => {
                return upgrade(hub, stream, peer, buf, params, shard, key).await;
            }
            Decision::Health => {
                let (status, body) = health(&hub.snapshot().await);
                Response::json(status, body)
            }
            Decision::Stats => Response::json(200, stats_json(&hub.snapshot().await)),
            Decision::Metrics => Response::new(
                200,
                "text/plain; version=0.0.4",
                metrics_text(&hub.snapshot().await),
            ),
            Decision::Demo => Response::html(200, hub_edge::demo::DEMO_PAGE),
            Decision::Script => {
                use hub_edge::script::{SCRIPT, SCRIPT_CACHE_CONTROL, SCRIPT_CONTENT_TYPE};
                Response::new(200, SCRIPT_CONTENT_TYPE, SCRIPT)
                    .with_header("Cache-Control", SCRIPT_CACHE_CONTROL)
            }
            Decision::Api => match read_body(&rt, &stream, &mut buf, &head).await {
                Ok(body) => match hub.inner.gate.api_request(&head, &body) {
                    Ok(request) => match hub.command(hub_serve::api::command(&request)).await {
                        Ok(reply) => hub_serve::api::response(&reply),
                        Err(e) => Response::json(503, format!(r#"{{"error":"{e}"}}"#)),
                    },
                    Err(response) => response,
                },
                Err(response) => {
                    let _ = write_all(&stream, &response.to_bytes(false)).await;
                    return None;
                }
            },
            Decision::Respond(response) => response,
        };
        // A body this request carried and nobody read must not be taken for the next request.
        let unread = if matches!(decision_kind, Kind::Api) {
            0
        } else {
            head.content_length().unwrap_or(usize::MAX)
        };
        let keep_alive =
            keep_alive && response.status < 500 && discard(&rt, &stream, &mut buf, unread).await;
        let mut bytes = response.to_bytes(keep_alive);
        if head.method == "HEAD" {
            // The head of the GET answer (with its Content-Length), without the body.
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                bytes.truncate(end + 4);
            }
        }
        if write_all(&stream, &bytes).await.is_err() || !keep_alive {
            return None;
        }
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
                Err(e) => {
                    let body = format!(r#"{{"error":"{e}"}}"#);
                    return Err(Response::json(e.status(), body));
                }
            }
        }
        match stream.read_with(|bytes| buf.extend_from_slice(bytes)).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// Reads until `buf` holds `len` bytes; false on end of stream or after the keep-alive wait.
async fn fill<R: Runtime, C: Conn>(rt: &R, stream: &C, buf: &mut BytesMut, len: usize) -> bool {
    while buf.len() < len {
        match timeout(
            rt,
            KEEP_ALIVE,
            stream.read_with(|bytes| buf.extend_from_slice(bytes)),
        )
        .await
        {
            Ok(Ok(n)) if n > 0 => {}
            _ => return false,
        }
    }
    true
}

/// Whether a request's body was read by its handler.
enum Kind {
    Api,
    Other,
}

/// Skips `len` unread body bytes; false when the connection cannot be reused.
async fn discard<R: Runtime, C: Conn>(rt: &R, stream: &C, buf: &mut BytesMut, len: usize) -> bool {
    if len > MAX_API_BODY || !fill(rt, stream, buf, len).await {
        return false;
    }
    let _ = buf.split_to(len);
    true
}

/// Reads the request body announced by Content-Length.
async fn read_body<R: Runtime, C: Conn>(
    rt: &R,
    stream: &C,
    buf: &mut BytesMut,
    head: &RequestHead,
) -> Result<Vec<u8>, Response> {
    let len = head
        .content_length()
        .map_err(|e| Response::json(400, format!(r#"{{"error":"{e}"}}"#)))?;
    if len > MAX_API_BODY {
        return Err(Response::json(
            413,
            format!(r#"{{"error":"body over {MAX_API_BODY} bytes"}}"#),
        ));
    }
    if !fill(rt, stream, buf, len).await {
        return Err(Response::json(
            400,
            r#"{"error":"body shorter than Content-Length"}"#,
        ));
    }
    Ok(buf.split_to(len).to_vec())
}

/// Admits an upgrade request, answers it and opens the connection on a shard.
async fn upgrade<C: Conn>(
    hub: Hub,
    stream: C,
    peer: SocketAddr,
    leftover: BytesMut,
    params: hub_core::OpenParams,
    shard: Option<hub_core::ShardId>,
    key: String,
) -> Option<Connection<C>> {
    let refuse = |status: u16, message: &str| {
        Response::json(status, format!(r#"{{"error":"{message}"}}"#)).to_bytes(false)
    };
    if hub
        .inner
        .shutting_down
        .load(std::sync::atomic::Ordering::Acquire)
    {
        let _ = write_all(&stream, &refuse(503, "the node is shutting down")).await;
        return None;
    }
    let ip = peer.ip();
    let admitted = hub
        .inner
        .limiter
        .lock()
        .map(|mut l| l.acquire(ip))
        .unwrap_or(false);
    if !admitted {
        tracing::warn!(%ip, "connection refused: too many connections from this address");
        let _ = write_all(
            &stream,
            &refuse(429, "too many connections from this address"),
        )
        .await;
        return None;
    }
    let mut params = params;
    params.peer = Some(peer);
    if write_all(&stream, &upgrade_response(&key)).await.is_ok() {
        match stream.into_tcp() {
            // The shard task owns the socket from here, and gives the address's place back.
            Ok(Ok(socket)) => {
                if hub.adopt(socket, leftover.freeze(), params, shard, ip) {
                    return None;
                }
            }
            Ok(Err(stream)) => {
                let opened =
                    crate::conn::open(hub.clone(), stream, leftover.freeze(), params, shard);
                match opened.await {
                    Ok(mut connection) => {
                        // Given back when the connection ends.
                        connection.limited = Some(ip);
                        return Some(connection);
                    }
                    Err(e) => tracing::warn!(%peer, error = %e, "connection not opened"),
                }
            }
            Err(e) => tracing::warn!(%peer, error = %e, "connection lost at the upgrade"),
        }
    }
    release(&hub, ip);
    None
}

/// Gives back `ip`'s place in the connection limiter.
pub(crate) fn release(hub: &Hub, ip: IpAddr) {
    if let Ok(mut limiter) = hub.inner.limiter.lock() {
        limiter.release(ip);
    }
}
