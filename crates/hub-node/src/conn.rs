//! One task per WebSocket connection that is not a bare TCP socket (a stream an embedding
//! service upgraded): decode what the client sends into shard inputs, and write what the
//! shard transmits. (A TCP connection is run by its shard task instead: see `sockets.rs`.)
//!
//! Most connections are idle most of the time, so what an idle connection's task holds is
//! kept small. The task is a hand-written future, [`ConnTask`]: the connection's state, one
//! struct worked on in place, and one optional boxed future for the two waits that are not
//! the idle one (the shard's data channel is full; the socket did not take a whole batch).
//! Its idle wait is a poll of the mailbox and of the socket's readiness, which keep their
//! wakers where they live (the mailbox slot, the socket's registration), not in the task.
//! Opening the connection (the shard's reply, the bytes read past the upgrade request) is
//! done before, in a future that ends when the connection is open.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hub_core::shard::{Input, OpenParams};
use hub_core::{ConnId, ShardId};
use hub_wire::ws::{Decoded, FrameDecoder, WsError};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;

use crate::hub::{Hub, HubError};
use crate::inputs::{message_input, protocol_close};
use crate::mailbox::{Link, Mailbox, WriterCmd};
use crate::runtime::{linger_close, timeout, write_frames, Conn, Runtime};
use crate::shard_task::{ShardMsg, ShardTx};
use crate::sockets::LINGER;

/// Reads a connection's task makes in one poll before it lets other tasks run.
const READS_PER_POLL: u32 = 32;

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
    hub.connection_started(id);
    let mut decoder = FrameDecoder::new(hub.inner.settings.max_message_size);
    let mut next = Next::Read;
    if !leftover.is_empty() {
        let mut messages = Vec::new();
        let outcome = match decoder.decode(&leftover, &mut messages) {
            Ok(()) => ReadOutcome::Data,
            Err(e) => ReadOutcome::Protocol(e),
        };
        drop(leftover);
        let mut pending = Pending::new(messages, outcome);
        next = match forward_now(id, &tx, &mut pending) {
            Poll::Ready(next) => next,
            Poll::Pending => forward_blocked(id, tx.clone(), pending).await,
        };
    }
    Ok(Connection {
        link,
        hub,
        conn: id,
        tx,
        decoder,
        next,
        limited: None,
    })
}

/// What one read produced.
enum ReadOutcome {
    Data,
    Eof,
    Protocol(WsError),
}

/// What the connection task does after a read.
#[derive(Clone, Copy)]
enum Next {
    /// Keep reading.
    Read,
    /// Stop reading; the shard will transmit the close frame.
    WaitForClose,
    /// The socket is gone and the shard knows it.
    End,
}

impl<C: Conn> Connection<C> {
    /// The connection's task: runs it until it ends.
    pub(crate) fn run<R: Runtime>(self, rt: R) -> ConnTask<R, C> {
        // Ended while opening (the shard is gone): the first poll finishes the task.
        let busy: Option<Busy> = match self.next {
            Next::End => Some(Box::pin(async { Resume::Forwarded(Next::End) })),
            Next::Read | Next::WaitForClose => None,
        };
        ConnTask {
            reading: matches!(self.next, Next::Read),
            finished: false,
            busy,
            rt,
            c: self,
        }
    }

    /// Tells the shard the socket is gone (`report`), and gives back what the connection
    /// held in the node.
    fn finish(&self, report: bool) {
        if report {
            let _ = self
                .tx
                .control
                .send(ShardMsg::Input(Input::Closed { conn: self.conn }));
        }
        self.hub.connection_ended(self.conn, self.limited);
    }
}

/// A wait of the connection task other than the idle one; boxed (see the module docs).
type Busy = Pin<Box<dyn Future<Output = Resume> + Send>>;

/// How a [`Busy`] wait ended.
enum Resume {
    /// What one read produced is passed to the shard (or the shard is gone).
    Forwarded(Next),
    /// The rest of a batch is written (true), or the socket failed or the shard aborted.
    Wrote(bool),
    /// The final frames are written and the socket closed (or the deadline passed).
    Closed,
}

