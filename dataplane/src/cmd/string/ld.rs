//! A software model of the x86 80-bit `long double` that Redis uses for `INCRBYFLOAT` and
//! `HINCRBYFLOAT`.
//!
//! Redis parses both operands with `strtold`, adds them in extended precision (64-bit
//! mantissa) and prints the sum with `%.17Lf`, trailing zeros removed. An `f64` gives different
//! digits (`0.1 + 0.2` is `0.3` in Redis) and a smaller range (`1e400` is a valid Redis
//! float), so replies only match byte for byte if the same arithmetic is reproduced. Every
//! step here is exact big-integer arithmetic followed by one round-half-even, which is what
//! the hardware and glibc do.

use std::cmp::Ordering;

/// Exponent of the smallest subnormal unit: 2^-16445.
const EMIN: i64 = -16445;
/// Values at or above 2^16384 overflow to infinity.
const EMAX_BITS: i64 = 16384;
/// Redis refuses float strings of this length or more (`MAX_LONG_DOUBLE_CHARS`).
const MAX_CHARS: usize = 5 * 1024;

/// A finite extended-precision value: `(-1)^neg * mant * 2^exp` (mant is zero for zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ld {
    neg: bool,
    mant: u64,
    exp: i64,
}

/// Result of [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A finite number.
    Num(Ld),
    /// `inf` / `infinity`, either sign (accepted by Redis, but any sum with it fails).
    Inf,
}

/// A minimal unsigned big integer (little-endian 32-bit limbs, no trailing zero limb).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bits(&self) -> i64 {
        match self.0.last() {
            None => 0,
            Some(&t) => (self.0.len() as i64 - 1) * 32 + (32 - t.leading_zeros() as i64),
        }
    }

    fn bit(&self, i: i64) -> bool {
        let (l, b) = ((i / 32) as usize, i % 32);
        self.0.get(l).is_some_and(|&w| w >> b & 1 == 1)
    }

    /// True when any bit below position `n` is set.
    fn any_below(&self, n: i64) -> bool {
        let full = (n / 32) as usize;
        if self.0.iter().take(full).any(|&w| w != 0) {
            return true;
        }
        let rem = n % 32;
        rem > 0
            && self
                .0
                .get(full)
                .is_some_and(|&w| w & ((1u32 << rem) - 1) != 0)
    }

    fn low_u64(&self) -> u64 {
        let lo = self.0.first().copied().unwrap_or(0) as u64;
        let hi = self.0.get(1).copied().unwrap_or(0) as u64;
        lo | hi << 32
    }

    /// `self = self * m + a`.
    fn mul_add_small(&mut self, m: u32, a: u32) {
        let mut carry = a as u64;
        for w in &mut self.0 {
            let v = *w as u64 * m as u64 + carry;
            *w = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    /// Divides in place by `d`, returning the remainder.
    fn divmod_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for w in self.0.iter_mut().rev() {
            let cur = rem << 32 | *w as u64;
            *w = (cur / d as u64) as u32;
            rem = cur % d as u64;
        }
        self.trim();
        rem as u32
    }

    /// `self * 10^n`.
    fn mul_pow10(&mut self, mut n: u64) {
        while n >= 9 {
            self.mul_add_small(1_000_000_000, 0);
            n -= 9;
        }
        if n > 0 {
            self.mul_add_small(10u32.pow(n as u32), 0);
        }
    }

    fn shl(&self, n: i64) -> Big {
        if self.is_zero() {
            return self.clone();
        }
        let (limbs, b) = ((n / 32) as usize, (n % 32) as u32);
        let mut v = vec![0u32; limbs];
        v.reserve(self.0.len() + 1);
        let mut carry = 0u32;
        for &w in &self.0 {
            if b == 0 {
                v.push(w);
            } else {
                v.push(w << b | carry);
                carry = w >> (32 - b);
            }
        }
        if carry > 0 {
            v.push(carry);
        }
        Big(v)
    }

    fn shr(&self, n: i64) -> Big {
        let (limbs, b) = ((n / 32) as usize, (n % 32) as u32);
        if limbs >= self.0.len() {
            return Big(Vec::new());
        }
        let src = &self.0[limbs..];
        let mut v = Vec::with_capacity(src.len());
        for i in 0..src.len() {
            let hi = src.get(i + 1).copied().unwrap_or(0);
            v.push(if b == 0 {
                src[i]
            } else {
                src[i] >> b | hi << (32 - b)
            });
        }
        let mut r = Big(v);
        r.trim();
        r
    }

    fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }

    fn add(&self, o: &Big) -> Big {
        let (a, b) = if self.0.len() >= o.0.len() {
            (self, o)
        } else {
            (o, self)
        };
        let mut v = Vec::with_capacity(a.0.len() + 1);
        let mut carry = 0u64;
        for i in 0..a.0.len() {
            let s = a.0[i] as u64 + b.0.get(i).copied().unwrap_or(0) as u64 + carry;
            v.push(s as u32);
            carry = s >> 32;
        }
        if carry > 0 {
            v.push(carry as u32);
        }
        Big(v)
    }

    /// `self -= o`; requires `self >= o`.
    fn sub_assign(&mut self, o: &Big) {
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let mut d = self.0[i] as i64 - o.0.get(i).copied().unwrap_or(0) as i64 - borrow;
            borrow = 0;
            if d < 0 {
                d += 1 << 32;
                borrow = 1;
            }
            self.0[i] = d as u32;
        }
        self.trim();
    }

    /// Quotient and remainder of `self / d` (binary long division; used only where the
    /// quotient has few bits).
    fn div_rem(&self, d: &Big) -> (Big, Big) {
        if self.cmp(d) == Ordering::Less {
            return (Big(Vec::new()), self.clone());
        }
        let t = self.bits() - d.bits();
        let mut rem = self.clone();
        let mut q = Big(vec![0; (t / 32 + 1) as usize]);
        for i in (0..=t).rev() {
            let ds = d.shl(i);
            if rem.cmp(&ds) != Ordering::Less {
                rem.sub_assign(&ds);
                q.0[(i / 32) as usize] |= 1 << (i % 32);
            }
        }
        q.trim();
        (q, rem)
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.divmod_small(1_000_000_000));
        }
        let mut s = chunks.pop().unwrap_or(0).to_string();
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

