//! The `fanout` and `crossnode` runs: subscribers in one room, one open-loop publisher, one
//! or more rate steps (a sweep stops at the first step that does not hold).
//!
//! Per step: [`Command::Begin`] to every group (the measured sequence range), warm-up
//! messages, the measured messages (CPU probes around them, a progress line each second),
//! a drain until every expected delivery arrived or `--drain` passed, then
//! [`Command::Collect`] and the merge of the groups' tables and histograms.

use std::time::{Duration, Instant};

use crate::cli::{LoadArgs, PublishVia};
use crate::conn;
use crate::connections::{await_connected, describe, start_groups};
use crate::group::Groups;
use crate::hist::Latency;
use crate::ipc::{Command, Event, Progress};
use crate::proto::{Protocol, Role};
use crate::publisher::{PublishReport, Publisher};
use crate::report::{self, FanoutResult, StepResult};
use crate::schedule::{geometric_rates, messages_for, parse_rates, Schedule};
use crate::sysstat::{self, CpuProbe};
use crate::tally::{loss, SeqTable};

/// How long groups get to answer a command.
const REPLY_LIMIT: Duration = Duration::from_secs(60);

/// Deliveries seen through progress events during a step.
struct Live {
    received: u64,
    hist: Latency,
    alive: Vec<u64>,
}

impl Live {
    fn new(groups: usize) -> Self {
        Self {
            received: 0,
            hist: Latency::new(),
            alive: vec![0; groups],
        }
    }

    fn on_progress(&mut self, group: usize, p: &Progress) {
        self.received += p.delivered;
        self.hist.merge_compact(&p.hist);
        if let Some(a) = self.alive.get_mut(group) {
            *a = p.alive;
        }
    }
}

/// The rates to run, and whether this is a sweep.
pub fn rates(load: &LoadArgs) -> Result<(Vec<f64>, bool), String> {
    if let Some(list) = &load.rates {
        return Ok((parse_rates(list)?, true));
    }
    if !load.rate.is_finite() || load.rate <= 0.0 {
        return Err("--rate must be a positive number".into());
    }
    if load.sweep {
        if load.sweep_factor <= 1.0 {
            return Err("--sweep-factor must be above 1".into());
        }
        return Ok((
            geometric_rates(load.rate, load.sweep_factor, load.sweep_steps.max(1)),
            true,
        ));
    }
    Ok((vec![load.rate], false))
}

/// Runs fanout (`sub_url == pub_url`) or crossnode.
pub async fn run(
    mode: &str,
    sub_url: &str,
    pub_url: &str,
    load: &LoadArgs,
) -> Result<FanoutResult, String> {
    let (rates, sweep) = rates(load)?;
    if !load.duration.is_finite() || load.duration <= 0.0 || load.warmup < 0.0 || load.drain < 0.0 {
        return Err("--duration must be positive, --warmup and --drain not negative".into());
    }
    let protocol = load.conn.protocol;
    if load.publish_via == PublishVia::Api && protocol != Protocol::Hubbub {
        return Err("--publish-via api needs --protocol hubbub".into());
    }
    let room = &load.conn.room;
    let sub_target = protocol.url(sub_url, Role::Subscriber, room);
    let addr = conn::resolve(&sub_target).await?;
    eprintln!(
        "connecting {} subscribers to {sub_target}",
        load.subscribers
    );
    let (mut groups, placement) = start_groups(
        &sub_target,
        addr,
        &load.conn,
        Role::Subscriber,
        load.subscribers,
        load.connect_rate,
    )
    .await?;
    let connect = await_connected(&mut groups, load.subscribers).await?;
    if connect.ok == 0 {
        groups.stop().await;
        return Err(format!("no subscriber could connect: {:?}", connect.errors));
    }
    let mut publisher = match load.publish_via {
        PublishVia::Ws => Publisher::connect_ws(pub_url, protocol, room, load.payload).await,
        PublishVia::Api => {
            let http = load
                .http_url
                .clone()
                .unwrap_or_else(|| pub_url.replacen("ws://", "http://", 1));
            Publisher::connect_api(&http, load.api_key.as_deref(), room, load.payload).await
        }
    }?;
    let mut result = FanoutResult {
        mode: mode.to_string(),
        protocol,
        sub_url: sub_target,
        pub_url: pub_url.to_string(),
        publish_via: format!("{:?}", load.publish_via).to_lowercase(),
        placement: describe(placement),
        subscribers_requested: load.subscribers,
        payload_bytes: load.payload,
        sweep,
        connect,
        steps: Vec::new(),
        held_rate: None,
        held_deliveries_per_sec: None,
    };
    let mut generator_pids = groups.pids();
    generator_pids.push(std::process::id());
    let mut next_seq = 0;
    for (index, &rate) in rates.iter().enumerate() {
        let step = u32::try_from(index).unwrap_or(u32::MAX);
        let outcome = run_step(
            &mut groups,
            &mut publisher,
            load,
            &generator_pids,
            StepPlan {
                step,
                rate,
                first_seq: next_seq,
            },
        )
        .await;
        let (step_result, next) = match outcome {
            Ok(ok) => ok,
            Err(e) => {
                groups.stop().await;
                return Err(e);
            }
        };
        next_seq = next;
        report::print_step(&step_result, load.subscribers);
        let held = step_result.held;
        let error = step_result.publish_error.clone();
        if held {
            result.held_rate = Some(step_result.rate);
            result.held_deliveries_per_sec = Some(step_result.deliveries_per_sec);
        }
        result.steps.push(step_result);
        if error.is_some() || (sweep && !held) {
            break;
        }
    }
    publisher.close().await;
    groups.stop().await;
    Ok(result)
}

