//! Server-to-client WebSocket frames (RFC 6455), encoded once and shared.
//!
//! Server frames are never masked, so one encoded frame is valid for every recipient: a
//! message for N connections is encoded into one [`Bytes`] and each queue holds a clone.

use bytes::{BufMut, Bytes, BytesMut};

/// Close codes used by Hubbub (RFC 6455 and Hubbub's own 4xxx range).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The node is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A frame type the endpoint does not accept (binary frames in the JSON protocol).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text frame that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy violation: authentication or origin.
    pub const POLICY: u16 = 1008;
    /// The message is larger than the configured maximum.
    pub const TOO_BIG: u16 = 1009;
    /// The server hit an unexpected condition.
    pub const INTERNAL: u16 = 1011;
    /// Replaced by a newer connection with the same client id.
    pub const REPLACED: u16 = 4000;
    /// No pong or other traffic within the pong timeout after a ping.
    pub const HEARTBEAT_TIMEOUT: u16 = 4001;
    /// Disconnected by the application or the producer API.
    pub const DISCONNECTED: u16 = 4003;
    /// Slow consumer: the send queue was full.
    pub const SLOW_CONSUMER: u16 = 4008;

    /// Whether another node may ask for a close with `code`: only [`REPLACED`] (the client
    /// id connected elsewhere) and [`DISCONNECTED`] (the producer API) travel between nodes.
    pub fn peer_may_request(code: u16) -> bool {
        matches!(code, REPLACED | DISCONNECTED)
    }
}

/// WebSocket opcodes of the frames a server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    /// A UTF-8 text message.
    Text = 0x1,
    /// A binary message.
    Binary = 0x2,
    /// A close frame.
    Close = 0x8,
    /// A ping.
    Ping = 0x9,
    /// A pong.
    Pong = 0xA,
}

/// Length of the header of an unmasked frame carrying `len` payload bytes.
pub fn header_len(len: usize) -> usize {
    if len < 126 {
        2
    } else if len <= usize::from(u16::MAX) {
        4
    } else {
        10
    }
}

/// Writes the header of a final, unmasked frame.
pub fn put_header(out: &mut BytesMut, op: OpCode, len: usize) {
    out.put_u8(0x80 | op as u8);
    if len < 126 {
        // Below 126, fits in the 7-bit length.
        out.put_u8(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(short);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
}

/// Encodes a final, unmasked frame with `payload`.
pub fn encode(op: OpCode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(header_len(payload.len()) + payload.len());
    put_header(&mut out, op, payload.len());
    out.put_slice(payload);
    out.freeze()
}

/// Encodes a text frame.
pub fn text(payload: &[u8]) -> Bytes {
    encode(OpCode::Text, payload)
}

/// Encodes a binary frame.
pub fn binary(payload: &[u8]) -> Bytes {
    encode(OpCode::Binary, payload)
}

/// Encodes a close frame; the reason is cut to fit the 123 bytes a control frame allows.
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode(OpCode::Close, &payload)
}

/// The payload of an encoded frame (everything after the unmasked header).
pub fn payload_of(frame: &Bytes) -> Bytes {
    let Some(&second) = frame.get(1) else {
        return Bytes::new();
    };
    let skip = match second & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    frame.slice(skip.min(frame.len())..)
}

/// The opcode of an encoded frame, if it is one this module writes.
pub fn opcode_of(frame: &[u8]) -> Option<OpCode> {
    match frame.first()? & 0x0f {
        0x1 => Some(OpCode::Text),
        0x2 => Some(OpCode::Binary),
        0x8 => Some(OpCode::Close),
        0x9 => Some(OpCode::Ping),
        0xA => Some(OpCode::Pong),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_medium_and_large_lengths() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            let payload = vec![7u8; len];
            let f = encode(OpCode::Binary, &payload);
            assert_eq!(f.len(), header_len(len) + len);
            assert_eq!(f[0], 0x82);
            assert_eq!(payload_of(&f).len(), len);
            assert_eq!(opcode_of(&f), Some(OpCode::Binary));
        }
    }

    #[test]
    fn close_frame_carries_code_and_cut_reason() {
        let f = close(4008, "slow consumer");
        assert_eq!(&f[..4], &[0x88, 15, 0x0f, 0xa8]);
        assert_eq!(&f[4..], b"slow consumer");
        let long = "é".repeat(100);
        let f = close(1000, &long);
        let p = payload_of(&f);
        assert!(p.len() <= 125);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
    }
}
