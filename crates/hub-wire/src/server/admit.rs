//! What a complete request head leads to before its caller sees it ([`admit`]): a plain
//! request, an upgrade request, or a refusal the connection writes itself.
//!
//! Invariants: a request whose framing is ambiguous (`Transfer-Encoding`, a bad or
//! conflicting `Content-Length`) or whose upgrade is malformed never reaches the caller, and
//! every refusal is a JSON answer `{"error": "..."}` that parses.

use crate::http::{RequestHead, Response};

/// What to do with a complete request head.
#[derive(Debug)]
pub(crate) enum Admitted {
    /// A plain request whose body (if any) is `body_len` bytes.
    Request {
        /// The declared `Content-Length` (0 when absent).
        body_len: usize,
    },
    /// A valid WebSocket upgrade request.
    Upgrade {
        /// The `Sec-WebSocket-Key` to answer.
        key: String,
    },
    /// Refused: write this answer and close.
    Refuse(Response),
}

/// A JSON error answer, `{"error": message}` (the message escaped as JSON requires).
pub fn error_response(status: u16, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    Response::json(status, body)
}

/// The length of a request's body from its framing (0 when it declares none), or the answer
/// that refuses it: 411 for `Transfer-Encoding` (never ignored: a proxy that honours it
/// would see another request), 400 for a bad or conflicting `Content-Length`.
pub fn body_framing(head: &RequestHead) -> Result<usize, Response> {
    if head.header("transfer-encoding").is_some() {
        return Err(error_response(
            411,
            "request bodies need a Content-Length (Transfer-Encoding is not accepted)",
        ));
    }
    head.content_length()
        .map_err(|e| error_response(400, &e.to_string()))
}

/// Decides what a complete request head leads to (see the module docs).
pub(crate) fn admit(head: &RequestHead) -> Admitted {
    let body_len = match body_framing(head) {
        Ok(len) => len,
        Err(refusal) => return Admitted::Refuse(refusal),
    };
    if !head.has_token("upgrade", "websocket") {
        return Admitted::Request { body_len };
    }
    let refuse = |status, message| Admitted::Refuse(error_response(status, message));
    if head.method != "GET" || head.version < 1 {
        return refuse(400, "a WebSocket upgrade is a GET request over HTTP/1.1");
    }
    if !head.has_token("connection", "upgrade") {
        return refuse(400, "a WebSocket upgrade needs Connection: Upgrade");
    }
    let Some(key) = head.header("sec-websocket-key").filter(|k| is_valid_key(k)) else {
        return refuse(400, "missing or malformed Sec-WebSocket-Key");
    };
    if head.header("sec-websocket-version") != Some("13") {
        let refusal = error_response(426, "unsupported WebSocket version (13 is)")
            .with_header("Sec-WebSocket-Version", "13");
        return Admitted::Refuse(refusal);
    }
    if body_len > 0 {
        return refuse(400, "a WebSocket upgrade request has no body");
    }
    Admitted::Upgrade {
        key: key.to_owned(),
    }
}

/// Whether `key` is the base64 encoding of 16 bytes, as RFC 6455 (4.1) requires.
fn is_valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && bytes.ends_with(b"==")
        && bytes
            .iter()
            .take(22)
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sixteen_bytes_in_base64() {
        assert!(is_valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key("abc"));
        assert!(!is_valid_key("dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!is_valid_key("dGhlIHNhbXBsZSBub25j\"Q=="));
    }

    #[test]
    fn error_answers_are_json_even_with_quotes() {
        let response = error_response(400, "bad \"value\"\n");
        let parsed: serde_json::Value = serde_json::from_slice(&response.body).expect("valid JSON");
        assert_eq!(parsed["error"], "bad \"value\"\n");
    }
}
