//! Byte sizes and durations written Codis's way (`"128kb"`, `"30s"`), as every Codis config
//! file (proxy.toml, dashboard.toml) and its overview JSON use them.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const KB: u64 = 1 << 10;
const MB: u64 = 1 << 20;
const GB: u64 = 1 << 30;
const TB: u64 = 1 << 40;
const PB: u64 = 1 << 50;

/// A byte count written Codis's way: `<number>[b|k|kb|m|mb|g|gb|t|tb|p|pb]`, lowercase units,
/// 1024-based, a fraction allowed (`"1.5kb"`), a bare number meaning bytes. It is written back
/// with the largest unit that divides it exactly (`"1gb"`; 1.5 KiB is written `"1536"`), and
/// `"0"` for zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The number of bytes.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The number of bytes as `usize` (saturating on 32-bit targets).
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    /// Parses Codis's byte-size syntax (surrounding spaces allowed).
    ///
    /// # Errors
    /// A message when the text is not a non-negative size that fits in an `i64`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let s = text.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = (&s[..split], s[split..].trim_start());
        let mult = match unit {
            "" | "b" => 1,
            "k" | "kb" => KB,
            "m" | "mb" => MB,
            "g" | "gb" => GB,
            "t" | "tb" => TB,
            "p" | "pb" => PB,
            _ => return Err(format!("invalid bytesize '{text}'")),
        };
        if num.is_empty() || num == "." {
            return Err(format!("invalid bytesize '{text}'"));
        }
        let bytes = if num.bytes().all(|b| b.is_ascii_digit()) {
            num.parse::<u64>().ok().and_then(|n| n.checked_mul(mult))
        } else {
            let f: f64 = num
                .parse()
                .map_err(|_| format!("invalid bytesize '{text}'"))?;
            let v = f * mult as f64;
            (v.is_finite() && v < i64::MAX as f64).then_some(v as u64)
        };
        match bytes {
            Some(b) if b <= i64::MAX as u64 => Ok(ByteSize(b)),
            _ => Err(format!("bytesize '{text}' is too large")),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n == 0 {
            return f.write_str("0");
        }
        for (unit, name) in [(PB, "pb"), (TB, "tb"), (GB, "gb"), (MB, "mb"), (KB, "kb")] {
            if n.is_multiple_of(unit) {
                return write!(f, "{}{name}", n / unit);
            }
        }
        write!(f, "{n}")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size such as \"128kb\" or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("negative bytesize {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration written Codis's way: a Go duration (`"500ms"`, `"30s"`, `"30m"`, `"1m30s"`,
/// `"1.5h"`; units `ns us µs ms s m h`) or a bare number of seconds (`"20"`, `20`, `1.5`).
/// Written back as a whole number of the largest unit that divides it (`"30m"`, `"500ms"`,
/// `"1500ns"`), and `"0"` for zero. Negative durations are rejected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeSize(pub Duration);

impl TimeSize {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }

    /// Whether it is zero (Codis: "0 to disable" for periods and timeouts).
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// A whole number of seconds.
    pub const fn from_secs(secs: u64) -> Self {
        TimeSize(Duration::from_secs(secs))
    }

    /// Parses Codis's duration syntax (surrounding spaces allowed).
    ///
    /// # Errors
    /// A message when the text is not a non-negative duration.
    pub fn parse(text: &str) -> Result<Self, String> {
        let s = text.trim();
        let bad = || format!("invalid duration '{text}'");
        if s.is_empty() {
            return Err(bad());
        }
        if s.starts_with('-') {
            return Err(format!("negative duration '{text}'"));
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        // A bare number is seconds.
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let secs: f64 = s.parse().map_err(|_| bad())?;
            return Duration::try_from_secs_f64(secs)
                .map(TimeSize)
                .map_err(|_| bad());
        }
        // Go duration: one or more `<number><unit>`.
        let mut rest = s;
        let mut total_ns: f64 = 0.0;
        while !rest.is_empty() {
            let n = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let num = &rest[..n];
            if num.is_empty() || num == "." {
                return Err(bad());
            }
            rest = &rest[n..];
            let u = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit_ns = match &rest[..u] {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => return Err(bad()),
            };
            rest = &rest[u..];
            let v: f64 = num.parse().map_err(|_| bad())?;
            total_ns += v * unit_ns;
        }
        if !total_ns.is_finite() || total_ns > i64::MAX as f64 {
            return Err(format!("duration '{text}' is too large"));
        }
        Ok(TimeSize(Duration::from_nanos(total_ns.round() as u64)))
    }
}

impl From<Duration> for TimeSize {
    fn from(d: Duration) -> Self {
        TimeSize(d)
    }
}

impl fmt::Display for TimeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        if ns == 0 {
            return f.write_str("0");
        }
        for (unit, name) in [
            (3_600_000_000_000u128, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
        ] {
            if ns.is_multiple_of(unit) {
                return write!(f, "{}{name}", ns / unit);
            }
        }
        write!(f, "{ns}ns")
    }
}

