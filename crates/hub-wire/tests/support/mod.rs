//! Test helpers: encoding client frames (masked, as browsers send them).
#![allow(dead_code)]

use hub_wire::ws::{Decoded, FrameDecoder, WsError};

/// Continuation opcode.
pub(crate) const CONT: u8 = 0x0;
/// Text opcode.
pub(crate) const TEXT: u8 = 0x1;
/// Binary opcode.
pub(crate) const BINARY: u8 = 0x2;
/// Close opcode.
pub(crate) const CLOSE: u8 = 0x8;
/// Ping opcode.
pub(crate) const PING: u8 = 0x9;
/// Pong opcode.
pub(crate) const PONG: u8 = 0xA;

/// Encodes one frame with full control over the first byte and the mask.
pub(crate) fn raw_frame(first: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Encodes a masked client frame.
pub(crate) fn client_frame(fin: bool, opcode: u8, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let first = if fin { 0x80 } else { 0 } | (opcode & 0x0F);
    raw_frame(first, Some(mask), payload)
}

/// Encodes a final masked frame with a fixed non-trivial mask.
pub(crate) fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(true, opcode, [0x37, 0xfa, 0x21, 0x3d], payload)
}

/// A close frame payload: code then reason.
pub(crate) fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// Decodes `bytes` in one call with a fresh decoder.
pub(crate) fn decode_all(max: usize, bytes: &[u8]) -> (Vec<Decoded>, Result<(), WsError>) {
    let mut decoder = FrameDecoder::new(max);
    let mut out = Vec::new();
    let result = decoder.decode(bytes, &mut out);
    (out, result)
}

/// Decodes `bytes` in one call and returns just the error code (`None` when Ok).
pub(crate) fn error_code(max: usize, bytes: &[u8]) -> Option<u16> {
    decode_all(max, bytes).1.err().map(|e| e.code)
}
