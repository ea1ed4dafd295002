use super::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

/// A request the test server received: headers (lower-cased names) and body.
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP server on loopback answering each request with the next status of `statuses`
/// (200 when they run out), reporting what it received.
fn server(statuses: Vec<u16>) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).expect("request line");
            loop {
                line.clear();
                reader.read_line(&mut line).expect("header");
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((n, v)) = l.split_once(':') {
                    headers.push((n.trim().to_lowercase(), v.trim().to_owned()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).expect("body");
            let status = statuses.next().unwrap_or(200);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = tx.send(Received {
                headers,
                body: String::from_utf8(body).expect("utf8"),
            });
        }
    });
    (url, rx)
}

#[test]
fn events_arrive_signed_and_failures_are_retried() {
    let (url, rx) = server(vec![500]);
    let endpoint = Endpoint {
        url,
        key: "the-key".into(),
        secret: "the-secret-0123456789".into(),
    };
    let hooks = Webhooks::start(vec![endpoint]).expect("thread");
    hooks.send(
        0,
        WebhookEvent::ChannelOccupied {
            channel: "a".into(),
        },
    );
    hooks.send(
        0,
        WebhookEvent::ChannelVacated {
            channel: "a".into(),
        },
    );
    // Index 1 names no endpoint: ignored.
    hooks.send(
        1,
        WebhookEvent::ChannelVacated {
            channel: "b".into(),
        },
    );
    let wait = Duration::from_secs(20);
    let first = rx.recv_timeout(wait).expect("first attempt");
    let second = rx.recv_timeout(wait).expect("the retry");
    assert_eq!(
        first.body,
        second.body.replace(&time(&second), &time(&first))
    );
    let v: serde_json::Value = serde_json::from_str(&second.body).expect("json");
    assert_eq!(
        v["events"],
        serde_json::json!([
            {"name":"channel_occupied","channel":"a"},
            {"name":"channel_vacated","channel":"a"}
        ])
    );
    assert!(v["time_ms"].as_u64().is_some_and(|t| t > 1_600_000_000_000));
    assert_eq!(second.header("x-pusher-key"), Some("the-key"));
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_eq!(
        second.header("x-pusher-signature"),
        Some(signature(b"the-secret-0123456789", second.body.as_bytes()).as_str())
    );
    // The counters say so once the thread has read the answer.
    let deadline = Instant::now() + wait;
    while hooks.stats.delivered.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(hooks.stats.delivered.load(Ordering::Relaxed), 1);
    assert_eq!(hooks.stats.failed.load(Ordering::Relaxed), 1);
}

/// The `time_ms` value of a received body.
fn time(r: &Received) -> String {
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    v["time_ms"].to_string()
}

#[test]
fn webhook_urls_are_checked() {
    for ok in [
        "http://127.0.0.1:9000/hooks",
        "http://hooks.internal/pusher?x=1",
        "http://h",
    ] {
        assert_eq!(check_url(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "https://h/x",
        "ftp://h",
        "http://",
        "http:///path",
        "h:80/x",
        "http://a b/",
    ] {
        assert!(check_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn each_app_signs_its_own_events() {
    let (url, rx) = server(Vec::new());
    let apps = hub_pusher::Apps::new(vec![
        hub_pusher::App::new("a", "key-a", "secret-a-0123456789").expect("app"),
        hub_pusher::App::new("b", "key-b", "secret-b-0123456789").expect("app"),
    ])
    .expect("apps");
    assert!(PusherWebhooks::start(&apps, &[])
        .expect("no thread")
        .is_none());
    let hooks = PusherWebhooks::start(&apps, &[url])
        .expect("thread")
        .expect("started");
    let occupied = |c: &str| WebhookEvent::ChannelOccupied { channel: c.into() };
    hooks.send("b", &occupied("for-b"));
    hooks.send("nope", &occupied("for-nobody"));
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("b's webhook");
    assert_eq!(got.header("x-pusher-key"), Some("key-b"));
    assert!(got.body.contains("for-b"));
    assert_eq!(
        got.header("x-pusher-signature"),
        Some(signature(b"secret-b-0123456789", got.body.as_bytes()).as_str())
    );
    hooks.send("a", &occupied("for-a"));
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a's webhook");
    assert_eq!(got.header("x-pusher-key"), Some("key-a"));
    assert!(got.body.contains("for-a") && !got.body.contains("for-nobody"));
}
