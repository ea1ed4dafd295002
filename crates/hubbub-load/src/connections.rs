//! Opening many connections: building the groups' specs, waiting for every group to finish
//! connecting (with a progress line), and the `idle` and `connect-rate` runs built on that.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::cli::{ConnArgs, ConnectRateArgs, IdleArgs, PlaceArgs};
use crate::conn;
use crate::group::{self, Groups, Placement};
use crate::hist::Latency;
use crate::ipc::{Event, GroupSpec, Progress};
use crate::proto::Role;
use crate::report::{ConnectRateResult, ConnectSummary, IdleResult};
use crate::sysstat::{self, CpuProbe};

/// Runtime threads for `requested` (0 = one per usable CPU).
pub fn threads(requested: usize) -> usize {
    if requested == 0 {
        sysstat::usable_cpus()
    } else {
        requested
    }
}

/// Starts the groups holding `count` connections of `role` to `url`.
pub async fn start_groups(
    url: &str,
    addr: SocketAddr,
    conn: &ConnArgs,
    role: Role,
    count: u64,
    connect_rate: Option<f64>,
) -> Result<(Groups, Placement), String> {
    let template = GroupSpec::template(
        url.to_string(),
        addr,
        conn.protocol,
        role,
        conn.room.clone(),
        None,
    );
    start_specs(&template, &conn.place, count, connect_rate).await
}

/// Starts the groups holding `count` connections like `template` (its count, first index,
/// source spreading, concurrency, rate and timeout come from `place` and `connect_rate`).
pub async fn start_specs(
    template: &GroupSpec,
    place: &PlaceArgs,
    count: u64,
    connect_rate: Option<f64>,
) -> Result<(Groups, Placement), String> {
    let placement = group::placement(count, place.workers, place.per_worker);
    let n = match placement {
        Placement::InProcess => 1,
        Placement::Processes(n) => n,
    };
    let every_addr_spreads = match &template.addressed {
        Some(a) => a.nodes.iter().all(|(_, addr)| conn::can_spread(*addr)),
        None => conn::can_spread(template.addr),
    };
    let spread = !place.no_spread && every_addr_spreads;
    let specs = group::split(count, n)
        .into_iter()
        .map(|(first_index, count)| GroupSpec {
            count,
            first_index,
            per_source: spread.then_some(place.per_source.max(1)),
            concurrency: (place.connect_concurrency / n).max(1),
            connect_rate: connect_rate.map(|r| r / n as f64),
            connect_timeout_ms: (place.connect_timeout.max(0.001) * 1000.0) as u64,
            ..template.clone()
        })
        .collect();
    let groups = Groups::start(
        specs,
        matches!(placement, Placement::Processes(_)),
        threads(place.threads),
    )
    .await?;
    Ok((groups, placement))
}

/// Describes a placement for people.
pub fn describe(placement: Placement) -> String {
    match placement {
        Placement::InProcess => "in this process".into(),
        Placement::Processes(n) => format!("{n} worker processes"),
    }
}

/// Waits until every group has finished connecting, printing progress each second.
pub async fn await_connected(groups: &mut Groups, total: u64) -> Result<ConnectSummary, String> {
    let n = groups.len();
    let (mut ok, mut failed) = (vec![0u64; n], vec![0u64; n]);
    let mut last = Instant::now();
    let mut on_progress = |g: usize, p: Progress| {
        if let (Some(o), Some(f)) = (ok.get_mut(g), failed.get_mut(g)) {
            *o = p.ok;
            *f = p.failed;
        }
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            eprintln!(
                "connecting: {} ready, {} failed of {total}",
                ok.iter().sum::<u64>(),
                failed.iter().sum::<u64>()
            );
        }
    };
    let replies = groups.replies(None, &mut on_progress).await?;
    let mut summary = ConnectSummary::default();
    let (mut upgrade, mut ready) = (Latency::new(), Latency::new());
    for reply in replies {
        let Event::Connected(r) = reply else {
            return Err("a group answered out of turn while connecting".into());
        };
        summary.ok += r.ok;
        summary.failed += r.failed;
        summary.elapsed_secs = summary.elapsed_secs.max(r.elapsed_secs);
        upgrade.merge_compact(&r.upgrade);
        ready.merge_compact(&r.ready);
        if summary.per_node_ok.len() < r.per_node_ok.len() {
            summary.per_node_ok.resize(r.per_node_ok.len(), 0);
        }
        for (sum, n) in summary.per_node_ok.iter_mut().zip(&r.per_node_ok) {
            *sum += n;
        }
        for (kind, count, example) in r.errors {
            match summary.errors.iter_mut().find(|e| e.0 == kind) {
                Some(e) => e.1 += count,
                None => summary.errors.push((kind, count, example)),
            }
        }
    }
    summary.connects_per_sec = if summary.elapsed_secs > 0.0 {
        summary.ok as f64 / summary.elapsed_secs
    } else {
        0.0
    };
    summary.upgrade = upgrade.summary();
    summary.ready = ready.summary();
    eprintln!(
        "connected: {} ready, {} failed in {:.1} s",
        summary.ok, summary.failed, summary.elapsed_secs
    );
    Ok(summary)
}

