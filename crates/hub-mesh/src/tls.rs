//! TLS of the gRPC listener and of the links to peers.
//!
//! The listener (producer API and node-to-node) serves the pair of `--grpc-tls-cert` /
//! `--grpc-tls-key`, or else the client listener's, from a [`CertStore`] reloaded when its
//! files change (and on SIGHUP). Handshakes run one task each, within the handshake timeout,
//! at most [`MAX_HANDSHAKES`] at once; tonic serves the connections that complete them. With
//! `--cluster-ca`, clients may present a certificate, which must chain to that CA (mutual
//! TLS: the Peer service counts it as proof of membership, see [`crate::peer_auth`]);
//! producers present none.
//!
//! Links to peers connect over TLS when `--cluster-ca` is set: the peer's certificate must
//! chain to it, and with `--cluster-tls-cert` this node presents its own.

use std::sync::{Arc, Weak};
use std::time::Duration;

use hub_serve::{CertStore, TlsFiles};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::MeshError;

/// TLS handshakes of the gRPC listener in progress at once; more connections wait in the
/// kernel's accept queue.
pub const MAX_HANDSHAKES: usize = 1024;

/// How often the certificate files are checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// The gRPC listener's TLS: the reloading store and the acceptor over it.
pub(crate) struct ListenerTls {
    pub(crate) store: Arc<CertStore>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl ListenerTls {
    /// Loads `files`; with `client_ca`, client certificates are asked for and verified.
    pub(crate) fn open(
        files: &TlsFiles,
        client_ca: Option<&std::path::Path>,
    ) -> Result<Self, MeshError> {
        let store = CertStore::open(files.clone()).map_err(MeshError::Tls)?;
        let roots = match client_ca {
            Some(path) => Some(Arc::new(
                hub_serve::tls::load_roots(path, "cluster-ca").map_err(MeshError::Tls)?,
            )),
            None => None,
        };
        let config = store
            .server_config(&[b"h2"], roots)
            .map_err(MeshError::Tls)?;
        Ok(Self {
            store,
            acceptor: tokio_rustls::TlsAcceptor::from(config),
        })
    }

    /// Accepts connections on `listener` and yields those whose handshake finished within
    /// `handshake_timeout`, until the stream is dropped.
    pub(crate) fn incoming(
        &self,
        listener: TcpListener,
        handshake_timeout: Duration,
    ) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
        let (tx, rx) = mpsc::channel(64);
        let acceptor = self.acceptor.clone();
        let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let stream = tokio::select! {
                    () = tx.closed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            tracing::warn!(error = %e, "gRPC accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(handshake_timeout, handshake).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(Ok(tls)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "gRPC TLS handshake failed"),
                        Err(_) => tracing::debug!("gRPC TLS handshake not done in time"),
                    }
                    drop(permit);
                });
            }
        });
        ReceiverStream::new(rx)
    }
}

/// Checks `store`'s files every few seconds and reloads them when they changed, until the
/// node is gone.
pub(crate) async fn watch(store: Weak<CertStore>) {
    loop {
        tokio::time::sleep(RELOAD_CHECK).await;
        let Some(store) = store.upgrade() else {
            return;
        };
        if let Some(result) = store.reload_if_changed() {
            log_reload(&store, &result);
        }
    }
}

/// Logs how a reload of the gRPC listener's `store` went.
pub(crate) fn log_reload(store: &CertStore, result: &Result<(), String>) {
    let cert = store.files().cert.display();
    match result {
        Ok(()) => tracing::info!(%cert, "gRPC TLS certificate reloaded"),
        Err(e) => {
            tracing::warn!(%cert, error = %e, "gRPC TLS certificate not reloaded: the previous one is still served")
        }
    }
}

/// The TLS settings of links to peers: their certificates must chain to `ca`; with
/// `identity`, this node presents that client certificate.
pub(crate) fn link_config(
    ca: &std::path::Path,
    identity: Option<&TlsFiles>,
) -> Result<ClientTlsConfig, MeshError> {
    let read = |path: &std::path::Path, flag: &str| {
        std::fs::read(path)
            .map_err(|e| MeshError::Tls(format!("--{flag}: cannot read {}: {e}", path.display())))
    };
    let mut config =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca, "cluster-ca")?));
    if let Some(files) = identity {
        let cert = read(&files.cert, files.cert_flag)?;
        let key = read(&files.key, files.key_flag)?;
        config = config.identity(Identity::from_pem(cert, key));
    }
    Ok(config)
}
