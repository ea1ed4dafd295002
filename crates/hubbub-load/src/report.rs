//! Results of every run, as JSON (`--json FILE`) and as a readable table on stdout.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::hist::Summary;
use crate::proto::Protocol;
use crate::sysstat::CpuUse;
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