/// A connection's task (see the module docs for why it is written by hand).
pub(crate) struct ConnTask<R, C> {
    c: Connection<C>,
    rt: R,
    busy: Option<Busy>,
    /// Whether the client may still send (false once a close is under way).
    reading: bool,
    finished: bool,
}

// No field is ever pinned in place: the one future inside is pinned in its own box.
impl<R, C> Unpin for ConnTask<R, C> {}

impl<R: Runtime, C: Conn> Future for ConnTask<R, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(());
        }
        let mut reads = 0;
        loop {
            if let Some(busy) = this.busy.as_mut() {
                let Poll::Ready(resume) = busy.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                this.busy = None;
                match resume {
                    Resume::Forwarded(Next::Read) => {}
                    Resume::Forwarded(Next::WaitForClose) => this.reading = false,
                    Resume::Forwarded(Next::End) | Resume::Closed => return this.finish(false),
                    Resume::Wrote(false) => return this.finish(true),
                    Resume::Wrote(true) => {
                        let sent = ShardMsg::Input(Input::Sent { conn: this.c.conn });
                        if this.c.tx.control.send(sent).is_err() {
                            return this.finish(true);
                        }
                    }
                }
            }
            // The mailbox first: a command is taken before more is read.
            if let Poll::Ready(cmd) = this.c.link.mailbox.poll_take(cx) {
                match cmd {
                    WriterCmd::Abort => return this.finish(false),
                    WriterCmd::Transmit { frames, close } => {
                        this.busy = Some(if close {
                            let limit = this.c.hub.inner.drain_timeout;
                            close_after(this.rt.clone(), this.c.link.clone(), frames, limit)
                        } else {
                            write_rest(this.c.link.clone(), frames)
                        });
                    }
                }
                continue;
            }
            if !this.reading {
                return Poll::Pending;
            }
            if reads == READS_PER_POLL {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            reads += 1;
            let Poll::Ready(mut pending) = this.read(cx) else {
                return Poll::Pending;
            };
            let (conn, tx) = (this.c.conn, &this.c.tx);
            match forward_now(conn, tx, &mut pending) {
                Poll::Ready(Next::Read) => {}
                Poll::Ready(Next::WaitForClose) => this.reading = false,
                Poll::Ready(Next::End) => return this.finish(false),
                Poll::Pending => {
                    let blocked = forward_blocked(conn, tx.clone(), pending);
                    this.busy = Some(Box::pin(async move { Resume::Forwarded(blocked.await) }));
                }
            }
        }
    }
}

impl<R: Runtime, C: Conn> ConnTask<R, C> {
    /// One read: the messages it completed and how it ended.
    fn read(&mut self, cx: &mut Context<'_>) -> Poll<Pending> {
        let Connection { link, decoder, .. } = &mut self.c;
        let mut messages = Vec::new();
        let mut result = Ok(());
        // A fresh read future per poll: `Conn::read_with` keeps its waker in the socket,
        // so dropping the future after `Pending` loses nothing.
        let read = {
            let read = std::pin::pin!(link
                .socket
                .read_with(|bytes| result = decoder.decode(bytes, &mut messages)));
            std::task::ready!(read.poll(cx))
        };
        let outcome = match (read, result) {
            (Ok(0) | Err(_), _) => ReadOutcome::Eof,
            (Ok(_), Ok(())) => ReadOutcome::Data,
            (Ok(_), Err(e)) => ReadOutcome::Protocol(e),
        };
        Poll::Ready(Pending::new(messages, outcome))
    }

    /// Ends the task (see [`Connection::finish`]).
    fn finish(&mut self, report: bool) -> Poll<()> {
        self.finished = true;
        self.busy = None;
        self.c.finish(report);
        Poll::Ready(())
    }
}

