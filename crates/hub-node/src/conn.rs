//! One task per WebSocket connection: decode what the client sends into shard inputs, and
//! write what the shard transmits.
//!
//! Most connections are idle most of the time, waiting in [`Connection::run`]'s loop, so
//! what that wait holds is kept small: the connection's state is one struct the loop works
//! on in place, and opening the connection (the shard's reply, the bytes read past the
//! upgrade request) is done before the loop, in a future that ends when the connection is
//! open.

use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use hub_core::shard::{Input, OpenParams};
use hub_core::{ConnId, ShardId};
use hub_wire::ws::{Decoded, FrameDecoder, WsError};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::hub::{Hub, HubError};
use crate::mailbox::{Link, Mailbox, WriterCmd};
use crate::runtime::{linger_close, timeout, write_frames, Conn, Runtime};
use crate::shard_task::{ShardMsg, ShardTx};

/// How long a closed connection keeps reading (and discarding) so the client gets the close
/// frame instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

/// Opens a connection on a shard (by client id, or the next one) and runs it until it ends.
/// `leftover` holds bytes read past the upgrade request.
pub async fn open_and_run<R: Runtime, C: Conn>(
    rt: &R,
    hub: Hub,
    conn: C,
    leftover: Bytes,
    params: OpenParams,
    shard: Option<ShardId>,
) -> Result<(), HubError> {
    let connection = Box::pin(open(hub, conn, leftover, params, shard)).await?;
    connection.run(rt.clone()).await;
    Ok(())
}

/// An open WebSocket connection: what its task holds while it waits.
pub(crate) struct Connection<C> {
    /// The mailbox and the socket, shared with the shard task (which writes through it).
    link: Arc<Link<C>>,
    hub: Hub,
    conn: ConnId,
    tx: ShardTx,
    decoder: FrameDecoder,
    decoded: Vec<Decoded>,
    /// What to do first (after the bytes read past the upgrade request).
    next: Next,
    /// The address whose place in the connection limiter this connection holds.
    pub(crate) limited: Option<IpAddr>,
}

/// Asks a shard to open a connection over `socket`, and passes it what the client sent
/// right after the upgrade request (`leftover`, not kept).
pub(crate) async fn open<C: Conn>(
    hub: Hub,
    socket: C,
    leftover: Bytes,
    params: OpenParams,
    shard: Option<ShardId>,
) -> Result<Connection<C>, HubError> {
    let shard = hub.pick_shard(shard);
    let Some(tx) = hub.shard_tx(shard).cloned() else {
        return Err(HubError::Stopped);
    };
    let link = Arc::new(Link {
        mailbox: Mailbox::default(),
        socket,
    });
    let (reply_tx, reply_rx) = oneshot::channel();
    tx.control
        .send(ShardMsg::Open {
            params,
            link: link.clone(),
            reply: reply_tx,
        })
        .map_err(|_| HubError::Stopped)?;
    let id = reply_rx.await.map_err(|_| HubError::Stopped)??;
    hub.inner.live.fetch_add(1, Ordering::AcqRel);
    tracing::debug!(conn = %id, "connected");
    let decoder = FrameDecoder::new(hub.inner.settings.max_message_size);
    let mut connection = Connection {
        link,
        hub,
        conn: id,
        tx,
        decoder,
        decoded: Vec::new(),
        next: Next::Read,
        limited: None,
    };
    if !leftover.is_empty() {
        let c = &mut connection;
        let outcome = match c.decoder.decode(&leftover, &mut c.decoded) {
            Ok(()) => ReadOutcome::Data,
            Err(e) => ReadOutcome::Protocol(e),
        };
        drop(leftover);
        c.next = forward(c.conn, &c.tx, &mut c.decoded, outcome).await;
    }
    Ok(connection)
}

/// What one read produced.
enum ReadOutcome {
    Data,
    Eof,
    Protocol(WsError),
}

async fn read_decoded<C: Conn>(
    socket: &C,
    decoder: &mut FrameDecoder,
    out: &mut Vec<Decoded>,
) -> ReadOutcome {
    let mut result = Ok(());
    match socket
        .read_with(|bytes| result = decoder.decode(bytes, out))
        .await
    {
        Ok(0) | Err(_) => ReadOutcome::Eof,
        Ok(_) => match result {
            Ok(()) => ReadOutcome::Data,
            Err(e) => ReadOutcome::Protocol(e),
        },
    }
}

