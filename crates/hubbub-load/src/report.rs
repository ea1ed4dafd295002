//! Results of every run, as JSON (`--json FILE`) and as a readable table on stdout.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::hist::Summary;
use crate::proto::Protocol;
use crate::sysstat::{CpuUse, MachineUse};
use crate::tally::Loss;

/// How opening a run's connections went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectSummary {
    /// Connections ready.
    pub ok: u64,
    /// Connections that failed.
    pub failed: u64,
    /// Seconds from the first attempt to the last outcome (slowest group).
    pub elapsed_secs: f64,
    /// `ok / elapsed_secs`.
    pub connects_per_sec: f64,
    /// Connect start → upgrade answer, µs.
    pub upgrade: Summary,
    /// Connect start → ready (first frame where the protocol waits for one), µs.
    pub ready: Summary,
    /// Failures by kind: (kind, count, example message).
    pub errors: Vec<(String, u64, String)>,
    /// Connections ready per node (`scale` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_node_ok: Vec<u64>,
}

/// One fan-out step.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// Step number (0-based).
    pub step: u32,
    /// Target messages per second.
    pub rate: f64,
    /// Seconds the measured messages took to send.
    pub measured_secs: f64,
    /// Subscribers connected when the step began.
    pub subscribers: u64,
    /// Subscribers still connected at the end.
    pub subscribers_at_end: u64,
    /// Measured messages sent.
    pub sent: u64,
    /// Messages per second actually sent.
    pub achieved_rate: f64,
    /// Messages the publisher sent more than 5 ms behind schedule.
    pub late: u64,
    /// The publisher's largest lag behind schedule, ms.
    pub max_lag_ms: f64,
    /// Why the publisher stopped early, if it did.
    pub publish_error: Option<String>,
    /// Error frames the server sent the publisher (whole run so far).
    pub server_error_frames: u64,
    /// Producer-API requests answered with a non-2xx status (API publishing only).
    pub api_failed: Option<u64>,
    /// Producer-API requests not answered in time (API publishing only).
    pub api_unanswered: Option<u64>,
    /// Measured deliveries per second of the measured window.
    pub deliveries_per_sec: f64,
    /// Expected, received and lost deliveries.
    pub loss: Loss,
    /// Per-delivery latency, µs.
    pub latency: Summary,
    /// Per-message latency of the last subscriber to receive it, µs.
    pub last_subscriber: Summary,
    /// Each measured message's largest delivery latency, µs, in sending order (JSON only:
    /// shows whether a tail comes from a few slow messages or from every one).
    pub per_message_max_us: Vec<u64>,
    /// Measured messages that did not reach every subscriber.
    pub incomplete_messages: u64,
    /// Subscribers that ended during the step, by how: close code (4008 = Hubbub's slow
    /// consumer), `reset` or `eof`.
    pub closes: Vec<(String, u64)>,
    /// Payloads received outside the measured range.
    pub ignored: u64,
    /// Text frames received without a payload.
    pub unparsed: u64,
    /// CPU of the generator (this process and its workers) over the measured window.
    pub generator_cpu: Option<CpuUse>,
    /// CPUs the generator may use.
    pub generator_cores: usize,
    /// CPU of the server processes (--server-pid) over the measured window.
    pub server_cpu: Option<CpuUse>,
    /// Server CPU µs per delivery.
    pub server_us_per_delivery: Option<f64>,
    /// Whether the step held: loss and p99 under their limits, publisher on schedule.
    pub held: bool,
}

