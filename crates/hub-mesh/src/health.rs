//! Whether the cluster plumbing is healthy, and its counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub use hub_edge::stats::ClusterCounters as ClusterStats;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) registry_ops: AtomicU64,
    pub(crate) registry_errors: AtomicU64,
    pub(crate) registry_joins: AtomicU64,
    pub(crate) registry_rewrites: AtomicU64,
    pub(crate) peer_sent: AtomicU64,
    pub(crate) peer_received: AtomicU64,
    pub(crate) peer_errors: AtomicU64,
    pub(crate) peer_link_resets: AtomicU64,
    pub(crate) peer_oversize: AtomicU64,
    pub(crate) peer_decode_errors: AtomicU64,
    pub(crate) bus_reconnects: AtomicU64,
    pub(crate) bus_published: AtomicU64,
    pub(crate) bus_errors: AtomicU64,
}

/// Health of the registry and the bus, shared by the cluster tasks.
#[derive(Debug, Default)]
pub(crate) struct Health {
    registry: Mutex<Option<String>>,
    bus: Mutex<Option<String>>,
    pub(crate) counters: Counters,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Health {
    /// A registry that has not been reached yet counts as down.
    pub(crate) fn new(with_registry: bool, with_bus: bool) -> Self {
        let health = Self::default();
        if with_registry {
            health.set_registry(Some("registry not reached yet".into()));
        }
        if with_bus {
            health.set_bus(Some("bus not reached yet".into()));
        }
        health
    }

    pub(crate) fn set_registry(&self, problem: Option<String>) {
        if let Ok(mut r) = self.registry.lock() {
            *r = problem;
        }
    }

    pub(crate) fn set_bus(&self, problem: Option<String>) {
        if let Ok(mut b) = self.bus.lock() {
            *b = problem;
        }
    }

    /// Why the node is degraded, if it is.
    pub(crate) fn degraded(&self) -> Option<String> {
        let registry = self.registry.lock().ok().and_then(|r| r.clone());
        let bus = self.bus.lock().ok().and_then(|b| b.clone());
        match (registry, bus) {
            (None, None) => None,
            (Some(r), None) => Some(r),
            (None, Some(b)) => Some(b),
            (Some(r), Some(b)) => Some(format!("{r}; {b}")),
        }
    }

    pub(crate) fn stats(&self) -> ClusterStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClusterStats {
            registry_ops: get(&c.registry_ops),
            registry_errors: get(&c.registry_errors),
            registry_joins: get(&c.registry_joins),
            registry_rewrites: get(&c.registry_rewrites),
            peer_sent: get(&c.peer_sent),
            peer_received: get(&c.peer_received),
            peer_errors: get(&c.peer_errors),
            peer_link_resets: get(&c.peer_link_resets),
            peer_oversize: get(&c.peer_oversize),
            peer_decode_errors: get(&c.peer_decode_errors),
            bus_reconnects: get(&c.bus_reconnects),
            bus_published: get(&c.bus_published),
            bus_errors: get(&c.bus_errors),
        }
    }
}
