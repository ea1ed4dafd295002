//! The bus envelope: a frame with the node that published it.
//!
//! Layout (binary): `[version u8 = 1][origin length u16 BE][origin bytes (UTF-8)][frame bytes]`.
//! Decoding never panics: anything else is [`EnvelopeError`].

use bytes::{BufMut, Bytes, BytesMut};
use hub_core::NodeId;

/// The only envelope version.
pub const VERSION: u8 = 1;

/// Why a bus payload was not a valid envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Shorter than its header says.
    #[error("truncated envelope")]
    Truncated,
    /// An unknown version byte.
    #[error("unknown envelope version {0}")]
    Version(u8),
    /// The origin is not UTF-8.
    #[error("envelope origin is not UTF-8")]
    Origin,
    /// The origin is longer than 65,535 bytes (encoding only).
    #[error("node id too long for an envelope")]
    OriginTooLong,
}

/// Wraps `frame` with its origin.
pub fn encode(origin: &NodeId, frame: &[u8]) -> Result<Bytes, EnvelopeError> {
    let id = origin.as_str().as_bytes();
    let len = u16::try_from(id.len()).map_err(|_| EnvelopeError::OriginTooLong)?;
    let mut out = BytesMut::with_capacity(3 + id.len() + frame.len());
    out.put_u8(VERSION);
    out.put_u16(len);
    out.put_slice(id);
    out.put_slice(frame);
    Ok(out.freeze())
}

/// Splits an envelope into its origin and frame (the frame shares `payload`'s buffer).
pub fn decode(payload: Bytes) -> Result<(NodeId, Bytes), EnvelopeError> {
    let (&version, rest) = payload.split_first().ok_or(EnvelopeError::Truncated)?;
    if version != VERSION {
        return Err(EnvelopeError::Version(version));
    }
    let len_bytes: [u8; 2] = rest
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .ok_or(EnvelopeError::Truncated)?;
    let len = usize::from(u16::from_be_bytes(len_bytes));
    let origin = rest.get(2..2 + len).ok_or(EnvelopeError::Truncated)?;
    let origin = std::str::from_utf8(origin).map_err(|_| EnvelopeError::Origin)?;
    let origin = NodeId::from(origin);
    Ok((origin, payload.slice(3 + len..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let env = encode(&NodeId::from("node-a"), b"\x00frame\xff").expect("valid envelope");
        assert_eq!(&env[..3], &[1, 0, 6]);
        let (origin, frame) = decode(env).expect("valid envelope");
        assert_eq!(origin.as_str(), "node-a");
        assert_eq!(&frame[..], b"\x00frame\xff");
        let (origin, frame) =
            decode(encode(&NodeId::from(""), b"").expect("encodes")).expect("valid envelope");
        assert_eq!((origin.as_str(), frame.len()), ("", 0));
    }

    #[test]
    fn malformed_is_an_error_never_a_panic() {
        for bad in [
            &b""[..],
            b"\x01",
            b"\x01\x00",
            b"\x01\x00\x05abc",
            b"\x02\x00\x00",
            b"\x01\x00\x02\xff\xfe",
        ] {
            assert!(decode(Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
        // Every prefix of a valid envelope, and arbitrary bytes, decode without panicking.
        let env = encode(&NodeId::from("n"), b"xyz").expect("valid envelope");
        for i in 0..env.len() {
            let _ = decode(env.slice(..i));
        }
        for seed in 0u32..2000 {
            let bytes: Vec<u8> = (0..(seed % 17))
                .map(|i| (seed.wrapping_mul(31).wrapping_add(i * 7)) as u8)
                .collect();
            let _ = decode(Bytes::from(bytes));
        }
    }

    #[test]
    fn too_long_origin_is_refused() {
        let id = NodeId::from("x".repeat(70_000));
        assert_eq!(encode(&id, b""), Err(EnvelopeError::OriginTooLong));
    }
}
