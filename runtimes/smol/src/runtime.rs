//! The smol implementations of hub-node's `Runtime` and `Conn`.

use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Instant;

use async_io::{Async, Timer};
use hub_node::{Conn, Readiness, Runtime};
use smol::io::{AsyncRead, AsyncWrite};
use smol::Executor;

/// Size of the read buffer of a stream that is not a bare socket (a TLS session's).
const OWN_READ_BUFFER: usize = 4 * 1024;

/// A smol executor run by a fixed number of threads.
#[derive(Clone)]
pub struct SmolRuntime {
    executor: Arc<Executor<'static>>,
}

impl std::fmt::Debug for SmolRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmolRuntime")
    }
}

impl SmolRuntime {
    /// An executor run by `threads` threads (at least one), which live as long as the process.
    /// The process's Redis connections (cluster registry and bus) then use the redis crate's
    /// smol support too; only tonic and etcd-client go through async-compat.
    pub fn new(threads: usize) -> io::Result<SmolRuntime> {
        hub_cluster::use_smol();
        let executor = Arc::new(Executor::new());
        for i in 0..threads.max(1) {
            let ex = executor.clone();
            std::thread::Builder::new()
                .name(format!("hubbub-smol-{i}"))
                .spawn(move || smol::block_on(ex.run(std::future::pending::<()>())))?;
        }
        Ok(SmolRuntime { executor })
    }

    /// Runs `future` on the calling thread until it completes (the executor's threads keep
    /// running the node's tasks).
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        smol::block_on(future)
    }
}

impl Runtime for SmolRuntime {
    type Readiness = SmolReadiness;

    fn name(&self) -> &'static str {
        "smol"
    }

    fn readiness(&self, poller: OwnedFd) -> io::Result<SmolReadiness> {
        Async::new(poller).map(SmolReadiness)
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.executor.spawn(task).detach();
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + Send + 'static {
        let timer = Timer::at(at);
        async move {
            timer.await;
        }
    }

    fn with_tokio<F: Future + Send + 'static>(
        &self,
        future: F,
    ) -> impl Future<Output = F::Output> + Send + 'static
    where
        F::Output: Send + 'static,
    {
        async_compat::Compat::new(future)
    }
}

/// A shard's poller in async-io's reactor.
#[derive(Debug)]
pub struct SmolReadiness(Async<OwnedFd>);

impl Readiness for SmolReadiness {
    fn poll_find(
        &self,
        cx: &mut Context<'_>,
        find: &mut dyn FnMut() -> bool,
    ) -> Poll<io::Result<()>> {
        // async-io's interest is level-triggered and re-armed by each `Pending`: a poller
        // that still holds events after `find` is reported again at once.
        loop {
            ready!(self.0.poll_readable(cx))?;
            if find() {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// A TCP connection on async-io, read through the thread's shared buffer: an idle connection
/// holds no read buffer.
#[derive(Debug)]
pub struct SmolConn(pub Async<TcpStream>);

impl Conn for SmolConn {
    // Waits with `poll_readable`, which keeps the waker in the socket's source: the future
    // is a few pointers, where `readable().await` would put its own future (~100 bytes) in
    // every idle connection's task.
    fn read_with<F: FnOnce(&[u8]) + Send>(
        &self,
        sink: F,
    ) -> impl Future<Output = io::Result<usize>> + Send {
        hub_node::read_ready(
            &self.0,
            |s: &Async<TcpStream>, cx| s.poll_readable(cx),
            |s: &Async<TcpStream>, buf| s.get_ref().read(buf),
            sink,
        )
    }

    // `poll_writable` rather than `write_with`, whose wait future (~170 bytes) would be the
    // largest part of every connection's task.
    async fn write_vectored(&self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        std::future::poll_fn(|cx| loop {
            match self.write_now(slices) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
            ready!(self.0.poll_writable(cx))?;
        })
        .await
    }

    async fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown_write(&self) -> io::Result<()> {
        self.0.get_ref().shutdown(Shutdown::Write)
    }

    fn write_now(&self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut socket = self.0.get_ref();
        match slices {
            [one] => socket.write(one),
            _ => socket.write_vectored(slices),
        }
    }

    fn into_tcp(self) -> io::Result<Result<TcpStream, Self>> {
        self.0.into_inner().map(Ok)
    }
}

/// Any futures-io stream (a TLS session over a socket, for one), read through a small buffer
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
            let n = ready!(self.poll(cx, |s, cx| s.poll_read(cx, &mut buf)))?;
            if let Some(sink) = sink.take() {
                sink(&buf[..n]);
            }
            Poll::Ready(Ok(n))
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
        std::future::poll_fn(|cx| self.poll(cx, AsyncWrite::poll_close)).await
    }
}