/// Rounds `n * 2^e2` (plus a non-zero tail below it when `sticky`) to the nearest extended
/// value, ties to even. None on overflow to infinity.
fn round(n: &Big, e2: i64, sticky: bool, neg: bool) -> Option<Ld> {
    if n.is_zero() {
        return Some(Ld {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    let shift = (n.bits() - 64).max(EMIN - e2).max(0);
    let (mut mant, mut exp) = (n.shr(shift).low_u64(), e2 + shift);
    if shift > 0 {
        let half = n.bit(shift - 1);
        let rest = sticky || n.any_below(shift - 1);
        if half && (rest || mant & 1 == 1) {
            mant = match mant.checked_add(1) {
                Some(m) => m,
                None => {
                    exp += 1;
                    1 << 63
                }
            };
        }
    }
    if mant == 0 {
        return Some(Ld {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    if (64 - mant.leading_zeros() as i64) + exp > EMAX_BITS {
        return None;
    }
    Some(Ld { neg, mant, exp })
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parses a float the way Redis's `string2ld` does (`strtold` over the whole string, no
/// leading space, NaN refused, overflow and underflow to zero refused).
pub fn parse(s: &[u8]) -> Option<Parsed> {
    if s.is_empty() || s.len() >= MAX_CHARS || is_c_space(s[0]) {
        return None;
    }
    let (neg, body) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(Parsed::Inf);
    }
    let v = if body.len() > 2
        && body[0] == b'0'
        && (body[1] | 0x20) == b'x'
        && (body[2].is_ascii_hexdigit()
            || (body[2] == b'.' && body.get(3).is_some_and(|c| c.is_ascii_hexdigit())))
    {
        parse_hex(&body[2..], neg)?
    } else {
        parse_dec(body, neg)?
    };
    Some(Parsed::Num(v))
}

/// Reads an optional exponent (`e12`, `p-3`) at `s[i]`; returns (value, end). The marker is
/// only consumed when digits follow it, as `strtold` does.
fn exponent(s: &[u8], i: usize, marker: u8) -> (i64, usize) {
    if i >= s.len() || (s[i] | 0x20) != marker {
        return (0, i);
    }
    let mut j = i + 1;
    let eneg = match s.get(j) {
        Some(b'-') => {
            j += 1;
            true
        }
        Some(b'+') => {
            j += 1;
            false
        }
        _ => false,
    };
    if !s.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return (0, i);
    }
    let mut e: i64 = 0;
    while let Some(&c) = s.get(j).filter(|c| c.is_ascii_digit()) {
        e = (e * 10 + (c - b'0') as i64).min(1_000_000_000);
        j += 1;
    }
    (if eneg { -e } else { e }, j)
}

fn parse_dec(s: &[u8], neg: bool) -> Option<Ld> {
    let mut digits: Vec<u8> = Vec::new();
    let mut dexp: i64 = 0;
    let mut seen = false;
    let mut i = 0;
    while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
        seen = true;
        if !(digits.is_empty() && c == b'0') {
            digits.push(c - b'0');
        }
        i += 1;
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
            seen = true;
            if !(digits.is_empty() && c == b'0') {
                digits.push(c - b'0');
            }
            dexp -= 1;
            i += 1;
        }
    }
    if !seen {
        return None;
    }
    let (e, end) = exponent(s, i, b'e');
    if end != s.len() {
        return None;
    }
    if digits.is_empty() {
        return Some(Ld {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    let dexp = dexp + e;
    let magnitude = digits.len() as i64 + dexp;
    if magnitude > 4934 {
        return None; // overflow
    }
    if magnitude < -4955 {
        return None; // underflow to zero
    }
    let mut d = Big(Vec::new());
    for chunk in digits.chunks(9) {
        let v = chunk.iter().fold(0u32, |a, &c| a * 10 + c as u32);
        d.mul_add_small(10u32.pow(chunk.len() as u32), v);
    }
    let r = if dexp >= 0 {
        d.mul_pow10(dexp as u64);
        round(&d, 0, false, neg)?
    } else {
        let mut p = Big::from_u64(1);
        p.mul_pow10((-dexp) as u64);
        // Scale so that the quotient carries at least 66 significant bits: enough for the
        // 64 kept, the rounding bit, and a sticky remainder.
        let s = (66 + p.bits() - d.bits()).max(0);
        let (q, r) = d.shl(s).div_rem(&p);
        round(&q, -s, !r.is_zero(), neg)?
    };
    if r.mant == 0 {
        return None; // underflow to zero
    }
    Some(r)
}

fn parse_hex(s: &[u8], neg: bool) -> Option<Ld> {
    let mut n = Big(Vec::new());
    let mut e2: i64 = 0;
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while let Some(v) = s.get(i).and_then(|&c| hex(c)) {
        n.mul_add_small(16, v);
        i += 1;
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        while let Some(v) = s.get(i).and_then(|&c| hex(c)) {
            n.mul_add_small(16, v);
            e2 -= 4;
            i += 1;
        }
    }
    let (p, end) = exponent(s, i, b'p');
    if end != s.len() {
        return None;
    }
    if n.is_zero() {
        return Some(Ld {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    let e2 = e2 + p;
    if n.bits() + e2 > EMAX_BITS + 1 || n.bits() + e2 < EMIN - 2 {
        return None;
    }
    let r = round(&n, e2, false, neg)?;
    if r.mant == 0 {
        return None;
    }
    Some(r)
}

impl Ld {
    /// The value of an `i64`.
    pub fn from_i64(v: i64) -> Ld {
        Ld {
            neg: v < 0,
            mant: v.unsigned_abs(),
            exp: 0,
        }
    }

    /// The exact sum rounded to extended precision; None when it overflows.
    pub fn sum(self, o: Ld) -> Option<Ld> {
        if self.mant == 0 {
            return Some(o);
        }
        if o.mant == 0 {
            return Some(self);
        }
        let e = self.exp.min(o.exp);
        let a = Big::from_u64(self.mant).shl(self.exp - e);
        let b = Big::from_u64(o.mant).shl(o.exp - e);
        if self.neg == o.neg {
            return round(&a.add(&b), e, false, self.neg);
        }
        match a.cmp(&b) {
            Ordering::Equal => Some(Ld {
                neg: false,
                mant: 0,
                exp: 0,
            }),
            Ordering::Greater => {
                let mut d = a;
                d.sub_assign(&b);
                round(&d, e, false, self.neg)
            }
            Ordering::Less => {
                let mut d = b;
                d.sub_assign(&a);
                round(&d, e, false, o.neg)
            }
        }
    }

    /// Formats like Redis's human-friendly long double: `%.17Lf`, trailing zeros (and a
    /// trailing `.`) removed, `-0` shown as `0`.
    pub fn to_human(self) -> String {
        const SCALE: u64 = 100_000_000_000_000_000; // 10^17
        let (int, frac) = if self.exp >= 0 {
            (Big::from_u64(self.mant).shl(self.exp), 0u64)
        } else {
            let s = -self.exp;
            let int = if s >= 64 { 0 } else { self.mant >> s };
            let fbits = if s >= 64 {
                self.mant
            } else {
                self.mant & ((1u64 << s) - 1)
            };
            let mut t = Big::from_u64(fbits);
            t.mul_pow10(17);
            let mut digits = t.shr(s).low_u64();
            let half = t.bit(s - 1);
            let rest = t.any_below(s - 1);
            if half && (rest || digits & 1 == 1) {
                digits += 1;
            }
            if digits == SCALE {
                (Big::from_u64(int + 1), 0)
            } else {
                (Big::from_u64(int), digits)
            }
        };
        let mut out = String::new();
        if self.neg {
            out.push('-');
        }
        out.push_str(&int.to_decimal());
        if frac != 0 {
            let f = format!(".{frac:017}");
            out.push_str(f.trim_end_matches('0'));
        }
        if out == "-0" {
            out = "0".into();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Ld {
        match parse(s.as_bytes()) {
            Some(Parsed::Num(v)) => v,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn sum(a: &str, b: &str) -> String {
        num(a).sum(num(b)).map(|v| v.to_human()).unwrap_or_default()
    }

    #[test]
    fn sums_like_redis() {
        assert_eq!(sum("0.1", "0.2"), "0.3");
        assert_eq!(sum("10.5", "0.1"), "10.6");
        assert_eq!(sum("5.0e3", "0"), "5000");
        assert_eq!(sum("1.5e17", "0"), "150000000000000000");
        assert_eq!(sum("1e-18", "0"), "0");
        assert_eq!(sum("-0.0", "0"), "0");
        assert_eq!(sum("3", "-3"), "0");
        assert_eq!(sum("0x10", "1"), "17");
        assert_eq!(sum("-1.5", "0.25"), "-1.25");
        assert_eq!(
            sum("1e400", "0x10"),
            "10000000000000000000281880683947586514586453433629052038625910693539685534008629862039363994848324160522094053927317616200295822777259255734023828976593340661017797447434546173917862448116674971723778943824391593338047470675026246684401359237513603830343735485505244955964979021825038280091068414947402456898653040951017512658092615827588920183472511643316591362664138176309734806343732497430221946880"
        );
    }

    #[test]
    fn parse_rules() {
        for bad in [
            "", " 1", "1 ", "nan", "1e", "1e+", ".", "abc", "1e5110", "1e-5000", "0x", "infin",
        ] {
            assert!(
                !matches!(parse(bad.as_bytes()), Some(Parsed::Num(_))),
                "{bad}"
            );
        }
        assert_eq!(parse(b"-inf"), Some(Parsed::Inf));
        assert_eq!(num("1e-4940").to_human(), "0");
        assert_eq!(num(".5").to_human(), "0.5");
        assert_eq!(num("1.").to_human(), "1");
        assert_eq!(num("+2").to_human(), "2");
    }
}
