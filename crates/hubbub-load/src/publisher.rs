//! The publisher: one connection (a WebSocket, or the producer API over pipelined HTTP)
//! sending numbered, time-stamped payloads on an open-loop schedule.
//!
//! Invariants: message `i` of a run is due at `start + i / rate` whatever happened before;
//! overdue messages go out at once (at most [`BURST`] per flush) and count toward
//! [`Lateness`]; each payload is stamped with the time it is handed to the socket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, StreamExt};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Ws};
use crate::http::Pipeline;
use crate::payload::{encode, now_ns};
use crate::proto::{api_publish_body, Protocol, Role};
use crate::schedule::{Lateness, Schedule};

/// Most messages sent between two flushes when the publisher is behind.
pub const BURST: u64 = 1024;

/// Where messages go.
enum Sink {
    Ws(SplitSink<Ws, Message>),
    Api(Pipeline),
}

/// A connected publisher.
pub struct Publisher {
    sink: Sink,
    protocol: Protocol,
    room: String,
    payload_len: usize,
    error_frames: Arc<AtomicU64>,
    /// Heartbeats the server asked for that are not answered yet (socket.io pings).
    pongs_due: Arc<AtomicU64>,
}

/// How one run of the publisher went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishReport {
    /// Messages handed to the connection.
    pub sent: u64,
    /// Lateness against the schedule.
    pub lateness: Lateness,
    /// Time from the first message's due time to the last flush.
    pub elapsed: Duration,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
}

impl Publisher {
    /// Connects a WebSocket publisher to the server at `base` (ready when the protocol says).
    pub async fn connect_ws(
        base: &str,
        protocol: Protocol,
        room: &str,
        payload_len: usize,
    ) -> Result<Self, String> {
        let url = protocol.url(base, Role::Publisher, room);
        let addr = conn::resolve(&url).await?;
        let (mut ws, _) = conn::open(&url, addr, None, conn::client_config(false))
            .await
            .map_err(|e| format!("publisher: {e}"))?;
        crate::worker::ready(&mut ws, protocol, Role::Publisher, room)
            .await
            .map_err(|e| format!("publisher: {e}"))?;
        let (sink, mut stream) = ws.split();
        let error_frames = Arc::new(AtomicU64::new(0));
        let errors = error_frames.clone();
        let pongs_due = Arc::new(AtomicU64::new(0));
        let pongs = pongs_due.clone();
        // Read whatever comes back (errors, broadcasts of our own messages, pings). Protocol
        // heartbeats are answered by `send`, ahead of the next message.
        tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                match frame {
                    Ok(Message::Text(t)) if protocol.heartbeat_reply(&t).is_some() => {
                        pongs.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Message::Text(t)) if t.contains(r#""type":"error""#) => {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("publisher: the server answered {}", crate::proto::clip(&t));
                        }
                    }
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        });
        Ok(Self {
            sink: Sink::Ws(sink),
            protocol,
            room: room.to_string(),
            payload_len,
            error_frames,
            pongs_due,
        })
    }

    /// Connects a publisher that POSTs to `{http_url}/api/publish` (Hubbub's producer API).
    pub async fn connect_api(
        http_url: &str,
        api_key: Option<&str>,
        room: &str,
        payload_len: usize,
    ) -> Result<Self, String> {
        Ok(Self {
            sink: Sink::Api(Pipeline::connect(http_url.trim_end_matches('/'), api_key).await?),
            protocol: Protocol::Hubbub,
            room: room.to_string(),
            payload_len,
            error_frames: Arc::new(AtomicU64::new(0)),
            pongs_due: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Error answers from the server so far (WebSocket error frames).
    pub fn error_frames(&self) -> u64 {
        self.error_frames.load(Ordering::Relaxed)
    }

    /// Failed and unanswered API requests, after waiting up to `limit` for answers.
    pub async fn api_failures(&self, limit: Duration) -> Option<(u64, u64)> {
        match &self.sink {
            Sink::Api(p) => {
                let (_, failed, unanswered) = p.settle(limit).await;
                Some((failed, unanswered))
            }
            Sink::Ws(_) => None,
        }
    }

    /// Sends messages `first..first + count` at `rate` per second, open loop, the first one
    /// at `start` (waiting for it when it is still ahead).
    pub async fn run(
        &mut self,
        start: Instant,
        first: u64,
        count: u64,
        rate: f64,
    ) -> PublishReport {
        let schedule = Schedule::new(rate, count);
        tokio::time::sleep_until(start.into()).await;
        let mut report = PublishReport::default();
        let mut next = 0;
        while next < count {
            let due = schedule.due_by(start.elapsed()).min(next + BURST);
            if due <= next {
                tokio::time::sleep_until((start + schedule.due_at(next)).into()).await;
                continue;
            }
            for i in next..due {
                report
                    .lateness
                    .record(start.elapsed().saturating_sub(schedule.due_at(i)));
                if let Err(e) = self.send(first + i).await {
                    report.error = Some(e);
                    report.elapsed = start.elapsed();
                    return report;
                }
                report.sent += 1;
            }
            if let Err(e) = self.flush().await {
                report.error = Some(e);
                break;
            }
            next = due;
        }
        report.elapsed = start.elapsed();
        report
    }

    /// Queues message `seq`, stamped now.
    async fn send(&mut self, seq: u64) -> Result<(), String> {
        let payload = encode(seq, now_ns(), self.payload_len);
        match &mut self.sink {
            Sink::Ws(sink) => {
                while self.pongs_due.load(Ordering::Relaxed) > 0 {
                    self.pongs_due.fetch_sub(1, Ordering::Relaxed);
                    if let Some(pong) = self.protocol.heartbeat_reply("2") {
                        sink.feed(Message::text(pong))
                            .await
                            .map_err(|e| format!("publisher: {e}"))?;
                    }
                }
                let frame = self.protocol.publish_frame(&self.room, &payload);
                sink.feed(Message::text(frame))
                    .await
                    .map_err(|e| format!("publisher: {e}"))
            }
            Sink::Api(pipe) => {
                pipe.post("/api/publish", &api_publish_body(&self.room, &payload))
                    .await
            }
        }
    }

    async fn flush(&mut self) -> Result<(), String> {
        match &mut self.sink {
            Sink::Ws(sink) => sink.flush().await.map_err(|e| format!("publisher: {e}")),
            Sink::Api(pipe) => pipe.flush().await,
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        if let Sink::Ws(sink) = &mut self.sink {
            let _ = sink.close().await;
        }
    }
}