/// Sums a reading over the server processes (`None` if any cannot be read or none given).
pub fn server_rss(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| sysstat::rss_bytes(p)).sum()
}

/// The `idle` run.
pub async fn run_idle(args: &IdleArgs) -> Result<IdleResult, String> {
    let url = args
        .conn
        .protocol
        .url(&args.url, Role::Idle, &args.conn.room);
    let addr = conn::resolve(&url).await?;
    let pids = &args.out.server_pids;
    let rss_before = server_rss(pids);
    let self_rss_before = sysstat::rss_bytes(std::process::id());
    eprintln!(
        "opening {} idle connections to {url} at {}/s",
        args.connections, args.connect_rate
    );
    let rate = (args.connect_rate > 0.0).then_some(args.connect_rate);
    let (mut groups, placement) =
        start_groups(&url, addr, &args.conn, Role::Idle, args.connections, rate).await?;
    let connect = await_connected(&mut groups, args.connections).await?;
    eprintln!("settling for {} s", args.settle);
    let cpu = CpuProbe::start(pids);
    tokio::time::sleep(Duration::from_secs_f64(args.settle.max(0.0))).await;
    let rss_after = server_rss(pids);
    let server_cpu = cpu.finish();
    let mut generator_pids = groups.pids();
    generator_pids.push(std::process::id());
    let generator_rss_after = server_rss(&generator_pids);
    groups.stop().await;
    let per = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(b), Some(a)) if connect.ok > 0 => Some((a as f64 - b as f64) / connect.ok as f64),
        _ => None,
    };
    Ok(IdleResult {
        url,
        protocol: args.conn.protocol,
        placement: describe(placement),
        requested: args.connections,
        server_rss_before: rss_before,
        server_rss_after: rss_after,
        server_bytes_per_connection: per(rss_before, rss_after),
        server_idle_cpu: server_cpu,
        generator_bytes_per_connection: per(self_rss_before, generator_rss_after),
        settle_secs: args.settle,
        connect,
    })
}

/// The `connect-rate` run.
pub async fn run_connect_rate(args: &ConnectRateArgs) -> Result<ConnectRateResult, String> {
    let url = args
        .conn
        .protocol
        .url(&args.url, Role::Idle, &args.conn.room);
    let addr = conn::resolve(&url).await?;
    let pids = &args.out.server_pids;
    eprintln!(
        "opening {} connections to {url}, {} at a time",
        args.connections, args.conn.place.connect_concurrency
    );
    let cpu = CpuProbe::start(pids);
    let (mut groups, placement) =
        start_groups(&url, addr, &args.conn, Role::Idle, args.connections, None).await?;
    let mut generator_pids = groups.pids();
    generator_pids.push(std::process::id());
    let generator = CpuProbe::start(&generator_pids);
    let connect = await_connected(&mut groups, args.connections).await?;
    let server_cpu = cpu.finish();
    let generator_cpu = generator.finish();
    groups.stop().await;
    let server_us_per_connect = server_cpu
        .filter(|_| connect.ok > 0)
        .map(|c| c.cpu_secs * 1e6 / connect.ok as f64);
    Ok(ConnectRateResult {
        url,
        protocol: args.conn.protocol,
        placement: describe(placement),
        requested: args.connections,
        concurrency: args.conn.place.connect_concurrency,
        connect,
        server_cpu,
        server_us_per_connect,
        generator_cpu,
        generator_cores: sysstat::usable_cpus(),
    })
}