impl Serialize for TimeSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TimeSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"30s\" or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimeSize, E> {
                TimeSize::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimeSize, E> {
                u64::try_from(v)
                    .map(TimeSize::from_secs)
                    .map_err(|_| E::custom(format!("negative duration {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimeSize, E> {
                Ok(TimeSize::from_secs(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TimeSize, E> {
                Duration::try_from_secs_f64(v)
                    .map(TimeSize)
                    .map_err(|_| E::custom(format!("invalid duration {v}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytesize_parse() {
        let cases = [
            ("0", 0),
            ("1", 1),
            ("12b", 12),
            ("1k", 1024),
            ("128kb", 128 * 1024),
            ("1m", 1 << 20),
            ("1024mb", 1 << 30),
            ("2g", 2 << 30),
            ("1gb", 1 << 30),
            ("1tb", 1 << 40),
            ("1pb", 1 << 50),
            ("1.5kb", 1536),
            (" 64 kb ", 64 * 1024),
        ];
        for (text, want) in cases {
            assert_eq!(ByteSize::parse(text), Ok(ByteSize(want)), "{text}");
        }
        for bad in [
            "",
            "kb",
            "-1kb",
            "1KB",
            "1Mb",
            "1x",
            "1 k b",
            "1.2.3kb",
            "9000000pb",
        ] {
            assert!(ByteSize::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bytesize_display() {
        let cases = [
            (0, "0"),
            (1, "1"),
            (1536, "1536"),
            (1024, "1kb"),
            (128 * 1024, "128kb"),
            (1 << 30, "1gb"),
            (3 << 40, "3tb"),
            (1 << 50, "1pb"),
        ];
        for (n, want) in cases {
            assert_eq!(ByteSize(n).to_string(), want);
        }
    }

    #[test]
    fn timesize_parse() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        let cases = [
            ("0", s(0)),
            ("20", s(20)),
            ("1.5", ms(1500)),
            ("30s", s(30)),
            ("30m", s(1800)),
            ("2h", s(7200)),
            ("500ms", ms(500)),
            ("1m30s", s(90)),
            ("1h2m3s", s(3723)),
            ("1.5h", s(5400)),
            ("100us", Duration::from_micros(100)),
            ("100µs", Duration::from_micros(100)),
            ("7ns", Duration::from_nanos(7)),
            (" 5s ", s(5)),
        ];
        for (text, want) in cases {
            assert_eq!(TimeSize::parse(text), Ok(TimeSize(want)), "{text}");
        }
        for bad in ["", "s", "-5s", "5x", "5S", "1m30", "abc", "1..5s"] {
            assert!(TimeSize::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timesize_display() {
        let cases = [
            (Duration::ZERO, "0"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(1800), "30m"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(3), "3us"),
            (Duration::from_nanos(1500), "1500ns"),
        ];
        for (d, want) in cases {
            assert_eq!(TimeSize(d).to_string(), want);
        }
    }
}
