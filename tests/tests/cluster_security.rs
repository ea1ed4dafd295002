//! The node-to-node service against raw gRPC callers: proof of membership bound to the
//! sender's id, and the start-up rules for cluster secrets.

use std::process::Command;
use std::time::Duration;

use hub_core::NodeId;
use hub_mesh::PeerAuth;
use hub_proto::pb;
use hub_proto::pb::peer_client::PeerClient;
use hubbub_tests::servers::RedisServer;
use hubbub_tests::{eventually, http, hubbub_bin, post, Client, Ended, TestNode, CLUSTER_SECRET};
use serde_json::json;
use tonic::transport::Channel;
use tonic::Code;

/// Three clustered nodes (Redis registry, gRPC bus) sharing [`CLUSTER_SECRET`].
struct Trio {
    nodes: Vec<TestNode>,
    grpc: Vec<String>,
    _redis: RedisServer,
}

impl Trio {
    async fn start() -> Trio {
        let redis = RedisServer::start();
        let url = redis.url();
        let mut nodes = Vec::new();
        let mut grpc = Vec::new();
        for i in 0..3 {
            let (node, addr) = TestNode::start_clustered(
                &format!("n{i}"),
                &["--registry", &url, "--lease-ttl", "2s", "--shards", "2"],
            );
            nodes.push(node);
            grpc.push(addr);
        }
        for node in &nodes {
            let addr = node.addr;
            let formed = eventually(Duration::from_secs(15), || async move {
                let stats = http(addr, "GET", "/stats", None, &[]).await.json();
                stats["status"] == "ok" && stats["peers"].as_array().map(Vec::len) == Some(2)
            })
            .await;
            assert!(formed, "node {addr} did not join the cluster");
        }
        Trio {
            nodes,
            grpc,
            _redis: redis,
        }
    }

    async fn channel(&self, node: usize) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc[node]))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the gRPC listener")
    }
}

/// A peer link message asking the receiver to close `client` with `code`.
fn disconnect(from: &str, client: &str, code: u32) -> pb::PeerEnvelope {
    pb::PeerEnvelope {
        from: from.into(),
        messages: vec![pb::PeerMessage {
            kind: Some(pb::peer_message::Kind::Request(pb::Request {
                id: None,
                op: Some(pb::request::Op::Disconnect(pb::Disconnect {
                    client: client.into(),
                    code,
                    user: None,
                })),
            })),
        }],
    }
}

/// Every Peer call `client` makes is refused with UNAUTHENTICATED.
async fn all_refused<S>(client: &mut PeerClient<S>, what: &str)
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <S::ResponseBody as tonic::codegen::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let code = |r: Result<_, tonic::Status>| r.err().map(|s| s.code());
    let unauth = Some(Code::Unauthenticated);
    let online = client
        .online(pb::OnlineRequest { id: "v".into() })
        .await
        .map(|_| ());
    assert_eq!(code(online), unauth, "Online {what}");
    let emit = client
        .emit(pb::PeerEmit {
            client: "v".into(),
            ..Default::default()
        })
        .await
        .map(|_| ());
    assert_eq!(code(emit), unauth, "Emit {what}");
    let broadcast = client
        .broadcast(pb::PeerBroadcast::default())
        .await
        .map(|_| ());
    assert_eq!(code(broadcast), unauth, "Broadcast {what}");
    let link = client
        .link(tokio_stream::iter(vec![disconnect("n0", "v", 4003)]))
        .await
        .map(|_| ());
    assert_eq!(code(link), unauth, "Link {what}");
}

/// `client` is still connected and receives what is emitted to it.
async fn still_served(trio: &Trio, client: &mut Client, id: &str) {
    let body = json!({"to": id, "data": "still here"}).to_string();
    let reply = post(trio.nodes[0].addr, "/api/emit", &body).await.json();
    assert_eq!(reply, json!({"delivered": 1}));
    assert_eq!(client.recv().await["data"], "still here");
}

