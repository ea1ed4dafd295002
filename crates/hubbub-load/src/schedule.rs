//! The open-loop send schedule (message `i` is due at `start + i / rate`, whatever happened
//! to earlier messages), the publisher's own lateness against it, and the sweep's list of
//! rates.
//!
//! Invariant: the schedule never waits for deliveries; a publisher that cannot keep up sends
//! every overdue message at once and counts how late each one went out.

use std::time::{Duration, Instant};

/// A message sent later than this after its due time counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(5);

/// `total` messages at `rate` per second, open loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    total: u64,
}

impl Schedule {
    /// A schedule of `total` messages at `rate` messages per second (rate > 0).
    pub fn new(rate: f64, total: u64) -> Self {
        Self {
            rate: if rate > 0.0 { rate } else { 1.0 },
            total,
        }
    }

    /// Number of messages in the schedule.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// When message `i` is due, counted from the start.
    pub fn due_at(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// When a schedule that follows this one starts (given this one's start): one interval
    /// after this one's last message, so that the two keep one cadence.
    pub fn followed_at(&self, start: Instant) -> Instant {
        start + self.due_at(self.total)
    }

    /// How many messages are due `elapsed` after the start (message 0 is due at once).
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        let due = (elapsed.as_secs_f64() * self.rate).floor() as u64 + 1;
        due.min(self.total)
    }
}

/// The number of messages to send for `secs` seconds at `rate` per second.
pub fn messages_for(rate: f64, secs: f64) -> u64 {
    (rate * secs).round().max(0.0) as u64
}

/// How late the publisher was against its schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lateness {
    /// Messages sent more than [`LATE_AFTER`] after their due time.
    pub late: u64,
    /// The largest lag seen.
    pub max_lag: Duration,
}

impl Lateness {
    /// Records that a message went out `lag` after its due time.
    pub fn record(&mut self, lag: Duration) {
        if lag > LATE_AFTER {
            self.late += 1;
        }
        self.max_lag = self.max_lag.max(lag);
    }
}

/// Rates for a sweep: `start`, then × `factor` per step, `steps` rates in all.
pub fn geometric_rates(start: f64, factor: f64, steps: usize) -> Vec<f64> {
    let mut rates = Vec::with_capacity(steps);
    let mut rate = start;
    for _ in 0..steps {
        rates.push((rate * 1000.0).round() / 1000.0);
        rate *= factor;
    }
    rates
}

/// Parses a comma-separated list of positive rates, e.g. `10,20,50`.
pub fn parse_rates(text: &str) -> Result<Vec<f64>, String> {
    let rates = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse::<f64>() {
            Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
            _ => Err(format!("bad rate {s:?}: want a positive number")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if rates.is_empty() {
        return Err("no rates given".into());
    }
    Ok(rates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_following_schedule_keeps_the_cadence() {
        let t0 = Instant::now();
        // 10 warm-up messages at 5/s go out at 0, 0.2, ... 1.8 s: the next is due at 2 s,
        // not straight after the 10th.
        assert_eq!(
            Schedule::new(5.0, 10).followed_at(t0),
            t0 + Duration::from_secs(2)
        );
        assert_eq!(Schedule::new(5.0, 0).followed_at(t0), t0);
    }

    #[test]
    fn schedule_is_evenly_spaced_and_open_loop() {
        let s = Schedule::new(1000.0, 10);
        assert_eq!(s.due_at(0), Duration::ZERO);
        assert_eq!(s.due_at(5), Duration::from_millis(5));
        assert_eq!(s.due_by(Duration::ZERO), 1);
        assert_eq!(s.due_by(Duration::from_micros(2_500)), 3);
        // Far behind: everything is due at once, capped at the total.
        assert_eq!(s.due_by(Duration::from_secs(60)), 10);
        assert_eq!(s.total(), 10);
    }

    #[test]
    fn fractional_rates() {
        let s = Schedule::new(0.5, 3);
        assert_eq!(s.due_at(1), Duration::from_secs(2));
        assert_eq!(s.due_by(Duration::from_millis(1999)), 1);
        assert_eq!(s.due_by(Duration::from_millis(2000)), 2);
        assert_eq!(messages_for(50.0, 1.0), 50);
        assert_eq!(messages_for(1.5, 3.0), 5);
    }

    #[test]
    fn lateness_counts_only_beyond_the_threshold() {
        let mut l = Lateness::default();
        l.record(Duration::from_millis(1));
        l.record(LATE_AFTER);
        l.record(Duration::from_millis(40));
        assert_eq!(l.late, 1);
        assert_eq!(l.max_lag, Duration::from_millis(40));
    }

    #[test]
    fn sweep_rates() {
        assert_eq!(geometric_rates(10.0, 1.5, 4), vec![10.0, 15.0, 22.5, 33.75]);
        assert_eq!(parse_rates("10, 20,50").ok(), Some(vec![10.0, 20.0, 50.0]));
        assert!(parse_rates("10,-1").is_err());
        assert!(parse_rates("x").is_err());
        assert!(parse_rates("").is_err());
    }
}
