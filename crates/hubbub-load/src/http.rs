//! A minimal pipelined HTTP/1.1 client for the producer API: requests go out back to back on
//! one keep-alive connection (open loop), and a reader task counts the answers in order.
//!
//! [`post_windowed`] does the same with a bounded window of unanswered requests and keeps
//! every answer (status, body, round trip); [`get`] is a one-shot `GET`.
//!
//! Invariant: answers are matched to requests by order, as HTTP/1.1 pipelining requires;
//! only `Content-Length` bodies are understood (what Hubbub's API sends).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};

/// Answers seen so far.
#[derive(Debug, Default)]
pub struct Answers {
    /// 2xx answers.
    pub ok: AtomicU64,
    /// Other answers.
    pub failed: AtomicU64,
}

/// A pipelined connection to an HTTP server.
pub struct Pipeline {
    writer: BufWriter<OwnedWriteHalf>,
    host: String,
    auth: Option<String>,
    answers: Arc<Answers>,
    sent: u64,
}

/// Splits `http://host:port` into the `Host` header value and the socket address.
pub async fn resolve_http(url: &str) -> Result<(String, SocketAddr), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
    let host = rest.split('/').next().unwrap_or(rest).to_string();
    let addr = tokio::net::lookup_host(host.as_str())
        .await
        .map_err(|e| format!("{url:?}: cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{url:?}: no address"))?;
    Ok((host, addr))
}

/// Connects to `url` (`http://host:port`) with Nagle off; returns the `Host` header value
/// and the stream.
pub async fn connect_http(url: &str) -> Result<(String, TcpStream), String> {
    let (host, addr) = resolve_http(url).await?;
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("{url}: connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok((host, stream))
}

impl Pipeline {
    /// Connects to `url` (`http://host:port`), with an optional bearer key.
    pub async fn connect(url: &str, api_key: Option<&str>) -> Result<Self, String> {
        let (host, stream) = connect_http(url).await?;
        let (mut reader, writer) = stream.into_split();
        let answers = Arc::new(Answers::default());
        let counts = answers.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(64 * 1024);
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                while let Some((status, used)) = parse_response(&buf) {
                    buf.drain(..used);
                    let counter = if (200..300).contains(&status) {
                        &counts.ok
                    } else {
                        &counts.failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
        Ok(Self {
            writer: BufWriter::with_capacity(64 * 1024, writer),
            host,
            auth: api_key.map(|k| format!("Authorization: Bearer {k}\r\n")),
            answers,
            sent: 0,
        })
    }

    /// Queues a POST of a JSON `body` to `path` (sent at the next flush or when the buffer fills).
    pub async fn post(&mut self, path: &str, body: &str) -> Result<(), String> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            self.auth.as_deref().unwrap_or(""),
            body.len()
        );
        self.writer
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("api: {e}"))?;
        self.writer
            .write_all(body.as_bytes())
            .await
            .map_err(|e| format!("api: {e}"))?;
        self.sent += 1;
        Ok(())
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<(), String> {
        self.writer.flush().await.map_err(|e| format!("api: {e}"))
    }

    /// Waits up to `limit` for every request to be answered; returns (ok, failed, unanswered).
    pub async fn settle(&self, limit: Duration) -> (u64, u64, u64) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let ok = self.answers.ok.load(Ordering::Relaxed);
            let failed = self.answers.failed.load(Ordering::Relaxed);
            if ok + failed >= self.sent || tokio::time::Instant::now() >= deadline {
                return (ok, failed, self.sent.saturating_sub(ok + failed));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Parses one complete response at the start of `buf`: its status and total length.
pub fn parse_response(buf: &[u8]) -> Option<(u16, usize)> {
    split_response(buf).map(|(status, _, used)| (status, used))
}

/// Parses one complete response at the start of `buf`: its status, where its body lies
/// and its total length.
pub fn split_response(buf: &[u8]) -> Option<(u16, std::ops::Range<usize>, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let end = head_end.checked_add(length)?;
    (buf.len() >= end).then_some((status, head_end..end, end))
}

/// An HTTP answer: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body (lossily decoded as UTF-8).
    pub body: String,
}

/// One request of a windowed exchange: its number, its answer (or why there is none) and
/// the time from handing it to the socket to its answer.
pub type Exchanged = (usize, Result<Response, String>, Duration);

/// Sends `GET path` to `url` (`http://host:port`) on a fresh connection and reads the answer.
pub async fn get(url: &str, path: &str, limit: Duration) -> Result<Response, String> {
    let exchange = async {
        let (host, mut stream) = connect_http(url).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            if let Some((status, body, _)) = split_response(&buf) {
                let body = String::from_utf8_lossy(&buf[body]).into_owned();
                return Ok(Response { status, body });
            }
            match stream.read(&mut chunk).await {
                Ok(0) => return Err(format!("{url}{path}: closed before a whole answer")),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("{url}{path}: {e}")),
            }
        }
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("{url}{path}: no answer within {limit:?}"))?
}

