//! One task per WebSocket connection: decode what the client sends into shard inputs, and
//! write what the shard transmits.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hub_core::shard::{Input, OpenParams};
use hub_core::{ConnId, ShardId};
use hub_wire::ws::{Decoded, FrameDecoder, WsError};
use tokio::sync::oneshot;

use crate::hub::{Hub, HubError};
use crate::mailbox::{Mailbox, WriterCmd};
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
    let shard = hub.pick_shard(shard);
    let Some(tx) = hub.shard_tx(shard).cloned() else {
        return Err(HubError::Stopped);
    };
    let mailbox = Arc::new(Mailbox::default());
    let (reply_tx, reply_rx) = oneshot::channel();
    tx.control
        .send(ShardMsg::Open {
            params,
            mailbox: mailbox.clone(),
            reply: reply_tx,
        })
        .map_err(|_| HubError::Stopped)?;
    let id = reply_rx.await.map_err(|_| HubError::Stopped)??;
    hub.inner.live.fetch_add(1, Ordering::AcqRel);
    tracing::debug!(conn = %id, "connected");
    run(rt, &hub, conn, leftover, id, mailbox, tx).await;
    tracing::debug!(conn = %id, "disconnected");
    if hub.inner.live.fetch_sub(1, Ordering::AcqRel) == 1 {
        hub.inner.all_closed.notify_waiters();
    }
    Ok(())
}

/// What one read produced.
enum ReadOutcome {
    Data,
    Eof,
    Protocol(WsError),
}

async fn read_decoded<C: Conn>(
    socket: &mut C,
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

async fn run<R: Runtime, C: Conn>(
    rt: &R,
    hub: &Hub,
    mut socket: C,
    leftover: Bytes,
    conn: ConnId,
    mailbox: Arc<Mailbox>,
    tx: ShardTx,
) {
    let mut decoder = FrameDecoder::new(hub.inner.settings.max_message_size);
    let mut decoded = Vec::new();
    let mut reading = true;
    if !leftover.is_empty() {
        let outcome = match decoder.decode(&leftover, &mut decoded) {
            Ok(()) => ReadOutcome::Data,
            Err(e) => ReadOutcome::Protocol(e),
        };
        // The request's read buffer is not kept for the connection's life.
        drop(leftover);
        match forward(conn, &tx, &mut decoded, outcome).await {
            Next::Read => {}
            Next::WaitForClose => reading = false,
            Next::End => return,
        }
    }
    loop {
        let cmd = tokio::select! {
            biased;
            cmd = mailbox.take() => cmd,
            outcome = read_decoded(&mut socket, &mut decoder, &mut decoded), if reading => {
                match forward(conn, &tx, &mut decoded, outcome).await {
                    Next::Read => {}
                    Next::WaitForClose => reading = false,
                    Next::End => return,
                }
                continue;
            }
        };
        match cmd {
            WriterCmd::Transmit { frames, close } => {
                if close {
                    // The shard has forgotten the connection: no abort can come, so the
                    // final write gets its own deadline, then a lingering close.
                    if let Ok(Ok(())) = timeout(
                        rt,
                        hub.inner.drain_timeout,
                        write_frames(&mut socket, frames),
                    )
                    .await
                    {
                        linger_close(rt, &mut socket, LINGER).await;
                    }
                    return;
                }
                // The shard sends nothing more before `Sent` but an abort (drain deadline).
                let written = tokio::select! {
                    result = write_frames(&mut socket, frames) => result.is_ok(),
                    _ = mailbox.take() => false,
                };
                if !written {
                    break;
                }
                if tx
                    .control
                    .send(ShardMsg::Input(Input::Sent { conn }))
                    .is_err()
                {
                    break;
                }
            }
            WriterCmd::Abort => return,
        }
    }
    let _ = tx.control.send(ShardMsg::Input(Input::Closed { conn }));
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

/// Passes decoded messages to the shard; says what to do next.
async fn forward(
    conn: ConnId,
    tx: &ShardTx,
    decoded: &mut Vec<Decoded>,
    outcome: ReadOutcome,
) -> Next {
    for message in decoded.drain(..) {
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
                let _ = tx
                    .data
                    .send(Input::Close {
                        conn,
                        code,
                        reason: String::new(),
                    })
                    .await;
                return Next::WaitForClose;
            }
        };
        if tx.data.send(input).await.is_err() {
            return Next::End;
        }
    }
    match outcome {
        ReadOutcome::Data => Next::Read,
        // Sent on the data channel, behind the messages read before them.
        ReadOutcome::Eof => {
            let _ = tx.data.send(Input::Closed { conn }).await;
            Next::End
        }
        ReadOutcome::Protocol(e) => {
            let _ = tx
                .data
                .send(Input::Close {
                    conn,
                    code: e.code,
                    reason: e.reason.to_owned(),
                })
                .await;
            Next::WaitForClose
        }
    }
}
