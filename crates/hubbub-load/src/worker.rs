//! A group of connections: opens them (bounded in concurrency and rate), then records every
//! payload its subscribers receive, step by step, as the coordinator commands. Runs as a
//! task ([`run`]) or as a worker process ([`process_main`]) speaking JSON lines.
//!
//! Invariants: a delivery is recorded once, into the step whose measured range holds its
//! sequence number, or counted as ignored; [`Command::Stop`] or the end of the command stream
//! aborts every connection task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Ws};
use crate::hist::Latency;
use crate::ipc::{Command, ConnectReport, Event, GroupSpec, Progress, StepReport};
use crate::payload::{now_ns, Stamp};
use crate::proto::{clip, Protocol};
use crate::tally::SeqTable;

/// How often a group reports progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The step being recorded.
struct StepState {
    step: u32,
    table: SeqTable,
    hist: Latency,
    ignored: u64,
    unparsed: u64,
    misdelivered: u64,
    misdelivered_example: Option<(u64, u64)>,
}

/// What the connection tasks of a group record into.
#[derive(Default)]
struct Recorder {
    step: Option<StepState>,
    interval: Latency,
    interval_count: u64,
    /// Connections that ended since the step began, by how (close code, `reset`, `eof`).
    closes: BTreeMap<String, u64>,
}

