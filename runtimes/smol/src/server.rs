//! Binding a node on smol and running its accept loop.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use async_io::Async;
use hub_core::ClientProtocol;
use hub_node::{Handler, Hub, ServeError};
use hub_serve::Settings;

use crate::runtime::{IoConn, SmolConn, SmolRuntime};

/// A bound node: listening, with its shard and router tasks running on a smol executor.
#[derive(Debug)]
pub struct Server {
    rt: SmolRuntime,
    hub: Hub,
    listener: Async<TcpListener>,
}

impl Server {
    /// Validates `settings`, binds the listen address, and starts the node's tasks on `rt`.
    pub async fn bind(
        rt: SmolRuntime,
        settings: Settings,
        handler: Option<Arc<dyn Handler>>,
        protocol: ClientProtocol,
    ) -> Result<Server, ServeError> {
        settings.validate().map_err(ServeError::Settings)?;
        let listener = hub_node::listen(settings.listen)
            .and_then(Async::new)
            .map_err(|e| ServeError::Bind(settings.listen, e))?;
        let hub = hub_node::start(&rt, settings, handler, protocol).await?;
        Ok(Server { rt, hub, listener })
    }

    /// The address the node listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .get_ref()
            .local_addr()
            .unwrap_or(self.hub.settings().listen)
    }

    /// A handle to the node.
    pub fn hub(&self) -> Hub {
        self.hub.clone()
    }

    /// Accepts connections until `shutdown` resolves, then closes every client with 1001,
    /// waits up to the shutdown timeout for queues to drain, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Server { rt, hub, listener } = self;
        let tls = hub.tls_config().map(futures_rustls::TlsAcceptor::from);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.get_ref().set_nodelay(true);
                        match &tls {
                            None => rt.spawn_http(hub.clone(), SmolConn(stream), peer),
                            Some(acceptor) => rt.spawn_tls(hub.clone(), acceptor, SmolConn(stream), peer),
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        async_io::Timer::after(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        hub_node::shutdown(&rt, &hub).await;
        Ok(())
    }
}

impl SmolRuntime {
    fn spawn_http(&self, hub: Hub, conn: SmolConn, peer: SocketAddr) {
        use hub_node::Runtime;
        self.spawn(hub_node::serve_http(self.clone(), hub, conn, peer));
    }

    /// Serves a connection of a TLS listener: the handshake, then HTTP and WebSockets over it.
    fn spawn_tls(
        &self,
        hub: Hub,
        acceptor: &futures_rustls::TlsAcceptor,
        conn: SmolConn,
        peer: SocketAddr,
    ) {
        use hub_node::Runtime;
        let acceptor = acceptor.clone();
        let handshake = move |SmolConn(stream)| async move {
            match acceptor.accept(stream).into_fallible().await {
                Ok(tls) => Ok(IoConn::new(tls)),
                Err((e, stream)) => Err((e, SmolConn(stream))),
            }
        };
        self.spawn(hub_node::serve_tls(
            self.clone(),
            hub,
            conn,
            peer,
            handshake,
        ));
    }
}
