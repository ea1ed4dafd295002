//! Property tests of the server connection: how reads and writes are split never changes
//! what comes out.

mod support;

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hub_wire::server::{ConnConfig, ConnEvent, ServerConn};
use proptest::prelude::*;
use support::{client_frame, BINARY, CONT, PING, TEXT};

const UPGRADE: &[u8] = b"GET /ws/room HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// One message: text or binary, its payload, how many fragments, and a ping inside it.
#[derive(Debug, Clone)]
struct Msg {
    binary: bool,
    payload: Vec<u8>,
    fragments: usize,
    ping_inside: bool,
}

fn msg() -> impl Strategy<Value = Msg> {
    (
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..400),
        "[a-zé€😀]{0,60}",
        1usize..5,
        any::<bool>(),
    )
        .prop_map(|(binary, bytes, text, fragments, ping_inside)| Msg {
            binary,
            payload: if binary { bytes } else { text.into_bytes() },
            fragments,
            ping_inside,
        })
}

/// The client's bytes for `msgs` (after the upgrade request) and the events they mean.
fn encode(msgs: &[Msg], mask_seed: u8) -> (Vec<u8>, Vec<ConnEvent>) {
    let mut wire = UPGRADE.to_vec();
    let mut expected = Vec::new();
    let mut mask = [mask_seed, 7, mask_seed.wrapping_mul(3), 200];
    for m in msgs {
        // Split at byte positions: text fragments may cut a code point in two.
        let size = m.payload.len().div_ceil(m.fragments).max(1);
        let pieces: Vec<&[u8]> = if m.payload.is_empty() {
            vec![&[]]
        } else {
            m.payload.chunks(size).collect()
        };
        let last = pieces.len() - 1;
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = match (i, m.binary) {
                (0, true) => BINARY,
                (0, false) => TEXT,
                _ => CONT,
            };
            mask[0] = mask[0].wrapping_add(1);
            wire.extend(client_frame(i == last, opcode, mask, piece));
            if i == last {
                expected.push(ConnEvent::Message {
                    data: Bytes::from(m.payload.clone()),
                    binary: m.binary,
                });
            }
            if i == 0 && m.ping_inside {
                wire.extend(client_frame(true, PING, mask, b"in"));
                expected.push(ConnEvent::Ping(Bytes::from_static(b"in")));
            }
        }
    }
    (wire, expected)
}

/// Feeds `wire` in pieces of the given sizes (cycled), accepting the upgrade when asked.
fn feed(wire: &[u8], sizes: &[usize]) -> Vec<ConnEvent> {
    let now = Instant::now();
    let mut conn = ServerConn::new(now, Arc::new(ConnConfig::default()));
    let mut events = Vec::new();
    let mut rest = wire;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        conn.recv(now, piece);
        while let Some(event) = conn.poll_event() {
            if let ConnEvent::Upgrade(head) = &event {
                assert_eq!(head.path, "/ws/room");
                conn.accept(now).expect("accept");
                continue;
            }
            events.push(event);
        }
    }
    events
}

/// Sends `batches` interleaved with writes of the given sizes, through the given number of
/// slices; returns the bytes written after the 101 answer and how often `written` said a
/// batch was out.
fn transmit(batches: &[Vec<Vec<u8>>], writes: &[(usize, usize)]) -> (Vec<u8>, usize) {
    let now = Instant::now();
    let mut conn = ServerConn::new(now, Arc::new(ConnConfig::default()));
    conn.recv(now, UPGRADE);
    assert!(matches!(conn.poll_event(), Some(ConnEvent::Upgrade(_))));
    conn.accept(now).expect("accept");
    let mut wire = Vec::new();
    let mut outs = 0;
    let mut writes = writes.iter().cycle();
    let mut write = |conn: &mut ServerConn, wire: &mut Vec<u8>| {
        let (budget, slots) = writes.next().copied().unwrap_or((1, 1));
        let mut slices = vec![IoSlice::new(&[]); slots.max(1)];
        let count = conn.poll_transmit(&mut slices);
        let mut left = budget.max(1);
        let mut n = 0;
        for slice in &slices[..count] {
            let take = slice.len().min(left);
            wire.extend_from_slice(&slice[..take]);
            left -= take;
            n += take;
        }
        conn.written(n)
    };
    for batch in batches {
        let frames = batch.iter().map(|f| Bytes::from(f.clone())).collect();
        conn.send(frames).expect("open");
        if write(&mut conn, &mut wire) {
            outs += 1;
        }
    }
    while conn.wants_write() {
        if write(&mut conn, &mut wire) {
            outs += 1;
        }
    }
    let answer = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the 101 answer");
    assert!(wire.starts_with(b"HTTP/1.1 101"));
    assert!(conn.is_idle());
    (wire.split_off(answer + 4), outs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_message_split_into_any_chunks_decodes_the_same(
        msgs in prop::collection::vec(msg(), 0..6),
        mask_seed in any::<u8>(),
        sizes in prop::collection::vec(1usize..300, 1..20),
    ) {
        let (wire, expected) = encode(&msgs, mask_seed);
        let whole = feed(&wire, &[wire.len()]);
        prop_assert_eq!(&whole, &expected);
        let split = feed(&wire, &sizes);
        prop_assert_eq!(&split, &expected);
    }

    #[test]
    fn what_poll_transmit_hands_out_written_in_any_chunks_is_the_same_byte_stream(
        batches in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 0..5),
            1..10,
        ),
        writes in prop::collection::vec((1usize..120, 1usize..5), 1..10),
    ) {
        let (wire, outs) = transmit(&batches, &writes);
        let expected: Vec<u8> = batches.iter().flatten().flatten().copied().collect();
        prop_assert_eq!(wire, expected.clone());
        // Every batch with bytes is reported out, at the latest with a later one.
        let with_bytes = batches.iter().filter(|b| b.iter().any(|f| !f.is_empty())).count();
        prop_assert!(outs <= with_bytes);
        prop_assert_eq!(outs > 0, !expected.is_empty());
    }
}
