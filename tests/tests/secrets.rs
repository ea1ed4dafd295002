//! Secrets at start: empty and short JWT secrets and API keys stop the node with a one-line
//! error naming the flag; secrets read from files work.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use hub_edge::auth::sign_hs256;
use hubbub_tests::{http, hubbub_bin, Client, TestNode};
use serde_json::json;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs `hubbub serve ARGS` with `env` set; the node must refuse to start.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(hubbub_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hubbub");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr
}

fn temp_file(name: &str, content: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("hubbub-test-{}-{name}", std::process::id()));
    std::fs::write(&path, content).expect("write secret file");
    path
}

#[test]
fn empty_secrets_are_refused_from_flags_and_environment() {
    for (args, env, flag) in [
        (
            vec!["--jwt-secret", ""],
            vec![],
            "--jwt-secret: must not be empty",
        ),
        (
            vec![],
            vec![("HUBBUB_JWT_SECRET", "")],
            "--jwt-secret: must not be empty",
        ),
        (
            vec!["--api-key", ""],
            vec![],
            "--api-key: must not be empty",
        ),
        (
            vec![],
            vec![("HUBBUB_API_KEY", "")],
            "--api-key: must not be empty",
        ),
    ] {
        let stderr = refused(&args, &env);
        assert!(stderr.contains(flag), "{args:?} {env:?}: {stderr}");
    }
}

#[test]
fn short_secrets_are_refused_without_echoing_them() {
    let short = "shorter-than-32-bytes";
    for (args, flag) in [
        (vec!["--jwt-secret", short], "--jwt-secret: too short"),
        (vec!["--api-key", short], "--api-key: too short"),
    ] {
        let stderr = refused(&args, &[]);
        assert!(stderr.contains(flag), "{stderr}");
        assert!(
            !stderr.contains(short),
            "the secret is not echoed: {stderr}"
        );
    }
    let path = temp_file("short", "tiny\n");
    let file = path.to_string_lossy().into_owned();
    let stderr = refused(&["--jwt-secret-file", &file], &[]);
    assert!(
        stderr.contains("--jwt-secret: too short (4 bytes"),
        "{stderr}"
    );
    let stderr = refused(&["--api-key-file", "/no/such/hubbub/key"], &[]);
    assert!(stderr.contains("--api-key-file: cannot read"), "{stderr}");
    let stderr = refused(
        &["--api-key", &"k".repeat(32), "--api-key-file", &file],
        &[],
    );
    assert!(stderr.contains("not both"), "{stderr}");
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn secrets_from_files_work() {
    let secret = "a-jwt-secret-read-from-a-file-0123456789";
    let key = "an-api-key-read-from-a-file-0123456789";
    let secret_path = temp_file("jwt", &format!("{secret}\n"));
    let key_path = temp_file("key", &format!("{key}\n"));
    let node = TestNode::start(&[
        "--jwt-secret-file",
        &secret_path.to_string_lossy(),
        "--api-key-file",
        &key_path.to_string_lossy(),
    ]);
    let token = sign_hs256(
        secret.as_bytes(),
        &json!({"sub":"u1","exp": now() + 60}).to_string(),
    );
    let (_c, welcome) = Client::connect(&node.ws_url(&format!("/ws?token={token}"))).await;
    assert_eq!(welcome["type"], "welcome");
    let with_newline = sign_hs256(
        format!("{secret}\n").as_bytes(),
        &json!({"sub":"u1","exp": now() + 60}).to_string(),
    );
    assert_eq!(
        Client::connect_raw(&node.ws_url(&format!("/ws?token={with_newline}")), &[])
            .await
            .err()
            .as_deref(),
        Some("HTTP 401"),
        "the file's line break is not part of the secret"
    );
    let bearer = format!("Bearer {key}");
    let ok = http(
        node.addr,
        "POST",
        "/api/broadcast",
        Some(r#"{"data":1}"#),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200);
    let _ = std::fs::remove_file(secret_path);
    let _ = std::fs::remove_file(key_path);
}
