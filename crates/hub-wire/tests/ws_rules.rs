//! One test per RFC 6455 decoding rule enforced by `FrameDecoder`.

mod support;

use bytes::Bytes;
use hub_wire::ws::{Decoded, FrameDecoder};
use support::*;

const MAX: usize = 1 << 16;

fn text(s: &str) -> Decoded {
    Decoded::Text(Bytes::copy_from_slice(s.as_bytes()))
}

fn binary(b: &[u8]) -> Decoded {
    Decoded::Binary(Bytes::copy_from_slice(b))
}

fn close(code: Option<u16>, reason: &str) -> Decoded {
    Decoded::Close {
        code,
        reason: reason.into(),
    }
}

#[test]
fn decodes_single_frames_of_every_length_format() {
    for len in [0usize, 1, 125, 126, 65535, 65536] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let (out, res) = decode_all(1 << 20, &frame(BINARY, &payload));
        assert_eq!(res, Ok(()), "len {len}");
        assert_eq!(out, vec![binary(&payload)], "len {len}");
    }
}

#[test]
fn decodes_text_and_several_frames_in_one_input() {
    let mut bytes = frame(TEXT, "héllo ✓".as_bytes());
    bytes.extend(frame(TEXT, b""));
    bytes.extend(frame(BINARY, &[0, 1, 2]));
    let (out, res) = decode_all(MAX, &bytes);
    assert_eq!(res, Ok(()));
    assert_eq!(out, vec![text("héllo ✓"), text(""), binary(&[0, 1, 2])]);
}

#[test]
fn decodes_ping_pong_and_close() {
    let mut bytes = frame(PING, b"ping!");
    bytes.extend(frame(PONG, b""));
    bytes.extend(frame(CLOSE, &close_payload(1000, b"bye")));
    let (out, res) = decode_all(MAX, &bytes);
    assert_eq!(res, Ok(()));
    assert_eq!(
        out,
        vec![
            Decoded::Ping(Bytes::from_static(b"ping!")),
            Decoded::Pong(Bytes::new()),
            close(Some(1000), "bye"),
        ]
    );
}

#[test]
fn header_split_across_calls_is_reassembled() {
    let payload = vec![9u8; 300];
    let bytes = frame(BINARY, &payload);
    for cut in 1..8 {
        let mut d = FrameDecoder::new(MAX);
        let mut out = Vec::new();
        d.decode(&bytes[..cut], &mut out).expect("partial");
        assert!(out.is_empty());
        assert_eq!(d.buffered(), cut);
        d.decode(&bytes[cut..], &mut out).expect("rest");
        assert_eq!(out, vec![binary(&payload)]);
        assert_eq!(d.buffered(), 0);
    }
}

#[test]
fn unmasked_client_frame_is_protocol_error() {
    assert_eq!(error_code(MAX, &raw_frame(0x81, None, b"hi")), Some(1002));
    assert_eq!(error_code(MAX, &raw_frame(0x89, None, b"")), Some(1002));
}

#[test]
fn reserved_bits_are_protocol_errors() {
    for rsv in [0x40u8, 0x20, 0x10] {
        let bytes = raw_frame(0x81 | rsv, Some([1, 2, 3, 4]), b"x");
        assert_eq!(error_code(MAX, &bytes), Some(1002), "rsv {rsv:#x}");
    }
}

#[test]
fn reserved_opcodes_are_protocol_errors() {
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_eq!(error_code(MAX, &frame(op, b"x")), Some(1002), "opcode {op}");
    }
}

#[test]
fn control_frames_must_be_short_and_final() {
    for op in [PING, PONG, CLOSE] {
        let long = vec![0u8; 126];
        assert_eq!(error_code(MAX, &frame(op, &long)), Some(1002), "op {op}");
        let fragmented = client_frame(false, op, [5, 6, 7, 8], b"");
        assert_eq!(error_code(MAX, &fragmented), Some(1002), "op {op}");
    }
    let max_ping = vec![0xAB; 125];
    let (out, res) = decode_all(MAX, &frame(PING, &max_ping));
    assert_eq!(res, Ok(()));
    assert_eq!(out, vec![Decoded::Ping(Bytes::from(max_ping))]);
}

