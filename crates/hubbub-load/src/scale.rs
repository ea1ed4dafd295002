//! The `scale` run: many connections with client ids spread over the nodes of a cluster,
//! then one emit per client (or a sample) through the producer API of another node, every
//! answer and every delivery checked.
//!
//! Connection `i` opens node `i mod K` as client `{prefix}{i}` ([`Addressed`]); the groups
//! of [`crate::group`] hold them, in worker processes beyond one process's open-file limit.
//! The emit to client `i` carries payload number `i` and goes through node [`via`]`(i, K)`,
//! never the client's own. A connection records only payload number `i` as its own
//! (anything else is misdelivered), so one table per group, indexed by connection, says who
//! got what.
//!
//! Invariants: every targeted client is emitted to exactly once; the run passes only when
//! every connection opened and stayed open, every answer was 200 `{"delivered":1}`, and
//! every targeted client (and no other) received its own payload exactly once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::cli::ScaleArgs;
use crate::conn;
use crate::connections::{await_connected, describe, server_rss, start_specs};
use crate::group::Groups;
use crate::hist::Latency;
use crate::http::{self, Exchanged, PostPlan};
use crate::ipc::{Addressed, Command, Event, GroupSpec, StepReport};
use crate::payload::{encode, now_ns};
use crate::proto::{Protocol, Role};
use crate::report::{EmitSummary, NodeStats, RegistryUse, ScaleNode, ScaleResult};
use crate::sysstat::{self, CpuProbe, MachineProbe};

/// How long groups get to answer a command.
const REPLY_LIMIT: Duration = Duration::from_secs(120);
/// How long one `/stats` request may take.
const STATS_LIMIT: Duration = Duration::from_secs(10);

/// The node (of `nodes`) whose API carries the emit to client `index`: never the client's
/// own node (`index mod nodes`), and spread over all the others.
pub fn via(index: u64, nodes: usize) -> usize {
    let k = nodes.max(2) as u64;
    let home = index % k;
    let offset = 1 + (index / k) % (k - 1);
    usize::try_from((home + offset) % k).unwrap_or(0)
}

/// The clients to emit to: all of `0..total` when `wanted >= total`, else `wanted` of
/// them, the same number (±1) from each of the `nodes` nodes (client `i` is on node
/// `i mod nodes`) and evenly spread over that node's clients; sorted, no repeats.
pub fn sample(total: u64, wanted: u64, nodes: usize) -> Vec<u64> {
    if wanted >= total {
        return (0..total).collect();
    }
    let k = nodes.max(1) as u64;
    let mut out = Vec::new();
    for v in 0..k.min(total) {
        // Clients on node v: v, v + k, v + 2k, ...
        let on_node = (total - 1 - v) / k + 1;
        let take = (wanted / k + u64::from(v < wanted % k)).min(on_node);
        for j in 0..take {
            let pick = u128::from(j) * u128::from(on_node) / u128::from(take);
            out.push(v + k * u64::try_from(pick).unwrap_or(0));
        }
    }
    out.sort_unstable();
    out
}

/// The JSON body of the emit to client `id` carrying `payload`.
pub fn emit_body(id: &str, payload: &str) -> String {
    let to = serde_json::Value::from(id).to_string();
    let data = serde_json::Value::from(payload).to_string();
    format!(r#"{{"to":{to},"data":{data}}}"#)
}

/// What an emit's answer says: `Ok` for 200 `{"delivered":1}`, else a kind and the detail.
pub fn judge(answer: &Result<http::Response, String>) -> Result<(), (String, String)> {
    let response = match answer {
        Ok(r) => r,
        Err(e) => return Err(("no answer".into(), e.clone())),
    };
    let detail = || format!("{} {}", response.status, crate::proto::clip(&response.body));
    if response.status != 200 {
        return Err((format!("status {}", response.status), detail()));
    }
    let delivered = serde_json::from_str::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v.get("delivered").and_then(serde_json::Value::as_u64));
    match delivered {
        Some(1) => Ok(()),
        Some(n) => Err((format!("delivered {n}"), detail())),
        None => Err(("unreadable answer".into(), detail())),
    }
}