#[tokio::test]
async fn peer_calls_need_proof_of_membership_bound_to_the_sender() {
    let trio = Trio::start().await;
    let (mut victim, _) = Client::connect(&trio.nodes[1].ws_url("/ws?id=v")).await;
    let seen = eventually(Duration::from_secs(10), || async {
        let v = http(trio.nodes[0].addr, "GET", "/api/online/v", None, &[])
            .await
            .json();
        v["online"] == true
    })
    .await;
    assert!(seen, "v registered");
    let channel = trio.channel(1).await;

    // No credentials at all.
    all_refused(&mut PeerClient::new(channel.clone()), "without credentials").await;

    // Credentials made with another secret.
    let stranger = PeerAuth::new(
        NodeId::from("n0"),
        Some(b"not-the-cluster-secret-0123456789abcdef"),
    );
    let mut wrong =
        PeerClient::with_interceptor(channel.clone(), stranger.interceptor(NodeId::from("n1")));
    all_refused(&mut wrong, "with a wrong secret").await;

    // n0's valid proof, presented under another real node's id (n2).
    let n0 = PeerAuth::new(NodeId::from("n0"), Some(CLUSTER_SECRET.as_bytes()));
    let relabelled = {
        let mut sign = n0.interceptor(NodeId::from("n1"));
        move |request: tonic::Request<()>| {
            let mut request = sign(request)?;
            request.metadata_mut().insert_bin(
                hub_mesh::peer_auth::NODE_KEY,
                tonic::metadata::BinaryMetadataValue::from_bytes(b"n2"),
            );
            Ok(request)
        }
    };
    let mut relabelled = PeerClient::with_interceptor(channel.clone(), relabelled);
    all_refused(&mut relabelled, "with another node's id").await;

    // n0's valid proof for another receiver (n2) does not open n1.
    let mut elsewhere =
        PeerClient::with_interceptor(channel.clone(), n0.interceptor(NodeId::from("n2")));
    all_refused(&mut elsewhere, "with a proof for another node").await;

    // Valid credentials of n0, but link messages claiming to come from n2: the stream is
    // refused and nothing it carried is carried out.
    let mut as_n0 =
        PeerClient::with_interceptor(channel.clone(), n0.interceptor(NodeId::from("n1")));
    let mut answers = as_n0
        .link(tokio_stream::iter(vec![disconnect("n2", "v", 4003)]))
        .await
        .expect("the call itself is authenticated")
        .into_inner();
    let refused = tokio::time::timeout(Duration::from_secs(5), answers.message())
        .await
        .expect("an answer");
    assert_eq!(
        refused.err().map(|s| s.code()),
        Some(Code::Unauthenticated),
        "a `from` that is not the caller"
    );
    still_served(&trio, &mut victim, "v").await;

    // The same credentials used honestly work.
    let online = as_n0
        .online(pb::OnlineRequest { id: "v".into() })
        .await
        .expect("authenticated call")
        .into_inner();
    assert!(online.online, "Online answered");
    let mut answers = as_n0
        .link(tokio_stream::iter(vec![disconnect("n0", "v", 4003)]))
        .await
        .expect("link")
        .into_inner();
    assert_eq!(victim.ended().await, Ended::Close(4003));
    assert!(
        matches!(answers.message().await, Ok(None)),
        "the answer stream ends with the request stream"
    );
}

