//! Bodies of the `http_head` and `frame_decoder` fuzz targets, kept in the library so that
//! ordinary builds compile them and unit tests run them over pseudo-random inputs (the
//! `server_conn` target's body is [`crate::server::fuzzing`]).
//!
//! Both panic on a broken invariant, which is what a fuzzer reports.

use crate::http::{parse_request, Parsed, RequestHead};
use crate::server::body_framing;
use crate::ws::{Decoded, FrameDecoder};

/// The request head parser on arbitrary bytes (the first byte picks the head limit): it
/// never panics; a complete head is within the limit and the input, parses the same from
/// exactly its own bytes, and is partial one byte earlier; every accessor answers; every
/// error maps to a 4xx/5xx status.
pub fn http_head(data: &[u8]) {
    let (&limit, bytes) = data.split_first().unwrap_or((&0, &[]));
    let max = 16 + usize::from(limit) * 32;
    match parse_request(bytes, max) {
        Ok(Parsed::Complete { head, head_len }) => {
            assert!(
                head_len <= bytes.len() && head_len <= max,
                "head_len {head_len}"
            );
            match parse_request(&bytes[..head_len], max) {
                Ok(Parsed::Complete {
                    head: again,
                    head_len: n,
                }) => {
                    assert_eq!((again, n), (head.clone(), head_len), "not the same head");
                }
                other => panic!("its own bytes parse as {other:?}"),
            }
            let shorter = parse_request(&bytes[..head_len - 1], max);
            assert!(
                matches!(shorter, Ok(Parsed::Partial)),
                "one byte short: {shorter:?}"
            );
            use_every_accessor(&head);
        }
        Ok(Parsed::Partial) => assert!(bytes.len() <= max, "partial beyond the limit"),
        Err(e) => assert!((400..600).contains(&e.status()), "status {}", e.status()),
    }
}

/// Calls what runtimes call on a head; none may panic.
fn use_every_accessor(head: &RequestHead) {
    let _ = head.query_param("id");
    let _ = head.query_param("");
    let _ = head.content_length();
    let _ = head.is_websocket_upgrade();
    let _ = head.keep_alive();
    let _ = head.bearer_token();
    let _ = head.has_token("connection", "upgrade");
    if let Some(key) = head.websocket_key() {
        let _ = crate::http::upgrade_response(key);
    }
    if let Err(answer) = body_framing(head) {
        assert!(
            (400..600).contains(&answer.status),
            "status {}",
            answer.status
        );
    }
}

/// The frame decoder on arbitrary bytes (the first byte picks the message limit, the second
/// seeds the split points): whatever the split, the same messages and the same error come
/// out; text is UTF-8; no message is over the limit, no control frame over 125 bytes;
/// nothing follows a close frame; what it holds grows with the bytes given (amortised), never
/// with a length they claim.
pub fn frame_decoder(data: &[u8]) {
    let [limit, seed, bytes @ ..] = data else {
        return;
    };
    let max = 1usize << (limit % 17);
    let mut whole = FrameDecoder::new(max);
    let mut all = Vec::new();
    let whole_result = whole.decode(bytes, &mut all);

    let mut split = FrameDecoder::new(max);
    let mut pieces = Vec::new();
    let mut split_result = Ok(());
    let (mut rest, mut state, mut fed) = (bytes, u32::from(*seed) | 1, 0usize);
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % 40 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        fed += n;
        let result = split.decode(chunk, &mut pieces);
        // Amortised growth only: never an allocation sized by a length the bytes claim.
        let held = split.buffered();
        assert!(held <= 2 * fed + 64, "holds {held} of {fed}");
        if result.is_err() {
            split_result = result;
            break;
        }
    }
    assert_eq!(whole_result, split_result, "the split changed the outcome");
    assert_eq!(all, pieces, "the split changed the messages");
    for (i, message) in all.iter().enumerate() {
        match message {
            Decoded::Text(text) => {
                assert!(std::str::from_utf8(text).is_ok() && text.len() <= max)
            }
            Decoded::Binary(data) => assert!(data.len() <= max),
            Decoded::Ping(payload) | Decoded::Pong(payload) => assert!(payload.len() <= 125),
            Decoded::Close { reason, .. } => {
                assert!(reason.len() <= 123);
                assert_eq!(i + 1, all.len(), "a message after the close frame");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random inputs, half of them built from valid pieces so the deep paths run.
    fn inputs(pieces: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut state = 0x9e37_79b9_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        (0..2_000)
            .map(|i| {
                let mut out = vec![next() as u8, next() as u8];
                for _ in 0..next() % 8 {
                    if i % 2 == 0 {
                        out.extend_from_slice(pieces[next() as usize % pieces.len()]);
                    } else {
                        out.extend((0..next() % 32).map(|_| next() as u8));
                    }
                }
                out
            })
            .collect()
    }

    #[test]
    fn http_heads_keep_their_promises() {
        let pieces: [&[u8]; 8] = [
            b"GET /ws?id=a&x=%41 HTTP/1.1\r\n",
            b"Host: h\r\n",
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n",
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
            b"Content-Length: 12\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"\r\n",
            b"POST /api/publish HTTP/1.0\r\n",
        ];
        for input in inputs(&pieces) {
            http_head(&input);
        }
    }

    #[test]
    fn frames_decode_the_same_however_split() {
        let pieces: [&[u8]; 7] = [
            &[0x81, 0x83, 1, 2, 3, 4, b'a' ^ 1, b'b' ^ 2, b'c' ^ 3],
            &[0x01, 0x81, 0, 0, 0, 0, b'x'],
            &[0x80, 0x81, 0, 0, 0, 0, b'y'],
            &[0x89, 0x80, 9, 9, 9, 9],
            &[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8],
            &[0x82, 0xfe, 0x00, 0x04, 0, 0, 0, 0, 1, 2, 3, 4],
            &[0xc1, 0x80, 0, 0, 0, 0],
        ];
        for input in inputs(&pieces) {
            frame_decoder(&input);
        }
    }

    #[test]
    fn a_fragmented_message_may_hold_amortised_capacity() {
        // Found by the fuzzer: a fragmented binary message whose buffer grew by doubling
        // held 56 bytes after 36 were fed; growth with the bytes is fine, a claimed length
        // is not.
        frame_decoder(&[
            0x97, 0xa, 0x2, 0xbf, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
            0x0, 0x2d, 0x0, 0x0, 0x0, 0x3f, 0x1, 0x0, 0x2, 0xbf, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
            0x0, 0x0, 0x0, 0xa,
        ]);
    }
}
