//! Connections per client IP.
//!
//! Invariant: `count(ip)` equals acquisitions minus releases for that IP, and never passes the
//! limit; an IP with no connections has no entry.

use std::collections::HashMap;
use std::net::IpAddr;

/// Counts WebSocket connections per client IP against an optional limit.
#[derive(Debug, Default)]
pub struct IpLimiter {
    max: Option<u32>,
    counts: HashMap<IpAddr, u32>,
}

impl IpLimiter {
    /// A limiter allowing `max` connections per IP (none: unlimited).
    pub fn new(max: Option<u32>) -> Self {
        Self {
            max,
            counts: HashMap::new(),
        }
    }

    /// Takes a place for `ip`; false when the IP is at its limit.
    pub fn acquire(&mut self, ip: IpAddr) -> bool {
        let count = self.counts.entry(ip).or_insert(0);
        if self.max.is_some_and(|max| *count >= max) {
            if *count == 0 {
                self.counts.remove(&ip);
            }
            return false;
        }
        *count += 1;
        true
    }

    /// Gives back a place taken by [`IpLimiter::acquire`].
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(count) = self.counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.counts.remove(&ip);
            }
        }
    }

    /// Connections held by `ip`.
    pub fn count(&self, ip: IpAddr) -> u32 {
        self.counts.get(&ip).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_ip_and_releases() {
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let mut l = IpLimiter::new(Some(2));
        assert!(l.acquire(a) && l.acquire(a));
        assert!(!l.acquire(a));
        assert!(l.acquire(b));
        l.release(a);
        assert!(l.acquire(a));
        l.release(a);
        l.release(a);
        assert_eq!(l.count(a), 0);
        let mut unlimited = IpLimiter::new(None);
        for _ in 0..1000 {
            assert!(unlimited.acquire(a));
        }
    }
}
