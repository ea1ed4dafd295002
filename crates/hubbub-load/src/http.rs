//! A minimal pipelined HTTP/1.1 client for the producer API: requests go out back to back on
//! one keep-alive connection (open loop), and a reader task counts the answers in order.
//!
//! Invariant: answers are matched to requests by order, as HTTP/1.1 pipelining requires;
//! only `Content-Length` bodies are understood (what Hubbub's API sends).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

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

impl Pipeline {
    /// Connects to `url` (`http://host:port`), with an optional bearer key.
    pub async fn connect(url: &str, api_key: Option<&str>) -> Result<Self, String> {
        let (host, addr) = resolve_http(url).await?;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{url}: connect: {e}"))?;
        let _ = stream.set_nodelay(true);
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
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    (buf.len() >= head_end + length).then_some((status, head_end + length))
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
