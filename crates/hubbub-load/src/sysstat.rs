//! What `/proc` tells about processes: CPU time (utime + stime), resident memory (VmRSS)
//! and the open-file limit; and the whole machine's busy time. Linux only; elsewhere every
//! reading is `None`.
//!
//! CPU times are in clock ticks; [`clk_tck`] asks `getconf CLK_TCK` once and assumes 100
//! (the Linux default) when that fails.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Clock ticks per second for `/proc/PID/stat` times.
pub fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// User + system CPU time of process `pid` so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ticks(&stat)
}

/// utime + stime from the text of `/proc/PID/stat` (fields 14 and 15; the command name in
/// parentheses may hold spaces, so fields are counted after the last `)`).
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": field 3 (state) is index 0, so field 14 is index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of process `pid` in bytes (VmRSS).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&status)
}

fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// This process's soft limit on open files.
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// CPUs this process may run on (its affinity mask), at least 1.
pub fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU used by a set of processes over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuUse {
    /// CPU seconds used.
    pub cpu_secs: f64,
    /// Wall seconds of the window.
    pub wall_secs: f64,
    /// `cpu / wall` in percent of one core.
    pub percent: f64,
}

/// Measures the CPU of some processes from now until [`CpuProbe::finish`].
#[derive(Debug, Clone)]
pub struct CpuProbe {
    pids: Vec<u32>,
    start_ticks: Option<u64>,
    start: Instant,
}

impl CpuProbe {
    /// Starts measuring `pids` (`None` readings when any of them cannot be read).
    pub fn start(pids: &[u32]) -> Self {
        Self {
            pids: pids.to_vec(),
            start_ticks: total_ticks(pids),
            start: Instant::now(),
        }
    }

    /// The CPU used since [`CpuProbe::start`]; `None` when `/proc` could not be read.
    pub fn finish(&self) -> Option<CpuUse> {
        let end = total_ticks(&self.pids)?;
        let ticks = end.saturating_sub(self.start_ticks?);
        let wall = self
            .start
            .elapsed()
            .max(Duration::from_micros(1))
            .as_secs_f64();
        let cpu_secs = ticks as f64 / clk_tck() as f64;
        Some(CpuUse {
            cpu_secs,
            wall_secs: wall,
            percent: 100.0 * cpu_secs / wall,
        })
    }
}

/// Clock ticks of the whole machine so far, summed over its CPUs (`/proc/stat`): busy (every
/// time but idle and iowait) and, within it, interrupts and softirqs (e.g. loopback TCP).
/// Without `CONFIG_IRQ_TIME_ACCOUNTING` a softirq tick is also charged to the process it
/// interrupted, so the irq figure overlaps processes' utime/stime.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine(&stat)
}

fn parse_machine(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    let irq = fields.get(5).copied().unwrap_or(0) + fields.get(6).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), irq))
}

/// The whole machine's CPU over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MachineUse {
    /// Busy time (all but idle and iowait), over every CPU.
    pub busy: CpuUse,
    /// Interrupt and softirq time, part of `busy` (and possibly of processes' time too).
    pub irq: CpuUse,
}

/// Measures the whole machine's busy CPU from now until [`MachineProbe::finish`].
#[derive(Debug, Clone)]
pub struct MachineProbe {
    start_ticks: Option<(u64, u64)>,
    start: Instant,
}

impl MachineProbe {
    /// Starts measuring.
    pub fn start() -> Self {
        Self {
            start_ticks: machine_ticks(),
            start: Instant::now(),
        }
    }

    /// The machine's CPU since [`MachineProbe::start`] (percent of one core, out of
    /// 100 × CPUs).
    pub fn finish(&self) -> Option<MachineUse> {
        let (busy, irq) = machine_ticks()?;
        let (busy0, irq0) = self.start_ticks?;
        let wall = self
            .start
            .elapsed()
            .max(Duration::from_micros(1))
            .as_secs_f64();
        let use_of = |ticks: u64| {
            let cpu_secs = ticks as f64 / clk_tck() as f64;
            CpuUse {
                cpu_secs,
                wall_secs: wall,
                percent: 100.0 * cpu_secs / wall,
            }
        };
        Some(MachineUse {
            busy: use_of(busy.saturating_sub(busy0)),
            irq: use_of(irq.saturating_sub(irq0)),
        })
    }
}

fn total_ticks(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| cpu_ticks(p)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 40 0 0 20 0 1 0";
        assert_eq!(parse_stat_ticks(stat), Some(290));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tx\nVmPeak:\t  10 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_vmrss(status), Some(2048 * 1024));
        assert_eq!(parse_vmrss("Name: x\n"), None);
    }

    #[test]
    fn parses_machine_busy_time() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(parse_machine(stat), Some((161, 5)));
        assert_eq!(parse_machine("intr 1 2\n"), None);
        assert_eq!(parse_machine("cpu  1 x 3 4\n"), None);
    }

    #[test]
    fn reads_this_process() {
        if cfg!(target_os = "linux") {
            let me = std::process::id();
            assert!(cpu_ticks(me).is_some());
            assert!(rss_bytes(me).unwrap_or(0) > 0);
            assert!(open_file_limit().unwrap_or(0) > 0);
            let probe = CpuProbe::start(&[me]);
            assert!(probe.finish().is_some());
        }
        assert!(clk_tck() > 0);
        assert!(usable_cpus() >= 1);
    }
}
