//! TLS material of a node: certificate and key files, loaded at start and reloaded while the
//! node runs, and the rustls configurations that serve them (the client listener's `wss://`
//! and `https://`, the gRPC listener) or verify peers against the cluster CA.
//!
//! Invariants:
//! - A [`CertStore`] always holds a pair that loaded and matched: a new pair replaces it only
//!   when both files read, parse and belong together; otherwise the old pair stays and the
//!   reason is returned (the node logs it).
//! - Every error is one line that names the flag of the file at fault.
//! - The crypto provider is ring, chosen here explicitly (no process-wide default is set).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

/// A certificate chain file and its private key file (PEM), and the flags that named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The flag that named the certificate file (for errors), e.g. `tls-cert`.
    pub cert_flag: &'static str,
    /// The flag that named the key file, e.g. `tls-key`.
    pub key_flag: &'static str,
}

impl TlsFiles {
    /// The pair `cert`, `key` as named by `--CERT_FLAG` and `--KEY_FLAG`.
    pub fn new(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        cert_flag: &'static str,
        key_flag: &'static str,
    ) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            cert_flag,
            key_flag,
        }
    }

    /// Both flags or neither: `--CERT_FLAG` and `--KEY_FLAG` given as options, checked.
    pub fn from_flags(
        cert: Option<&Path>,
        key: Option<&Path>,
        cert_flag: &'static str,
        key_flag: &'static str,
    ) -> Result<Option<Self>, String> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self::new(cert, key, cert_flag, key_flag))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(format!("--{key_flag}: --{cert_flag} needs --{key_flag}")),
            (None, Some(_)) => Err(format!("--{cert_flag}: --{key_flag} needs --{cert_flag}")),
        }
    }
}

/// The crypto provider every TLS configuration of the node uses (ring).
// rustls 0.23.48 marks ring's provider deprecated for lacking post-quantum key exchange;
// aws-lc-rs (which has it) needs a C toolchain and cmake to build. X25519 and the P-curves
// remain the key exchanges offered.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the PEM certificates of `path` (named by `--flag`); at least one.
pub fn load_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path, flag)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--{flag}: {} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--{flag}: {} holds no CERTIFICATE block",
            path.display()
        ));
    }
    Ok(certs)
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("--{flag}: cannot read {}: {e}", path.display()))
}

/// Loads the pair `files` and checks that the key belongs to the certificate.
pub fn load_pair(files: &TlsFiles) -> Result<Arc<CertifiedKey>, String> {
    let chain = load_certs(&files.cert, files.cert_flag)?;
    let (key_flag, key_path) = (files.key_flag, &files.key);
    let pem = read(key_path, key_flag)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        format!(
            "--{key_flag}: {} holds no usable PRIVATE KEY block: {e}",
            key_path.display()
        )
    })?;
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("--{key_flag}: {}: {e}", key_path.display()))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(format!(
                "--{key_flag}: the key in {} does not belong to the certificate in {} (--{})",
                key_path.display(),
                files.cert.display(),
                files.cert_flag
            ))
        }
        // A key whose public half cannot be derived is not checked; anything else matched.
        _ => Ok(Arc::new(certified)),
    }
}

