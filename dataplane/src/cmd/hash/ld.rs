//! Just enough of the x86 80-bit `long double` to reproduce HINCRBYFLOAT byte for byte.
//!
//! Redis adds the two operands as `long double` (64-bit mantissa) and prints the sum with
//! `%.17Lf` before trimming trailing zeros. Doing the same in `f64` gives visibly different
//! replies (`1000.1` prints as `1000.09999999999999998` in Redis), so this module parses,
//! adds and prints with a 64-bit mantissa, rounding to nearest-even at each step exactly as
//! the FPU and glibc do. Intermediate exact values use a tiny unsigned big integer.
//!
//! Known limit: subnormal `long double`s (below about 3.4e-4932) keep a full 64-bit mantissa
//! here instead of losing precision; no realistic HINCRBYFLOAT input reaches them.

use std::cmp::Ordering;

/// Longest string `string2ld` accepts (Redis's `MAX_LONG_DOUBLE_CHARS`, minus the NUL).
const MAX_CHARS: usize = 5 * 1024 - 1;
/// `mant * 2^exp` must stay below 2^16384 (the largest finite long double).
const MAX_EXP: i64 = 16384 - 64;
/// Values below 2^-16445 (the smallest subnormal) round to zero.
const MIN_EXP: i64 = -16445 - 64;

/// A finite or infinite `long double`: `(-1)^neg * mant * 2^exp`, `mant` normalised so its
/// top bit is set (or zero for 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongDouble {
    neg: bool,
    mant: u64,
    exp: i64,
    inf: bool,
}

impl LongDouble {
    /// Zero.
    pub const ZERO: LongDouble = LongDouble {
        neg: false,
        mant: 0,
        exp: 0,
        inf: false,
    };

    /// Exact conversion of an integer (every i64 fits a 64-bit mantissa).
    pub fn from_i64(v: i64) -> LongDouble {
        let mag = v.unsigned_abs();
        if mag == 0 {
            return LongDouble::ZERO;
        }
        let shift = mag.leading_zeros() as i64;
        LongDouble {
            neg: v < 0,
            mant: mag << shift,
            exp: -shift,
            inf: false,
        }
    }

    /// True for +/- infinity.
    pub fn is_inf(&self) -> bool {
        self.inf
    }

    /// Parses like Redis's `string2ld` (`strtold` over the whole string): decimal or hex
    /// notation, `inf`/`infinity`; refuses NaN, leading spaces, trailing bytes, overflow and
    /// underflow to zero, and strings of 5120 bytes or more.
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        if s.is_empty() || s.len() > MAX_CHARS || is_c_space(s[0]) {
            return None;
        }
        let (neg, body) = match s[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            return Some(LongDouble {
                neg,
                mant: 0,
                exp: 0,
                inf: true,
            });
        }
        let mut v = if body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
            parse_hex(&body[2..])?
        } else {
            parse_dec(body)?
        };
        v.neg = neg;
        Some(v)
    }

    /// `self + other`, rounded to nearest-even (infinite on overflow; `None` for inf - inf).
    pub fn plus(self, other: LongDouble) -> Option<LongDouble> {
        if self.inf || other.inf {
            if self.inf && other.inf && self.neg != other.neg {
                return None;
            }
            return Some(if self.inf { self } else { other });
        }
        if other.mant == 0 {
            return Some(self);
        }
        if self.mant == 0 {
            return Some(other);
        }
        // Mantissas are normalised, so the larger exponent is the larger magnitude.
        let (a, b) = if self.exp >= other.exp {
            (self, other)
        } else {
            (other, self)
        };
        let diff = a.exp - b.exp;
        if diff > 130 {
            // `b` is far below half an ulp of `a`: the rounded sum is `a`.
            return Some(a);
        }
        let big_a = Big::from_u128(a.mant as u128).shl(diff as usize);
        let big_b = Big::from_u128(b.mant as u128);
        let (neg, mag) = if a.neg == b.neg {
            (a.neg, big_a.add(&big_b))
        } else {
            match big_a.cmp(&big_b) {
                Ordering::Equal => return Some(LongDouble::ZERO),
                Ordering::Greater => (a.neg, big_a.sub(&big_b)),
                Ordering::Less => (b.neg, big_b.sub(&big_a)),
            }
        };
        Some(round(&mag, false, b.exp, neg).unwrap_or(LongDouble {
            neg,
            mant: 0,
            exp: 0,
            inf: true,
        }))
    }

    /// Formats like Redis's `ld2string(..., LD_STR_HUMAN)`: `%.17Lf`, trailing zeros (and a
    /// trailing dot) removed, `-0` written `0`.
    pub fn to_human(&self) -> String {
        if self.inf {
            return if self.neg {
                "-inf".into()
            } else {
                "inf".into()
            };
        }
        let mut digits = if self.exp >= 0 {
            let mut s = Big::from_u128(self.mant as u128)
                .shl(self.exp as usize)
                .to_decimal();
            s.push_str("00000000000000000");
            s
        } else {
            // mant * 10^17 < 2^121: exact in u128, then shifted right with half-even rounding.
            let x = self.mant as u128 * 100_000_000_000_000_000u128;
            let sh = (-self.exp) as u32;
            let q = if sh >= 128 {
                0
            } else {
                let q = x >> sh;
                let rem = x - (q << sh);
                let half = 1u128 << (sh - 1);
                if rem > half || (rem == half && q & 1 == 1) {
                    q + 1
                } else {
                    q
                }
            };
            q.to_string()
        };
        while digits.len() < 18 {
            digits.insert(0, '0');
        }
        let int_len = digits.len() - 17;
        let mut out = String::with_capacity(digits.len() + 2);
        if self.neg {
            out.push('-');
        }
        out.push_str(&digits[..int_len]);
        let frac = digits[int_len..].trim_end_matches('0');
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        if out == "-0" {
            out.remove(0);
        }
        out
    }
}