/// A fanout or crossnode run.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutResult {
    /// `fanout` or `crossnode`.
    pub mode: String,
    /// Protocol adapter.
    pub protocol: Protocol,
    /// URL the subscribers opened.
    pub sub_url: String,
    /// Base URL of the publisher's node.
    pub pub_url: String,
    /// `ws` or `api`.
    pub publish_via: String,
    /// Where the subscribers lived.
    pub placement: String,
    /// Subscribers asked for.
    pub subscribers_requested: u64,
    /// Payload bytes.
    pub payload_bytes: usize,
    /// Whether this was a sweep.
    pub sweep: bool,
    /// Opening the subscribers.
    pub connect: ConnectSummary,
    /// Every step run.
    pub steps: Vec<StepResult>,
    /// The highest rate held before the first step that did not.
    pub held_rate: Option<f64>,
    /// Deliveries per second at that rate.
    pub held_deliveries_per_sec: Option<f64>,
}

/// An idle run.
#[derive(Debug, Clone, Serialize)]
pub struct IdleResult {
    /// URL the connections opened.
    pub url: String,
    /// Protocol adapter.
    pub protocol: Protocol,
    /// Where the connections lived.
    pub placement: String,
    /// Connections asked for.
    pub requested: u64,
    /// Opening the connections.
    pub connect: ConnectSummary,
    /// Seconds waited before the second memory reading.
    pub settle_secs: f64,
    /// Server VmRSS before opening, bytes.
    pub server_rss_before: Option<u64>,
    /// Server VmRSS after settling, bytes.
    pub server_rss_after: Option<u64>,
    /// Server memory growth per open connection, bytes.
    pub server_bytes_per_connection: Option<f64>,
    /// Server CPU while the connections sat idle.
    pub server_idle_cpu: Option<CpuUse>,
    /// Generator memory (all its processes) per connection, bytes.
    pub generator_bytes_per_connection: Option<f64>,
}

/// A connect-rate run.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectRateResult {
    /// URL the connections opened.
    pub url: String,
    /// Protocol adapter.
    pub protocol: Protocol,
    /// Where the connections lived.
    pub placement: String,
    /// Connections asked for.
    pub requested: u64,
    /// Connectors at once.
    pub concurrency: usize,
    /// Connects, latency and failures.
    pub connect: ConnectSummary,
    /// Server CPU over the run.
    pub server_cpu: Option<CpuUse>,
    /// Server CPU µs per connection opened.
    pub server_us_per_connect: Option<f64>,
    /// Generator CPU over the run.
    pub generator_cpu: Option<CpuUse>,
    /// CPUs the generator may use.
    pub generator_cores: usize,
}

/// What a node's `/stats` said (fields it lacks read as 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeStats {
    /// The node's name.
    pub node: String,
    /// `ok` or `degraded`.
    pub status: String,
    /// Open connections.
    pub connections: u64,
    /// Registry commands applied (`cluster.registry_ops`).
    pub registry_ops: u64,
    /// Registry calls that failed (`cluster.registry_errors`).
    pub registry_errors: u64,
    /// Times the node (re)joined the registry (`cluster.registry_joins`).
    pub registry_joins: u64,
    /// Peer requests that failed (`peer_failures`).
    pub peer_failures: u64,
    /// Peer requests that timed out (`remote_timeouts`).
    pub remote_timeouts: u64,
    /// Messages that could not be sent to a peer (`cluster.peer_errors`).
    pub peer_errors: u64,
    /// Connections closed as slow consumers.
    pub slow_consumer_closes: u64,
    /// Connections closed for a missed heartbeat.
    pub heartbeat_closes: u64,
}

/// One node of a scale run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScaleNode {
    /// WebSocket base URL.
    pub url: String,
    /// Producer API base URL.
    pub http_url: String,
    /// Process id given with --server-pid.
    pub pid: Option<u32>,
    /// Connections meant for this node.
    pub expected: u64,
    /// Connections ready on this node, as the generator counted them.
    pub ready: u64,
    /// `/stats` once connected and settled (`None` if it could not be read).
    pub stats_connected: Option<NodeStats>,
    /// `/stats` after the emits.
    pub stats_after: Option<NodeStats>,
    /// Why `/stats` could not be read, if it could not.
    pub stats_error: Option<String>,
    /// VmRSS before any connection, bytes.
    pub rss_before: Option<u64>,
    /// VmRSS once connected and settled, bytes.
    pub rss_connected: Option<u64>,
    /// VmRSS after the emits, bytes.
    pub rss_after: Option<u64>,
    /// (rss_connected - rss_before) / ready connections.
    pub bytes_per_connection: Option<f64>,
    /// CPU while the connections opened.
    pub connect_cpu: Option<CpuUse>,
    /// CPU while the emits were answered.
    pub emit_cpu: Option<CpuUse>,
    /// Emits sent through this node's API (for clients on other nodes).
    pub emits_via: u64,
    /// Emits addressed to clients on this node.
    pub emits_to: u64,
}

