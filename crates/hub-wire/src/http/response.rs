//! HTTP/1.1 response formatting and the WebSocket upgrade answer.
//!
//! Invariants: every serialized response starts with a valid status line,
//! carries exactly one `Connection` header, a `Content-Length` equal to the
//! body length (omitted, together with the body, for 1xx and 204 statuses,
//! which must not have one), and no CR/LF inside any header line.

use std::io::Write as _;

/// Returns the `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`.
pub fn websocket_accept(key: &str) -> String {
    tungstenite::handshake::derive_accept_key(key.trim().as_bytes())
}

/// The complete `101 Switching Protocols` response accepting a WebSocket upgrade.
pub fn upgrade_response(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        websocket_accept(key)
    )
    .into_bytes()
}

/// The standard reason phrase for `status` (`"Unknown"` for unlisted codes).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// An HTTP response to serialize with [`Response::to_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Value of the `Content-Type` header.
    pub content_type: &'static str,
    /// Extra headers, written after the standard ones.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with an explicit content type and no extra headers.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// An `application/json` response.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status, "application/json", body)
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    /// A `text/html; charset=utf-8` response.
    pub fn html(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status, "text/html; charset=utf-8", body)
    }

    /// Adds an extra header (builder style).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Serializes status line, standard headers, extra headers, blank line and body.
    pub fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let bodyless = self.status < 200 || self.status == 204;
        let extra: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        let body_len = if bodyless { 0 } else { self.body.len() };
        let mut out = Vec::with_capacity(160 + extra + body_len);
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        if !bodyless {
            push_header(&mut out, "Content-Type", self.content_type);
            let _ = write!(out, "Content-Length: {}\r\n", self.body.len());
        }
        let connection = if keep_alive { "keep-alive" } else { "close" };
        push_header(&mut out, "Connection", connection);
        for (name, value) in &self.headers {
            push_header(&mut out, name, value);
        }
        out.extend_from_slice(b"\r\n");
        if !bodyless {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Appends `name: value\r\n`, replacing any CR or LF with a space.
fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    let clean = |b: u8| if b == b'\r' || b == b'\n' { b' ' } else { b };
    out.extend(name.bytes().map(clean));
    out.extend_from_slice(b": ");
    out.extend(value.bytes().map(clean));
    out.extend_from_slice(b"\r\n");
}
