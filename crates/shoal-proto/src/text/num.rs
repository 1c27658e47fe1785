//! memcached's number parsing (`safe_strtoul`, `safe_strtol`, `safe_strtoull` over C's
//! `strtoul`/`strtol`), reproduced quirk for quirk: leading whitespace and a sign are
//! accepted, trailing whitespace ends the number, values out of range are refused, and the
//! 32-bit variants keep only the low 32 bits of a larger value (memcached does the same).

/// C's `isspace` in the "C" locale.
pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What C's `strtoull`/`strtoll` saw: the sign, the magnitude and where the digits ended.
struct Scan {
    negative: bool,
    /// `None` when the magnitude overflowed 64 bits (C sets `ERANGE`).
    magnitude: Option<u64>,
    /// Index just past the last digit.
    end: usize,
}

/// Scans like `strtoull(s, &end, 10)`; `None` when there is no digit at all.
fn scan(s: &[u8]) -> Option<Scan> {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut magnitude: Option<u64> = Some(0);
    while i < s.len() && s[i].is_ascii_digit() {
        let d = u64::from(s[i] - b'0');
        magnitude = magnitude
            .and_then(|m| m.checked_mul(10))
            .and_then(|m| m.checked_add(d));
        i += 1;
    }
    if i == start {
        return None;
    }
    Some(Scan {
        negative,
        magnitude,
        end: i,
    })
}

/// memcached's rule for what may follow the number: the end of the token or whitespace.
fn ends_well(s: &[u8], end: usize) -> bool {
    end == s.len() || is_space(s[end])
}

/// `safe_strtoull`: an unsigned 64-bit number; a negative one is refused when it would
/// wrap to a value with the top bit set (as memcached does).
pub(crate) fn strtoull(s: &[u8]) -> Option<u64> {
    let sc = scan(s)?;
    let mag = sc.magnitude?;
    if !ends_well(s, sc.end) {
        return None;
    }
    let value = if sc.negative { mag.wrapping_neg() } else { mag };
    if (value as i64) < 0 && s[..sc.end].contains(&b'-') {
        return None;
    }
    Some(value)
}

/// `safe_strtoul` into a `uint32_t`: parsed as a 64-bit `unsigned long`, then truncated.
pub(crate) fn strtoul32(s: &[u8]) -> Option<u32> {
    strtoull(s).map(|v| v as u32)
}

/// `safe_strtol` into an `int32_t`: parsed as a 64-bit `long` (refused out of that range),
/// then truncated to 32 bits.
pub(crate) fn strtol32(s: &[u8]) -> Option<i32> {
    let sc = scan(s)?;
    let mag = sc.magnitude?;
    let value: i64 = if sc.negative {
        if mag > 1u64 << 63 {
            return None;
        }
        (mag as i64).wrapping_neg()
    } else {
        i64::try_from(mag).ok()?
    };
    if !ends_well(s, sc.end) {
        return None;
    }
    Some(value as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoul32_matches_memcached_flag_parsing() {
        assert_eq!(strtoul32(b"0"), Some(0));
        assert_eq!(strtoul32(b"+5"), Some(5));
        assert_eq!(strtoul32(b"-0"), Some(0));
        assert_eq!(strtoul32(b"-1"), None);
        // memcached 1.6.18 stores flags 4294967296 as 0 and 4294967297 as 1.
        assert_eq!(strtoul32(b"4294967296"), Some(0));
        assert_eq!(strtoul32(b"4294967297"), Some(1));
        assert_eq!(strtoul32(b"18446744073709551616"), None);
        assert_eq!(strtoul32(b"12abc"), None);
        assert_eq!(strtoul32(b"12\t"), Some(12));
        assert_eq!(strtoul32(b"\t12"), Some(12));
        assert_eq!(strtoul32(b""), None);
        assert_eq!(strtoul32(b"-"), None);
    }

    #[test]
    fn strtoull_refuses_negative_deltas() {
        assert_eq!(strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(strtoull(b"18446744073709551616"), None);
        assert_eq!(strtoull(b"-1"), None);
        assert_eq!(strtoull(b"abc"), None);
        assert_eq!(strtoull(b"+3"), Some(3));
    }

    #[test]
    fn strtol32_truncates_like_memcached() {
        assert_eq!(strtol32(b"-1"), Some(-1));
        assert_eq!(strtol32(b"4294967297"), Some(1));
        assert_eq!(strtol32(b"99999999999"), Some(99_999_999_999_i64 as i32));
        assert_eq!(strtol32(b"9223372036854775808"), None);
        assert_eq!(strtol32(b"-9223372036854775808"), Some(0));
        assert_eq!(strtol32(b"x"), None);
    }
}