/// Reads a node's `/stats`.
async fn node_stats(http_url: &str) -> Result<NodeStats, String> {
    let response = http::get(http_url, "/stats", STATS_LIMIT).await?;
    if response.status != 200 {
        return Err(format!("/stats answered {}", response.status));
    }
    let v: serde_json::Value =
        serde_json::from_str(&response.body).map_err(|e| format!("/stats: not JSON: {e}"))?;
    let num = |path: &[&str]| {
        path.iter()
            .try_fold(&v, |at, key| at.get(key))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let text = |key: &str| {
        v.get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(NodeStats {
        node: text("node"),
        status: text("status"),
        connections: num(&["connections"]),
        registry_ops: num(&["cluster", "registry_ops"]),
        registry_errors: num(&["cluster", "registry_errors"]),
        registry_joins: num(&["cluster", "registry_joins"]),
        peer_failures: num(&["peer_failures"]),
        remote_timeouts: num(&["remote_timeouts"]),
        peer_errors: num(&["cluster", "peer_errors"]),
        slow_consumer_closes: num(&["slow_consumer_closes"]),
        heartbeat_closes: num(&["heartbeat_closes"]),
    })
}

/// Reads every node's `/stats`, keeping the first error per node.
async fn all_stats(nodes: &mut [ScaleNode]) -> Vec<Option<NodeStats>> {
    let mut out = Vec::new();
    for node in nodes.iter_mut() {
        match node_stats(&node.http_url).await {
            Ok(s) => out.push(Some(s)),
            Err(e) => {
                node.stats_error.get_or_insert(e);
                out.push(None);
            }
        }
    }
    out
}

/// Checks the flags; returns the number of clients to emit to.
fn validate(args: &ScaleArgs) -> Result<u64, String> {
    if args.urls.len() < 2 {
        return Err("scale needs at least two --url (emits go through another node)".into());
    }
    if args.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    let prefix_ok = !args.id_prefix.is_empty()
        && args.id_prefix.len() <= 64
        && args
            .id_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !prefix_ok {
        return Err("--id-prefix: 1 to 64 letters, digits, '-' or '_'".into());
    }
    if !args.out.server_pids.is_empty() && args.out.server_pids.len() != args.urls.len() {
        return Err(format!(
            "give --server-pid once per --url, in the same order ({} pids for {} urls)",
            args.out.server_pids.len(),
            args.urls.len()
        ));
    }
    let not_negative = |x: f64| x.is_finite() && x >= 0.0;
    let timeout_ok = args.api_timeout.is_finite() && args.api_timeout > 0.0;
    if !not_negative(args.settle) || !not_negative(args.drain) || !timeout_ok {
        return Err("--settle and --drain must not be negative, --api-timeout positive".into());
    }
    if args.api_connections == 0 || args.api_window == 0 {
        return Err("--api-connections and --api-window must be at least 1".into());
    }
    Ok(args.emits.unwrap_or(args.connections).min(args.connections))
}

/// One HTTP connection's share of the emits: the clients it emits to.
struct Lane {
    node: usize,
    targets: Vec<u64>,
}

/// A lane's targets and what became of their emits.
type LaneOutcome = (Vec<u64>, Result<Vec<Exchanged>, String>);

/// Starts every lane's emits; each task returns its targets and their outcomes.
fn start_emits(
    lanes: Vec<Lane>,
    nodes: &[ScaleNode],
    args: &ScaleArgs,
    answered: &Arc<AtomicU64>,
) -> JoinSet<LaneOutcome> {
    let mut tasks = JoinSet::new();
    for lane in lanes {
        let http_url = nodes
            .get(lane.node)
            .map(|n| n.http_url.clone())
            .unwrap_or_default();
        let api_key = args.api_key.clone();
        let prefix = args.id_prefix.clone();
        let payload_len = args.payload;
        let window = args.api_window;
        let idle_limit = Duration::from_secs_f64(args.api_timeout);
        let answered = answered.clone();
        tasks.spawn(async move {
            let targets = lane.targets;
            let plan = PostPlan {
                url: &http_url,
                api_key: api_key.as_deref(),
                path: "/api/emit",
                count: targets.len(),
                window,
                idle_limit,
            };
            let body = |k: usize| {
                let i = targets.get(k).copied().unwrap_or(0);
                emit_body(&format!("{prefix}{i}"), &encode(i, now_ns(), payload_len))
            };
            let outcome = http::post_windowed(plan, body, answered).await;
            (targets, outcome)
        });
    }
    tasks
}

/// Splits the targets into lanes: by the node their emit goes through, then round-robin
/// over that node's HTTP connections.
fn lanes(targets: &[u64], nodes: usize, per_node: usize) -> Vec<Lane> {
    let per_node = per_node.max(1);
    let mut lanes: Vec<Lane> = (0..nodes * per_node)
        .map(|l| Lane {
            node: l / per_node,
            targets: Vec::new(),
        })
        .collect();
    let mut next = vec![0usize; nodes];
    for &i in targets {
        let v = via(i, nodes);
        if let Some(n) = next.get_mut(v) {
            let lane = v * per_node + *n % per_node;
            *n += 1;
            if let Some(l) = lanes.get_mut(lane) {
                l.targets.push(i);
            }
        }
    }
    lanes.retain(|l| !l.targets.is_empty());
    lanes
}

/// Adds `kind` to a (kind, count, example) list.
fn count_kind(list: &mut Vec<(String, u64, String)>, kind: String, example: String) {
    match list.iter_mut().find(|e| e.0 == kind) {
        Some(e) => e.1 += 1,
        None => list.push((kind, 1, example)),
    }
}

/// The `scale` run.
pub async fn run(args: &ScaleArgs) -> Result<ScaleResult, String> {
    let wanted = validate(args)?;
    let k = args.urls.len();
    let n = args.connections;
    let pids = &args.out.server_pids;
    let mut nodes = Vec::with_capacity(k);
    let mut addressed = Addressed {
        nodes: Vec::with_capacity(k),
        id_prefix: args.id_prefix.clone(),
    };
    for (v, base) in args.urls.iter().enumerate() {
        let base = base.trim_end_matches('/');
        let ws = Protocol::Hubbub.url(base, Role::Idle, "");
        let addr = conn::resolve(&ws).await?;
        addressed.nodes.push((ws, addr));
        let v64 = v as u64;
        nodes.push(ScaleNode {
            url: base.to_string(),
            http_url: base.replacen("ws://", "http://", 1),
            pid: pids.get(v).copied(),
            expected: if v64 < n {
                (n - 1 - v64) / k as u64 + 1
            } else {
                0
            },
            rss_before: pids.get(v).and_then(|&p| sysstat::rss_bytes(p)),
            ..ScaleNode::default()
        });
    }
    for node in &mut nodes {
        if let Err(e) = node_stats(&node.http_url).await {
            return Err(format!("{}: {e} (is the node up?)", node.http_url));
        }
    }
    let (first_url, first_addr) = addressed.nodes.first().cloned().ok_or("no --url given")?;
    let template = GroupSpec::template(
        first_url,
        first_addr,
        Protocol::Hubbub,
        Role::Idle,
        String::new(),
        Some(addressed),
    );
    eprintln!(
        "opening {n} connections over {k} nodes (client ids {}0..), {} at a time",
        args.id_prefix, args.place.connect_concurrency
    );
    let mut registry = args.registry_pid.map(|pid| RegistryUse {
        pid,
        rss_before: sysstat::rss_bytes(pid),
        ..RegistryUse::default()
    });
    let registry_cpu = args.registry_pid.map(|p| CpuProbe::start(&[p]));
    let machine = MachineProbe::start();
    let node_cpu: Vec<CpuProbe> = pids.iter().map(|&p| CpuProbe::start(&[p])).collect();
    let (mut groups, placement) = start_specs(&template, &args.place, n, args.connect_rate).await?;
    let mut generator_pids = groups.pids();
    generator_pids.push(std::process::id());
    let generator = CpuProbe::start(&generator_pids);
    let connect = match await_connected(&mut groups, n).await {
        Ok(c) => c,
        Err(e) => {
            groups.stop().await;
            return Err(e);
        }
    };
    let connect_generator_cpu = generator.finish();
    let connect_machine_cpu = machine.finish();
    if let (Some(r), Some(probe)) = (registry.as_mut(), &registry_cpu) {
        r.connect_cpu = probe.finish();
    }
    for (node, probe) in nodes.iter_mut().zip(&node_cpu) {
        node.connect_cpu = probe.finish();
    }
    for (node, &ready) in nodes.iter_mut().zip(&connect.per_node_ok) {
        node.ready = ready;
    }
    if connect.ok == 0 {
        groups.stop().await;
        return Err(format!("no connection could open: {:?}", connect.errors));
    }
    eprintln!("settling for {} s", args.settle);
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let stats = all_stats(&mut nodes).await;
    for (node, s) in nodes.iter_mut().zip(stats) {
        node.stats_connected = s;
        node.rss_connected = node.pid.and_then(sysstat::rss_bytes);
        node.bytes_per_connection = match (node.rss_before, node.rss_connected) {
            (Some(b), Some(a)) if node.ready > 0 => Some((a as f64 - b as f64) / node.ready as f64),
            _ => None,
        };
    }
    let generator_rss = server_rss(&generator_pids);
    if let Some(r) = registry.as_mut() {
        r.rss_connected = sysstat::rss_bytes(r.pid);
    }

    let outcome = emit_and_check(
        &mut groups,
        &mut nodes,
        registry.as_mut(),
        args,
        wanted,
        &generator_pids,
    )
    .await;
    // While the connections are still open.
    let stats = all_stats(&mut nodes).await;
    for (node, s) in nodes.iter_mut().zip(stats) {
        node.stats_after = s;
    }
    groups.stop().await;
    let (emits, reports) = outcome?;

    let mut closes: BTreeMap<String, u64> = BTreeMap::new();
    for r in &reports {
        for (how, count) in &r.closes {
            *closes.entry(how.clone()).or_insert(0) += count;
        }
    }
    let mut result = ScaleResult {
        nodes,
        id_prefix: args.id_prefix.clone(),
        placement: describe(placement),
        requested: n,
        open_at_end: reports.iter().map(|r| r.alive).sum(),
        closes: closes.into_iter().collect(),
        connect,
        connect_generator_cpu,
        connect_machine_cpu,
        registry,
        generator_rss,
        generator_cores: sysstat::usable_cpus(),
        emits,
        problems: Vec::new(),
        passed: false,
    };
    result.problems = problems(&result);
    result.passed = result.problems.is_empty();
    Ok(result)
}

/// Emits to the sampled clients, waits for their deliveries, and collects the groups'
/// tables; fills the nodes' emit figures.
async fn emit_and_check(
    groups: &mut Groups,
    nodes: &mut [ScaleNode],
    registry: Option<&mut RegistryUse>,
    args: &ScaleArgs,
    wanted: u64,
    generator_pids: &[u32],
) -> Result<(EmitSummary, Vec<StepReport>), String> {
    let n = args.connections;
    let k = nodes.len();
    groups
        .send_all(&Command::Begin {
            step: 0,
            measure_from: 0,
            end: n,
        })
        .await?;
    for reply in groups.replies(Some(REPLY_LIMIT), &mut |_, _| {}).await? {
        if !matches!(reply, Event::Began { .. }) {
            return Err("a group answered out of turn when the emits began".into());
        }
    }
    let targets = sample(n, wanted, k);
    let mut targeted = vec![false; usize::try_from(n).unwrap_or(0)];
    for &i in &targets {
        if let Some(t) = usize::try_from(i).ok().and_then(|i| targeted.get_mut(i)) {
            *t = true;
        }
        if let Some(node) = nodes.get_mut(usize::try_from(i % k as u64).unwrap_or(0)) {
            node.emits_to += 1;
        }
        if let Some(node) = nodes.get_mut(via(i, k)) {
            node.emits_via += 1;
        }
    }
    let total = targets.len() as u64;
    eprintln!(
        "emitting to {total} clients through other nodes' APIs ({} connections per node, {} in flight each)",
        args.api_connections, args.api_window
    );
    let pids: Vec<u32> = nodes.iter().filter_map(|n| n.pid).collect();
    let node_cpu: Vec<CpuProbe> = nodes
        .iter()
        .map(|n| CpuProbe::start(&n.pid.into_iter().collect::<Vec<_>>()))
        .collect();
    let server_cpu = CpuProbe::start(&pids);
    let generator_cpu = CpuProbe::start(generator_pids);
    let registry_cpu = registry.as_ref().map(|r| CpuProbe::start(&[r.pid]));
    let machine = MachineProbe::start();
    let answered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = start_emits(
        lanes(&targets, k, args.api_connections),
        nodes,
        args,
        &answered,
    );

    let mut delivered = 0u64;
    let mut outcomes: Vec<LaneOutcome> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !tasks.is_empty() {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(done)) => outcomes.push(done),
                Some(Err(e)) => return Err(format!("an emit task failed: {e}")),
                None => {}
            },
            event = groups.next() => match event {
                Some((_, Event::Progress(p))) => delivered += p.delivered,
                Some((_, Event::Fatal { message })) => return Err(message),
                Some(_) => {}
                None => return Err("every connection group is gone".into()),
            },
            _ = tick.tick() => eprintln!(
                "emitting: {} answered, {delivered} delivered of {total}",
                answered.load(Ordering::Relaxed)
            ),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let generator_cpu = generator_cpu.finish();
    let server_cpu = server_cpu.finish();
    let machine_cpu = machine.finish();
    if let (Some(r), Some(probe)) = (registry, &registry_cpu) {
        r.emit_cpu = probe.finish();
    }
    for (node, probe) in nodes.iter_mut().zip(&node_cpu) {
        node.emit_cpu = probe.finish();
        node.rss_after = node.pid.and_then(sysstat::rss_bytes);
    }

    let mut summary = EmitSummary {
        targets: total,
        api_connections: args.api_connections,
        api_window: args.api_window,
        payload_bytes: args.payload,
        elapsed_secs: elapsed,
        generator_cpu,
        server_cpu,
        machine_cpu,
        ..EmitSummary::default()
    };
    let mut api = Latency::new();
    for (lane_targets, outcome) in &outcomes {
        let exchanged = match outcome {
            Ok(x) => x,
            Err(e) => {
                summary.unanswered += lane_targets.len() as u64;
                count_kind(&mut summary.answered_wrong, "lane failed".into(), e.clone());
                continue;
            }
        };
        for (_, answer, rtt) in exchanged {
            match judge(answer) {
                Ok(()) => {
                    summary.answered_correctly += 1;
                    api.record(u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX));
                }
                Err((kind, _)) if kind == "no answer" => summary.unanswered += 1,
                Err((kind, detail)) => {
                    api.record(u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX));
                    count_kind(&mut summary.answered_wrong, kind, detail);
                }
            }
        }
    }
    let answers =
        summary.answered_correctly + summary.answered_wrong.iter().map(|w| w.1).sum::<u64>();
    summary.emits_per_sec = if elapsed > 0.0 {
        answers as f64 / elapsed
    } else {
        0.0
    };
    summary.api_latency = api.summary();

    // Wait for deliveries still under way.
    let expected = summary.answered_correctly;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.drain);
    while delivered < expected {
        match tokio::time::timeout_at(deadline, groups.next()).await {
            Err(_) => break,
            Ok(Some((_, Event::Progress(p)))) => delivered += p.delivered,
            Ok(Some((_, Event::Fatal { message }))) => return Err(message),
            Ok(Some(_)) => {}
            Ok(None) => return Err("every connection group is gone".into()),
        }
    }
    // One more progress interval, so that late or wrong deliveries are seen too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    groups.send_all(&Command::Collect { step: 0 }).await?;
    let mut reports = Vec::new();
    for reply in groups.replies(Some(REPLY_LIMIT), &mut |_, _| {}).await? {
        match reply {
            Event::Step(r) => reports.push(r),
            _ => return Err("a group answered out of turn when collecting".into()),
        }
    }
    let mut delivery = Latency::new();
    for r in &reports {
        delivery.merge_compact(&r.hist);
        summary.misdelivered += r.misdelivered;
        if summary.misdelivered_example.is_none() {
            summary.misdelivered_example = r.misdelivered_example;
        }
        summary.unparsed += r.unparsed + r.ignored;
        for (offset, &count) in r.table.counts.iter().enumerate() {
            let i = r.table.first + offset as u64;
            let is_target = usize::try_from(i)
                .ok()
                .and_then(|i| targeted.get(i))
                .copied()
                .unwrap_or(false);
            match (is_target, count) {
                (true, 1) => summary.received_correctly += 1,
                (true, 0) => {}
                (true, _) => summary.duplicated += 1,
                (false, 0) => {}
                (false, _) => summary.unexpected += 1,
            }
        }
    }
    summary.missing = total.saturating_sub(summary.received_correctly + summary.duplicated);
    summary.delivery_latency = delivery.summary();
    Ok((summary, reports))
}

