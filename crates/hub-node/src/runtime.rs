//! What a node needs from an async runtime, and from a connection's byte stream.
//!
//! The tokio and smol adapters implement these traits (a few dozen lines each); every task
//! of the node is written once against them. Channels come from `tokio::sync`, which works
//! under any executor.

use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::OwnedFd;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};

/// Spawning, timers, and watching a shard's poller.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// How the runtime's reactor reports that a shard's poller has events.
    type Readiness: Readiness;

    /// The runtime's name, for logs and `/stats`.
    fn name(&self) -> &'static str;

    /// Registers `poller` (a shard's epoll or kqueue descriptor, a duplicate the watcher
    /// owns) with the runtime's reactor, to be woken when it has events.
    fn readiness(&self, poller: OwnedFd) -> io::Result<Self::Readiness>;

    /// Runs `task` in the background.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);

    /// Completes at `at`.
    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + Send + 'static;

    /// Runs `future` where tokio's reactor is available (the cluster plumbing — tonic, redis,
    /// etcd-client — needs it). On tokio this is the future itself.
    fn with_tokio<F: Future + Send + 'static>(
        &self,
        future: F,
    ) -> impl Future<Output = F::Output> + Send + 'static
    where
        F::Output: Send + 'static;
}

/// A shard poller's readiness as the runtime's reactor sees it (see `sockets.rs`).
///
/// `poll_find` is `Ready` once `find` (which polls the shard's poller without waiting)
/// returns true, and `Pending` after it returned false, with the task to be woken when the
/// poller may have events again. `find` runs after each readiness the reactor reports. An
/// event that comes between a `find` that found nothing and the wait must still wake the
/// task (tokio: clear only the readiness that was seen; async-io: interest is re-armed,
/// level-triggered, on every `Pending`).
pub trait Readiness: Send + Sync + 'static {
    /// Waits until `find` finds events (see the trait's docs).
    fn poll_find(
        &self,
        cx: &mut Context<'_>,
        find: &mut dyn FnMut() -> bool,
    ) -> Poll<io::Result<()>>;
}

/// A connection's byte stream (TCP, or a stream upgraded elsewhere).
pub trait Conn: Send + Sync + 'static {
    /// Waits for bytes and passes them to `sink` (read through a buffer shared by the
    /// thread's connections where the stream allows it, so an idle connection holds none).
    /// Returns how many bytes were read; 0 at end of stream. Dropping the future after it
    /// returned `Pending` must lose no bytes and keep the waker registered (readiness-based
    /// reads do): the connection task polls a fresh one each time it is woken.
    fn read_with<F: FnOnce(&[u8]) + Send>(
        &self,
        sink: F,
    ) -> impl Future<Output = io::Result<usize>> + Send;

    /// Writes some of `slices` in one vectored write; how many bytes were written.
    fn write_vectored(
        &self,
        slices: &[IoSlice<'_>],
    ) -> impl Future<Output = io::Result<usize>> + Send;

    /// Flushes buffered writes.
    fn flush(&self) -> impl Future<Output = io::Result<()>> + Send;

    /// Shuts the write side down.
    fn shutdown_write(&self) -> impl Future<Output = io::Result<()>> + Send;

    /// Writes what the stream takes now, without waiting: how many bytes of `slices` (one
    /// slice: best as `send`, cheaper in the kernel than `writev`). `WouldBlock` when it
    /// takes nothing. The shard task writes batches through this itself (see
    /// `mailbox.rs`), and leaves the rest to the connection's task; a stream that cannot be
    /// written this way keeps this default, and its task does all the writing.
    fn write_now(&self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let _ = slices;
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// The TCP socket under the stream, taken off the runtime's reactor, for the shard task
    /// to own (see `sockets.rs`): `Ok(Err(self))` for a stream that is not a bare TCP socket
    /// (its connection then runs as a task), `Err` when taking it off failed (the socket is
    /// lost).
    fn into_tcp(self) -> io::Result<Result<std::net::TcpStream, Self>>
    where
        Self: Sized,
    {
        Ok(Err(self))
    }
}

/// Size of the read buffer shared by the connections of one thread.
const SHARED_READ_BUFFER: usize = 64 * 1024;

thread_local! {
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; SHARED_READ_BUFFER]);
}

