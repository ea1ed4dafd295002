//! Pusher's request signatures, checked as Pusher checks them.
//!
//! A signed request carries `auth_key`, `auth_timestamp`, `auth_version=1.0`, `body_md5`
//! (hex MD5 of the body, when there is one) and `auth_signature`: the hex HMAC-SHA256, keyed
//! with the app secret, of `METHOD\nPATH\nQUERY`, where QUERY is every other parameter as
//! `key=value`, keys lower-cased, sorted by key, joined with `&` (values percent-decoded).

use std::collections::BTreeMap;

use md5::{Digest, Md5};

/// How far `auth_timestamp` may be from the node's clock, in seconds (Pusher's window).
pub const TIMESTAMP_WINDOW: u64 = 600;

/// The one `auth_version` there is.
pub const AUTH_VERSION: &str = "1.0";

/// A request as it arrived: what its signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The method (`GET`, `POST`).
    pub method: &'a str,
    /// The path as sent, without the query string.
    pub path: &'a str,
    /// The query string, without the `?`.
    pub query: &'a str,
    /// The body (empty when there is none).
    pub body: &'a [u8],
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A required parameter is absent.
    #[error("missing query parameter {0}")]
    Missing(&'static str),
    /// A parameter is given twice (the string to sign would be ambiguous).
    #[error("query parameter {0:.64} given more than once")]
    Duplicate(String),
    /// `auth_key` is not the app's key.
    #[error("unknown auth_key")]
    WrongKey,
    /// `auth_version` is not 1.0.
    #[error("auth_version must be 1.0")]
    Version,
    /// `auth_timestamp` is not a number of seconds within [`TIMESTAMP_WINDOW`] of `now`.
    #[error("auth_timestamp must be within {TIMESTAMP_WINDOW} s of the server's clock (server time {now})")]
    Timestamp {
        /// The server's Unix time.
        now: u64,
    },
    /// The body is not what `body_md5` says (or `body_md5` is missing from a request with one).
    #[error("body_md5 does not match the body (hex MD5 of the request body expected)")]
    BodyMd5,
    /// `auth_signature` is not the HMAC of the request.
    #[error("invalid signature: expected the hex HMAC-SHA256 of {string_to_sign:?}")]
    Signature {
        /// What the signature must cover (no secret in it).
        string_to_sign: String,
    },
}

impl SignatureError {
    /// The HTTP status to answer with: 400 for a malformed query, 401 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Self::Duplicate(_) => 400,
            _ => 401,
        }
    }
}

/// The query parameters of a request: keys lower-cased, values percent-decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    params: BTreeMap<String, String>,
}

impl Query {
    /// Parses a query string (`a=1&b=2`); a key given twice is refused.
    pub fn parse(raw: &str) -> Result<Self, SignatureError> {
        let mut params = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let key = key.to_lowercase();
            if params.contains_key(&key) {
                return Err(SignatureError::Duplicate(key));
            }
            params.insert(key, value.into_owned());
        }
        Ok(Self { params })
    }

    /// The value of `key` (lower-case), if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    fn require(&self, key: &'static str) -> Result<&str, SignatureError> {
        self.get(key).ok_or(SignatureError::Missing(key))
    }

    /// `METHOD\nPATH\nQUERY` of the signature, `auth_signature` left out.
    pub fn string_to_sign(&self, method: &str, path: &str) -> String {
        let mut out = format!("{method}\n{path}\n");
        let mut first = true;
        for (key, value) in &self.params {
            if key == "auth_signature" {
                continue;
            }
            if !first {
                out.push('&');
            }
            first = false;
            out.push_str(key);
            out.push('=');
            out.push_str(value);
        }
        out
    }
}

/// Hex MD5 of `body`, as `body_md5` carries it.
pub fn body_md5(body: &[u8]) -> String {
    base16ct::lower::encode_string(&Md5::digest(body))
}

/// Checks a request signed with the app's `key` and `secret` at Unix time `now`; the query
/// parameters on success.
pub fn verify(
    request: &SignedRequest<'_>,
    key: &str,
    secret: &[u8],
    now: u64,
) -> Result<Query, SignatureError> {
    let query = Query::parse(request.query)?;
    if query.require("auth_key")? != key {
        return Err(SignatureError::WrongKey);
    }
    let timestamp = query.require("auth_timestamp")?;
    let in_window = timestamp
        .parse::<u64>()
        .is_ok_and(|t| t.abs_diff(now) <= TIMESTAMP_WINDOW);
    if !in_window {
        return Err(SignatureError::Timestamp { now });
    }
    if query.require("auth_version")? != AUTH_VERSION {
        return Err(SignatureError::Version);
    }
    if !request.body.is_empty() {
        let given = query.get("body_md5").ok_or(SignatureError::BodyMd5)?;
        if !given.eq_ignore_ascii_case(&body_md5(request.body)) {
            return Err(SignatureError::BodyMd5);
        }
    }
    let signature = query.require("auth_signature")?;
    let string_to_sign = query.string_to_sign(request.method, request.path);
    // Constant-time comparison; a signature that is not 64 hex digits cannot match.
    if !hub_pusher::sign::verify_hex(secret, string_to_sign.as_bytes(), signature) {
        return Err(SignatureError::Signature { string_to_sign });
    }
    Ok(query)
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;
