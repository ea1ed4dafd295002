//! What keeps a browser page and oversized names away from the producer API, and the warning
//! about an open API beyond loopback.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hubbub_tests::{free_port, http, hubbub_bin, TestNode};
use serde_json::json;

#[tokio::test]
async fn a_browser_page_cannot_post_to_the_api() {
    let node = TestNode::start(&["--allowed-origins", "https://app.example.com"]);
    let body = Some(r#"{"data":"from a page"}"#);
    // A no-cors fetch or a form post: a "simple" content type, with the page's Origin.
    for (headers, status) in [
        (
            vec![
                ("Content-Type", "text/plain;charset=UTF-8"),
                ("Origin", "https://evil.example.com"),
            ],
            403,
        ),
        (
            vec![
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", "https://app.example.com"),
            ],
            415,
        ),
        (
            vec![
                ("Content-Type", "text/plain"),
                ("Origin", "https://app.example.com"),
            ],
            415,
        ),
        (vec![("Origin", "https://app.example.com")], 415),
        (
            vec![
                ("Content-Type", "application/json"),
                ("Origin", "https://evil.example.com"),
            ],
            403,
        ),
        (
            vec![("Content-Type", "application/json"), ("Origin", "null")],
            403,
        ),
    ] {
        let r = http(node.addr, "POST", "/api/broadcast", body, &headers).await;
        assert_eq!(r.status, status, "{headers:?}: {}", r.body);
        assert!(r.json()["error"].is_string(), "a JSON error: {}", r.body);
    }
    // Programs send no Origin: their content type is not checked (curl -d sends a form type).
    for headers in [
        vec![("Content-Type", "application/x-www-form-urlencoded")],
        vec![],
        vec![("Content-Type", "application/json")],
        vec![("Content-Type", "Application/JSON; charset=utf-8")],
        vec![
            ("Content-Type", "application/json"),
            ("Origin", "https://app.example.com"),
        ],
    ] {
        let r = http(node.addr, "POST", "/api/broadcast", body, &headers).await;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.body);
    }
    // Reads need no Content-Type.
    let r = http(node.addr, "GET", "/api/online/nobody", None, &[]).await;
    assert_eq!(r.json(), json!({"online":false}));
}

#[tokio::test]
async fn api_names_are_limited_to_256_bytes() {
    let node = TestNode::start(&[]);
    let json = [("Content-Type", "application/json")];
    let long = "n".repeat(257);
    for (path, body) in [
        ("/api/publish", json!({"room": long, "data": 1})),
        ("/api/emit", json!({"to": long, "data": 1})),
        ("/api/emit_user", json!({"user": long, "data": 1})),
        ("/api/disconnect", json!({"to": long})),
    ] {
        let r = http(node.addr, "POST", path, Some(&body.to_string()), &json).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(
            r.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("256")),
            "{}",
            r.body
        );
    }
    let r = http(node.addr, "GET", &format!("/api/online/{long}"), None, &[]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let ok = json!({"room": "n".repeat(256), "data": 1}).to_string();
    let r = http(node.addr, "POST", "/api/publish", Some(&ok), &json).await;
    assert_eq!(r.json(), json!({"delivered":0}));
}

/// Starts `hubbub serve ARGS` with stderr piped; the lines it logs within a few seconds of
/// starting to listen (the process is then killed).
fn startup_log(args: &[&str], port: u16) -> Vec<String> {
    let mut child = Command::new(hubbub_bin())
        .args(["serve"])
        .args(args)
        .env("HUBBUB_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    // The "ready" line comes after every start-up warning.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        let ready = line.contains("hubbub node ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l.contains(&port.to_string())),
        "the node started: {lines:?}"
    );
    lines
}

#[test]
fn an_open_api_beyond_loopback_is_warned_about() {
    let port = free_port();
    let any = format!("0.0.0.0:{port}");
    let lines = startup_log(&["--listen", &any], port);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains("without --api-key") && l.contains(&any)),
        "{lines:?}"
    );
    let port = free_port();
    let key = "k".repeat(32);
    let any = format!("0.0.0.0:{port}");
    let lines = startup_log(&["--listen", &any, "--api-key", &key], port);
    assert!(
        !lines.iter().any(|l| l.contains("without --api-key")),
        "{lines:?}"
    );
    let port = free_port();
    let lines = startup_log(&["--listen", &format!("127.0.0.1:{port}")], port);
    assert!(
        !lines.iter().any(|l| l.contains("without --api-key")),
        "{lines:?}"
    );
}
