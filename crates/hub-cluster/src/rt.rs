//! Timers and task spawning for the Redis side, independent of the async runtime.
//!
//! Timers come from async-io, whose reactor works under any executor (tokio's included).
//! Tasks go to tokio, or to smol once [`use_smol`] was called; so does the redis crate's own
//! connection I/O. The etcd backend always needs tokio (etcd-client is tokio-only).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static SMOL: AtomicBool = AtomicBool::new(false);

/// Makes this process's Redis connections (registry and bus) run on smol and async-io,
/// through the redis crate's smol support, instead of tokio. Call it once, before the first
/// Redis connection; a process that runs its node on smol does.
pub fn use_smol() {
    SMOL.store(true, Ordering::Release);
    // Fails only when a preference was already set, which then stands.
    let _ = redis::aio::prefer_smol();
}

/// Whether Redis work runs on smol.
pub fn on_smol() -> bool {
    SMOL.load(Ordering::Acquire)
}

/// Runs `task` in the background on the chosen runtime.
pub(crate) fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    if on_smol() {
        smol::spawn(task).detach();
    } else {
        tokio::spawn(task);
    }
}

/// `future`'s output, or `None` when `limit` passes first.
pub(crate) async fn within<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let timer = async_io::Timer::after(limit);
    tokio::pin!(future);
    tokio::pin!(timer);
    tokio::select! {
        biased;
        out = &mut future => Some(out),
        _ = &mut timer => None,
    }
}

/// Completes after `wait`.
pub(crate) async fn sleep(wait: Duration) {
    async_io::Timer::after(wait).await;
}