/// State shared by a group's tasks.
#[derive(Default)]
struct Shared {
    recorder: Mutex<Recorder>,
    alive: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Recorder> {
        // A panicking connection task cannot leave the counters half-updated in a way
        // that matters more than losing the run: keep going with the data.
        self.recorder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one received text frame's payload (or its absence); `own` is the index of an
    /// addressed connection, which accepts only the payload numbered like itself.
    fn deliver(&self, stamp: Option<Stamp>, own: Option<u64>) {
        let now = now_ns();
        let mut rec = self.lock();
        let rec = &mut *rec;
        let Some(step) = rec.step.as_mut() else {
            return;
        };
        match stamp {
            None => step.unparsed += 1,
            Some(s) if own.is_some_and(|i| i != s.seq) => {
                step.misdelivered += 1;
                if step.misdelivered_example.is_none() {
                    step.misdelivered_example = own.map(|i| (i, s.seq));
                }
            }
            Some(s) => {
                let us = now.saturating_sub(s.send_ns) / 1_000;
                if step.table.record(s.seq, us) {
                    step.hist.record(us);
                    rec.interval.record(us);
                    rec.interval_count += 1;
                } else {
                    step.ignored += 1;
                }
            }
        }
    }
}

/// How one connection attempt ended.
enum Outcome {
    Ready {
        upgrade: Duration,
        ready: Duration,
        node: usize,
    },
    Failed(String),
}

/// Runs a group until [`Command::Stop`] or the end of `commands`, reporting on `events`.
pub async fn run(
    spec: GroupSpec,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    let spec = Arc::new(spec);
    let shared = Arc::new(Shared::default());
    let (outcome_tx, mut outcomes) = mpsc::unbounded_channel();
    let launcher = tokio::spawn(launch(spec.clone(), shared.clone(), outcome_tx));

    let started = Instant::now();
    let mut report = ConnectReport {
        per_node_ok: vec![0; spec.addressed.as_ref().map_or(0, |a| a.nodes.len())],
        ..ConnectReport::default()
    };
    let (mut upgrade, mut ready) = (Latency::new(), Latency::new());
    let mut errors: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut connected_sent = spec.count == 0;
    if connected_sent {
        let _ = events.send(Event::Connected(report.clone()));
    }
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    let mut last_sent = (u64::MAX, 0, 0);
    loop {
        tokio::select! {
            Some(outcome) = outcomes.recv(), if !connected_sent => {
                match outcome {
                    Outcome::Ready { upgrade: u, ready: r, node } => {
                        report.ok += 1;
                        if let Some(n) = report.per_node_ok.get_mut(node) {
                            *n += 1;
                        }
                        upgrade.record(micros(u));
                        ready.record(micros(r));
                    }
                    Outcome::Failed(message) => {
                        report.failed += 1;
                        let entry = errors.entry(conn::error_kind(&message)).or_insert((0, message));
                        entry.0 += 1;
                    }
                }
                if report.ok + report.failed == spec.count {
                    report.elapsed_secs = started.elapsed().as_secs_f64();
                    report.upgrade = upgrade.to_compact();
                    report.ready = ready.to_compact();
                    report.errors = errors.iter().map(|(k, (n, e))| (k.clone(), *n, e.clone())).collect();
                    connected_sent = true;
                    let _ = events.send(Event::Connected(report.clone()));
                }
            }
            command = commands.recv() => match command {
                None | Some(Command::Stop) => break,
                Some(Command::Begin { step, measure_from, end }) => {
                    // An addressed group receives only its own connections' payloads.
                    let (measure_from, end) = if spec.addressed.is_some() {
                        let from = measure_from.max(spec.first_index);
                        let last = spec.first_index.saturating_add(spec.count);
                        (from, end.min(last).max(from))
                    } else {
                        (measure_from, end)
                    };
                    let len = usize::try_from(end.saturating_sub(measure_from)).unwrap_or(0);
                    let mut rec = shared.lock();
                    // Late deliveries of an earlier step must not count toward this one.
                    rec.interval.reset();
                    rec.interval_count = 0;
                    rec.closes.clear();
                    rec.step = Some(StepState {
                        step,
                        table: SeqTable::new(measure_from, len),
                        hist: Latency::new(),
                        ignored: 0,
                        unparsed: 0,
                        misdelivered: 0,
                        misdelivered_example: None,
                    });
                    drop(rec);
                    let alive = shared.alive.load(Ordering::Relaxed);
                    let _ = events.send(Event::Began { step, alive });
                }
                Some(Command::Collect { step }) => {
                    let (taken, closes) = {
                        let mut rec = shared.lock();
                        (rec.step.take(), std::mem::take(&mut rec.closes))
                    };
                    let closes: Vec<(String, u64)> = closes.into_iter().collect();
                    let alive = shared.alive.load(Ordering::Relaxed);
                    let report = match taken {
                        Some(s) if s.step == step => StepReport {
                            step,
                            hist: s.hist.to_compact(),
                            table: s.table,
                            ignored: s.ignored,
                            unparsed: s.unparsed,
                            alive,
                            closes,
                            misdelivered: s.misdelivered,
                            misdelivered_example: s.misdelivered_example,
                        },
                        _ => StepReport { step, alive, closes, ..StepReport::default() },
                    };
                    let _ = events.send(Event::Step(report));
                }
            },
            _ = tick.tick() => {
                let (delivered, hist) = {
                    let mut rec = shared.lock();
                    let out = (rec.interval_count, rec.interval.to_compact());
                    rec.interval.reset();
                    rec.interval_count = 0;
                    out
                };
                let alive = shared.alive.load(Ordering::Relaxed);
                let now = (alive, report.ok, report.failed);
                if delivered > 0 || now != last_sent {
                    last_sent = now;
                    let progress = Progress { delivered, hist, alive, ok: report.ok, failed: report.failed };
                    let _ = events.send(Event::Progress(progress));
                }
            }
        }
    }
    // Dropping the launcher's JoinSet aborts every connection.
    launcher.abort();
    let _ = launcher.await;
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Starts every connection of the group, then keeps their tasks (aborted with this task).
async fn launch(
    spec: Arc<GroupSpec>,
    shared: Arc<Shared>,
    outcomes: mpsc::UnboundedSender<Outcome>,
) {
    let permits = Arc::new(Semaphore::new(spec.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let started = tokio::time::Instant::now();
    for i in 0..spec.count {
        if let Some(rate) = spec.connect_rate.filter(|r| *r > 0.0) {
            tokio::time::sleep_until(started + Duration::from_secs_f64(i as f64 / rate)).await;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let index = spec.first_index + i;
        let source = spec.per_source.map(|n| conn::source_for(index, n));
        let target = match &spec.addressed {
            Some(a) => match a.target(index) {
                Some((node, url, addr)) => Target {
                    url,
                    addr,
                    node,
                    own: Some(index),
                },
                None => {
                    let _ = outcomes.send(Outcome::Failed("target: no node to connect to".into()));
                    continue;
                }
            },
            None => Target {
                url: spec.url.clone(),
                addr: spec.addr,
                node: 0,
                own: None,
            },
        };
        tasks.spawn(connection(
            spec.clone(),
            target,
            shared.clone(),
            source,
            permit,
            outcomes.clone(),
        ));
        // Reap finished tasks as we go so the set does not grow with dead entries.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Where one connection goes and which payloads it accepts.
struct Target {
    url: String,
    addr: std::net::SocketAddr,
    node: usize,
    /// For an addressed connection, its index: it accepts only that payload.
    own: Option<u64>,
}

/// One connection: open it, report the outcome, then read until it closes.
async fn connection(
    spec: Arc<GroupSpec>,
    target: Target,
    shared: Arc<Shared>,
    source: Option<std::net::IpAddr>,
    permit: OwnedSemaphorePermit,
    outcomes: mpsc::UnboundedSender<Outcome>,
) {
    let started = Instant::now();
    let limit = Duration::from_millis(spec.connect_timeout_ms.max(1));
    let opened = match tokio::time::timeout(limit, establish(&spec, &target, source)).await {
        Ok(result) => result,
        Err(_) => Err(format!("timeout: not ready within {limit:?}")),
    };
    drop(permit);
    let (mut ws, upgrade) = match opened {
        Ok(ok) => ok,
        Err(message) => {
            let _ = outcomes.send(Outcome::Failed(message));
            return;
        }
    };
    shared.alive.fetch_add(1, Ordering::Relaxed);
    let _ = outcomes.send(Outcome::Ready {
        upgrade,
        ready: started.elapsed(),
        node: target.node,
    });
    let how = read_until_closed(&mut ws, spec.protocol, &shared, target.own).await;
    shared.alive.fetch_sub(1, Ordering::Relaxed);
    *shared.lock().closes.entry(how).or_insert(0) += 1;
}

/// Opens, joins and waits until the connection is ready; returns the upgrade time.
async fn establish(
    spec: &GroupSpec,
    target: &Target,
    source: Option<std::net::IpAddr>,
) -> Result<(Ws, Duration), String> {
    let (mut ws, upgrade) =
        conn::open(&target.url, target.addr, source, conn::client_config(true)).await?;
    ready(&mut ws, spec.protocol, spec.role, &spec.room).await?;
    Ok((ws, upgrade))
}

/// Runs the protocol's preamble (socket.io's connect), sends its join frame and waits for
/// its first frame, where it has them.
pub async fn ready(
    ws: &mut Ws,
    protocol: Protocol,
    role: crate::proto::Role,
    room: &str,
) -> Result<(), String> {
    for &(send, expect) in protocol.preamble() {
        if let Some(frame) = send {
            ws.send(Message::text(frame))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
        }
        let text = next_text(ws, protocol).await?;
        if !text.starts_with(expect) {
            return Err(format!(
                "handshake: expected a frame starting {expect:?}, got {}",
                clip(&text)
            ));
        }
    }
    if let Some(join) = protocol.join_frame(role, room) {
        ws.send(Message::text(join))
            .await
            .map_err(|e| format!("join: {e}"))?;
    }
    if !protocol.waits_for_first_frame(role) {
        return Ok(());
    }
    let text = next_text(ws, protocol).await?;
    protocol
        .check_first_frame(&text)
        .map_err(|e| format!("first-frame: {e}"))
}

/// The next text frame (heartbeats answered and skipped).
async fn next_text(ws: &mut Ws, protocol: Protocol) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if let Some(reply) = protocol.heartbeat_reply(&text) {
                    ws.send(Message::text(reply))
                        .await
                        .map_err(|e| format!("heartbeat: {e}"))?;
                    continue;
                }
                return Ok(text.to_string());
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("closed: before the first frame ({frame:?})"))
            }
            Some(Ok(Message::Binary(b))) => {
                return Err(format!("first-frame: binary ({} bytes)", b.len()))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("read: {e}")),
            None => return Err("closed: before the first frame".into()),
        }
    }
}

/// Reads frames until the connection ends, recording payloads (only payload `own`, when
/// given, is this connection's); says how it ended: the close code, `reset` (a read error)
/// or `eof` (closed without a close frame).
async fn read_until_closed(
    ws: &mut Ws,
    protocol: Protocol,
    shared: &Shared,
    own: Option<u64>,
) -> String {
    while let Some(frame) = ws.next().await {
        match frame {
            Ok(Message::Text(text)) => match protocol.heartbeat_reply(&text) {
                Some(reply) => {
                    if ws.send(Message::text(reply)).await.is_err() {
                        return "reset".into();
                    }
                }
                None => shared.deliver(protocol.extract(&text), own),
            },
            Ok(Message::Close(frame)) => {
                return frame.map_or("close".into(), |f| u16::from(f.code).to_string())
            }
            Err(_) => return "reset".into(),
            Ok(_) => {}
        }
    }
    "eof".into()
}

/// The `worker` subcommand: reads a [`GroupSpec`] line, then commands, on stdin; writes
/// events on stdout, one JSON object per line.
pub async fn process_main() -> Result<(), String> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let first = lines
        .next_line()
        .await
        .map_err(|e| format!("worker: stdin: {e}"))?
        .ok_or("worker: no group spec on stdin")?;
    let spec: GroupSpec =
        serde_json::from_str(&first).map_err(|e| format!("worker: bad group spec: {e}"))?;
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (event_tx, mut event_rx) = mpsc::unbounded_channel::<Event>();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<Command>(&line) {
                Ok(command) => {
                    if command_tx.send(command).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    eprintln!("hubbub-load worker: bad command {}: {e}", clip(&line));
                    break;
                }
            }
        }
        let _ = command_tx.send(Command::Stop);
    });
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(event) = event_rx.recv().await {
            let Ok(mut line) = serde_json::to_string(&event) else {
                continue;
            };
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                return;
            }
        }
    });
    run(spec, command_rx, event_tx).await;
    let _ = writer.await;
    Ok(())
}
