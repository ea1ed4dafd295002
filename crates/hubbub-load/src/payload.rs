//! The payload every protocol adapter carries, byte for byte the same: the ASCII text
//! `<seq>:<send_ns>:<padding>`, where `seq` is the message's sequence number, `send_ns` the
//! send time in nanoseconds since the Unix epoch (`CLOCK_REALTIME`, comparable between
//! processes on one machine) and the padding is `.` up to the requested length.
//!
//! Invariant: `decode(&encode(s, n, len))` gives back `(s, n)` for every length; a payload
//! shorter than its header is never truncated (the header wins over the length).

use std::time::{SystemTime, UNIX_EPOCH};

/// The padding byte.
pub const PAD: char = '.';

/// What a payload says: which message and when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The message's sequence number.
    pub seq: u64,
    /// Send time, nanoseconds since the Unix epoch.
    pub send_ns: u64,
}

/// Nanoseconds since the Unix epoch now (0 if the clock is before 1970).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Encodes a payload of `len` bytes (or just the header when `len` is shorter).
pub fn encode(seq: u64, send_ns: u64, len: usize) -> String {
    let mut text = format!("{seq}:{send_ns}:");
    while text.len() < len {
        text.push(PAD);
    }
    text
}

/// Decodes a whole text that is exactly one payload.
pub fn decode(text: &str) -> Option<Stamp> {
    let (stamp, used) = parse_at(text.as_bytes())?;
    if used == text.len() {
        Some(stamp)
    } else {
        None
    }
}

/// Finds a payload inside a larger text (a server may wrap what it broadcasts, e.g. a chat
/// server prefixing a name); the first well-formed `<digits>:<digits>:` wins.
pub fn find(text: &str) -> Option<Stamp> {
    if let Some(stamp) = decode(text) {
        return Some(stamp);
    }
    let bytes = text.as_bytes();
    (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()))
        .find_map(|i| parse_at(&bytes[i..]).map(|(stamp, _)| stamp))
}

/// Parses `<digits>:<digits>:<pad>*` at the start of `bytes`; returns the stamp and the
/// number of bytes the payload spans.
fn parse_at(bytes: &[u8]) -> Option<(Stamp, usize)> {
    let (seq, a) = digits(bytes)?;
    if bytes.get(a) != Some(&b':') {
        return None;
    }
    let (send_ns, b) = digits(&bytes[a + 1..])?;
    let end = a + 1 + b;
    if bytes.get(end) != Some(&b':') {
        return None;
    }
    let pad = bytes[end + 1..]
        .iter()
        .take_while(|&&c| c == PAD as u8)
        .count();
    Some((Stamp { seq, send_ns }, end + 1 + pad))
}

/// Parses a run of ASCII digits (at least one, no overflow) at the start of `bytes`.
fn digits(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut n = 0;
    for &c in bytes {
        if !c.is_ascii_digit() {
            break;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        n += 1;
    }
    (n > 0).then_some((value, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_at_many_lengths() {
        for len in [0, 1, 10, 26, 64, 1000] {
            let text = encode(42, 1_700_000_000_123_456_789, len);
            assert!(text.len() >= len.min(text.len()));
            if len >= 30 {
                assert_eq!(text.len(), len);
            }
            assert_eq!(
                decode(&text),
                Some(Stamp {
                    seq: 42,
                    send_ns: 1_700_000_000_123_456_789
                })
            );
        }
    }

    #[test]
    fn short_length_keeps_the_header() {
        assert_eq!(encode(7, 9, 2), "7:9:");
    }

    #[test]
    fn decode_rejects_malformed() {
        for bad in [
            "",
            ":",
            "1:",
            "1:2",
            "a:2:",
            "1:2:..x",
            "1:b:...",
            "99999999999999999999:1:",
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn find_locates_a_wrapped_payload() {
        let inner = encode(5, 123, 40);
        let wrapped = format!("alice: {inner}");
        assert_eq!(
            find(&wrapped),
            Some(Stamp {
                seq: 5,
                send_ns: 123
            })
        );
        let json = format!(r#"{{"text":"{inner}","n":1}}"#);
        assert_eq!(
            find(&json),
            Some(Stamp {
                seq: 5,
                send_ns: 123
            })
        );
        assert_eq!(find("no payload here 12 and 3:x"), None);
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_ns() > 1_577_836_800_000_000_000);
    }
}