/// C's `isspace` in the "C" locale.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Rounds `mag * 2^exp` (plus a sticky bit for discarded non-zero bits below it) to a 64-bit
/// mantissa. `None` on overflow; zero on underflow.
fn round(mag: &Big, sticky: bool, exp: i64, neg: bool) -> Option<LongDouble> {
    let len = mag.bitlen();
    if len == 0 {
        return Some(LongDouble {
            neg,
            ..LongDouble::ZERO
        });
    }
    let (mut mant, mut exp) = if len <= 64 {
        let sh = 64 - len;
        ((mag.low_u128() as u64) << sh, exp - sh as i64)
    } else {
        let sh = len - 64;
        let top = mag.shr(sh).low_u128() as u64;
        let half = mag.bit(sh - 1);
        let rest = sticky || mag.any_below(sh - 1);
        let mut m = top;
        let mut e = exp + sh as i64;
        if half && (rest || top & 1 == 1) {
            match top.checked_add(1) {
                Some(v) => m = v,
                None => {
                    m = 1 << 63;
                    e += 1;
                }
            }
        }
        (m, e)
    };
    if exp > MAX_EXP {
        return None;
    }
    if exp < MIN_EXP {
        mant = 0;
        exp = 0;
    }
    Some(LongDouble {
        neg,
        mant,
        exp,
        inf: false,
    })
}

/// Decimal digits (with an optional dot) and an optional exponent, nothing else.
fn parse_dec(s: &[u8]) -> Option<LongDouble> {
    let mut i = 0;
    let mut digits: Vec<u8> = Vec::new();
    let mut frac_digits: i64 = 0;
    let mut seen_digit = false;
    while i < s.len() && s[i].is_ascii_digit() {
        digits.push(s[i] - b'0');
        seen_digit = true;
        i += 1;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            digits.push(s[i] - b'0');
            frac_digits += 1;
            seen_digit = true;
            i += 1;
        }
    }
    if !seen_digit {
        return None;
    }
    let mut exp10: i64 = 0;
    if i < s.len() && (s[i] | 0x20) == b'e' {
        i += 1;
        let mut eneg = false;
        if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
            eneg = s[i] == b'-';
            i += 1;
        }
        if i >= s.len() {
            return None;
        }
        while i < s.len() && s[i].is_ascii_digit() {
            exp10 = (exp10 * 10 + (s[i] - b'0') as i64).min(1_000_000_000);
            i += 1;
        }
        if eneg {
            exp10 = -exp10;
        }
    }
    if i != s.len() {
        return None;
    }
    // Strip leading and trailing zeros: value = D * 10^e10.
    let first = digits.iter().position(|&d| d != 0);
    let Some(first) = first else {
        return Some(LongDouble::ZERO);
    };
    let last = digits.iter().rposition(|&d| d != 0).unwrap_or(first);
    let trailing = (digits.len() - 1 - last) as i64;
    let sig = &digits[first..=last];
    let e10 = exp10 - frac_digits + trailing;
    // Decimal magnitude of the value is about sig.len() + e10.
    let magnitude = sig.len() as i64 + e10;
    if magnitude > 4934 {
        return None; // overflow (ERANGE, HUGE_VAL)
    }
    if magnitude < -4952 {
        return None; // underflow to zero (ERANGE)
    }
    let mut d = Big::zero();
    for chunk in sig.chunks(9) {
        let mut v = 0u32;
        for &c in chunk {
            v = v * 10 + c as u32;
        }
        d.mul_small(10u32.pow(chunk.len() as u32));
        d.add_small(v);
    }
    let r = if e10 >= 0 {
        d.mul_pow10(e10 as usize);
        round(&d, false, 0, false)?
    } else {
        let mut m = Big::from_u128(1);
        m.mul_pow10((-e10) as usize);
        // Scale so that the quotient has 66 to 68 bits: plenty for rounding to 64.
        let k = (66 + m.bitlen() as i64 - d.bitlen() as i64).max(0) as usize;
        let n = d.shl(k);
        let (q, rem_nonzero) = n.div_small_quotient(&m);
        round(&Big::from_u128(q), rem_nonzero, -(k as i64), false)?
    };
    if r.mant == 0 {
        return None; // non-zero digits that underflowed (ERANGE, zero)
    }
    Some(r)
}

