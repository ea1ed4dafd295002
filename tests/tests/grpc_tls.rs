//! TLS on the gRPC listener: the producer API over TLS (the Rust client and the CLI with a
//! CA), and clusters whose peer links run over TLS, with a cluster secret or with mutual TLS
//! (where a caller without a client certificate of the cluster CA is refused).

use std::process::Command;
use std::time::Duration;

use hub_proto::pb;
use hub_proto::pb::peer_client::PeerClient;
use hubbub_tests::servers::RedisServer;
use hubbub_tests::tls::{self, Issued, TestCa};
use hubbub_tests::{eventually, free_port, http, hubbub_bin, post, runtime_for, Client, TestNode};
use serde_json::json;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A gRPC channel to `addr` over TLS trusting `ca`, presenting `identity` if given.
async fn tls_channel(
    addr: &str,
    ca: &TestCa,
    identity: Option<&Issued>,
) -> Result<Channel, tonic::transport::Error> {
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.cert_pem))
        .domain_name("localhost");
    if let Some(issued) = identity {
        let cert = std::fs::read(&issued.cert).expect("certificate");
        let key = std::fs::read(&issued.key).expect("key");
        config = config.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(config)?
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
}

#[tokio::test]
async fn the_producer_api_serves_tls_with_the_listener_pair_or_its_own() {
    let ca = tls::ca();
    let grpc = format!("127.0.0.1:{}", free_port());
    let node = TestNode::start_tls(tls::node_cert(), &["--grpc-listen", &grpc]);
    let (mut member, _) = Client::connect(&node.ws_url("/ws/news?id=m")).await;

    // The Rust client with the CA: over TLS, delivered.
    let mut producer =
        hubbub_client::Client::connect_tls(&grpc, None, Some(ca.cert_pem.as_bytes()))
            .await
            .expect("TLS connection to the producer API");
    assert_eq!(
        producer
            .publish("news", r#""over tls""#)
            .await
            .expect("publish"),
        1
    );
    assert_eq!(member.recv().await["data"], "over tls");

    // A plaintext client gets no answer from the TLS listener.
    let plain = match hubbub_client::Client::connect(&grpc, None).await {
        Ok(mut client) => client.publish("news", r#""plain""#).await.is_ok(),
        Err(_) => false,
    };
    assert!(!plain, "a plaintext call is not served");

    // The CLI with --tls-ca.
    let out = Command::new(hubbub_bin())
        .args(["publish", "--server", &grpc, "--tls-ca"])
        .arg(&ca.cert_path)
        .args(["news", r#""from the cli""#])
        .output()
        .expect("run hubbub publish");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON"),
        json!({"delivered": 1})
    );
    assert_eq!(member.recv().await["data"], "from the cli");

    // --grpc-tls-cert gives the gRPC listener a pair of its own: here from another CA, which
    // a client trusting only the main CA refuses.
    let other = TestCa::new("grpc-own");
    let own = other.issue("grpc-own-node");
    let (cert, key) = own.paths();
    let grpc2 = format!("127.0.0.1:{}", free_port());
    let _node2 = TestNode::start_tls(
        tls::node_cert(),
        &[
            "--grpc-listen",
            &grpc2,
            "--grpc-tls-cert",
            &cert,
            "--grpc-tls-key",
            &key,
        ],
    );
    let bound = eventually(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(&grpc2).await.is_ok()
    })
    .await;
    assert!(bound, "the second node's gRPC listener is up");
    assert!(
        tls_channel(&grpc2, ca, None).await.is_err(),
        "main CA refused"
    );
    let mut own_client =
        hubbub_client::Client::connect_tls(&grpc2, None, Some(other.cert_pem.as_bytes()))
            .await
            .expect("the gRPC listener's own certificate");
    assert_eq!(
        own_client.publish("none", r#""x""#).await.expect("publish"),
        0
    );
}

/// Starts clustered node `name` on a Redis registry with `flags` (no cluster secret unless
/// given); its gRPC address.
fn cluster_node(name: &str, redis: &str, flags: &[&str]) -> (TestNode, String) {
    let grpc = format!("127.0.0.1:{}", free_port());
    let index: usize = name.trim_start_matches('n').parse().unwrap_or(0);
    let mut all = vec![
        "--node-id",
        name,
        "--grpc-listen",
        grpc.as_str(),
        "--registry",
        redis,
        "--lease-ttl",
        "2s",
        "--shards",
        "2",
    ];
    all.extend_from_slice(flags);
    (TestNode::start_on(runtime_for(index), &all), grpc)
}

/// Waits until both nodes see each other, then checks that a room message published on one
/// reaches a member on the other (over the peer link).
async fn delivers_across(nodes: &[TestNode]) {
    for node in nodes {
        let addr = node.addr;
        let formed = eventually(Duration::from_secs(15), || async move {
            let stats = http(addr, "GET", "/stats", None, &[]).await.json();
            stats["status"] == "ok" && stats["peers"].as_array().map(Vec::len) == Some(1)
        })
        .await;
        assert!(formed, "node {addr} joined the cluster");
    }
    let (mut member, _) = Client::connect(&nodes[0].ws_url("/ws/tls-room?id=far")).await;
    let body = json!({"room": "tls-room", "data": "across"}).to_string();
    let reached = eventually(Duration::from_secs(10), || async {
        post(nodes[1].addr, "/api/publish", &body).await.json()["delivered"] == 1
    })
    .await;
    assert!(
        reached,
        "a publish on n1 reaches n0's member over the TLS link"
    );
    assert_eq!(member.recv().await["data"], "across");
}

#[tokio::test]
async fn a_cluster_with_tls_links_and_a_secret_delivers_across_nodes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ca = tls::ca();
    let (cert, key) = tls::node_cert().paths();
    let ca_path = ca.cert_path.display().to_string();
    let flags = [
        "--grpc-tls-cert",
        cert.as_str(),
        "--grpc-tls-key",
        key.as_str(),
        "--cluster-ca",
        ca_path.as_str(),
        "--cluster-secret",
        hubbub_tests::CLUSTER_SECRET,
    ];
    let (n0, grpc0) = cluster_node("n0", &url, &flags);
    let (n1, _) = cluster_node("n1", &url, &flags);
    delivers_across(&[n0, n1]).await;
    // Plaintext gRPC is not served on a TLS listener.
    let plain = Endpoint::from_shared(format!("http://{grpc0}"))
        .expect("endpoint")
        .connect()
        .await;
    let refused = match plain {
        Err(_) => true,
        Ok(channel) => PeerClient::new(channel)
            .online(pb::OnlineRequest { id: "far".into() })
            .await
            .is_err(),
    };
    assert!(refused, "plaintext peer call refused");
}

#[tokio::test]
async fn with_mutual_tls_a_peer_needs_a_client_certificate_of_the_cluster_ca() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ca = tls::ca();
    let (cert, key) = tls::node_cert().paths();
    let member = ca.issue("cluster-member");
    let (member_cert, member_key) = member.paths();
    let ca_path = ca.cert_path.display().to_string();
    // No cluster secret: the client certificates are the proof of membership.
    let flags = [
        "--grpc-tls-cert",
        cert.as_str(),
        "--grpc-tls-key",
        key.as_str(),
        "--cluster-ca",
        ca_path.as_str(),
        "--cluster-tls-cert",
        member_cert.as_str(),
        "--cluster-tls-key",
        member_key.as_str(),
    ];
    let (n0, grpc0) = cluster_node("n0", &url, &flags);
    let (n1, _) = cluster_node("n1", &url, &flags);
    let nodes = [n0, n1];
    delivers_across(&nodes).await;
    let id_of = |node: &str| {
        let node = node.to_owned();
        move |mut request: tonic::Request<()>| {
            request.metadata_mut().insert_bin(
                hub_mesh::peer_auth::NODE_KEY,
                tonic::metadata::BinaryMetadataValue::from_bytes(node.as_bytes()),
            );
            Ok(request)
        }
    };
    let online = |channel: Channel| async move {
        PeerClient::with_interceptor(channel, id_of("n1"))
            .online(pb::OnlineRequest { id: "far".into() })
            .await
    };

    // TLS without a client certificate, naming a real node: UNAUTHENTICATED.
    let anonymous = tls_channel(&grpc0, ca, None)
        .await
        .expect("server-verified TLS");
    let refused = online(anonymous).await.err().map(|s| s.code());
    assert_eq!(refused, Some(tonic::Code::Unauthenticated));

    // A client certificate of another CA: refused in the handshake or the call.
    let stranger_ca = TestCa::new("stranger");
    let stranger = stranger_ca.issue("stranger-node");
    let refused = match tls_channel(&grpc0, ca, Some(&stranger)).await {
        Err(_) => true,
        Ok(channel) => online(channel).await.is_err(),
    };
    assert!(refused, "a certificate of another CA is refused");

    // A client certificate of the cluster CA: answered.
    let certified = tls_channel(&grpc0, ca, Some(&member))
        .await
        .expect("mutual TLS");
    let answer = online(certified).await;
    assert!(answer.is_ok(), "a member's call is answered: {answer:?}");
}

#[test]
fn cluster_tls_settings_must_fit_together() {
    let ca = tls::ca();
    let (cert, key) = tls::node_cert().paths();
    let ca_path = ca.cert_path.display().to_string();
    let grpc = format!("127.0.0.1:{}", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let base = [
        "serve",
        "--listen",
        listen.as_str(),
        "--grpc-listen",
        grpc.as_str(),
        "--registry",
        "redis://127.0.0.1:1",
    ];
    let cases: [(&[&str], &str); 3] = [
        (
            &["--grpc-tls-cert", &cert, "--grpc-tls-key", &key],
            "hubbub: --cluster-ca:",
        ),
        (&["--cluster-ca", &ca_path], "hubbub: --grpc-tls-cert:"),
        (
            &["--cluster-tls-cert", &cert, "--cluster-tls-key", &key],
            "hubbub: --cluster-tls-cert:",
        ),
    ];
    for (flags, expected) in cases {
        let out = Command::new(hubbub_bin())
            .args(base)
            .args(flags)
            .output()
            .expect("run hubbub");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.starts_with(expected) && stderr.trim_end().lines().count() == 1,
            "{flags:?}: {stderr}"
        );
    }
}
