//! Request-head parsing ([`parse_request`]) and the accessors on [`RequestHead`].
//!
//! Invariants: a [`RequestHead`] always comes from a syntactically valid
//! HTTP/1.0 or HTTP/1.1 head with at most [`MAX_HEADERS`] fields; its header
//! names are lowercase, its values trimmed; `path` is the raw request target
//! up to the first `?` and `query` the raw rest (without the `?`). Accessors
//! never panic and never allocate except to return decoded strings.

use super::HttpError;

/// Maximum number of header fields accepted in one request head.
pub const MAX_HEADERS: usize = 64;

/// An owned, parsed HTTP/1.x request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Request method, as sent (methods are case-sensitive).
    pub method: String,
    /// Raw path of the request target, without the query (not percent-decoded).
    pub path: String,
    /// Raw query string without the leading `?` (empty when absent).
    pub query: String,
    /// HTTP minor version: `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub version: u8,
    /// Header fields in order of appearance; names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
}

/// Outcome of [`parse_request`] when the bytes are not (yet) invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet: read more bytes and call again.
    Partial,
    /// A complete head; the body (or WebSocket frames) starts at `buf[head_len..]`.
    Complete {
        /// The parsed head.
        head: RequestHead,
        /// Number of bytes of `buf` taken by the head, final blank line included.
        head_len: usize,
    },
}

/// Parses a request head from the start of `buf`.
///
/// Returns [`Parsed::Partial`] when more bytes are needed,
/// [`HttpError::HeadTooLarge`] when the head does not end within
/// `max_head_bytes`, [`HttpError::TooManyHeaders`] beyond [`MAX_HEADERS`]
/// fields and [`HttpError::Malformed`] on anything else that is invalid.
pub fn parse_request(buf: &[u8], max_head_bytes: usize) -> Result<Parsed, HttpError> {
    let window = buf.get(..max_head_bytes).unwrap_or(buf);
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head_bytes => {
            return Err(HttpError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let malformed = |what: &str| HttpError::Malformed(format!("missing {what}"));
    let method = req.method.ok_or_else(|| malformed("method"))?.to_owned();
    let target = req.path.ok_or_else(|| malformed("request target"))?;
    let version = req.version.ok_or_else(|| malformed("version"))?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = req
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value);
            (h.name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let head = RequestHead {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        version,
        headers,
    };
    Ok(Parsed::Complete { head, head_len })
}

impl RequestHead {
    /// Value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).next()
    }

    /// All values of headers named `name` (case-insensitive), in order.
    pub fn headers_named<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any `name` header holds `token` in its comma-separated list (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers_named(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// First query parameter named `key`, percent-decoded with `+` read as a space.
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(k) == key).then(|| form_decode(v))
            })
    }

    /// Declared body length: 0 when absent, an error when unparsable or conflicting.
    pub fn content_length(&self) -> Result<usize, HttpError> {
        let mut found: Option<usize> = None;
        for item in self
            .headers_named("content-length")
            .flat_map(|v| v.split(','))
        {
            let item = item.trim();
            let n = parse_decimal(item)
                .ok_or_else(|| HttpError::Malformed(format!("invalid content-length {item:?}")))?;
            match found {
                Some(prev) if prev != n => {
                    return Err(HttpError::Malformed("conflicting content-length".into()))
                }
                _ => found = Some(n),
            }
        }
        Ok(found.unwrap_or(0))
    }

    /// Whether this is a valid RFC 6455 WebSocket upgrade request (version 13).
    pub fn is_websocket_upgrade(&self) -> bool {
        self.method == "GET"
            && self.version >= 1
            && self.has_token("upgrade", "websocket")
            && self.has_token("connection", "upgrade")
            && self.header("sec-websocket-version") == Some("13")
            && self.websocket_key().is_some()
    }

    /// The non-empty `Sec-WebSocket-Key` header value, if any.
    pub fn websocket_key(&self) -> Option<&str> {
        self.header("sec-websocket-key").filter(|k| !k.is_empty())
    }

    /// Whether the connection stays open after the response (HTTP/1.1 default: yes).
    pub fn keep_alive(&self) -> bool {
        if self.version >= 1 {
            !self.has_token("connection", "close")
        } else {
            self.has_token("connection", "keep-alive")
        }
    }

    /// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once([' ', '\t'])?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }
}

/// Parses a non-empty run of ASCII digits (no sign, no whitespace) without overflow.
fn parse_decimal(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Decodes `application/x-www-form-urlencoded` text: `%XX` escapes and `+` as space.
///
/// Invalid escapes are kept literally; invalid UTF-8 is replaced with U+FFFD.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&c| hex_value(c));
                let lo = bytes.get(i + 2).and_then(|&c| hex_value(c));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Value of one ASCII hex digit.
fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decode_handles_escapes_plus_and_garbage() {
        assert_eq!(form_decode("a%20b+c"), "a b c");
        assert_eq!(form_decode("%E2%9C%93"), "\u{2713}");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz%4"), "%zz%4");
        assert_eq!(form_decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn parse_decimal_rejects_signs_and_overflow() {
        assert_eq!(parse_decimal("42"), Some(42));
        assert_eq!(parse_decimal("+42"), None);
        assert_eq!(parse_decimal(""), None);
        assert_eq!(parse_decimal("99999999999999999999999999"), None);
    }
}