/// Hex digits (after `0x`) with an optional dot and an optional binary exponent `p`.
fn parse_hex(s: &[u8]) -> Option<LongDouble> {
    let mut i = 0;
    let mut mag = Big::zero();
    let mut exp2: i64 = 0;
    let mut seen_digit = false;
    let mut in_frac = false;
    while i < s.len() {
        let c = s[i];
        if c == b'.' && !in_frac {
            in_frac = true;
        } else if let Some(v) = (c as char).to_digit(16) {
            seen_digit = true;
            // Cap the kept bits; further digits only matter as a sticky bit, which a
            // 5000-char input cannot make observable beyond this many bits.
            if mag.bitlen() < 20_000 {
                mag.mul_small(16);
                mag.add_small(v);
                if in_frac {
                    exp2 -= 4;
                }
            } else if !in_frac {
                exp2 += 4;
            }
        } else {
            break;
        }
        i += 1;
    }
    if !seen_digit {
        return None;
    }
    if i < s.len() && (s[i] | 0x20) == b'p' {
        i += 1;
        let mut eneg = false;
        if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
            eneg = s[i] == b'-';
            i += 1;
        }
        if i >= s.len() {
            return None;
        }
        let mut e: i64 = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            e = (e * 10 + (s[i] - b'0') as i64).min(1_000_000_000);
            i += 1;
        }
        exp2 += if eneg { -e } else { e };
    }
    if i != s.len() {
        return None;
    }
    if mag.bitlen() == 0 {
        return Some(LongDouble::ZERO);
    }
    let r = round(&mag, false, exp2, false)?;
    if r.mant == 0 {
        return None;
    }
    Some(r)
}