impl<C: Conn> Connection<C> {
    /// Runs the connection until it ends. (One async block, not an `async fn` with a nested
    /// one: the future then holds `self` once and no references to it.)
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` would hold its arguments twice"
    )]
    pub(crate) fn run<R: Runtime>(mut self, rt: R) -> impl Future<Output = ()> + Send {
        async move {
            'serve: {
                let mut reading = match self.next {
                    Next::Read => true,
                    Next::WaitForClose => false,
                    Next::End => break 'serve,
                };
                loop {
                    // Waits for a command or a read; a command stays in the mailbox until it
                    // is taken below, so what the select returns (and keeps while
                    // forwarding) is a read's outcome only.
                    if let Some(outcome) = tokio::select! {
                        biased;
                        () = self.link.mailbox.ready() => None,
                        outcome = read_decoded(&self.link.socket, &mut self.decoder, &mut self.decoded), if reading => Some(outcome),
                    } {
                        match forward(self.conn, &self.tx, &mut self.decoded, outcome).await {
                            Next::Read => {}
                            Next::WaitForClose => reading = false,
                            Next::End => break 'serve,
                        }
                        continue;
                    }
                    let (frames, close) = match self.link.mailbox.try_take() {
                        Some(WriterCmd::Transmit { frames, close }) => (frames, close),
                        Some(WriterCmd::Abort) => break 'serve,
                        None => continue,
                    };
                    if close {
                        // Once per connection: boxed, so that its timers do not enlarge
                        // every connection's task.
                        let limit = self.hub.inner.drain_timeout;
                        let socket = &self.link.socket;
                        Box::pin(write_and_close(&rt, socket, frames, limit)).await;
                        break 'serve;
                    }
                    // The shard sends nothing more before `Sent` but an abort (drain deadline).
                    // Polled by hand: `select!`'s bookkeeping would make this the largest
                    // state of every connection's future.
                    let mut write = std::pin::pin!(write_frames(&self.link.socket, frames));
                    let mailbox = &self.link.mailbox;
                    let written = std::future::poll_fn(|cx| {
                        if let Poll::Ready(result) = write.as_mut().poll(cx) {
                            return Poll::Ready(result.is_ok());
                        }
                        mailbox.poll_take(cx).map(|_abort| false)
                    })
                    .await;
                    if !written {
                        break;
                    }
                    let sent = ShardMsg::Input(Input::Sent { conn: self.conn });
                    if self.tx.control.send(sent).is_err() {
                        break;
                    }
                }
                let closed = ShardMsg::Input(Input::Closed { conn: self.conn });
                let _ = self.tx.control.send(closed);
            }
            tracing::debug!(conn = %self.conn, "disconnected");
            if self.hub.inner.live.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.hub.inner.all_closed.notify_waiters();
            }
            if let Some(ip) = self.limited {
                crate::http::release(&self.hub, ip);
            }
        }
    }
}

/// Writes the final frames, then closes lingering. The shard has forgotten the connection:
/// no abort can come, so the write gets its own deadline (`limit`).
async fn write_and_close<R: Runtime, C: Conn>(
    rt: &R,
    socket: &C,
    frames: Vec<Bytes>,
    limit: Duration,
) {
    if let Ok(Ok(())) = timeout(rt, limit, write_frames(socket, frames)).await {
        linger_close(rt, socket, LINGER).await;
    }
}

/// What the connection task does after a read.
enum Next {
    /// Keep reading.
    Read,
    /// Stop reading; the shard will transmit the close frame.
    WaitForClose,
    /// The socket is gone and the shard knows it.
    End,
}

/// Passes decoded messages to the shard; says what to do next. (An async block, not an
/// `async fn`, which would hold a second copy of the arguments while waiting.)
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` would hold its arguments twice"
)]
fn forward<'a>(
    conn: ConnId,
    tx: &'a ShardTx,
    decoded: &'a mut Vec<Decoded>,
    outcome: ReadOutcome,
) -> impl Future<Output = Next> + Send + 'a {
    async move {
        // Taken out, so that its buffer is freed on every way out: an idle connection that
        // once read (a pong is enough) would otherwise keep it. Then taken from the back,
        // after a place is reserved: no message is held while waiting.
        let mut messages = std::mem::take(decoded);
        messages.reverse();
        while !messages.is_empty() {
            let permit = reserve(&tx.data).await;
            let Some(message) = messages.pop() else {
                break;
            };
            let input = match message {
                Decoded::Text(data) => Input::Message {
                    conn,
                    data,
                    binary: false,
                },
                Decoded::Binary(data) => Input::Message {
                    conn,
                    data,
                    binary: true,
                },
                Decoded::Ping(payload) => Input::Ping { conn, payload },
                Decoded::Pong(_) => Input::Activity { conn },
                Decoded::Close { code, .. } => {
                    // Echo the client's code when it is one we may send back, else 1000.
                    let code = code
                        .filter(|c| matches!(c, 1000..=1003 | 1007..=1011 | 3000..=4999))
                        .unwrap_or(1000);
                    if let Some(permit) = permit {
                        permit.send(Input::Close {
                            conn,
                            code,
                            reason: String::new(),
                        });
                    }
                    return Next::WaitForClose;
                }
            };
            let Some(permit) = permit else {
                return Next::End;
            };
            permit.send(input);
        }
        drop(messages);
        match outcome {
            ReadOutcome::Data => Next::Read,
            // Sent on the data channel, behind the messages read before them.
            ReadOutcome::Eof => {
                if let Some(permit) = reserve(&tx.data).await {
                    permit.send(Input::Closed { conn });
                }
                Next::End
            }
            ReadOutcome::Protocol(e) => {
                if let Some(permit) = reserve(&tx.data).await {
                    permit.send(Input::Close {
                        conn,
                        code: e.code,
                        reason: e.reason.to_owned(),
                    });
                }
                Next::WaitForClose
            }
        }
    }
}

/// A place on the shard's bounded data channel (what `send` waits for), `None` when the
/// shard is gone. Waiting (the shard is behind, a flooding client is slowed down) is rare,
/// and boxed: its future would otherwise be part of every connection's task.
async fn reserve(data: &mpsc::Sender<Input>) -> Option<mpsc::Permit<'_, Input>> {
    let full = match data.try_reserve() {
        Ok(permit) => return Some(permit),
        Err(TrySendError::Full(())) => true,
        Err(TrySendError::Closed(())) => false,
    };
    if full {
        Box::pin(data.reserve()).await.ok()
    } else {
        None
    }
}