#[tokio::test]
async fn a_secret_from_a_file_joins_nodes_given_it_by_flag() {
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = std::env::temp_dir().join(format!("hubbub-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("cluster-secret");
    std::fs::write(&file, format!("{CLUSTER_SECRET}\n")).expect("write");
    let flags = ["--registry", url.as_str(), "--lease-ttl", "2s"];
    let (a, _) = TestNode::start_clustered("n0", &flags);
    let grpc = format!("127.0.0.1:{}", hubbub_tests::free_port());
    let file_arg = file.display().to_string();
    let mut all = vec![
        "--node-id",
        "n1",
        "--grpc-listen",
        grpc.as_str(),
        "--cluster-secret-file",
        file_arg.as_str(),
    ];
    all.extend_from_slice(&flags);
    let b = TestNode::start(&all);
    let (mut on_a, _) = Client::connect(&a.ws_url("/ws?id=fa")).await;
    let delivered = eventually(Duration::from_secs(15), || async {
        let r = post(b.addr, "/api/emit", r#"{"to":"fa","data":"across"}"#)
            .await
            .json();
        r == json!({"delivered": 1})
    })
    .await;
    assert!(delivered, "the node with the file reaches the other");
    assert_eq!(on_a.recv().await["data"], "across");
    let _ = std::fs::remove_dir_all(&dir);
}

fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(hubbub_bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run hubbub");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn empty_short_and_missing_cluster_secrets_are_refused_at_start() {
    let grpc = format!("127.0.0.1:{}", hubbub_tests::free_port());
    let base = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--registry",
        "redis://127.0.0.1:1",
        "--grpc-listen",
        grpc.as_str(),
    ];
    let e = refused_start(&base, &[("HUBBUB_CLUSTER_SECRET", "")]);
    assert!(e.contains("--cluster-secret") && e.contains("empty"), "{e}");
    let mut short = base.to_vec();
    short.extend(["--cluster-secret", "only-20-bytes-long.."]);
    let e = refused_start(&short, &[]);
    assert!(e.contains("--cluster-secret") && e.contains("32"), "{e}");
    let mut missing = base.to_vec();
    missing.extend(["--cluster-secret-file", "/nonexistent/hubbub-secret"]);
    let e = refused_start(&missing, &[]);
    assert!(e.contains("--cluster-secret-file"), "{e}");

    // A clustered node whose gRPC listener is beyond loopback needs a secret.
    let exposed = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--registry",
        "redis://127.0.0.1:1",
        "--grpc-listen",
        "0.0.0.0:0",
    ];
    let e = refused_start(&exposed, &[]);
    assert!(e.contains("--cluster-secret"), "{e}");
    let e = refused_start(&exposed, &[("HUBBUB_CLUSTER_SECRET", "")]);
    assert!(e.contains("--cluster-secret"), "{e}");
}

/// A peer link message delivering `content` to `target`.
fn deliver(target: pb::target::Kind, content: pb::Content) -> pb::PeerMessage {
    pb::PeerMessage {
        kind: Some(pb::peer_message::Kind::Request(pb::Request {
            id: None,
            op: Some(pb::request::Op::Deliver(pb::Deliver {
                target: Some(pb::Target {
                    kind: Some(target),
                    except: None,
                }),
                content: Some(content),
            })),
        })),
    }
}

fn content(from: Option<&str>, data: &[u8]) -> pb::Content {
    pb::Content {
        room: None,
        from: from.map(str::to_owned),
        data: data.to_vec().into(),
        pusher_event: None,
        pusher_user_id: None,
    }
}

#[tokio::test]
async fn peers_send_content_and_the_receiver_builds_every_frame() {
    let trio = Trio::start().await;
    let (mut victim, _) = Client::connect(&trio.nodes[1].ws_url("/ws?id=v")).await;
    let n0 = PeerAuth::new(NodeId::from("n0"), Some(CLUSTER_SECRET.as_bytes()));
    let mut as_n0 =
        PeerClient::with_interceptor(trio.channel(1).await, n0.interceptor(NodeId::from("n1")));
    use pb::target::Kind;

    // What used to be written to sockets as it came: a close frame, text that is not JSON,
    // JSON that breaks out of `data`, a bad name. None of it is delivered.
    let close_frame = b"\x88\x02\x0f\xa0";
    let mut messages = vec![
        deliver(Kind::All(true), content(None, close_frame)),
        deliver(Kind::Client("v".into()), content(None, b"not json")),
        deliver(
            Kind::Client("v".into()),
            content(None, br#"1,"type":"welcome","id":"x""#),
        ),
        deliver(Kind::All(true), content(Some(""), b"1")),
    ];
    // Close codes a peer may not ask for: the client stays open.
    for code in [0, 1000, 1005, 1008, 4001, 4008] {
        messages.extend(disconnect("n0", "v", code).messages);
    }
    // Then good content, from which n1 builds the frame itself.
    messages.push(deliver(
        Kind::Client("v".into()),
        content(Some("mallory"), br#"{"ok":true}"#),
    ));
    let envelope = pb::PeerEnvelope {
        from: "n0".into(),
        messages,
    };
    let _answers = as_n0
        .link(tokio_stream::iter(vec![envelope]))
        .await
        .expect("authenticated link");
    assert_eq!(
        victim.recv().await,
        json!({"type":"message","from":"mallory","data":{"ok":true}}),
        "the first thing the client gets is the frame its node built"
    );

    // The unary calls refuse bad content with INVALID_ARGUMENT.
    let emit = as_n0
        .emit(pb::PeerEmit {
            client: "v".into(),
            content: Some(content(None, close_frame)),
        })
        .await;
    assert_eq!(emit.err().map(|s| s.code()), Some(Code::InvalidArgument));
    let broadcast = as_n0
        .broadcast(pb::PeerBroadcast {
            room: String::new(),
            content: None,
        })
        .await;
    assert_eq!(
        broadcast.err().map(|s| s.code()),
        Some(Code::InvalidArgument)
    );
    let delivered = as_n0
        .broadcast(pb::PeerBroadcast {
            room: String::new(),
            content: Some(content(None, b"[1,2]")),
        })
        .await
        .expect("good content")
        .into_inner();
    assert_eq!(delivered.delivered, 1);
    assert_eq!(victim.recv().await, json!({"type":"message","data":[1,2]}));
    still_served(&trio, &mut victim, "v").await;
}