/// The emit phase of a scale run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmitSummary {
    /// Clients emitted to.
    pub targets: u64,
    /// Keep-alive HTTP connections per node.
    pub api_connections: usize,
    /// Requests in flight per HTTP connection, at most.
    pub api_window: usize,
    /// Payload bytes.
    pub payload_bytes: usize,
    /// Seconds from the first request to the last answer.
    pub elapsed_secs: f64,
    /// Answers per second over that time.
    pub emits_per_sec: f64,
    /// Answers 200 `{"delivered":1}`.
    pub answered_correctly: u64,
    /// Other answers (wrong status, other count, unreadable), by kind: (kind, count, example).
    pub answered_wrong: Vec<(String, u64, String)>,
    /// Requests with no answer (connection failed or timed out).
    pub unanswered: u64,
    /// Targeted clients that received their own payload exactly once.
    pub received_correctly: u64,
    /// Targeted clients that received nothing.
    pub missing: u64,
    /// Targeted clients that received their payload more than once.
    pub duplicated: u64,
    /// Clients not targeted that received their payload anyway.
    pub unexpected: u64,
    /// Payloads that reached a client they were not addressed to.
    pub misdelivered: u64,
    /// The first of them: (receiving connection, payload's connection).
    pub misdelivered_example: Option<(u64, u64)>,
    /// Text frames without a payload received during the emits (none expected).
    pub unparsed: u64,
    /// Request written → answer read, µs.
    pub api_latency: Summary,
    /// Payload stamp → received by its client, µs.
    pub delivery_latency: Summary,
    /// Generator CPU (this process and its workers) while the emits were answered.
    pub generator_cpu: Option<CpuUse>,
    /// All --server-pid processes' CPU while the emits were answered.
    pub server_cpu: Option<CpuUse>,
    /// The whole machine's CPU while the emits were answered.
    pub machine_cpu: Option<MachineUse>,
}

/// The shared registry process of a scale run (--registry-pid).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegistryUse {
    /// Its process id.
    pub pid: u32,
    /// VmRSS before any connection, bytes.
    pub rss_before: Option<u64>,
    /// VmRSS once connected and settled, bytes.
    pub rss_connected: Option<u64>,
    /// CPU while the connections opened.
    pub connect_cpu: Option<CpuUse>,
    /// CPU while the emits were answered.
    pub emit_cpu: Option<CpuUse>,
}

/// A scale run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScaleResult {
    /// The nodes, in --url order.
    pub nodes: Vec<ScaleNode>,
    /// Client id prefix.
    pub id_prefix: String,
    /// Where the connections lived.
    pub placement: String,
    /// Connections asked for.
    pub requested: u64,
    /// Opening the connections.
    pub connect: ConnectSummary,
    /// Generator CPU while the connections opened.
    pub connect_generator_cpu: Option<CpuUse>,
    /// The whole machine's CPU while the connections opened.
    pub connect_machine_cpu: Option<MachineUse>,
    /// The registry process, when --registry-pid was given.
    pub registry: Option<RegistryUse>,
    /// Generator memory (all its processes) once connected, bytes.
    pub generator_rss: Option<u64>,
    /// CPUs the generator may use.
    pub generator_cores: usize,
    /// Connections still open after the emits.
    pub open_at_end: u64,
    /// Connections that ended during the emits, by how: close code, `reset` or `eof`.
    pub closes: Vec<(String, u64)>,
    /// The emits and their checks.
    pub emits: EmitSummary,
    /// Everything that was wrong or missing (empty when the run passed).
    pub problems: Vec<String>,
    /// Whether every connection, answer and delivery was right.
    pub passed: bool,
}