/// Where and how [`post_windowed`] sends.
#[derive(Debug, Clone, Copy)]
pub struct PostPlan<'a> {
    /// `http://host:port`.
    pub url: &'a str,
    /// Bearer key, if the API needs one.
    pub api_key: Option<&'a str>,
    /// Request path, e.g. `/api/emit`.
    pub path: &'a str,
    /// Number of requests.
    pub count: usize,
    /// Most requests unanswered at a time.
    pub window: usize,
    /// Time without any answer after which the unanswered requests fail.
    pub idle_limit: Duration,
}

/// POSTs `plan.count` JSON bodies over one keep-alive connection, at most `plan.window`
/// unanswered at a time; `body(k)` makes request `k` just before it is written. Returns
/// every request's outcome in order; requests unanswered when the connection fails, or
/// after `idle_limit` without any answer, get an error. `answered` counts answers as they
/// arrive.
pub async fn post_windowed(
    plan: PostPlan<'_>,
    mut body: impl FnMut(usize) -> String,
    answered: Arc<AtomicU64>,
) -> Result<Vec<Exchanged>, String> {
    let PostPlan {
        url,
        api_key,
        path,
        count,
        window,
        idle_limit,
    } = plan;
    let (host, stream) = connect_http(url).await?;
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let window = Arc::new(Semaphore::new(window.max(1)));
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let permits = window.clone();
    let read = tokio::spawn(async move {
        let mut out: Vec<Exchanged> = Vec::with_capacity(count);
        let mut pending: VecDeque<(usize, Instant)> = VecDeque::new();
        let mut writer_done = false;
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        let failure = loop {
            loop {
                match sent_rx.try_recv() {
                    Ok(sent) => pending.push_back(sent),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        writer_done = true;
                        break;
                    }
                }
            }
            while !pending.is_empty() {
                let Some((status, range, used)) = split_response(&buf) else {
                    break;
                };
                let Some((k, sent)) = pending.pop_front() else {
                    break;
                };
                let body = String::from_utf8_lossy(&buf[range]).into_owned();
                buf.drain(..used);
                out.push((k, Ok(Response { status, body }), sent.elapsed()));
                answered.fetch_add(1, Ordering::Relaxed);
                permits.add_permits(1);
            }
            if pending.is_empty() {
                if writer_done {
                    break None;
                }
                // Nothing in flight: wait for the writer, not the server.
                match sent_rx.recv().await {
                    Some(sent) => pending.push_back(sent),
                    None => writer_done = true,
                }
                continue;
            }
            match tokio::time::timeout(idle_limit, reader.read(&mut chunk)).await {
                Ok(Ok(0)) => break Some("connection closed".to_string()),
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => break Some(format!("read: {e}")),
                Err(_) => break Some(format!("no answer within {idle_limit:?}")),
            }
        };
        // Whatever was sent and not answered fails with the connection.
        if let Some(why) = failure {
            permits.close();
            while let Ok(sent) = sent_rx.try_recv() {
                pending.push_back(sent);
            }
            for (k, sent) in pending {
                out.push((k, Err(why.clone()), sent.elapsed()));
            }
        }
        out
    });
    let auth = api_key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let mut write_error = None;
    for k in 0..count {
        let permit = match window.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                // The window is full: send what is queued, then wait for an answer.
                if let Err(e) = writer.flush().await {
                    write_error = Some(format!("write: {e}"));
                    break;
                }
                match window.acquire().await {
                    Ok(p) => p,
                    Err(_) => break,
                }
            }
        };
        permit.forget();
        let text = body(k);
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if sent_tx.send((k, Instant::now())).is_err() {
            break;
        }
        if let Err(e) = writer.write_all(request.as_bytes()).await {
            write_error = Some(format!("write: {e}"));
            break;
        }
    }
    if write_error.is_none() {
        if let Err(e) = writer.flush().await {
            write_error = Some(format!("write: {e}"));
        }
    }
    drop(sent_tx);
    let mut out = read.await.map_err(|e| format!("{url}: reader task: {e}"))?;
    // Requests never written (the connection failed first).
    let mut done = vec![false; count];
    for (k, _, _) in &out {
        if let Some(d) = done.get_mut(*k) {
            *d = true;
        }
    }
    let why = write_error.unwrap_or_else(|| "not sent: the connection failed".into());
    for (k, d) in done.iter().enumerate() {
        if !d {
            out.push((k, Err(why.clone()), Duration::ZERO));
        }
    }
    out.sort_by_key(|(k, _, _)| *k);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pipelined_responses() {
        let one = b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"delivered\":3}";
        let mut two = one.to_vec();
        two.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}");
        assert_eq!(parse_response(&two), Some((200, one.len())));
        assert_eq!(
            parse_response(&two[one.len()..]),
            Some((400, two.len() - one.len()))
        );
        assert_eq!(parse_response(&one[..one.len() - 1]), None);
        assert_eq!(
            parse_response(b"HTTP/1.1 204 No Content\r\n\r\n"),
            Some((204, 27))
        );
        assert_eq!(parse_response(b"HTTP/1.1 200"), None);
    }
}