#[test]
fn fragments_are_assembled_with_control_frames_in_between() {
    let m = [9, 8, 7, 6];
    let mut bytes = client_frame(false, TEXT, m, b"Hel");
    bytes.extend(frame(PING, b"a"));
    bytes.extend(client_frame(false, CONT, m, b""));
    bytes.extend(frame(PONG, b"b"));
    bytes.extend(client_frame(false, CONT, m, b"lo, "));
    bytes.extend(client_frame(true, CONT, m, b"world"));
    bytes.extend(client_frame(false, BINARY, m, &[1]));
    bytes.extend(client_frame(true, CONT, m, &[2]));
    let (out, res) = decode_all(MAX, &bytes);
    assert_eq!(res, Ok(()));
    assert_eq!(
        out,
        vec![
            Decoded::Ping(Bytes::from_static(b"a")),
            Decoded::Pong(Bytes::from_static(b"b")),
            text("Hello, world"),
            binary(&[1, 2]),
        ]
    );
}

#[test]
fn close_between_fragments_ends_decoding() {
    let mut bytes = client_frame(false, TEXT, [1, 1, 1, 1], b"part");
    bytes.extend(frame(CLOSE, &close_payload(1001, b"")));
    bytes.extend(client_frame(true, CONT, [1, 1, 1, 1], b"ial"));
    let (out, res) = decode_all(MAX, &bytes);
    assert_eq!(res, Ok(()));
    assert_eq!(out, vec![close(Some(1001), "")]);
}

#[test]
fn continuation_without_started_message_is_protocol_error() {
    assert_eq!(error_code(MAX, &frame(CONT, b"x")), Some(1002));
    let mut bytes = frame(TEXT, b"done");
    bytes.extend(frame(CONT, b"x"));
    let (out, res) = decode_all(MAX, &bytes);
    assert_eq!(
        out,
        vec![text("done")],
        "messages before the error are kept"
    );
    assert_eq!(res.map_err(|e| e.code), Err(1002));
}

#[test]
fn new_data_frame_inside_fragmented_message_is_protocol_error() {
    for op in [TEXT, BINARY] {
        let mut bytes = client_frame(false, BINARY, [0; 4], b"a");
        bytes.extend(frame(op, b"b"));
        assert_eq!(error_code(MAX, &bytes), Some(1002), "op {op}");
    }
}

#[test]
fn message_at_limit_is_accepted_and_one_more_byte_is_too_big() {
    let at_limit = vec![b'a'; 1000];
    let (out, res) = decode_all(1000, &frame(TEXT, &at_limit));
    assert_eq!(res, Ok(()));
    assert_eq!(out.len(), 1);
    assert_eq!(error_code(1000, &frame(TEXT, &[b'a'; 1001])), Some(1009));
}

#[test]
fn fragmented_message_over_limit_is_too_big() {
    let mut bytes = client_frame(false, BINARY, [3; 4], &[0; 600]);
    bytes.extend(client_frame(true, CONT, [3; 4], &[0; 401]));
    assert_eq!(error_code(1000, &bytes), Some(1009));
}

#[test]
fn huge_claimed_length_is_rejected_from_the_header_alone() {
    // Header claims 1 GiB; no payload bytes follow.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let mut d = FrameDecoder::new(MAX);
    let mut out = Vec::new();
    let err = d.decode(&header, &mut out).map_err(|e| e.code);
    assert_eq!(err, Err(1009));
    assert_eq!(d.buffered(), 0);

    // Same through a continuation frame.
    let mut bytes = client_frame(false, BINARY, [0; 4], b"x");
    bytes.extend_from_slice(&[0x80, 0x80 | 127]);
    bytes.extend_from_slice(&(1u64 << 30).to_be_bytes());
    bytes.extend_from_slice(&[0; 4]);
    assert_eq!(error_code(MAX, &bytes), Some(1009));
}

#[test]
fn length_with_most_significant_bit_set_is_protocol_error() {
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&u64::MAX.to_be_bytes());
    header.extend_from_slice(&[0; 4]);
    assert_eq!(error_code(MAX, &header), Some(1002));
}