/// Reads the CA certificates of `path` (named by `--flag`) into a root store.
pub fn load_roots(path: &Path, flag: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, flag)? {
        roots
            .add(cert)
            .map_err(|e| format!("--{flag}: {}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// When the two files were last changed, and their sizes: a reload is tried when it differs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp([(Option<SystemTime>, u64); 2]);

impl Stamp {
    fn of(files: &TlsFiles) -> Self {
        let one = |path: &Path| match std::fs::metadata(path) {
            Ok(meta) => (meta.modified().ok(), meta.len()),
            Err(_) => (None, 0),
        };
        Self([one(&files.cert), one(&files.key)])
    }
}

/// A certificate and key served by a listener, replaced while it runs when the files change
/// (see the module's invariants).
#[derive(Debug)]
pub struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamp at the last load or attempt.
    seen: Mutex<Stamp>,
}

impl CertStore {
    /// Loads `files`; the error is one line naming the flag at fault.
    pub fn open(files: TlsFiles) -> Result<Arc<Self>, String> {
        let seen = Stamp::of(&files);
        let current = load_pair(&files)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(current),
            seen: Mutex::new(seen),
        }))
    }

    /// The files served.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Loads the files again: `Ok` when the new pair is served from now on, the reason when
    /// the old one stays.
    pub fn reload(&self) -> Result<(), String> {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Stamp::of(&self.files);
        let pair = load_pair(&self.files)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = pair;
        Ok(())
    }

    /// Reloads when either file changed (time or size) since the last load or attempt:
    /// `None` when unchanged, else what [`CertStore::reload`] answered.
    pub fn reload_if_changed(&self) -> Option<Result<(), String>> {
        let now = Stamp::of(&self.files);
        if *self.seen.lock().unwrap_or_else(PoisonError::into_inner) == now {
            return None;
        }
        Some(self.reload())
    }

    /// The pair served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A server configuration that serves this store's current pair to every handshake,
    /// offering `alpn` (e.g. `http/1.1`, `h2`); with `client_roots`, clients may present a
    /// certificate, verified against those roots (a client without one is still served: the
    /// service decides what an unauthenticated client may do).
    pub fn server_config(
        self: &Arc<Self>,
        alpn: &[&[u8]],
        client_roots: Option<Arc<RootCertStore>>,
    ) -> Result<Arc<ServerConfig>, String> {
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let builder = match client_roots {
            Some(roots) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| format!("--cluster-ca: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        let files = TlsFiles::new(
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
            "tls-cert",
            "tls-key",
        );
        std::fs::write(&files.cert, cert.pem()).expect("write");
        std::fs::write(&files.key, key.serialize_pem()).expect("write");
        files
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hub-serve-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn a_pair_loads_and_bad_files_name_their_flag() {
        let dir = temp_dir("load");
        let a = pair(&dir, "a");
        let b = pair(&dir, "b");
        load_pair(&a).expect("a matching pair");
        let crossed = TlsFiles::new(&a.cert, &b.key, "tls-cert", "tls-key");
        let e = load_pair(&crossed).expect_err("mismatch");
        assert!(
            e.starts_with("--tls-key:") && e.contains("does not belong"),
            "{e}"
        );
        let missing = TlsFiles::new(dir.join("nope"), &a.key, "tls-cert", "tls-key");
        let e = load_pair(&missing).expect_err("missing");
        assert!(e.starts_with("--tls-cert: cannot read"), "{e}");
        let swapped = TlsFiles::new(&a.key, &a.cert, "tls-cert", "tls-key");
        let e = load_pair(&swapped).expect_err("key as cert");
        assert!(e.starts_with("--tls-cert:") && !e.contains('\n'), "{e}");
        let half = TlsFiles::from_flags(Some(&a.cert), None, "tls-cert", "tls-key");
        assert_eq!(half, Err("--tls-key: --tls-cert needs --tls-key".into()));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_store_keeps_its_pair_until_a_good_one_replaces_it() {
        let dir = temp_dir("reload");
        let a = pair(&dir, "a");
        let store = CertStore::open(a.clone()).expect("open");
        let first = store.current().cert[0].clone();
        assert!(store.reload_if_changed().is_none(), "unchanged files");
        // A certificate without its key: refused, the old pair stays.
        let b = pair(&dir, "b");
        std::fs::copy(&b.cert, &a.cert).expect("copy");
        let e = store.reload().expect_err("mismatch");
        assert!(e.contains("does not belong"), "{e}");
        assert_eq!(store.current().cert[0], first);
        // Its key arrives: the new pair is served.
        std::fs::copy(&b.key, &a.key).expect("copy");
        store.reload().expect("new pair");
        assert_ne!(store.current().cert[0], first);
        let _ = std::fs::remove_dir_all(dir);
    }
}