/// Which step to run.
struct StepPlan {
    step: u32,
    rate: f64,
    first_seq: u64,
}

/// Runs one step; returns its result and the next free sequence number.
async fn run_step(
    groups: &mut Groups,
    publisher: &mut Publisher,
    load: &LoadArgs,
    generator_pids: &[u32],
    plan: StepPlan,
) -> Result<(StepResult, u64), String> {
    let StepPlan {
        step,
        rate,
        first_seq,
    } = plan;
    let warm = messages_for(rate, load.warmup);
    let measured = messages_for(rate, load.duration).max(1);
    let measure_from = first_seq + warm;
    let end = measure_from + measured;
    let mut live = Live::new(groups.len());
    groups
        .send_all(&Command::Begin {
            step,
            measure_from,
            end,
        })
        .await?;
    let replies = groups
        .replies(Some(REPLY_LIMIT), &mut |g, p| live.on_progress(g, &p))
        .await?;
    live = Live::new(groups.len());
    for (g, reply) in replies.into_iter().enumerate() {
        if let (Event::Began { alive, .. }, Some(slot)) = (reply, live.alive.get_mut(g)) {
            *slot = alive;
        }
    }
    let alive_at_start: u64 = live.alive.iter().sum();
    // One schedule for warm-up and measured part: the first measured message is due one
    // interval after the last warm-up message, not at once (which would queue it behind
    // that message's fan-out and put the step's worst latency at its start).
    let warm_start = Instant::now();
    let measure_start = Schedule::new(rate, warm).followed_at(warm_start);
    if warm > 0 {
        eprintln!("step {step}: {rate} msg/s, warm-up {warm} messages");
        let report = publisher.run(warm_start, first_seq, warm, rate).await;
        if let Some(e) = report.error {
            return Err(format!("publisher failed during warm-up: {e}"));
        }
    }
    eprintln!(
        "step {step}: {rate} msg/s, measuring {measured} messages to {alive_at_start} subscribers"
    );
    let generator_cpu = CpuProbe::start(generator_pids);
    let server_cpu = CpuProbe::start(&load.out.server_pids);
    let published = publish_measured(
        groups,
        publisher,
        &mut live,
        measure_start,
        measure_from,
        measured,
        rate,
    )
    .await?;
    // Drain: until every expected delivery arrived, or --drain passed.
    let expected = published.sent.saturating_mul(alive_at_start);
    let drain_end = tokio::time::Instant::now() + Duration::from_secs_f64(load.drain);
    while live.received < expected {
        match tokio::time::timeout_at(drain_end, groups.next()).await {
            Err(_) => break,
            Ok(None) => return Err("every connection group is gone".into()),
            Ok(Some((_, Event::Fatal { message }))) => return Err(message),
            Ok(Some((g, Event::Progress(p)))) => live.on_progress(g, &p),
            Ok(Some(_)) => {}
        }
    }
    let generator_cpu = generator_cpu.finish();
    let server_cpu = server_cpu.finish();
    let api = publisher.api_failures(Duration::from_secs(5)).await;
    groups.send_all(&Command::Collect { step }).await?;
    let replies = groups
        .replies(Some(REPLY_LIMIT), &mut |g, p| live.on_progress(g, &p))
        .await?;
    let mut table = SeqTable::new(measure_from, usize::try_from(measured).unwrap_or(0));
    let mut hist = Latency::new();
    let (mut ignored, mut unparsed, mut alive_at_end) = (0, 0, 0);
    let mut closes: Vec<(String, u64)> = Vec::new();
    for reply in replies {
        if let Event::Step(r) = reply {
            table.merge(&r.table)?;
            hist.merge_compact(&r.hist);
            ignored += r.ignored;
            unparsed += r.unparsed;
            alive_at_end += r.alive;
            for (how, n) in r.closes {
                match closes.iter_mut().find(|c| c.0 == how) {
                    Some(c) => c.1 += n,
                    None => closes.push((how, n)),
                }
            }
        }
    }
    let received = table.received();
    let lost = loss(published.sent, alive_at_start, received);
    let (last, incomplete) = table.last_subscriber(published.sent, alive_at_start);
    let secs = published.elapsed.as_secs_f64().max(1e-9);
    let latency = hist.summary();
    let achieved_rate = published.sent as f64 / secs;
    let held = published.error.is_none()
        && lost.fraction < load.max_loss
        && (latency.p99_us as f64) < load.max_p99_ms * 1000.0
        && achieved_rate >= 0.95 * rate
        && alive_at_start > 0;
    let result = StepResult {
        step,
        rate,
        measured_secs: secs,
        subscribers: alive_at_start,
        subscribers_at_end: alive_at_end,
        sent: published.sent,
        achieved_rate,
        late: published.lateness.late,
        max_lag_ms: published.lateness.max_lag.as_secs_f64() * 1e3,
        publish_error: published.error,
        server_error_frames: publisher.error_frames(),
        api_failed: api.map(|a| a.0),
        api_unanswered: api.map(|a| a.1),
        deliveries_per_sec: received as f64 / secs,
        loss: lost,
        latency,
        last_subscriber: last.summary(),
        per_message_max_us: table.max_us.clone(),
        incomplete_messages: incomplete,
        closes,
        ignored,
        unparsed,
        generator_cpu,
        generator_cores: sysstat::usable_cpus(),
        server_cpu,
        server_us_per_delivery: server_cpu
            .filter(|_| received > 0)
            .map(|c| c.cpu_secs * 1e6 / received as f64),
        held,
    };
    Ok((result, end))
}

/// Sends the measured messages while printing progress once a second.
async fn publish_measured(
    groups: &mut Groups,
    publisher: &mut Publisher,
    live: &mut Live,
    start: Instant,
    first: u64,
    count: u64,
    rate: f64,
) -> Result<PublishReport, String> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last_received = 0;
    let run = publisher.run(start, first, count, rate);
    tokio::pin!(run);
    loop {
        tokio::select! {
            report = &mut run => return Ok(report),
            event = groups.next() => match event {
                None => return Err("every connection group is gone".into()),
                Some((_, Event::Fatal { message })) => return Err(message),
                Some((g, Event::Progress(p))) => live.on_progress(g, &p),
                Some(_) => {}
            },
            _ = tick.tick() => {
                let t = start.elapsed().as_secs_f64();
                eprintln!(
                    "  t={t:>5.1}s  sent~{:>9}  deliveries {:>11} ({:>10.0}/s)  p99 so far {}  alive {}",
                    ((t * rate) as u64).min(count),
                    live.received,
                    (live.received - last_received) as f64,
                    report::fmt_us(live.hist.quantile(0.99)),
                    live.alive.iter().sum::<u64>(),
                );
                last_received = live.received;
            }
        }
    }
}
