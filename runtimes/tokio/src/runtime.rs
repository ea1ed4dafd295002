//! The tokio implementations of hub-node's `Runtime` and `Conn`.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use hub_node::{Conn, Readiness, Runtime};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Size of the read buffer of a stream upgraded elsewhere.
const OWN_READ_BUFFER: usize = 4 * 1024;

/// The tokio runtime the node runs on (the current one).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    type Readiness = TokioReadiness;

    fn name(&self) -> &'static str {
        "tokio"
    }

    // `with_interest` is deprecated because a `T` could change the descriptor it returns
    // while registered; an `OwnedFd` cannot, and `TokioReadiness` never hands out the
    // `AsyncFd` mutably. Its replacement is `unsafe`, which this workspace forbids.
    #[allow(deprecated)]
    fn readiness(&self, poller: OwnedFd) -> io::Result<TokioReadiness> {
        AsyncFd::with_interest(poller, tokio::io::Interest::READABLE).map(TokioReadiness)
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(task);
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + Send + 'static {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at))
    }

    fn with_tokio<F: Future + Send + 'static>(
        &self,
        future: F,
    ) -> impl Future<Output = F::Output> + Send + 'static
    where
        F::Output: Send + 'static,
    {
        future
    }
}

/// A shard's poller in tokio's reactor.
#[derive(Debug)]
pub struct TokioReadiness(AsyncFd<OwnedFd>);

impl Readiness for TokioReadiness {
    fn poll_find(
        &self,
        cx: &mut Context<'_>,
        find: &mut dyn FnMut() -> bool,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            if find() {
                // Still ready: the caller comes back for the events it did not take.
                return Poll::Ready(Ok(()));
            }
            // Clears only the readiness this guard saw: an event since then wakes us again.
            guard.clear_ready();
        }
    }
}

/// A TCP connection, read through the worker thread's shared buffer: an idle connection
/// holds no read buffer.
#[derive(Debug)]
pub struct TcpConn(pub TcpStream);

impl Conn for TcpConn {
    // Waits with `poll_read_ready`, which keeps the waker in the socket's registration: the
    // future is a few pointers, where `readable().await` would put a waiter node (and its
    // async wrappers, ~150 bytes) in every idle connection's task.
    fn read_with<F: FnOnce(&[u8]) + Send>(
        &self,
        sink: F,
    ) -> impl Future<Output = io::Result<usize>> + Send {
        hub_node::read_ready(
            &self.0,
            |s: &TcpStream, cx| s.poll_read_ready(cx),
            |s: &TcpStream, buf| s.try_read(buf),
            sink,
        )
    }

    async fn write_vectored(&self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        std::future::poll_fn(|cx| loop {
            ready!(self.0.poll_write_ready(cx))?;
            // tokio's `try_write`: a `WouldBlock` clears the readiness, so the next poll waits.
            let result = match slices {
                [one] => self.0.try_write(one),
                _ => self.0.try_write_vectored(slices),
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
        })
        .await
    }

    async fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown_write(&self) -> io::Result<()> {
        socket2::SockRef::from(&self.0).shutdown(Shutdown::Write)
    }

    // Straight to the socket (`send`, `sendmsg`), not through tokio's `try_write`, which
    // first reads the registration's readiness (a cache miss per socket during a fan-out).
    // A `WouldBlock` here leaves that readiness set: the task's next write (`try_write`)
    // then finds the socket full itself, clears it and waits.
    fn write_now(&self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let socket = socket2::SockRef::from(&self.0);
        match slices {
            [one] => socket.send(one),
            _ => socket.send_vectored(slices),
        }
    }

    fn into_tcp(self) -> io::Result<Result<std::net::TcpStream, Self>> {
        self.0.into_std().map(Ok)
    }
}

/// Any tokio stream (for example one axum or hyper upgraded), read through a small buffer
/// of its own. Its task does all its writing (no [`Conn::write_now`]).
#[derive(Debug)]
pub struct IoConn<S>(Mutex<S>);

impl<S> IoConn<S> {
    /// Wraps `stream`.
    pub fn new(stream: S) -> Self {
        Self(Mutex::new(stream))
    }

    /// Polls `op` on the stream (the lock is only ever taken by the connection's task).
    fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        let mut stream = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        op(Pin::new(&mut *stream), cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn for IoConn<S> {
    async fn read_with<F: FnOnce(&[u8]) + Send>(&self, sink: F) -> io::Result<usize> {
        let mut sink = Some(sink);
        std::future::poll_fn(|cx| {
            let mut buf = [0u8; OWN_READ_BUFFER];
            let mut read = ReadBuf::new(&mut buf);
            ready!(self.poll(cx, |s, cx| s.poll_read(cx, &mut read)))?;
            if let Some(sink) = sink.take() {
                sink(read.filled());
            }
            Poll::Ready(Ok(read.filled().len()))
        })
        .await
    }

    async fn write_vectored(&self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll(cx, |s, cx| s.poll_write_vectored(cx, slices))).await
    }

    async fn flush(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll(cx, AsyncWrite::poll_flush)).await
    }

    async fn shutdown_write(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll(cx, AsyncWrite::poll_shutdown)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_core::ClientProtocol;
    use tokio::net::TcpListener;

    /// A connection's task until its upgrade (after it, a TCP socket belongs to its shard
    /// task and this task ends), and for good when the stream runs as a task of its own:
    /// tokio allocates the future with 104 bytes of header and trailer, rounded up to 128
    /// bytes. Up to 152 bytes of future (it is 128), that is 256 bytes; 8 more and it is
    /// 384. See BENCHMARKS.md, "Idle memory: findings".
    #[tokio::test]
    async fn a_connection_task_fits_in_256_bytes() {
        let hub = crate::Server::start_embedded(
            hub_serve::Settings::default(),
            None,
            ClientProtocol::Json,
        )
        .await
        .expect("node");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (stream, peer) = listener.accept().await.expect("accept");
        let task = hub_node::serve_http(TokioRuntime, hub, TcpConn(stream), peer);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 152, "the connection future is {size} bytes");
    }
}
