//! Counter arithmetic as memcached's `do_add_delta`: the value is read with
//! `safe_strtoull` (C `strtoull` base 10, then a whitespace or end check), incr wraps at
//! 2^64, decr stops at 0, and a result no longer than the old value is written in place,
//! padded with spaces.

use shoal_command::ArithOp;

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parses a stored value as memcached's `safe_strtoull` does on the item data (which
/// memcached follows with "\r\n"): leading whitespace and a sign are accepted, digits
/// must follow, and what follows them must be whitespace, a NUL or the end. A value that
/// overflows 64 bits or that is negative (other than "-0") is refused.
pub(crate) fn parse(value: &[u8]) -> Option<u64> {
    let mut i = 0;
    while i < value.len() && is_c_space(value[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < value.len() && (value[i] == b'+' || value[i] == b'-') {
        negative = value[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut n: u64 = 0;
    let mut overflow = false;
    while i < value.len() && value[i].is_ascii_digit() {
        match n
            .checked_mul(10)
            .and_then(|m| m.checked_add((value[i] - b'0') as u64))
        {
            Some(m) => n = m,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start || overflow {
        return None;
    }
    // memcached's item data goes on with "\r\n", so the end counts as whitespace; C
    // strings also end at a NUL.
    if i < value.len() && !is_c_space(value[i]) && value[i] != 0 {
        return None;
    }
    if negative {
        // strtoull negates: "-0" is 0; any other negative number is huge as unsigned,
        // negative as signed, and refused because it has a '-'.
        let v = n.wrapping_neg();
        if (v as i64) < 0 {
            return None;
        }
        return Some(v);
    }
    Some(n)
}

/// Applies the operation.
pub(crate) fn apply(op: ArithOp, value: u64, delta: u64) -> u64 {
    match op {
        ArithOp::Incr => value.wrapping_add(delta),
        ArithOp::Decr => value.saturating_sub(delta),
    }
}

/// Writes `digits` over `value` when they fit, padding with spaces as memcached does;
/// false if they are longer than the old value.
pub(crate) fn write_in_place(value: &mut [u8], digits: &[u8]) -> bool {
    if digits.len() > value.len() {
        return false;
    }
    value[..digits.len()].copy_from_slice(digits);
    value[digits.len()..].fill(b' ');
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_follows_safe_strtoull() {
        // Each verified against memcached 1.6.18 with incr.
        assert_eq!(parse(b"10"), Some(10));
        assert_eq!(parse(b" 5"), Some(5));
        assert_eq!(parse(b"+5"), Some(5));
        assert_eq!(parse(b"-0"), Some(0));
        assert_eq!(parse(b"12 34"), Some(12));
        assert_eq!(parse(b"099"), Some(99));
        assert_eq!(parse(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse(b"18446744073709551616"), None);
        assert_eq!(parse(b"-12"), None);
        assert_eq!(parse(b"1a"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b" "), None);
        assert_eq!(parse(b"-"), None);
        assert_eq!(parse(b"5\t"), Some(5));
        assert_eq!(parse(b"5\0x"), Some(5));
        assert_eq!(parse(b"0x10"), None);
    }

    #[test]
    fn incr_wraps_and_decr_stops_at_zero() {
        assert_eq!(apply(ArithOp::Incr, u64::MAX, 2), 1);
        assert_eq!(apply(ArithOp::Decr, 5, 1000), 0);
        assert_eq!(apply(ArithOp::Decr, 10, 1), 9);
    }

    #[test]
    fn in_place_pads_with_spaces() {
        let mut v = *b"10";
        assert!(write_in_place(&mut v, b"9"));
        assert_eq!(&v, b"9 ");
        let mut v = *b"99";
        assert!(!write_in_place(&mut v, b"100"));
        assert_eq!(&v, b"99");
    }
}
