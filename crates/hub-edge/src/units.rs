//! Human units for flags and `--help`: durations (`250ms`, `10s`, `2m`, `1h`) and sizes
//! (`512`, `64KiB`, `1MiB`, `1GB`).
//!
//! Parsing is exact (integer arithmetic, no floats), rejects negative numbers, missing or
//! unknown units and overflow, and never panics. The `format_*` functions give the shortest
//! text that parses back to the same value, for showing defaults.

use std::time::Duration;

const NANOS_PER_MS: u128 = 1_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;
const NANOS_PER_MIN: u128 = 60 * NANOS_PER_SEC;
const NANOS_PER_HOUR: u128 = 60 * NANOS_PER_MIN;

const KIB: u128 = 1 << 10;
const MIB: u128 = 1 << 20;
const GIB: u128 = 1 << 30;
const TIB: u128 = 1 << 40;

/// Fraction digits kept; more cannot change the result at any supported unit's precision.
const MAX_FRACTION_DIGITS: usize = 24;

/// Shows at most 64 characters of bad input in an error message.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    format!("{out:?}")
}

/// Splits `s` into a non-negative decimal number and the unit text after it.
///
/// Returns `(integer part, fraction digits, unit)`, or `None` when there is no number.
fn split_number(s: &str) -> Option<(&str, &str, &str)> {
    let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (int, rest) = s.split_at(int_end);
    if int.is_empty() {
        return None;
    }
    let (frac, unit) = match rest.strip_prefix('.') {
        Some(after) => {
            let frac_end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            let (frac, unit) = after.split_at(frac_end);
            if frac.is_empty() {
                return None;
            }
            (frac, unit)
        }
        None => ("", rest),
    };
    Some((int, frac, unit.trim_start()))
}

/// `int.frac × scale`, rounded down; `None` on overflow of `u128`.
fn scaled(int: &str, frac: &str, scale: u128) -> Option<u128> {
    let mut whole: u128 = 0;
    for d in int.bytes() {
        whole = whole.checked_mul(10)?.checked_add(u128::from(d - b'0'))?;
    }
    let mut total = whole.checked_mul(scale)?;
    let mut numerator: u128 = 0;
    let mut denominator: u128 = 1;
    for d in frac.bytes().take(MAX_FRACTION_DIGITS) {
        numerator = numerator * 10 + u128::from(d - b'0');
        denominator *= 10;
    }
    if numerator > 0 {
        // numerator < denominator ≤ 10^24 and scale ≤ 2^40, so this cannot overflow u128.
        total = total.checked_add(numerator * scale / denominator)?;
    }
    Some(total)
}

/// Parses a duration such as `250ms`, `10s`, `1.5s`, `2m` or `1h` (zero is allowed).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || {
        format!(
            "expected a duration like 250ms, 10s, 2m or 1h, got {}",
            shown(s)
        )
    };
    let (int, frac, unit) = split_number(s.trim()).ok_or_else(err)?;
    let scale = match unit {
        "ms" => NANOS_PER_MS,
        "s" => NANOS_PER_SEC,
        "m" => NANOS_PER_MIN,
        "h" => NANOS_PER_HOUR,
        _ => return Err(err()),
    };
    let nanos = scaled(int, frac, scale).ok_or_else(err)?;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| err())?;
    // The remainder is below 10^9, so it fits in u32.
    let sub = u32::try_from(nanos % NANOS_PER_SEC).map_err(|_| err())?;
    Ok(Duration::new(secs, sub))
}

/// Parses a size such as `512` (bytes), `512B`, `64KiB`, `1MiB`, `1GiB`, or 1000-based `64KB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let err = || format!("expected a size like 64KiB or 1MiB, got {}", shown(s));
    let (int, frac, unit) = split_number(s.trim()).ok_or_else(err)?;
    let scale = match unit {
        "" | "B" => 1,
        "KiB" => KIB,
        "MiB" => MIB,
        "GiB" => GIB,
        "TiB" => TIB,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(err()),
    };
    let bytes = scaled(int, frac, scale).ok_or_else(err)?;
    usize::try_from(bytes).map_err(|_| err())
}

