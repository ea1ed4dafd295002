//! TLS for the tests: a CA made at test time (rcgen), the certificates it issues (written to a
//! directory of the test process), and clients that trust it.
//!
//! `HUBBUB_TEST_TLS=1` runs the suite's single nodes over TLS: [`crate::TestNode::start`]
//! passes `--tls-cert`/`--tls-key`, `ws_url` gives `wss://` URLs, and [`crate::http`] and
//! [`crate::connect_stream`] speak TLS to such a node.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::rustls;

/// Whether the suite runs its single nodes over TLS (`HUBBUB_TEST_TLS=1`).
pub fn tls_mode() -> bool {
    std::env::var("HUBBUB_TEST_TLS").is_ok_and(|v| v == "1")
}

/// A certificate authority of the tests, and where its files go.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA certificate's file.
    pub cert_path: PathBuf,
    dir: PathBuf,
}

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
}

impl Issued {
    /// The paths as strings, for flags.
    pub fn paths(&self) -> (String, String) {
        (
            self.cert.display().to_string(),
            self.key.display().to_string(),
        )
    }
}

/// A directory of this test process for certificate files.
fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hubbub-test-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("certificate directory");
    dir
}

impl TestCa {
    /// A new CA named `name` (its certificate written as `NAME-ca.pem`).
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("hubbub test CA {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        let dir = dir();
        let cert_path = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&cert_path, cert.pem()).expect("write CA");
        TestCa {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
            cert_path,
            dir,
        }
    }

    /// Issues a certificate for `localhost` and 127.0.0.1, usable by servers and clients,
    /// written as `NAME.crt` and `NAME.key`.
    pub fn issue(&self, name: &str) -> Issued {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".into()])
            .expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        let issued = Issued {
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
        };
        std::fs::write(&issued.cert, cert.pem()).expect("write certificate");
        std::fs::write(&issued.key, key.serialize_pem()).expect("write key");
        issued
    }

    /// A client configuration that trusts this CA only.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

use rustls::pki_types::pem::PemObject;

/// The crypto provider of the test clients (ring, as the node's).
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The CA of this test process (made on first use).
pub fn ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| TestCa::new("main"))
}

/// The certificate single nodes serve in TLS mode (issued on first use).
pub fn node_cert() -> &'static Issued {
    static CERT: OnceLock<Issued> = OnceLock::new();
    CERT.get_or_init(|| ca().issue("node"))
}

/// Addresses of nodes that serve TLS (their HTTP clients speak TLS).
static TLS_NODES: Mutex<Option<HashSet<SocketAddr>>> = Mutex::new(None);

/// Records that the node at `addr` serves TLS.
pub fn mark_tls(addr: SocketAddr) {
    if let Ok(mut nodes) = TLS_NODES.lock() {
        nodes.get_or_insert_with(HashSet::new).insert(addr);
    }
}

/// Whether the node at `addr` serves TLS.
pub fn is_tls(addr: SocketAddr) -> bool {
    TLS_NODES
        .lock()
        .ok()
        .is_some_and(|nodes| nodes.as_ref().is_some_and(|n| n.contains(&addr)))
}

/// A TLS connection to `addr` verified against the test CA (server name `localhost`).
pub async fn connect(
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(ca().client_config())
        .connect(name, tcp)
        .await
}