/// Writes any result as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

/// A latency in µs for people: `850 us`, `1.23 ms`, `2.50 s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} us")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

fn fmt_cpu(cpu: Option<CpuUse>) -> String {
    cpu.map_or("n/a".into(), |c| format!("{:.0}%", c.percent))
}

fn quantiles(s: &Summary) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})",
        fmt_us(s.p50_us),
        fmt_us(s.p90_us),
        fmt_us(s.p99_us),
        fmt_us(s.p999_us),
        fmt_us(s.max_us),
        s.count
    )
}

/// Whether the generator used nearly all of its CPUs (then it, not the server, may be the limit).
pub fn generator_bound(cpu: Option<CpuUse>, cores: usize) -> bool {
    cpu.is_some_and(|c| c.percent >= 90.0 * cores as f64)
}

/// Prints one step as a block.
pub fn print_step(s: &StepResult, requested: u64) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nstep {}: {} msg/s for {:.1} s, {} subscribers (of {requested}), {}",
        s.step,
        s.rate,
        s.measured_secs,
        s.subscribers,
        if s.held { "HELD" } else { "NOT HELD" }
    );
    let _ = writeln!(
        out,
        "  messages    {} sent ({:.1}/s); publisher late >5ms: {} (max lag {:.1} ms){}",
        s.sent,
        s.achieved_rate,
        s.late,
        s.max_lag_ms,
        s.publish_error
            .as_ref()
            .map_or(String::new(), |e| format!("; STOPPED: {e}"))
    );
    let _ = writeln!(
        out,
        "  deliveries  {} of {} expected, lost {} ({:.3}%), {:.0}/s{}",
        s.loss.received,
        s.loss.expected,
        s.loss.lost,
        s.loss.fraction * 100.0,
        s.deliveries_per_sec,
        if s.closes.is_empty() {
            String::new()
        } else {
            let how: Vec<String> = s.closes.iter().map(|(k, n)| format!("{n} x {k}")).collect();
            format!("; subscribers closed: {}", how.join(", "))
        }
    );
    let _ = writeln!(out, "  latency     {}", quantiles(&s.latency));
    let _ = writeln!(
        out,
        "  last sub    {}  ({} messages incomplete)",
        quantiles(&s.last_subscriber),
        s.incomplete_messages
    );
    let _ = writeln!(
        out,
        "  cpu         generator {} of {} core(s){}; server {}{}",
        fmt_cpu(s.generator_cpu),
        s.generator_cores,
        if generator_bound(s.generator_cpu, s.generator_cores) {
            " (GENERATOR-BOUND)"
        } else {
            ""
        },
        fmt_cpu(s.server_cpu),
        s.server_us_per_delivery
            .map_or(String::new(), |u| format!(" = {u:.3} us per delivery"))
    );
    if s.server_error_frames > 0 || s.api_failed.unwrap_or(0) > 0 || s.unparsed > 0 {
        let _ = writeln!(
            out,
            "  errors      server error frames {}, api failed {:?} unanswered {:?}, frames without payload {}",
            s.server_error_frames, s.api_failed, s.api_unanswered, s.unparsed
        );
    }
    print!("{out}");
}

