//! Places a connection holds while it is served: one among the HTTP connections (capped by
//! `max_http_connections`) and one in its address's per-IP limit. Both are given back when
//! dropped, so no path out of a connection's task can leak one.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use crate::hub::Hub;

/// A place among the node's HTTP connections, given back on drop.
pub(crate) struct HttpSlot {
    hub: Hub,
}

impl HttpSlot {
    /// Takes a place, or `None` when `max_http_connections` are already served.
    pub(crate) fn acquire(hub: &Hub) -> Option<Self> {
        let cap = hub.inner.settings.max_http_connections;
        let taken = hub
            .inner
            .http_open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            });
        taken.is_ok().then(|| HttpSlot { hub: hub.clone() })
    }
}

impl Drop for HttpSlot {
    fn drop(&mut self) {
        self.hub.inner.http_open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A place in an address's per-IP connection limit, given back on drop unless handed over
/// to a WebSocket (which gives it back when it ends).
pub(crate) struct IpSlot {
    hub: Hub,
    ip: Option<IpAddr>,
}

impl IpSlot {
    /// Takes a place for `ip`, or `None` when the address is at its limit.
    pub(crate) fn acquire(hub: &Hub, ip: IpAddr) -> Option<Self> {
        let admitted = hub
            .inner
            .limiter
            .lock()
            .map(|mut l| l.acquire(ip))
            .unwrap_or(false);
        admitted.then(|| IpSlot {
            hub: hub.clone(),
            ip: Some(ip),
        })
    }

    /// The address, its place now owned by the caller (who must give it back).
    pub(crate) fn hand_over(mut self) -> Option<IpAddr> {
        self.ip.take()
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip.take() {
            crate::http::release(&self.hub, ip);
        }
    }
}
