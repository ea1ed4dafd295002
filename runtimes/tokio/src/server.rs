//! Binding a node on tokio and running its accept loop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hub_core::shard::OpenParams;
use hub_core::ClientProtocol;
use hub_node::{Handler, Hub, HubError, ServeError};
use hub_serve::Settings;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::runtime::{IoConn, TcpConn, TokioRuntime};

/// A bound node: listening, with its shard and router tasks running.
#[derive(Debug)]
pub struct Server {
    hub: Hub,
    listener: TcpListener,
}

impl Server {
    /// Validates `settings`, binds the listen address and starts the node's tasks on the
    /// current tokio runtime. `handler` receives application events.
    pub async fn bind(
        settings: Settings,
        handler: Option<Arc<dyn Handler>>,
    ) -> Result<Server, ServeError> {
        Self::bind_with(settings, handler, ClientProtocol::Json).await
    }

    /// Like [`Server::bind`], choosing how client messages are read (JSON protocol or raw).
    pub async fn bind_with(
        settings: Settings,
        handler: Option<Arc<dyn Handler>>,
        protocol: ClientProtocol,
    ) -> Result<Server, ServeError> {
        settings.validate().map_err(ServeError::Settings)?;
        let listener = hub_node::listen(settings.listen)
            .and_then(TcpListener::from_std)
            .map_err(|e| ServeError::Bind(settings.listen, e))?;
        let hub = hub_node::start(&TokioRuntime, settings, handler, protocol).await?;
        Ok(Server { hub, listener })
    }

    /// Starts a node's tasks without a listener, for services that accept connections
    /// themselves (axum, hyper) and hand upgraded streams to [`ServeUpgraded::serve_upgraded`].
    pub async fn start_embedded(
        settings: Settings,
        handler: Option<Arc<dyn Handler>>,
        protocol: ClientProtocol,
    ) -> Result<Hub, ServeError> {
        hub_node::start(&TokioRuntime, settings, handler, protocol).await
    }

    /// The address the node listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.hub.settings().listen)
    }

    /// Where the gRPC service listens, when it runs.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.hub.grpc_addr()
    }

    /// A handle to the node.
    pub fn hub(&self) -> Hub {
        self.hub.clone()
    }

    /// Accepts connections until `shutdown` resolves, then closes every client with 1001,
    /// waits up to the shutdown timeout for queues to drain, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Server { hub, listener } = self;
        let tls = hub.tls_config().map(tokio_rustls::TlsAcceptor::from);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        match &tls {
                            None => {
                                tokio::spawn(hub_node::serve_http(TokioRuntime, hub.clone(), TcpConn(stream), peer));
                            }
                            Some(acceptor) => spawn_tls(&hub, acceptor, stream, peer),
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        hub_node::shutdown(&TokioRuntime, &hub).await;
        Ok(())
    }
}

/// Serves a connection of a TLS listener: the handshake, then HTTP and WebSockets over it.
fn spawn_tls(
    hub: &Hub,
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let acceptor = acceptor.clone();
    let handshake = move |TcpConn(stream)| async move {
        match acceptor.accept(stream).into_fallible().await {
            Ok(tls) => Ok(IoConn::new(tls)),
            Err((e, stream)) => Err((e, TcpConn(stream))),
        }
    };
    tokio::spawn(hub_node::serve_tls(
        TokioRuntime,
        hub.clone(),
        TcpConn(stream),
        peer,
        handshake,
    ));
}

/// Hands the hub a stream that axum or hyper already upgraded.
pub trait ServeUpgraded {
    /// Serves a WebSocket over `stream` (the `101` response has been sent). Returns when
    /// the connection ends.
    fn serve_upgraded<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        &self,
        stream: S,
        params: OpenParams,
    ) -> impl Future<Output = Result<(), HubError>> + Send;
}

impl ServeUpgraded for Hub {
    async fn serve_upgraded<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        &self,
        stream: S,
        params: OpenParams,
    ) -> Result<(), HubError> {
        self.serve_conn(&TokioRuntime, IoConn::new(stream), params)
            .await
    }
}