/// Prints the summary table of a fanout run.
pub fn print_fanout(r: &FanoutResult) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} ({:?}, publish via {}): {} subscribers ready of {} ({}), payload {} B",
        r.mode,
        r.protocol,
        r.publish_via,
        r.connect.ok,
        r.subscribers_requested,
        r.placement,
        r.payload_bytes
    );
    let _ = writeln!(
        out,
        "{:>9} {:>7} {:>12} {:>8} {:>10} {:>10} {:>10} {:>12} {:>5} {:>6} {:>6} {:>8} {:>5}",
        "rate/s",
        "subs",
        "deliv/s",
        "loss%",
        "p50",
        "p99",
        "max",
        "last-sub p99",
        "late",
        "gen",
        "srv",
        "us/dlv",
        "held"
    );
    for s in &r.steps {
        let _ = writeln!(
            out,
            "{:>9} {:>7} {:>12.0} {:>8.3} {:>10} {:>10} {:>10} {:>12} {:>5} {:>6} {:>6} {:>8} {:>5}",
            s.rate,
            s.subscribers,
            s.deliveries_per_sec,
            s.loss.fraction * 100.0,
            fmt_us(s.latency.p50_us),
            fmt_us(s.latency.p99_us),
            fmt_us(s.latency.max_us),
            fmt_us(s.last_subscriber.p99_us),
            s.late,
            fmt_cpu(s.generator_cpu),
            fmt_cpu(s.server_cpu),
            s.server_us_per_delivery.map_or("n/a".into(), |u| format!("{u:.3}")),
            if s.held { "yes" } else { "no" }
        );
    }
    if r.sweep {
        let _ = match (r.held_rate, r.held_deliveries_per_sec) {
            (Some(rate), Some(d)) => writeln!(
                out,
                "highest rate held: {rate} msg/s = {d:.0} deliveries/s (loss < limit, p99 < limit, publisher on schedule)"
            ),
            _ => writeln!(out, "no rate held"),
        };
    }
    print!("{out}");
}

fn fmt_bytes(b: Option<f64>) -> String {
    b.map_or("n/a (give --server-pid)".into(), |b| {
        if b.abs() >= 1024.0 * 1024.0 {
            format!("{:.1} MiB", b / 1024.0 / 1024.0)
        } else if b.abs() >= 1024.0 {
            format!("{:.1} KiB", b / 1024.0)
        } else {
            format!("{b:.0} B")
        }
    })
}

fn print_connect(out: &mut String, c: &ConnectSummary) {
    let _ = writeln!(
        out,
        "  opened      {} ready, {} failed in {:.2} s = {:.0} connects/s",
        c.ok, c.failed, c.elapsed_secs, c.connects_per_sec
    );
    let _ = writeln!(out, "  upgrade     {}", quantiles(&c.upgrade));
    let _ = writeln!(out, "  ready       {}", quantiles(&c.ready));
    for (kind, count, example) in &c.errors {
        let _ = writeln!(out, "  failures    {count} x {kind} (e.g. {example})");
    }
}

/// Prints an idle run.
pub fn print_idle(r: &IdleResult) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nidle ({:?}): {} connections to {} ({})",
        r.protocol, r.requested, r.url, r.placement
    );
    print_connect(&mut out, &r.connect);
    let _ = writeln!(
        out,
        "  server rss  {} before, {} after {} s settle",
        fmt_bytes(r.server_rss_before.map(|b| b as f64)),
        fmt_bytes(r.server_rss_after.map(|b| b as f64)),
        r.settle_secs
    );
    let _ = writeln!(
        out,
        "  per conn    server {}; generator {}; server idle cpu {}",
        fmt_bytes(r.server_bytes_per_connection),
        fmt_bytes(r.generator_bytes_per_connection),
        fmt_cpu(r.server_idle_cpu)
    );
    print!("{out}");
}

/// Prints a connect-rate run.
pub fn print_connect_rate(r: &ConnectRateResult) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nconnect-rate ({:?}): {} connections to {}, {} at a time ({})",
        r.protocol, r.requested, r.url, r.concurrency, r.placement
    );
    print_connect(&mut out, &r.connect);
    let _ = writeln!(
        out,
        "  cpu         generator {} of {} core(s){}; server {}{}",
        fmt_cpu(r.generator_cpu),
        r.generator_cores,
        if generator_bound(r.generator_cpu, r.generator_cores) {
            " (GENERATOR-BOUND)"
        } else {
            ""
        },
        fmt_cpu(r.server_cpu),
        r.server_us_per_connect
            .map_or(String::new(), |u| format!(" = {u:.1} us per connection"))
    );
    print!("{out}");
}

