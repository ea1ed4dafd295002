//! TLS on the client listener (`--tls-cert`, `--tls-key`): certificates replaced while the
//! node runs, bad files at start, plaintext and silent clients on the TLS port. (The client
//! protocol and producer API suites run over TLS too: `HUBBUB_TEST_TLS=1`.)

use std::process::Command;
use std::time::Duration;

use hubbub_tests::tls::{self, Issued};
use hubbub_tests::{eventually, http, hubbub_bin, Client, TestNode, WAIT};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// The certificate in `issued`'s file (DER).
fn der_of(issued: &Issued) -> Vec<u8> {
    CertificateDer::from_pem_file(&issued.cert)
        .expect("certificate file")
        .to_vec()
}

/// The certificate the node at `addr` serves to a new connection (`None`: no handshake).
async fn served(addr: std::net::SocketAddr) -> Option<Vec<u8>> {
    let stream = tls::connect(addr).await.ok()?;
    let certs = stream.get_ref().1.peer_certificates()?;
    certs.first().map(|c| c.to_vec())
}

/// Copies `from`'s certificate (and key, with `key`) over `to`'s files.
fn replace(to: &Issued, from: &Issued, key: bool) {
    std::fs::copy(&from.cert, &to.cert).expect("copy certificate");
    if key {
        std::fs::copy(&from.key, &to.key).expect("copy key");
    }
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_new_connections_without_a_restart() {
    let ca = tls::ca();
    let files = ca.issue("reload-served");
    let first = der_of(&files);
    let node = TestNode::start_tls(&files, &[]);
    let (mut stays, _) = Client::connect(&node.ws_url("/ws?id=stays")).await;
    assert_eq!(served(node.addr).await, Some(first.clone()));

    // A new certificate without its key: the pair does not match, the old one stays served
    // (over several checks of the files).
    let next = ca.issue("reload-next");
    replace(&files, &next, false);
    for _ in 0..25 {
        assert_eq!(
            served(node.addr).await,
            Some(first.clone()),
            "old pair kept"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Its key arrives: new connections get the new certificate.
    replace(&files, &next, true);
    let second = der_of(&next);
    let renewed = eventually(Duration::from_secs(10), || async {
        served(node.addr).await == Some(second.clone())
    })
    .await;
    assert!(renewed, "the new certificate is served");
    // The connection made before is still served.
    stays.send(json!({"type":"ping"})).await;
    assert_eq!(stays.recv().await["type"], "pong");

    // SIGHUP reloads too, and does not stop the node.
    let third = ca.issue("reload-third");
    replace(&files, &third, true);
    node.signal("HUP");
    let renewed = eventually(Duration::from_secs(10), || async {
        served(node.addr).await == Some(der_of(&third))
    })
    .await;
    assert!(renewed, "the third certificate is served");
    let health = http(node.addr, "GET", "/healthz", None, &[]).await;
    assert_eq!(health.status, 200);
}

/// `hubbub serve` with `args` (and `env`) on a free port: its exit code and stderr.
fn refused_start(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let listen = format!("127.0.0.1:{}", hubbub_tests::free_port());
    let mut all = vec!["serve", "--listen", listen.as_str()];
    all.extend_from_slice(args);
    let out = Command::new(hubbub_bin())
        .args(&all)
        .envs(env.iter().copied())
        .output()
        .expect("run hubbub");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Flags, environment, and the start of the expected error.
type StartCase<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn bad_certificate_files_stop_the_node_at_start_naming_the_flag() {
    let ca = tls::ca();
    let good = ca.issue("start-good");
    let other = ca.issue("start-other");
    let (cert, key) = good.paths();
    let (_, other_key) = other.paths();
    let dir = good.cert.parent().expect("dir").to_path_buf();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let garbage = garbage.display().to_string();
    let missing = dir.join("missing.pem").display().to_string();
    let cases: Vec<StartCase<'_>> = vec![
        (
            vec!["--tls-cert", &missing, "--tls-key", &key],
            vec![],
            "hubbub: --tls-cert: cannot read",
        ),
        (
            vec!["--tls-cert", &garbage, "--tls-key", &key],
            vec![],
            "hubbub: --tls-cert:",
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &garbage],
            vec![],
            "hubbub: --tls-key:",
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &other_key],
            vec![],
            "hubbub: --tls-key: the key in",
        ),
        (
            vec!["--tls-cert", &cert],
            vec![],
            "hubbub: --tls-key: --tls-cert needs --tls-key",
        ),
        (
            vec![],
            vec![("HUBBUB_TLS_KEY", key.as_str())],
            "hubbub: --tls-cert: --tls-key needs --tls-cert",
        ),
        (
            vec!["--grpc-tls-cert", &cert, "--grpc-tls-key", &other_key],
            vec![],
            "hubbub: --grpc-tls-key: the key in",
        ),
        (
            vec!["--cluster-ca", &garbage],
            vec![],
            "hubbub: --cluster-ca:",
        ),
    ];
    for (args, env, expected) in cases {
        let (code, stderr) = refused_start(&args, &env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.starts_with(expected) && stderr.trim_end().lines().count() == 1,
            "{args:?} {env:?}: {stderr:?}"
        );
    }
}

#[tokio::test]
async fn a_plaintext_client_on_the_tls_port_is_closed_at_once() {
    let node = TestNode::start_tls(tls::node_cert(), &[]);
    let mut plain = tokio::net::TcpStream::connect(node.addr)
        .await
        .expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, plain.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the node closed the connection (no hang)");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "no plaintext answer: {answer:?}"
    );
    // A plaintext WebSocket client is refused, not left waiting.
    let url = format!("ws://{}/ws", node.addr);
    let refused = Client::connect_raw(&url, &[]).await.err();
    assert!(
        refused.as_deref().is_some_and(|e| e != "timeout"),
        "{refused:?}"
    );
    // The node still serves TLS clients.
    let (_c, welcome) = Client::connect(&node.ws_url("/ws?id=after")).await;
    assert_eq!(welcome["id"], "after");
}

#[tokio::test]
async fn handshakes_count_toward_the_cap_and_a_silent_one_is_closed_by_the_deadline() {
    let node = TestNode::start_tls(
        tls::node_cert(),
        &["--handshake-timeout", "3s", "--max-http-connections", "2"],
    );
    // Two clients connect and never start their handshake: they hold both places. (One
    // may be refused if a probe took its place first; it is connected again.)
    let connect = || tokio::net::TcpStream::connect(node.addr);
    let mut silent = vec![
        connect().await.expect("connect"),
        connect().await.expect("connect"),
    ];
    let closed = |s: &tokio::net::TcpStream| {
        let mut byte = [0u8; 1];
        match s.try_read(&mut byte) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        }
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut capped = false;
    while tokio::time::Instant::now() < deadline {
        for s in &mut silent {
            if closed(s) {
                *s = connect().await.expect("connect");
            }
        }
        if served(node.addr).await.is_none() {
            capped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        capped,
        "a third connection is refused while two handshakes wait"
    );
    // The deadline closes the silent ones; then handshakes succeed again.
    for s in &mut silent {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(WAIT, s.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "a silent handshake is closed by the deadline"
        );
    }
    let served_again = eventually(WAIT, || async { served(node.addr).await.is_some() }).await;
    assert!(
        served_again,
        "handshakes are served once the silent ones are gone"
    );
}
