//! Latency histograms in microseconds (HDR, 3 significant digits, 1 µs to 1 hour) and the
//! compact form in which worker processes send them to the coordinator.
//!
//! Invariant: merging the compact forms of several histograms gives the same counts and
//! quantiles as recording every value into one histogram.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency kept apart from the others, in µs (one hour); larger values saturate.
const MAX_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

/// A histogram as `(bucket value, count)` pairs of its non-empty buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compact(pub Vec<(u64, u64)>);

/// The usual quantiles of a histogram, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub count: u64,
    /// Smallest value.
    pub min_us: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest value.
    pub max_us: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        // Constant, valid bounds (low 1 ≥ 1, high ≥ 2 × low, 3 digits ≤ 5): cannot fail.
        let hist =
            Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid");
        Self(hist)
    }

    /// Records one latency; values above one hour saturate.
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) {
        for v in other.0.iter_recorded() {
            self.0
                .saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }

    /// Adds every value of a compact histogram.
    pub fn merge_compact(&mut self, compact: &Compact) {
        for &(value, count) in &compact.0 {
            self.0.saturating_record_n(value, count);
        }
    }

    /// The compact form (non-empty buckets only).
    pub fn to_compact(&self) -> Compact {
        Compact(
            self.0
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    /// Builds a histogram from its compact form.
    pub fn from_compact(compact: &Compact) -> Self {
        let mut hist = Self::new();
        hist.merge_compact(compact);
        hist
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at quantile `q` (0..=1); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_quantile(q)
        }
    }

    /// Forgets every value.
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// The usual quantiles.
    pub fn summary(&self) -> Summary {
        if self.0.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.0.len(),
            min_us: self.0.min(),
            mean_us: self.0.mean(),
            p50_us: self.quantile(0.5),
            p90_us: self.quantile(0.9),
            p99_us: self.quantile(0.99),
            p999_us: self.quantile(0.999),
            max_us: self.0.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_compacts_equals_recording_everything() {
        let mut all = Latency::new();
        let mut parts = vec![Latency::new(), Latency::new(), Latency::new()];
        for i in 0..30_000u64 {
            let v = (i * 7919) % 250_000 + 1;
            all.record(v);
            parts[(i % 3) as usize].record(v);
        }
        let mut merged = Latency::new();
        for part in &parts {
            // Through JSON, as worker processes send them.
            let json = serde_json::to_string(&part.to_compact()).expect("serialize");
            let back: Compact = serde_json::from_str(&json).expect("parse");
            merged.merge_compact(&back);
        }
        assert_eq!(merged.count(), all.count());
        assert_eq!(merged.summary(), all.summary());
        let mut direct = Latency::new();
        for part in &parts {
            direct.merge(part);
        }
        assert_eq!(direct.summary(), all.summary());
    }

    #[test]
    fn empty_and_saturating() {
        let mut h = Latency::new();
        assert_eq!(h.summary(), Summary::default());
        assert_eq!(h.quantile(0.99), 0);
        h.record(u64::MAX);
        h.record(0);
        assert_eq!(h.count(), 2);
        assert!(h.summary().max_us >= MAX_US);
        h.reset();
        assert_eq!(h.count(), 0);
    }
}