/// CPU readings of processes measured over the same window, added up (`None` if any is).
fn sum_cpu(mut parts: impl Iterator<Item = Option<CpuUse>>) -> Option<CpuUse> {
    parts.try_fold(CpuUse::default(), |acc, part| {
        let part = part?;
        Some(CpuUse {
            cpu_secs: acc.cpu_secs + part.cpu_secs,
            wall_secs: acc.wall_secs.max(part.wall_secs),
            percent: acc.percent + part.percent,
        })
    })
}

/// `generator G, nodes N, registry R, rest O; machine busy M (irq+softirq I)`: the machine's
/// busy time split (percent of one core; rest = machine - the named processes).
fn cpu_shares(
    generator: Option<CpuUse>,
    nodes: Option<CpuUse>,
    registry: Option<CpuUse>,
    machine: Option<MachineUse>,
) -> String {
    let known = [generator, nodes, registry]
        .iter()
        .flatten()
        .map(|c| c.percent)
        .sum::<f64>();
    let rest = machine.map_or("n/a".into(), |m| {
        format!("{:.0}%", (m.busy.percent - known).max(0.0))
    });
    format!(
        "generator {}, nodes {}, registry {}, rest {}; machine busy {} (100% = one core; irq+softirq {})",
        fmt_cpu(generator),
        fmt_cpu(nodes),
        fmt_cpu(registry),
        rest,
        fmt_cpu(machine.map(|m| m.busy)),
        fmt_cpu(machine.map(|m| m.irq)),
    )
}

fn fmt_opt_bytes(b: Option<u64>) -> String {
    b.map_or("n/a".into(), |b| fmt_bytes(Some(b as f64)))
}

