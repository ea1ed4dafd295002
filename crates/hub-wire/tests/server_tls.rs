//! The server connection under TLS: a real rustls client talks to a `TlsServerConn` over
//! an in-memory byte pipe (HTTP, the upgrade, messages both ways, the closing handshake).
//!
//! `tests/tls/` holds a self-signed P-256 certificate for `localhost` (valid 100 years) and
//! its PKCS#8 key, made with `openssl req -x509 -newkey ec ... -addext
//! basicConstraints=critical,CA:FALSE` and converted to DER.

mod support;

use std::io::{IoSlice, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hub_wire::http::Response;
use hub_wire::server::tls::TlsServerConn;
use hub_wire::server::{ConnConfig, ConnEvent};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use support::{close_payload, frame, CLOSE, TEXT};

const CERT: &[u8] = include_bytes!("tls/cert.der");
const KEY: &[u8] = include_bytes!("tls/key.der");

/// A TLS server connection and a rustls client joined by an in-memory pipe.
struct Pair {
    server: TlsServerConn,
    client: rustls::ClientConnection,
    now: Instant,
    /// Plaintext the client received.
    received: Vec<u8>,
    /// The client saw `close_notify`.
    client_saw_close: bool,
}

impl Pair {
    fn new() -> Self {
        let cert = CertificateDer::from(CERT.to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(KEY.to_vec()));
        // The provider named, so that another crate enabling a second one changes nothing.
        // ring's is deprecated for lacking post-quantum key exchange, which does not matter
        // to a test and saves building aws-lc.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("server config");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("root");
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").expect("name");
        let now = Instant::now();
        Pair {
            server: TlsServerConn::new(
                now,
                Arc::new(ConnConfig::default()),
                Arc::new(server_config),
            )
            .expect("server"),
            client: rustls::ClientConnection::new(Arc::new(client_config), name).expect("client"),
            now,
            received: Vec::new(),
            client_saw_close: false,
        }
    }

    /// Moves bytes both ways until neither side has any; returns the server's events and
    /// whether `written` reported a batch out.
    fn pump(&mut self) -> (Vec<ConnEvent>, bool) {
        let mut events = Vec::new();
        let mut sent = false;
        loop {
            let mut moved = false;
            let mut wire = Vec::new();
            while self.client.wants_write() {
                self.client.write_tls(&mut wire).expect("client writes");
            }
            if !wire.is_empty() {
                moved = true;
                self.server.recv(self.now, &wire);
            }
            events.extend(std::iter::from_fn(|| self.server.poll_event()));
            let mut slices = [IoSlice::new(&[]); 4];
            let count = self.server.poll_transmit(&mut slices);
            let out: Vec<u8> = slices[..count].iter().flat_map(|s| s.to_vec()).collect();
            if !out.is_empty() {
                moved = true;
                sent |= self.server.written(out.len());
                let mut rest = out.as_slice();
                while !rest.is_empty() {
                    self.client.read_tls(&mut rest).expect("client reads");
                    self.client.process_new_packets().expect("valid TLS");
                }
                let mut plain = Vec::new();
                match self.client.reader().read_to_end(&mut plain) {
                    Ok(_) => self.client_saw_close = true,
                    Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
                }
                self.received.extend(plain);
            }
            events.extend(std::iter::from_fn(|| self.server.poll_event()));
            if !moved {
                return (events, sent);
            }
        }
    }

    fn client_sends(&mut self, bytes: &[u8]) -> (Vec<ConnEvent>, bool) {
        self.client
            .writer()
            .write_all(bytes)
            .expect("client plaintext");
        self.pump()
    }

    fn take_received(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.received)
    }
}

#[test]
fn an_https_request_is_answered_through_tls() {
    let mut pair = Pair::new();
    let (events, _) = pair.client_sends(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let [ConnEvent::Request(head)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(head.path, "/healthz");
    assert_eq!(pair.server.tls().server_name(), Some("localhost"));
    pair.server
        .respond(pair.now, &Response::json(200, r#"{"status":"ok"}"#))
        .expect("answer");
    pair.pump();
    let answer = String::from_utf8(pair.take_received()).expect("text");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer}");
}

#[test]
fn a_websocket_runs_over_tls_and_closes_with_close_notify_before_the_shutdown() {
    let mut pair = Pair::new();
    let (events, _) = pair.client_sends(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(
        matches!(events.as_slice(), [ConnEvent::Upgrade(_)]),
        "{events:?}"
    );
    pair.server.accept(pair.now).expect("accept");
    let (_, sent) = pair.pump();
    assert!(!sent, "the 101 answer is no batch of `send`");
    assert!(pair.take_received().starts_with(b"HTTP/1.1 101"));

    let (events, _) = pair.client_sends(&frame(TEXT, b"over tls"));
    assert_eq!(
        events,
        vec![ConnEvent::Message {
            data: Bytes::from_static(b"over tls"),
            binary: false
        }]
    );
    pair.server
        .send(vec![Bytes::from_static(b"\x81\x02ok")])
        .expect("send");
    let (_, sent) = pair.pump();
    assert!(sent, "the batch is reported once encrypted and written");
    assert_eq!(pair.take_received(), b"\x81\x02ok");

    let (events, _) = pair.client_sends(&frame(CLOSE, &close_payload(1000, b"")));
    assert_eq!(events, vec![ConnEvent::PeerClose { code: 1000 }]);
    pair.server
        .send(vec![Bytes::from_static(b"\x88\x02\x03\xe8")])
        .expect("close frame");
    pair.server.close(pair.now).expect("close");
    let (events, _) = pair.pump();
    assert_eq!(events, vec![ConnEvent::ShutdownWrite]);
    assert_eq!(pair.take_received(), b"\x88\x02\x03\xe8");
    assert!(
        pair.client_saw_close,
        "close_notify came before the shutdown"
    );
}

#[test]
fn garbage_instead_of_a_handshake_ends_the_connection() {
    let mut pair = Pair::new();
    pair.server.recv(pair.now, b"GET / HTTP/1.1\r\n\r\n");
    let events: Vec<_> = std::iter::from_fn(|| pair.server.poll_event()).collect();
    assert_eq!(events, vec![ConnEvent::Closed]);
    assert!(pair.server.is_closed());
}