/// A minimal unsigned big integer (little-endian 32-bit limbs, no trailing zero limbs).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn zero() -> Big {
        Big(Vec::new())
    }

    fn from_u128(mut v: u128) -> Big {
        let mut l = Vec::new();
        while v != 0 {
            l.push(v as u32);
            v >>= 32;
        }
        Big(l)
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn bitlen(&self) -> usize {
        match self.0.last() {
            None => 0,
            Some(&top) => self.0.len() * 32 - top.leading_zeros() as usize,
        }
    }

    fn low_u128(&self) -> u128 {
        let mut v = 0u128;
        for (i, &l) in self.0.iter().take(4).enumerate() {
            v |= (l as u128) << (32 * i);
        }
        v
    }

    fn bit(&self, i: usize) -> bool {
        self.0.get(i / 32).is_some_and(|l| (l >> (i % 32)) & 1 == 1)
    }

    /// True when any bit below position `i` is set.
    fn any_below(&self, i: usize) -> bool {
        let full = i / 32;
        if self.0.iter().take(full).any(|&l| l != 0) {
            return true;
        }
        let rem = i % 32;
        rem > 0
            && self
                .0
                .get(full)
                .is_some_and(|l| l & ((1u32 << rem) - 1) != 0)
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for l in &mut self.0 {
            let v = *l as u64 * m as u64 + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn add_small(&mut self, a: u32) {
        let mut carry = a as u64;
        for l in &mut self.0 {
            if carry == 0 {
                break;
            }
            let v = *l as u64 + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow10(&mut self, mut n: usize) {
        while n >= 9 {
            self.mul_small(1_000_000_000);
            n -= 9;
        }
        self.mul_small(10u32.pow(n as u32));
    }

    fn shl(&self, bits: usize) -> Big {
        if self.0.is_empty() {
            return Big::zero();
        }
        let (limbs, rem) = (bits / 32, bits % 32);
        let mut out = vec![0u32; limbs];
        if rem == 0 {
            out.extend_from_slice(&self.0);
        } else {
            let mut carry = 0u32;
            for &l in &self.0 {
                out.push((l << rem) | carry);
                carry = l >> (32 - rem);
            }
            out.push(carry);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn shr(&self, bits: usize) -> Big {
        let (limbs, rem) = (bits / 32, bits % 32);
        if limbs >= self.0.len() {
            return Big::zero();
        }
        let src = &self.0[limbs..];
        let mut out = Vec::with_capacity(src.len());
        for i in 0..src.len() {
            let lo = src[i] >> rem;
            let hi = if rem == 0 {
                0
            } else {
                src.get(i + 1).map_or(0, |&h| h << (32 - rem))
            };
            out.push(lo | hi);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn add(&self, o: &Big) -> Big {
        let n = self.0.len().max(o.0.len());
        let mut out = Vec::with_capacity(n + 1);
        let mut carry = 0u64;
        for i in 0..n {
            let v = *self.0.get(i).unwrap_or(&0) as u64 + *o.0.get(i).unwrap_or(&0) as u64 + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        if carry != 0 {
            out.push(carry as u32);
        }
        Big(out)
    }

    /// `self - o`; requires `self >= o`.
    fn sub(&self, o: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let mut v = self.0[i] as i64 - *o.0.get(i).unwrap_or(&0) as i64 - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            out.push(v as u32);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }

    /// `self / m` when the quotient is known to be below 2^72, and whether a remainder is left.
    fn div_small_quotient(&self, m: &Big) -> (u128, bool) {
        let mut r = self.clone();
        let mut q = 0u128;
        for b in (0..72).rev() {
            let t = m.shl(b);
            if r.cmp(&t) != Ordering::Less {
                r = r.sub(&t);
                q |= 1u128 << b;
            }
        }
        (q, !r.0.is_empty())
    }

    /// Decimal representation.
    fn to_decimal(&self) -> String {
        if self.0.is_empty() {
            return "0".into();
        }
        let mut limbs = self.0.clone();
        let mut chunks = Vec::new();
        while !limbs.is_empty() {
            let mut rem = 0u64;
            for l in limbs.iter_mut().rev() {
                let v = (rem << 32) | *l as u64;
                *l = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
            chunks.push(rem as u32);
        }
        let mut s = chunks.pop().map(|c| c.to_string()).unwrap_or_default();
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(a: &str, b: &str) -> String {
        let x = LongDouble::parse(a.as_bytes()).unwrap();
        let y = LongDouble::parse(b.as_bytes()).unwrap();
        x.plus(y).unwrap().to_human()
    }

    #[test]
    fn sums_print_like_redis() {
        assert_eq!(human("0", "1000.1"), "1000.09999999999999998");
        assert_eq!(human("0.1", "0.2"), "0.3");
        assert_eq!(human("10.5", "0.1"), "10.6");
        assert_eq!(human("5", "-5"), "0");
        assert_eq!(human("0", "-0.00000000000000000001"), "0");
        assert_eq!(human("0", "1e-30"), "0");
        assert_eq!(human("0", "0x10"), "16");
        assert_eq!(human("+.5e1", "16"), "21");
        assert_eq!(human("-0", "0"), "0");
        assert_eq!(
            human("1", "1e70"),
            "10000000000000000000222479489586148259025995410601157579323600873193472"
        );
        assert_eq!(human("3", "-4.5"), "-1.5");
    }

    #[test]
    fn parse_rules() {
        for bad in [
            "", " 1", "1 ", "1e", "1e+", "abc", "nan", "1\0", "0x", ".", "-", "1e-5000", "1e5000",
        ] {
            assert!(LongDouble::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        assert!(LongDouble::parse(b"inf").unwrap().is_inf());
        assert!(LongDouble::parse(b"-Infinity").unwrap().is_inf());
        assert_eq!(LongDouble::parse(b"1e400").unwrap().to_human().len(), 401);
        assert_eq!(
            LongDouble::from_i64(i64::MIN).to_human(),
            "-9223372036854775808"
        );
    }
}