/// Everything wrong or missing in a finished run.
fn problems(r: &ScaleResult) -> Vec<String> {
    let mut out = Vec::new();
    let e = &r.emits;
    if r.connect.failed > 0 {
        out.push(format!("{} connections failed to open", r.connect.failed));
    }
    if r.open_at_end < r.connect.ok {
        out.push(format!(
            "{} connections closed during the emits",
            r.connect.ok - r.open_at_end
        ));
    }
    for node in &r.nodes {
        if node.ready != node.expected {
            out.push(format!(
                "{}: {} of {} connections ready",
                node.url, node.ready, node.expected
            ));
        }
        if let Some(s) = &node.stats_connected {
            if s.connections != node.ready {
                out.push(format!(
                    "{}: /stats counts {} connections, the generator {}",
                    node.url, s.connections, node.ready
                ));
            }
        }
    }
    let wrong: u64 = e.answered_wrong.iter().map(|w| w.1).sum();
    for (what, count) in [
        ("answers were not 200 {\"delivered\":1}", wrong),
        ("emits were not answered", e.unanswered),
        ("targeted clients received nothing", e.missing),
        (
            "targeted clients received their payload more than once",
            e.duplicated,
        ),
        ("payloads reached the wrong client", e.misdelivered),
        ("clients not emitted to received a payload", e.unexpected),
        ("other text frames were received", e.unparsed),
    ] {
        if count > 0 {
            out.push(format!("{count} {what}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_is_never_the_clients_node_and_uses_every_other() {
        for k in 2..8usize {
            let mut seen = vec![vec![0u32; k]; k];
            for i in 0..(k * k * 10) as u64 {
                let v = via(i, k);
                let home = (i % k as u64) as usize;
                assert_ne!(v, home, "i={i} k={k}");
                seen[home][v] += 1;
            }
            for (home, row) in seen.iter().enumerate() {
                for (v, &c) in row.iter().enumerate() {
                    assert_eq!(c > 0, v != home, "k={k} home={home} via={v}");
                }
            }
        }
    }

    #[test]
    fn samples_are_spread_over_nodes_and_unique() {
        assert_eq!(sample(5, 9, 3), vec![0, 1, 2, 3, 4]);
        for (total, wanted, k) in [
            (100_000, 1_000, 5),
            (100_000, 1_000, 6),
            (7, 6, 4),
            (10, 3, 6),
        ] {
            let s = sample(total, wanted, k);
            assert_eq!(s.len() as u64, wanted, "{total} {wanted} {k}");
            assert!(s.windows(2).all(|w| w[0] < w[1]));
            assert!(s.iter().all(|&i| i < total));
            let mut per_node = vec![0u64; k];
            for &i in &s {
                per_node[(i % k as u64) as usize] += 1;
            }
            let (lo, hi) = (per_node.iter().min(), per_node.iter().max());
            if wanted >= k as u64 {
                assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{per_node:?}");
            }
        }
        // Spread within a node: the picks of node 0 reach its last quarter.
        let s = sample(100_000, 600, 6);
        assert!(s.iter().any(|&i| i % 6 == 0 && i > 75_000));
    }

    #[test]
    fn lanes_cover_every_target_once_through_another_node() {
        let targets = sample(1_000, 1_000, 3);
        let lanes = lanes(&targets, 3, 2);
        let mut all: Vec<u64> = lanes.iter().flat_map(|l| l.targets.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, targets);
        for lane in &lanes {
            assert!(lane.targets.iter().all(|&i| (i % 3) as usize != lane.node));
        }
        assert_eq!(lanes.len(), 6);
    }

    #[test]
    fn answers_are_judged() {
        let ok = |status, body: &str| {
            Ok(http::Response {
                status,
                body: body.into(),
            })
        };
        assert_eq!(judge(&ok(200, r#"{"delivered":1}"#)), Ok(()));
        assert_eq!(
            judge(&ok(200, r#"{"delivered":0}"#)).map_err(|e| e.0),
            Err("delivered 0".to_string())
        );
        assert_eq!(
            judge(&ok(400, r#"{"error":"x"}"#)).map_err(|e| e.0),
            Err("status 400".to_string())
        );
        assert_eq!(
            judge(&ok(200, "nope")).map_err(|e| e.0),
            Err("unreadable answer".to_string())
        );
        assert_eq!(
            judge(&Err("closed".into())).map_err(|e| e.0),
            Err("no answer".to_string())
        );
        let body: serde_json::Value =
            serde_json::from_str(&emit_body("c7", "7:1:..")).expect("JSON");
        assert_eq!(body["to"], "c7");
        assert_eq!(body["data"], "7:1:..");
    }
}
