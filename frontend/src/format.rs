//! Numbers, bytes, times and slot ranges for people.

/// `1234567` → `1,234,567`.
pub(crate) fn count(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Bytes with a binary unit: `1536` → `1.5 KiB`.
pub(crate) fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v.abs() >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Seconds as `1h 02m`, `3m 05s` or `12s`.
pub(crate) fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as i64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Unix milliseconds as local `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn time(ms: i64) -> String {
    if ms <= 0 {
        return "never".into();
    }
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds()
    )
}

/// Unix milliseconds as local `HH:MM:SS`.
pub(crate) fn clock(ms: i64) -> String {
    if ms <= 0 {
        return "never".into();
    }
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!(
        "{:02}:{:02}:{:02}",
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds()
    )
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// A slot range as typed: `7`, `0-511` or `0..511` (inclusive, within 0..=1023).
pub(crate) fn parse_range(s: &str) -> Option<(i64, i64)> {
    let s = s.trim();
    let (a, b) = s
        .split_once("..")
        .or_else(|| s.split_once('-'))
        .unwrap_or((s, s));
    let (a, b): (i64, i64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (0 <= a && a <= b && b < 1024).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(-1000), "-1,000");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(duration(5.2), "5s");
        assert_eq!(duration(185.0), "3m 05s");
        assert_eq!(duration(3720.0), "1h 02m");
    }

    #[test]
    fn slot_ranges() {
        assert_eq!(parse_range("7"), Some((7, 7)));
        assert_eq!(parse_range(" 0-511 "), Some((0, 511)));
        assert_eq!(parse_range("10..20"), Some((10, 20)));
        assert_eq!(parse_range("20-10"), None);
        assert_eq!(parse_range("0-1024"), None);
        assert_eq!(parse_range("x"), None);
    }
}
