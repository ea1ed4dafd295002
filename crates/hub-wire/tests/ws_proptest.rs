//! Property tests: random client streams round-trip through `FrameDecoder`
//! however the byte stream is split, and arbitrary bytes never panic.

mod support;

use bytes::Bytes;
use hub_wire::ws::{Decoded, FrameDecoder, MAX_CONTROL_PAYLOAD};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use support::*;

const MAX_MESSAGE: usize = 1 << 20;

/// One message the simulated client sends.
#[derive(Debug, Clone)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

/// A message plus how to put it on the wire.
#[derive(Debug, Clone)]
struct Planned {
    msg: Msg,
    /// Fragment boundaries (data messages only), as indexes into the payload.
    cuts: Vec<Index>,
    /// Control frames (ping = true, pong = false) inserted after fragment `i`.
    interleaved: Vec<Option<(bool, Vec<u8>)>>,
}

fn payload_len() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..200, 2 => 200usize..5_000, 1 => 5_000usize..70_000]
}

fn control_payload() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=MAX_CONTROL_PAYLOAD)
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        3 => payload_len().prop_flat_map(|n| vec(any::<char>(), n / 3))
            .prop_map(|cs| Msg::Text(cs.into_iter().collect())),
        3 => payload_len().prop_flat_map(|n| vec(any::<u8>(), n)).prop_map(Msg::Binary),
        1 => control_payload().prop_map(Msg::Ping),
        1 => control_payload().prop_map(Msg::Pong),
    ]
}

fn planned() -> impl Strategy<Value = Planned> {
    (
        msg(),
        vec(any::<Index>(), 0..5),
        vec(
            proptest::option::weighted(0.3, (any::<bool>(), control_payload())),
            5,
        ),
    )
        .prop_map(|(msg, cuts, interleaved)| Planned {
            msg,
            cuts,
            interleaved,
        })
}

/// A tiny deterministic mask generator (xorshift).
struct Masks(u32);

impl Masks {
    fn next(&mut self) -> [u8; 4] {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0.to_be_bytes()
    }
}

fn control(is_ping: bool, payload: &[u8]) -> (u8, Decoded) {
    let bytes = Bytes::copy_from_slice(payload);
    if is_ping {
        (PING, Decoded::Ping(bytes))
    } else {
        (PONG, Decoded::Pong(bytes))
    }
}

/// Encodes the plan as client frames; returns the wire bytes and the expected output.
fn encode(plan: &[Planned], mask_seed: u32, close: bool) -> (Vec<u8>, Vec<Decoded>) {
    let mut masks = Masks(mask_seed | 1);
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for p in plan {
        let (opcode, payload, decoded) = match &p.msg {
            Msg::Text(s) => (TEXT, s.as_bytes(), Decoded::Text(Bytes::from(s.clone()))),
            Msg::Binary(b) => (BINARY, &b[..], Decoded::Binary(Bytes::from(b.clone()))),
            Msg::Ping(b) | Msg::Pong(b) => {
                let (op, d) = control(matches!(p.msg, Msg::Ping(_)), b);
                wire.extend(client_frame(true, op, masks.next(), b));
                expected.push(d);
                continue;
            }
        };
        let mut cuts: Vec<usize> = p.cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(payload.len());
        let mut start = 0;
        for (i, &end) in cuts.iter().enumerate() {
            let last = i + 1 == cuts.len();
            let op = if i == 0 { opcode } else { CONT };
            wire.extend(client_frame(last, op, masks.next(), &payload[start..end]));
            start = end;
            if let (false, Some(Some((is_ping, body)))) = (last, p.interleaved.get(i)) {
                let (op, d) = control(*is_ping, body);
                wire.extend(client_frame(true, op, masks.next(), body));
                expected.push(d);
            }
        }
        expected.push(decoded);
    }
    if close {
        wire.extend(client_frame(
            true,
            CLOSE,
            masks.next(),
            &close_payload(1000, b"done"),
        ));
        expected.push(Decoded::Close {
            code: Some(1000),
            reason: "done".into(),
        });
        // Anything after the close is ignored, even garbage.
        wire.extend_from_slice(b"\x81\x05hello");
    }
    (wire, expected)
}

/// Feeds `wire` in chunks whose sizes cycle through `sizes`.
fn feed(wire: &[u8], sizes: &[usize]) -> Result<Vec<Decoded>, TestCaseError> {
    let mut decoder = FrameDecoder::new(MAX_MESSAGE);
    let mut out = Vec::new();
    let mut rest = wire;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        let res = decoder.decode(chunk, &mut out);
        prop_assert_eq!(res, Ok(()));
        prop_assert!(decoder.buffered() <= MAX_MESSAGE + MAX_CONTROL_PAYLOAD + 14);
        rest = tail;
    }
    prop_assert_eq!(decoder.buffered(), 0);
    Ok(out)
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(
        prop_oneof![3 => 1usize..16, 2 => 16usize..2_000, 1 => 2_000usize..80_000],
        1..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn roundtrip_with_arbitrary_splits(
        plan in vec(planned(), 0..6),
        mask_seed in any::<u32>(),
        close in any::<bool>(),
        sizes in chunk_sizes(),
    ) {
        let (wire, expected) = encode(&plan, mask_seed, close);
        // Whole stream at once (the fast path) …
        prop_assert_eq!(&feed(&wire, &[wire.len().max(1)])?, &expected);
        // … and split at arbitrary points.
        prop_assert_eq!(&feed(&wire, &sizes)?, &expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn roundtrip_one_byte_at_a_time(
        plan in vec(planned(), 0..4),
        mask_seed in any::<u32>(),
        close in any::<bool>(),
    ) {
        let (wire, expected) = encode(&plan, mask_seed, close);
        prop_assert_eq!(&feed(&wire, &[1])?, &expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..4_096),
        sizes in vec(1usize..64, 1..6),
        max in 0usize..2_048,
    ) {
        check_no_panic(&bytes, &sizes, max);
    }

    #[test]
    fn mutated_valid_streams_never_panic(
        plan in vec(planned(), 1..4),
        mask_seed in any::<u32>(),
        flips in vec((any::<Index>(), any::<u8>()), 1..8),
        sizes in chunk_sizes(),
    ) {
        let (mut wire, _) = encode(&plan, mask_seed, false);
        for (at, value) in flips {
            let i = at.index(wire.len());
            wire[i] = value;
        }
        check_no_panic(&wire, &sizes, MAX_MESSAGE);
    }
}

/// Feeds `bytes` in chunks; only checks that nothing panics and limits hold.
fn check_no_panic(bytes: &[u8], sizes: &[usize], max: usize) {
    let mut decoder = FrameDecoder::new(max);
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        if let Err(e) = decoder.decode(chunk, &mut out) {
            assert!([1002, 1007, 1009].contains(&e.code), "{e}");
            assert_eq!(decoder.buffered(), 0);
        }
        assert!(decoder.buffered() <= max + MAX_CONTROL_PAYLOAD + 14);
        rest = tail;
    }
    for d in &out {
        match d {
            Decoded::Text(t) => assert!(t.len() <= max && std::str::from_utf8(t).is_ok()),
            Decoded::Binary(b) => assert!(b.len() <= max),
            Decoded::Ping(p) | Decoded::Pong(p) => assert!(p.len() <= MAX_CONTROL_PAYLOAD),
            Decoded::Close { .. } => {}
        }
    }
}