/// Prints a scale run.
pub fn print_scale(r: &ScaleResult) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nscale: {} connections over {} nodes ({}), client ids {}0..{}{}",
        r.requested,
        r.nodes.len(),
        r.placement,
        r.id_prefix,
        r.id_prefix,
        r.requested.saturating_sub(1)
    );
    print_connect(&mut out, &r.connect);
    let _ = writeln!(
        out,
        "  open        {} at the end of the run{}",
        r.open_at_end,
        if r.closes.is_empty() {
            String::new()
        } else {
            let how: Vec<String> = r.closes.iter().map(|(k, n)| format!("{n} x {k}")).collect();
            format!(" (closed during the emits: {})", how.join(", "))
        }
    );
    let nodes_connect = sum_cpu(r.nodes.iter().map(|n| n.connect_cpu));
    let registry_connect = r.registry.as_ref().and_then(|g| g.connect_cpu);
    let _ = writeln!(
        out,
        "  cpu         while connecting: {}",
        cpu_shares(
            r.connect_generator_cpu,
            nodes_connect,
            registry_connect,
            r.connect_machine_cpu
        )
    );
    let _ = writeln!(
        out,
        "  memory      generator {} ({} per connection){}",
        fmt_opt_bytes(r.generator_rss),
        fmt_bytes(
            r.generator_rss
                .filter(|_| r.connect.ok > 0)
                .map(|b| b as f64 / r.connect.ok as f64)
        ),
        r.registry.as_ref().map_or(String::new(), |g| format!(
            "; registry (pid {}) {} before, {} connected",
            g.pid,
            fmt_opt_bytes(g.rss_before),
            fmt_opt_bytes(g.rss_connected)
        ))
    );
    let _ = writeln!(
        out,
        "\n{:>4} {:<24} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "node",
        "url",
        "expected",
        "ready",
        "/stats",
        "rss before",
        "rss conn.",
        "B/conn",
        "cpu conn",
        "cpu emit",
        "emits to",
        "via"
    );
    for (i, n) in r.nodes.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>4} {:<24} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}",
            i,
            n.url,
            n.expected,
            n.ready,
            n.stats_connected
                .as_ref()
                .map_or("n/a".into(), |s| s.connections.to_string()),
            fmt_opt_bytes(n.rss_before),
            fmt_opt_bytes(n.rss_connected),
            n.bytes_per_connection
                .map_or("n/a".into(), |b| format!("{b:.0}")),
            fmt_cpu(n.connect_cpu),
            fmt_cpu(n.emit_cpu),
            n.emits_to,
            n.emits_via
        );
    }
    let e = &r.emits;
    let _ = writeln!(
        out,
        "\n  emits       {} to {} clients in {:.2} s = {:.0} emits/s ({} HTTP connections per node, {} in flight each, payload {} B)",
        e.answered_correctly
            + e.answered_wrong.iter().map(|w| w.1).sum::<u64>(),
        e.targets,
        e.elapsed_secs,
        e.emits_per_sec,
        e.api_connections,
        e.api_window,
        e.payload_bytes
    );
    let _ = writeln!(
        out,
        "  answers     {} correct ({{\"delivered\":1}}), {} wrong, {} unanswered",
        e.answered_correctly,
        e.answered_wrong.iter().map(|w| w.1).sum::<u64>(),
        e.unanswered
    );
    for (kind, count, example) in &e.answered_wrong {
        let _ = writeln!(out, "  wrong       {count} x {kind} (e.g. {example})");
    }
    let _ = writeln!(
        out,
        "  received    {} correct (own payload once), {} missing, {} duplicated, {} misdelivered{}, {} unexpected, {} other frames",
        e.received_correctly,
        e.missing,
        e.duplicated,
        e.misdelivered,
        e.misdelivered_example
            .map_or(String::new(), |(at, of)| format!(" (e.g. client {at} got payload {of})")),
        e.unexpected,
        e.unparsed
    );
    let _ = writeln!(out, "  api rtt     {}", quantiles(&e.api_latency));
    let _ = writeln!(out, "  delivery    {}", quantiles(&e.delivery_latency));
    let _ = writeln!(
        out,
        "  cpu         while answering: {}{}",
        cpu_shares(
            e.generator_cpu,
            e.server_cpu,
            r.registry.as_ref().and_then(|g| g.emit_cpu),
            e.machine_cpu
        ),
        if generator_bound(e.generator_cpu, r.generator_cores) {
            " (GENERATOR-BOUND)"
        } else {
            ""
        }
    );
    for n in &r.nodes {
        if let Some(s) = &n.stats_after {
            let before = n.stats_connected.as_ref();
            let _ = writeln!(
                out,
                "  /stats      {} after the emits: {}, {} connections, registry ops {} errors {} joins {}, peer failures {} timeouts {} errors {} ({} before the emits)",
                s.node,
                s.status,
                s.connections,
                s.registry_ops,
                s.registry_errors,
                s.registry_joins,
                s.peer_failures,
                s.remote_timeouts,
                s.peer_errors,
                before.map_or("n/a".into(), |b| b.peer_errors.to_string())
            );
        }
        if let Some(err) = &n.stats_error {
            let _ = writeln!(out, "  /stats      {}: {err}", n.url);
        }
    }
    if r.passed {
        let _ = writeln!(
            out,
            "\nPASSED: every connection, answer and delivery was right"
        );
    } else {
        let _ = writeln!(out, "\nFAILED:");
        for p in &r.problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    print!("{out}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_us(850), "850 us");
        assert_eq!(fmt_us(1_234), "1.23 ms");
        assert_eq!(fmt_us(2_500_000), "2.50 s");
        assert_eq!(fmt_bytes(Some(2048.0)), "2.0 KiB");
        assert!(generator_bound(
            Some(CpuUse {
                cpu_secs: 1.0,
                wall_secs: 1.0,
                percent: 95.0
            }),
            1
        ));
        assert!(!generator_bound(None, 1));
    }
}