#[test]
fn partial_payload_buffers_only_what_arrived() {
    let bytes = frame(BINARY, &[7; 60_000]);
    let mut d = FrameDecoder::new(MAX);
    let mut out = Vec::new();
    d.decode(&bytes[..100], &mut out).expect("partial");
    assert!(d.buffered() <= 200, "buffered {}", d.buffered());
    d.decode(&bytes[100..], &mut out).expect("rest");
    assert_eq!(out, vec![binary(&[7; 60_000])]);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn invalid_utf8_text_is_1007() {
    assert_eq!(error_code(MAX, &frame(TEXT, b"ok \xff")), Some(1007));
    // Truncated code point at the end of the final fragment.
    let mut bytes = client_frame(false, TEXT, [0; 4], b"ok");
    bytes.extend(client_frame(true, CONT, [0; 4], b"\xe2\x9c"));
    assert_eq!(error_code(MAX, &bytes), Some(1007));
    // Binary messages are not validated.
    assert_eq!(error_code(MAX, &frame(BINARY, b"\xff")), None);
}

#[test]
fn invalid_utf8_in_an_early_fragment_fails_fast() {
    let bytes = client_frame(false, TEXT, [0; 4], b"\xc0\x80 and more");
    assert_eq!(error_code(MAX, &bytes), Some(1007));
}

#[test]
fn code_point_split_across_fragments_is_valid() {
    let check = "a✓b😀";
    let raw = check.as_bytes();
    for cut in 0..=raw.len() {
        let mut bytes = client_frame(false, TEXT, [4, 3, 2, 1], &raw[..cut]);
        bytes.extend(frame(PING, b""));
        bytes.extend(client_frame(true, CONT, [1, 2, 3, 4], &raw[cut..]));
        let (out, res) = decode_all(MAX, &bytes);
        assert_eq!(res, Ok(()), "cut {cut}");
        assert_eq!(out, vec![Decoded::Ping(Bytes::new()), text(check)]);
    }
}

#[test]
fn empty_close_has_no_code() {
    let (out, res) = decode_all(MAX, &frame(CLOSE, b""));
    assert_eq!(res, Ok(()));
    assert_eq!(out, vec![close(None, "")]);
}

#[test]
fn one_byte_close_payload_is_protocol_error() {
    assert_eq!(error_code(MAX, &frame(CLOSE, &[3])), Some(1002));
}

#[test]
fn close_codes_must_be_sendable() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1012, 1015, 2000, 2999, 5000, 65535,
    ] {
        let bytes = frame(CLOSE, &close_payload(code, b""));
        assert_eq!(error_code(MAX, &bytes), Some(1002), "code {code}");
    }
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999,
    ] {
        let (out, res) = decode_all(MAX, &frame(CLOSE, &close_payload(code, "é".as_bytes())));
        assert_eq!(res, Ok(()), "code {code}");
        assert_eq!(out, vec![close(Some(code), "é")]);
    }
}

#[test]
fn close_reason_must_be_utf8() {
    let bytes = frame(CLOSE, &close_payload(1000, b"\xff\xfe"));
    assert_eq!(error_code(MAX, &bytes), Some(1007));
}

#[test]
fn input_after_an_error_is_ignored() {
    let mut d = FrameDecoder::new(MAX);
    let mut out = Vec::new();
    let err = d.decode(&raw_frame(0x81, None, b"x"), &mut out);
    assert_eq!(err.map_err(|e| e.code), Err(1002));
    assert!(d.is_finished());
    assert_eq!(d.decode(&frame(TEXT, b"later"), &mut out), Ok(()));
    assert_eq!(d.decode(b"\xff\xff garbage", &mut out), Ok(()));
    assert!(out.is_empty());
    assert_eq!(d.buffered(), 0);
}

#[test]
fn input_after_a_close_is_ignored() {
    let mut bytes = frame(CLOSE, b"");
    bytes.extend(frame(TEXT, b"same read"));
    let mut d = FrameDecoder::new(MAX);
    let mut out = Vec::new();
    assert_eq!(d.decode(&bytes, &mut out), Ok(()));
    assert_eq!(d.decode(&frame(TEXT, b"next read"), &mut out), Ok(()));
    assert_eq!(d.decode(&raw_frame(0x81, None, b"bad"), &mut out), Ok(()));
    assert_eq!(out, vec![close(None, "")]);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn error_codes_and_display() {
    let (_, res) = decode_all(MAX, &frame(CONT, b""));
    let err = res.expect_err("continuation without message");
    assert_eq!(err.code, hub_wire::WsError::PROTOCOL_ERROR);
    assert!(err.to_string().contains("1002"));
}
