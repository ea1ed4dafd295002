//! TLS on the client listener (`--tls-cert`, `--tls-key`): the certificate store, the task
//! that reloads it when its files change, and the handshake in front of a connection's HTTP
//! task.
//!
//! A TLS connection takes its places among the HTTP connections and in its address's limit
//! before the handshake (over either cap it is closed at once: an HTTP refusal would need the
//! handshake the cap is there to save), and the handshake must finish within the handshake
//! timeout. After it the connection is served like any other, as a stream that is not a bare
//! TCP socket: its WebSocket runs as a task of its own (see `conn.rs`), since the shard's
//! poller writes plaintext only.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use hub_serve::{CertStore, Settings};

use crate::admission::{HttpSlot, IpSlot};
use crate::hub::Hub;
use crate::runtime::{linger_close, timeout, Conn, Runtime};
use crate::sockets::LINGER;

/// How often the certificate and key files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// The client listener's TLS: the reloading store and the server configuration over it.
pub(crate) struct ListenerTls {
    pub(crate) store: Arc<CertStore>,
    pub(crate) config: Arc<rustls::ServerConfig>,
}

impl ListenerTls {
    /// The listener's TLS from `settings` (`None`: plaintext); the error names the flag.
    pub(crate) fn open(settings: &Settings) -> Result<Option<Self>, String> {
        let Some(files) = &settings.tls else {
            return Ok(None);
        };
        let store = CertStore::open(files.clone())?;
        let config = store.server_config(&[b"http/1.1"], None)?;
        Ok(Some(Self { store, config }))
    }
}

/// Checks `store`'s files every [`RELOAD_CHECK`] and reloads them when they changed, until
/// the node is gone: a good new pair is served to new connections from then on, a bad one is
/// logged and the old pair kept.
pub(crate) async fn watch<R: Runtime>(rt: R, store: Weak<CertStore>) {
    loop {
        rt.sleep_until(Instant::now() + RELOAD_CHECK).await;
        let Some(store) = store.upgrade() else {
            return;
        };
        if let Some(result) = store.reload_if_changed() {
            log_reload(&store, &result);
        }
    }
}

/// Logs how a reload of `store` went.
pub(crate) fn log_reload(store: &CertStore, result: &Result<(), String>) {
    let cert = store.files().cert.display();
    match result {
        Ok(()) => tracing::info!(%cert, "TLS certificate reloaded"),
        Err(e) => {
            tracing::warn!(%cert, error = %e, "TLS certificate not reloaded: the previous one is still served")
        }
    }
}

/// Serves one accepted connection of a TLS listener: takes its places (see the module docs),
/// runs `handshake` within the handshake timeout, then serves what the client asks over the
/// encrypted stream. `handshake` gives the socket back with the error when it fails, so it is
/// closed gracefully (its unread bytes discarded) rather than reset.
pub fn serve_tls<R, C, T, H, F>(
    rt: R,
    hub: Hub,
    stream: C,
    peer: SocketAddr,
    handshake: H,
) -> impl Future<Output = ()> + Send
where
    R: Runtime,
    C: Conn,
    T: Conn,
    H: FnOnce(C) -> F + Send + 'static,
    F: Future<Output = Result<T, (io::Error, C)>> + Send,
{
    let requests = Box::pin(async move {
        let Some(http) = HttpSlot::acquire(&hub) else {
            tracing::warn!(%peer, "TLS connection closed: too many HTTP connections");
            return None;
        };
        let Some(ip) = IpSlot::acquire(&hub, peer.ip()) else {
            tracing::warn!(ip = %peer.ip(), "TLS connection closed: too many connections from this address");
            return None;
        };
        let limit = hub.inner.settings.handshake_timeout;
        let tls = match timeout(&rt, limit, handshake(stream)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err((e, stream))) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                linger_close(&rt, &stream, LINGER).await;
                return None;
            }
            Err(()) => {
                tracing::debug!(%peer, "TLS handshake not done in time");
                return None;
            }
        };
        let connection = crate::http::serve_requests(rt.clone(), hub, tls, peer, ip).await;
        drop(http);
        connection.map(|c| (c, rt))
    });
    async move {
        let Some((connection, rt)) = requests.await else {
            return;
        };
        connection.run(rt).await;
    }
}

impl Hub {
    /// The client listener's TLS server configuration (`None`: plaintext), for the accept
    /// loop to run handshakes with (see [`serve_tls`]).
    pub fn tls_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.inner.tls.as_ref().map(|tls| tls.config.clone())
    }

    /// Loads the client listener's certificate and key again now (SIGHUP), whether or not
    /// the files changed: `None` without TLS, else how it went (also logged).
    pub fn reload_tls(&self) -> Option<Result<(), String>> {
        let store = &self.inner.tls.as_ref()?.store;
        let result = store.reload();
        log_reload(store, &result);
        Some(result)
    }

    /// Loads the gRPC listener's certificate and key again now (SIGHUP), when it serves TLS
    /// (how it went is logged).
    pub fn reload_grpc_tls(&self) {
        if let Some(cluster) = self.inner.cluster.get() {
            let _ = cluster.reload_tls();
        }
    }
}
