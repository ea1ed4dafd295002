//! The command line and graceful shutdown of the real binary.

use std::process::Command;

use hubbub_tests::{hubbub_bin, Client, Ended, TestNode};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(hubbub_bin())
        .args(args)
        .output()
        .expect("run hubbub");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_give_one_line_errors_naming_them() {
    for (args, flag) in [
        (vec!["serve", "--shards", "0"], "--shards"),
        (vec!["serve", "--ping-interval", "soon"], "--ping-interval"),
        (
            vec!["serve", "--max-message-size", "big"],
            "--max-message-size",
        ),
        (vec!["serve", "--listen", "nowhere"], "--listen"),
        (vec!["serve", "--registry", "mysql://x"], "--registry"),
        (vec!["serve", "--bogus"], "--bogus"),
        (vec!["serve", "--runtime", "go"], "--runtime"),
        (
            vec!["serve", "--pusher-webhook", "https://hooks.example/x"],
            "--pusher-webhook",
        ),
    ] {
        let (code, _, stderr) = run(&args);
        assert_ne!(code, 0, "{args:?} must fail");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "one line for {args:?}: {stderr}"
        );
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[test]
fn env_variables_work_like_flags() {
    let out = Command::new(hubbub_bin())
        .args(["serve"])
        .env("HUBBUB_SHARDS", "0")
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shards"));
}

#[test]
fn help_explains_every_flag_and_default() {
    let (code, stdout, _) = run(&["serve", "--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--listen",
        "--runtime",
        "--shards",
        "--node-id",
        "--grpc-listen",
        "--advertise",
        "--registry",
        "--bus",
        "--lease-ttl",
        "--api-key",
        "--jwt-secret",
        "--jwt-secret-file",
        "--api-key-file",
        "--jwt-public-key-file",
        "--jwks-url",
        "--jwks-refresh",
        "--allowed-origins",
        "--allow-client-broadcast",
        "--ping-interval",
        "--pong-timeout",
        "--max-message-size",
        "--send-queue-bytes",
        "--max-connections-per-ip",
        "--max-http-connections",
        "--shutdown-timeout",
        "--cluster-secret",
        "--cluster-secret-file",
        "--pusher-webhook",
    ] {
        assert!(stdout.contains(flag), "--help lists {flag}");
    }
    assert!(
        stdout.contains("HUBBUB_REGISTRY") && stdout.contains("[default: 25s]"),
        "{stdout}"
    );
}

#[test]
fn a_cluster_needs_a_grpc_address() {
    let (code, _, stderr) = run(&[
        "serve",
        "--registry",
        "redis://127.0.0.1:1",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_ne!(code, 0);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--grpc-listen"), "{stderr}");
}

#[tokio::test]
async fn sigterm_closes_every_client_with_1001_and_exits_0() {
    let mut node = TestNode::start(&["--shards", "2"]);
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(
            Client::connect(&node.ws_url(&format!("/ws?id=s{i}")))
                .await
                .0,
        );
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = node.terminate();
        (node, status)
    });
    for c in &mut clients {
        assert_eq!(c.ended().await, Ended::Close(1001));
    }
    let (_node, status) = status.await.expect("join");
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}