/// Formats a duration in the largest unit that shows it exactly (`25s`, `2m`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    for (scale, unit) in [
        (NANOS_PER_HOUR, "h"),
        (NANOS_PER_MIN, "m"),
        (NANOS_PER_SEC, "s"),
        (NANOS_PER_MS, "ms"),
    ] {
        if nanos % scale == 0 {
            return format!("{}{unit}", nanos / scale);
        }
    }
    // Below millisecond precision: a decimal number of milliseconds.
    let frac = format!("{:06}", nanos % NANOS_PER_MS);
    format!("{}.{}ms", nanos / NANOS_PER_MS, frac.trim_end_matches('0'))
}

/// Formats a size in the largest binary unit that shows it exactly (`64KiB`, `1MiB`, `512B`).
pub fn format_size(bytes: usize) -> String {
    let n = bytes as u128;
    if n > 0 {
        for (scale, unit) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
            if n % scale == 0 {
                return format!("{}{unit}", n / scale);
            }
        }
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let ok = |s: &str| parse_duration(s).expect(s);
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("0.25m"), Duration::from_secs(15));
        assert_eq!(ok("0.0005ms"), Duration::from_nanos(500));
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("0ms"), Duration::ZERO);
        assert_eq!(ok(" 10 s "), Duration::from_secs(10));
        assert_eq!(
            ok("1.000000000000000000000000000001s"),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn bad_durations_are_refused_with_a_clear_message() {
        for bad in [
            "",
            "   ",
            "10",
            "s",
            "-1s",
            "+1s",
            "1.s",
            ".5s",
            "1..5s",
            "10 seconds",
            "10S",
            "1d",
            "1e3s",
            "1s2",
            "NaNs",
            "１s",
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.starts_with("expected a duration like 250ms"), "{e}");
        }
        // Overflow: more seconds than u64 holds, and more digits than u128 holds.
        assert!(parse_duration("18446744073709551616s").is_err());
        assert!(parse_duration("99999999999999999999999999999999999999999h").is_err());
        assert!(parse_duration("5124095576030432h").is_err());
        assert!(parse_duration("18446744073709551615s").is_ok());
        let long = "x".repeat(1000);
        assert!(parse_duration(&long).expect_err("long").len() < 200);
    }

    #[test]
    fn sizes_parse() {
        let ok = |s: &str| parse_size(s).expect(s);
        assert_eq!(ok("512"), 512);
        assert_eq!(ok("512B"), 512);
        assert_eq!(ok("0"), 0);
        assert_eq!(ok("64KiB"), 64 * 1024);
        assert_eq!(ok("1MiB"), 1 << 20);
        assert_eq!(ok("1GiB"), 1 << 30);
        assert_eq!(ok("1.5KiB"), 1536);
        assert_eq!(ok("64KB"), 64_000);
        assert_eq!(ok("64kB"), 64_000);
        assert_eq!(ok("2MB"), 2_000_000);
        assert_eq!(ok("1GB"), 1_000_000_000);
        assert_eq!(ok(" 8 KiB"), 8192);
        assert_eq!(ok("0.5B"), 0);
    }

    #[test]
    fn bad_sizes_are_refused_with_a_clear_message() {
        for bad in [
            "", "x", "KiB", "-1KiB", "1kib", "1K", "1 MiBs", "1.KiB", "1e6",
        ] {
            let e = parse_size(bad).expect_err(bad);
            assert!(
                e.starts_with("expected a size like 64KiB or 1MiB, got"),
                "{e}"
            );
        }
        assert_eq!(
            parse_size("x").expect_err("x"),
            r#"expected a size like 64KiB or 1MiB, got "x""#
        );
        assert!(parse_size("99999999999999999999999999999999999999999").is_err());
        assert!(parse_size("18446744073709551616").is_err());
        assert!(parse_size("17179869184GiB").is_err());
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format_duration(Duration::from_secs(25)), "25s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format_duration(Duration::from_nanos(1)), "0.000001ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_size(64 * 1024), "64KiB");
        assert_eq!(format_size(1 << 20), "1MiB");
        assert_eq!(format_size(3 << 30), "3GiB");
        assert_eq!(format_size(512), "512B");
        assert_eq!(format_size(1500), "1500B");
        assert_eq!(format_size(0), "0B");
        for d in [
            Duration::from_nanos(123_456_789),
            Duration::from_millis(1),
            Duration::from_secs(86_400),
            Duration::new(u64::MAX, 999_999_999),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        for n in [0, 1, 1023, 1024, 65_536, 1 << 40, usize::MAX] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
    }
}
