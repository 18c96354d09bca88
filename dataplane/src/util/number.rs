//! Number parsing and formatting with Redis's exact rules.

/// Parses a signed 64-bit integer like Redis's `string2ll`: optional `-`, no `+`, no spaces, no
/// leading zeros (except `0` itself), and no overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// Parses an unsigned 64-bit integer with the same rules as [`parse_i64`].
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s == b"0" {
        return Some(0);
    }
    if s.is_empty() || s.len() > 20 || !(b'1'..=b'9').contains(&s[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

/// Parses a double like Redis's `getDoubleFromObject` (`strtod`): no leading space, nothing
/// after the number, no NaN, and out-of-range values refused. `inf`, `+inf`, `-inf` and
/// `infinity` are accepted.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s[0].is_ascii_whitespace() {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    let v: f64 = text.parse().ok()?;
    if v.is_nan() {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    if v.is_infinite() && !lower.contains("inf") {
        return None; // ERANGE overflow
    }
    if v == 0.0 {
        // ERANGE underflow: a non-zero mantissa that rounded to zero.
        let mantissa = lower.split('e').next().unwrap_or("");
        if mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
            return None;
        }
    }
    Some(v)
}

/// Parses a long-double-ish value for INCRBYFLOAT (same rules as [`parse_f64`], and also
/// refusing infinities as Redis's `string2ld` does).
pub fn parse_ld(s: &[u8]) -> Option<f64> {
    let v = parse_f64(s)?;
    if v.is_infinite() { None } else { Some(v) }
}

/// Formats a double like C's `printf("%.17g")`, which Redis 7.0 uses for scores and doubles.
pub fn fmt_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    const P: i32 = 17;
    let sci = format!("{:.*e}", (P - 1) as usize, d);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let x: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if !(-4..P).contains(&x) {
        let m = digits.trim_end_matches('0');
        s.push_str(&m[..1]);
        if m.len() > 1 {
            s.push('.');
            s.push_str(&m[1..]);
        }
        s.push('e');
        s.push(if x < 0 { '-' } else { '+' });
        let ax = x.abs();
        if ax < 10 {
            s.push('0');
        }
        s.push_str(&ax.to_string());
    } else if x >= 0 {
        let int_len = (x + 1) as usize;
        s.push_str(&digits[..int_len]);
        let frac = digits[int_len..].trim_end_matches('0');
        if !frac.is_empty() {
            s.push('.');
            s.push_str(frac);
        }
    } else {
        s.push_str("0.");
        for _ in 0..(-x - 1) {
            s.push('0');
        }
        s.push_str(digits.trim_end_matches('0'));
    }
    s
}

/// Formats a value as Redis's human-friendly long double (`INCRBYFLOAT`, `HINCRBYFLOAT`):
/// plain decimal notation, no exponent, no trailing zeros.
pub fn fmt_human(d: f64) -> String {
    if d == 0.0 {
        return "0".into();
    }
    format!("{d}")
}

/// Formats an integer.
pub fn fmt_i64(n: i64) -> String {
    itoa::Buffer::new().format(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string2ll_rules() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b"007"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"-9223372036854775809"), None);
    }

    #[test]
    fn percent_17g() {
        assert_eq!(fmt_double(1.5), "1.5");
        assert_eq!(fmt_double(0.1), "0.10000000000000001");
        assert_eq!(fmt_double(100.0), "100");
        assert_eq!(fmt_double(1e20), "1e+20");
        assert_eq!(fmt_double(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(fmt_double(-2.5), "-2.5");
        assert_eq!(fmt_double(12345678901234567.0), "12345678901234568");
        assert_eq!(fmt_double(0.0001), "0.0001");
    }

    #[test]
    fn floats() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b"1e400"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"abc"), None);
        assert_eq!(fmt_human(10.5 + 0.1), "10.6");
        assert_eq!(fmt_human(5000.0), "5000");
    }
}
