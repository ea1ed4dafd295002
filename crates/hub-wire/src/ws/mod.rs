//! Decoding of WebSocket frames sent by clients (RFC 6455, no extensions).
//!
//! Server-to-client frames are encoded elsewhere; this module only reads.
//!
//! Invariants:
//! * Every [`Decoded`] value is a complete, validated message or control
//!   frame: text is valid UTF-8, close codes are sendable codes, messages fit
//!   within the decoder's `max_message_size`.
//! * Decoding fails fast: a violation is reported as soon as the byte that
//!   shows it arrives (invalid UTF-8 in the middle of a text frame included),
//!   and nothing that follows it is decoded.
//! * Every protocol violation maps to exactly one [`WsError`] carrying the
//!   close code to send (1002, 1007 or 1009); after it, or after a close
//!   frame, the decoder ignores all further input.
//! * An idle [`FrameDecoder`] holds no heap allocation.

mod decoder;
mod mask;

pub use decoder::FrameDecoder;

use bytes::Bytes;

/// Largest payload a control frame (close, ping, pong) may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A complete message or control frame received from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A text message (the bytes are valid UTF-8).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping with its (unmasked) payload.
    Ping(Bytes),
    /// A pong with its (unmasked) payload.
    Pong(Bytes),
    /// A close frame; `code` is `None` when the payload was empty.
    Close {
        /// The status code sent by the client, if any.
        code: Option<u16>,
        /// The UTF-8 reason sent by the client (empty when none).
        reason: String,
    },
}

/// A fatal protocol violation, with the close code the server should send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("websocket error {code}: {reason}")]
pub struct WsError {
    /// The close code to send: 1002, 1007 or 1009.
    pub code: u16,
    /// A short static description of the violation.
    pub reason: &'static str,
}

impl WsError {
    /// Close code for a protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Close code for data inconsistent with the message type (bad UTF-8).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Close code for a message too big to process.
    pub const MESSAGE_TOO_BIG: u16 = 1009;

    /// A 1002 protocol error.
    pub(crate) const fn protocol(reason: &'static str) -> Self {
        WsError {
            code: Self::PROTOCOL_ERROR,
            reason,
        }
    }

    /// A 1007 invalid-payload error.
    pub(crate) const fn invalid_payload(reason: &'static str) -> Self {
        WsError {
            code: Self::INVALID_PAYLOAD,
            reason,
        }
    }

    /// A 1009 message-too-big error.
    pub(crate) const fn too_big(reason: &'static str) -> Self {
        WsError {
            code: Self::MESSAGE_TOO_BIG,
            reason,
        }
    }
}

/// Whether `code` may appear in a close frame on the wire (1000–1003, 1007–1011, 3000–4999).
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// The close code to answer a client's close frame with: its own when that may be sent, else 1000.
pub fn echo_code(code: Option<u16>) -> u16 {
    code.filter(|&c| is_valid_close_code(c)).unwrap_or(1000)
}

/// Parses a close frame payload into [`Decoded::Close`].
fn parse_close(payload: &[u8]) -> Result<Decoded, WsError> {
    match payload {
        [] => Ok(Decoded::Close {
            code: None,
            reason: String::new(),
        }),
        [_] => Err(WsError::protocol("close payload of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(code) {
                return Err(WsError::protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| WsError::invalid_payload("close reason is not UTF-8"))?;
            Ok(Decoded::Close {
                code: Some(code),
                reason: reason.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_ranges() {
        for ok in [1000, 1001, 1002, 1003, 1007, 1011, 3000, 4999] {
            assert!(is_valid_close_code(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1012, 1015, 2999, 5000, u16::MAX] {
            assert!(!is_valid_close_code(bad), "{bad}");
        }
    }

    #[test]
    fn close_payload_parsing() {
        assert_eq!(
            parse_close(&[]),
            Ok(Decoded::Close {
                code: None,
                reason: String::new()
            })
        );
        assert_eq!(parse_close(&[3]).map_err(|e| e.code), Err(1002));
        assert_eq!(
            parse_close(b"\x03\xe8bye"),
            Ok(Decoded::Close {
                code: Some(1000),
                reason: "bye".into()
            })
        );
        assert_eq!(parse_close(b"\x03\xedx").map_err(|e| e.code), Err(1002));
        assert_eq!(parse_close(b"\x03\xe8\xff").map_err(|e| e.code), Err(1007));
    }
}
