//! HTTP/1.1 request-head parsing and response formatting.
//!
//! Invariants:
//! * [`parse_request`] only ever looks at the first `max_head_bytes` bytes of
//!   its input, so the work per call is bounded, and a head is accepted iff it
//!   is complete within that limit (independently of how reads were chunked).
//! * Parsed values are owned copies: nothing borrows the caller's buffer.
//! * Header names in a [`RequestHead`] are ASCII-lowercase; values are trimmed.
//! * Response bytes never contain a CR or LF inside a header line.

mod request;
mod response;

pub use request::{parse_request, Parsed, RequestHead, MAX_HEADERS};
pub use response::{reason_phrase, upgrade_response, websocket_accept, Response};

/// Why a request head could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The bytes are not a valid HTTP/1.x request head.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The head did not end within the allowed number of bytes.
    #[error("request head too large")]
    HeadTooLarge,
    /// The head has more than [`MAX_HEADERS`] header fields.
    #[error("too many header fields")]
    TooManyHeaders,
}

impl HttpError {
    /// The HTTP status code to answer this error with (400 or 431).
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) => 400,
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => 431,
        }
    }
}