/// One non-blocking read through the thread's shared buffer, for [`Conn::read_with`] on
/// sockets: `try_read` reads into the buffer; on success the bytes go to the sink (taken
/// from `sink`) and the count is returned; `Ok(None)` means "would block, wait for
/// readiness again". An idle connection thereby holds no read buffer of its own.
fn read_shared<F: FnOnce(&[u8])>(
    try_read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    sink: &mut Option<F>,
) -> io::Result<Option<usize>> {
    READ_BUFFER.with_borrow_mut(|buf| match try_read(buf) {
        Ok(n) => {
            if let Some(sink) = sink.take() {
                sink(&buf[..n]);
            }
            Ok(Some(n))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    })
}

/// [`Conn::read_with`] for a socket with a readiness poll and a non-blocking read: waits
/// with `poll_ready` (which keeps the waker in the socket's registration, so the future is a
/// few pointers), then reads through the thread's shared buffer and passes the bytes to
/// `sink`. Loops on spurious readiness.
pub fn read_ready<'a, S, F, P, R>(
    socket: &'a S,
    poll_ready: P,
    try_read: R,
    sink: F,
) -> impl Future<Output = io::Result<usize>> + Send + use<'a, S, F, P, R>
where
    S: Sync,
    F: FnOnce(&[u8]) + Send,
    P: Fn(&S, &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> + Send,
    R: Fn(&S, &mut [u8]) -> io::Result<usize> + Send,
{
    let mut sink = Some(sink);
    std::future::poll_fn(move |cx| loop {
        match poll_ready(socket, cx) {
            std::task::Poll::Ready(Ok(())) => {}
            std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => return std::task::Poll::Pending,
        }
        if let Some(n) = read_shared(|buf| try_read(socket, buf), &mut sink)? {
            return std::task::Poll::Ready(Ok(n));
        }
    })
}

/// Most slices in one vectored write.
pub(crate) const MAX_IOV: usize = 64;

/// Writes `frames` in order with as few vectored writes as possible, then flushes. (An
/// async block rather than an `async fn`, which would hold `frames` twice while writing.)
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` would hold its arguments twice"
)]
pub fn write_frames<C: Conn>(
    conn: &C,
    mut frames: Vec<Bytes>,
) -> impl Future<Output = io::Result<()>> + Send + '_ {
    async move {
        while !frames.is_empty() {
            let written = conn.write_vectored(&next_slices(&frames)).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            consume(&mut frames, written);
        }
        conn.flush().await
    }
}

/// The slices of the next write: the first [`MAX_IOV`] frames.
pub(crate) fn next_slices(frames: &[Bytes]) -> Vec<IoSlice<'_>> {
    frames
        .iter()
        .take(MAX_IOV)
        .map(|f| IoSlice::new(f))
        .collect()
}

/// Takes `written` bytes off the front of `frames`: frames written whole are removed, a
/// frame written in part is advanced past that part.
pub(crate) fn consume(frames: &mut Vec<Bytes>, written: usize) {
    let mut left = written;
    let mut whole = 0;
    for frame in frames.iter_mut() {
        if frame.len() <= left {
            left -= frame.len();
            whole += 1;
        } else {
            frame.advance(left);
            break;
        }
    }
    frames.drain(..whole);
}

/// Writes `frames` in order through `write` (a write that does not wait) until all are
/// written (`Ok(true)`) or it takes no more (`Ok(false)`: `frames` holds the rest, its first
/// frame advanced past the part written). A single frame goes out without a slice vector.
pub(crate) fn write_until_blocked(
    mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    frames: &mut Vec<Bytes>,
) -> io::Result<bool> {
    while !frames.is_empty() {
        let result = match frames.as_slice() {
            // One frame (the usual delivery): no slice vector to allocate.
            [one] => write(&[IoSlice::new(one)]),
            _ => write(&next_slices(frames)),
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => consume(frames, written),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Writes all of `bytes`.
pub async fn write_all<C: Conn>(conn: &C, bytes: &[u8]) -> io::Result<()> {
    write_frames(conn, vec![Bytes::copy_from_slice(bytes)]).await
}

/// Shuts the write side, then reads and discards what the client still sends until it
/// closes or `linger` passes: closing a socket with unread bytes resets it, and the client
/// could lose the close frame.
pub async fn linger_close<R: Runtime, C: Conn>(rt: &R, conn: &C, linger: Duration) {
    let _ = conn.shutdown_write().await;
    let drain = async {
        loop {
            if !matches!(conn.read_with(|_| {}).await, Ok(n) if n > 0) {
                return;
            }
        }
    };
    let _ = timeout(rt, linger, drain).await;
}

/// `future`'s output, or `Err(())` when `limit` passes first.
pub async fn timeout<R: Runtime, F: Future>(
    rt: &R,
    limit: Duration,
    future: F,
) -> Result<F::Output, ()> {
    let sleep = rt.sleep_until(Instant::now() + limit);
    tokio::pin!(future);
    tokio::pin!(sleep);
    tokio::select! {
        biased;
        out = &mut future => Ok(out),
        () = &mut sleep => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_drops_written_frames_and_advances_a_partial_one() {
        let mut frames = vec![
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"defg"),
            Bytes::from_static(b"hi"),
        ];
        consume(&mut frames, 5);
        assert_eq!(
            frames,
            vec![Bytes::from_static(b"fg"), Bytes::from_static(b"hi")]
        );
        consume(&mut frames, 0);
        assert_eq!(frames.len(), 2);
        consume(&mut frames, 4);
        assert!(frames.is_empty());
    }

    #[test]
    fn next_slices_takes_at_most_max_iov_frames() {
        let frames = vec![Bytes::from_static(b"x"); MAX_IOV + 3];
        assert_eq!(next_slices(&frames).len(), MAX_IOV);
        assert_eq!(next_slices(&frames[..2]).len(), 2);
    }
}