/// Writes what the shard task's write-through left; ends early on an abort (the drain
/// deadline), the only command the shard sends before `Sent`.
fn write_rest<C: Conn>(link: Arc<Link<C>>, frames: Vec<Bytes>) -> Busy {
    Box::pin(async move {
        let mut write = std::pin::pin!(write_frames(&link.socket, frames));
        let mailbox = &link.mailbox;
        let written = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = write.as_mut().poll(cx) {
                return Poll::Ready(result.is_ok());
            }
            mailbox.poll_take(cx).map(|_abort| false)
        })
        .await;
        Resume::Wrote(written)
    })
}

/// Writes the final frames, then closes lingering. The shard has forgotten the connection:
/// no abort can come, so the write gets its own deadline (`limit`).
fn close_after<R: Runtime, C: Conn>(
    rt: R,
    link: Arc<Link<C>>,
    frames: Vec<Bytes>,
    limit: Duration,
) -> Busy {
    Box::pin(async move {
        let socket = &link.socket;
        if let Ok(Ok(())) = timeout(&rt, limit, write_frames(socket, frames)).await {
            linger_close(&rt, socket, LINGER).await;
        }
        Resume::Closed
    })
}

/// What one read produced, still to be passed to the shard, in order.
struct Pending {
    /// Decoded messages not yet passed, the last first.
    messages: Vec<Decoded>,
    /// How the read ended (`None` once passed on).
    outcome: Option<ReadOutcome>,
}

impl Pending {
    fn new(mut messages: Vec<Decoded>, outcome: ReadOutcome) -> Self {
        messages.reverse();
        Self {
            messages,
            outcome: Some(outcome),
        }
    }

    /// Whether nothing is left for the shard (then the connection reads on).
    fn is_done(&self) -> bool {
        self.messages.is_empty() && matches!(self.outcome, None | Some(ReadOutcome::Data))
    }

    /// The next input for the shard, and what to do after it when it is the last.
    fn next_input(&mut self, conn: ConnId) -> Option<(Input, Option<Next>)> {
        if let Some(message) = self.messages.pop() {
            let (input, ends) = message_input(conn, message);
            if ends {
                self.messages = Vec::new();
                self.outcome = None;
                return Some((input, Some(Next::WaitForClose)));
            }
            return Some((input, None));
        }
        // After the messages read before it: the end of the stream, or a protocol error.
        match self.outcome.take()? {
            ReadOutcome::Data => None,
            ReadOutcome::Eof => Some((Input::Closed { conn }, Some(Next::End))),
            ReadOutcome::Protocol(e) => Some((protocol_close(conn, &e), Some(Next::WaitForClose))),
        }
    }
}

/// Passes `pending` to the shard while its bounded data channel has room: `Ready` with what
/// to do next once all is passed (or the shard is gone), `Pending` when the channel is full
/// (the rest stays in `pending`; nothing is held out of it).
fn forward_now(conn: ConnId, tx: &ShardTx, pending: &mut Pending) -> Poll<Next> {
    loop {
        if pending.is_done() {
            return Poll::Ready(Next::Read);
        }
        let permit = match tx.data.try_reserve() {
            Ok(permit) => permit,
            Err(TrySendError::Full(())) => return Poll::Pending,
            Err(TrySendError::Closed(())) => return Poll::Ready(Next::End),
        };
        let Some((input, then)) = pending.next_input(conn) else {
            return Poll::Ready(Next::Read);
        };
        permit.send(input);
        if let Some(next) = then {
            return Poll::Ready(next);
        }
    }
}

/// [`forward_now`] for a full channel: waits for room, one place at a time (a flooding
/// client is slowed down to the shard's pace). Rare, and run boxed.
async fn forward_blocked(conn: ConnId, tx: ShardTx, mut pending: Pending) -> Next {
    loop {
        let Ok(permit) = tx.data.reserve().await else {
            return Next::End;
        };
        let Some((input, then)) = pending.next_input(conn) else {
            return Next::Read;
        };
        permit.send(input);
        if let Some(next) = then {
            return next;
        }
        if let Poll::Ready(next) = forward_now(conn, &tx, &mut pending) {
            return next;
        }
    }
}
