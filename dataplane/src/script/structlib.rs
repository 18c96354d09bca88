//! `struct` as Redis ships it (Roberto Ierusalimschy's struct library): `pack(fmt, ...)`,
//! `unpack(fmt, s [, pos])` and `size(fmt)`, with its format options: `>` `<` `=` endianness,
//! `!n` alignment, `x` padding, `b B h H l L T` and `i[n] I[n]` integers, `f d` floats, `s`
//! zero-terminated and `c[n]` fixed strings (`c0`: length from the previous value).

use mlua::{Lua, MultiValue, Table, Value};

use super::libs::located;

/// Largest `i[n]` / `I[n]`.
const MAX_INT_SIZE: usize = 32;
/// Values one unpack may return (Lua 5.1's C stack holds 8000).
const MAX_RESULTS: usize = 7990;
/// What `!` alone aligns to (the platform's largest alignment).
const MAX_ALIGN: usize = 8;

fn rt(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

fn arg_error(n: usize, func: &str, msg: &str) -> mlua::Error {
    rt(format!("bad argument #{n} to '{func}' ({msg})"))
}

/// The `struct` table.
///
/// # Errors
/// Lua ran out of memory.
pub fn structlib(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
            pack(&args)
                .and_then(|b| lua.create_string(&b))
                .map_err(|e| located(lua, e))
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, args: MultiValue| {
            unpack(lua, &args).map_err(|e| located(lua, e))
        })?,
    )?;
    t.raw_set(
        "size",
        lua.create_function(|lua, args: MultiValue| size(&args).map_err(|e| located(lua, e)))?,
    )?;
    Ok(t)
}

#[derive(Clone, Copy)]
struct Header {
    little: bool,
    align: usize,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            little: true,
            align: 1,
        }
    }
}

/// Reads the digits at `fmt[*i..]` (default `df` when there are none).
fn getnum(fmt: &[u8], i: &mut usize, df: usize) -> mlua::Result<usize> {
    if !fmt.get(*i).is_some_and(u8::is_ascii_digit) {
        return Ok(df);
    }
    let mut a: usize = 0;
    while let Some(d) = fmt.get(*i).filter(|c| c.is_ascii_digit()) {
        let d = usize::from(d - b'0');
        if a > (i32::MAX as usize) / 10 || a * 10 > (i32::MAX as usize) - d {
            return Err(rt("integral size overflow"));
        }
        a = a * 10 + d;
        *i += 1;
    }
    Ok(a)
}

fn optsize(opt: u8, fmt: &[u8], i: &mut usize) -> mlua::Result<usize> {
    Ok(match opt {
        b'B' | b'b' | b'x' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' | b'd' => 8,
        b'f' => 4,
        b'c' => getnum(fmt, i, 1)?,
        b'i' | b'I' => {
            let sz = getnum(fmt, i, 4)?;
            if sz > MAX_INT_SIZE {
                return Err(rt(format!(
                    "integral size {sz} is larger than limit of {MAX_INT_SIZE}"
                )));
            }
            sz
        }
        _ => 0,
    })
}

fn gettoalign(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size - (len & (size - 1))) & (size - 1)
}

fn controloptions(
    opt: u8,
    fmt: &[u8],
    i: &mut usize,
    h: &mut Header,
    func: &str,
) -> mlua::Result<()> {
    match opt {
        b' ' => {}
        b'>' => h.little = false,
        b'<' => h.little = true,
        b'!' => {
            let a = getnum(fmt, i, MAX_ALIGN)?;
            if !a.is_power_of_two() {
                return Err(rt(format!("alignment {a} is not a power of 2")));
            }
            h.align = a;
        }
        _ => {
            return Err(arg_error(
                1,
                func,
                &format!("invalid format option '{}'", opt as char),
            ));
        }
    }
    Ok(())
}

/// The format string, up to its first NUL (where C's loop stops).
fn format_arg(args: &MultiValue, func: &str) -> mlua::Result<Vec<u8>> {
    let mut fmt = format_bytes(args, func)?;
    if let Some(end) = fmt.iter().position(|&b| b == 0) {
        fmt.truncate(end);
    }
    Ok(fmt)
}

fn format_bytes(args: &MultiValue, func: &str) -> mlua::Result<Vec<u8>> {
    match args.front() {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Integer(n)) => Ok(n.to_string().into_bytes()),
        Some(Value::Number(n)) => Ok(super::libs::fmt_g14(*n).into_bytes()),
        other => Err(arg_error(
            1,
            func,
            &format!("string expected, got {}", type_name(other)),
        )),
    }
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(v) => v.type_name(),
    }
}

fn check_number(args: &MultiValue, n: usize, func: &str) -> mlua::Result<f64> {
    let v = args.get(n - 1);
    // `pack` pushes a nil after its arguments: a missing one is "nil" there.
    let missing = if func == "pack" { "nil" } else { "no value" };
    let parsed = match v {
        Some(Value::Integer(i)) => Some(*i as f64),
        Some(Value::Number(x)) => Some(*x),
        Some(Value::String(s)) => {
            let text = s.to_string_lossy();
            let t = text.trim();
            match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16).ok().map(|u| u as f64),
                None => t.parse::<f64>().ok(),
            }
        }
        _ => None,
    };
    parsed.ok_or_else(|| {
        let got = if v.is_none() { missing } else { type_name(v) };
        arg_error(n, func, &format!("number expected, got {got}"))
    })
}

fn check_bytes(args: &MultiValue, n: usize, func: &str) -> mlua::Result<Vec<u8>> {
    if func == "pack" && args.get(n - 1).is_none() {
        return Err(arg_error(n, func, "string expected, got nil"));
    }
    match args.get(n - 1) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Integer(i)) => Ok(i.to_string().into_bytes()),
        Some(Value::Number(x)) => Ok(super::libs::fmt_g14(*x).into_bytes()),
        other => Err(arg_error(
            n,
            func,
            &format!("string expected, got {}", type_name(other)),
        )),
    }
}

/// C's `(long long)d` on x86-64: out of range or NaN gives the "integer indefinite" value.
fn c_to_i64(d: f64) -> i64 {
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

/// struct.c's `n < 0 ? (unsigned long long)(long long)n : (unsigned long long)n`, as gcc
/// compiles it for x86-64 (so infinities, NaN and values past 2^64 give Redis's bytes).
fn c_to_u64(n: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    // Negative, NaN (the comparison fails in C too) and in-range values: the signed cast.
    if n.is_nan() || n < TWO63 {
        c_to_i64(n) as u64
    } else {
        (c_to_i64(n - TWO63) as u64) ^ (1 << 63)
    }
}

fn pack(args: &MultiValue) -> mlua::Result<Vec<u8>> {
    let fmt = format_arg(args, "pack")?;
    let mut h = Header::default();
    let mut arg = 2;
    let mut out = Vec::new();
    let mut i = 0;
    while i < fmt.len() {
        let opt = fmt[i];
        i += 1;
        let mut size = optsize(opt, &fmt, &mut i)?;
        let pad = gettoalign(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(args, arg, "pack")?;
                arg += 1;
                let mut value = c_to_u64(n);
                let mut buf = vec![0u8; size];
                for k in 0..size {
                    let at = if h.little { k } else { size - 1 - k };
                    buf[at] = (value & 0xff) as u8;
                    value >>= 8;
                }
                out.extend_from_slice(&buf);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = check_number(args, arg, "pack")? as f32;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    f.to_le_bytes()
                } else {
                    f.to_be_bytes()
                });
            }
            b'd' => {
                let d = check_number(args, arg, "pack")?;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    d.to_le_bytes()
                } else {
                    d.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = check_bytes(args, arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    return Err(arg_error(arg, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => controloptions(opt, &fmt, &mut i, &mut h, "pack")?,
        }
    }
    Ok(out)
}

fn unpack(lua: &Lua, args: &MultiValue) -> mlua::Result<MultiValue> {
    let fmt = format_arg(args, "unpack")?;
    let data = check_bytes(args, 2, "unpack")?;
    let ld = data.len();
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1,
        Some(_) => c_to_i64(check_number(args, 3, "unpack")?),
    };
    // C keeps the offset in a size_t: only 0 is refused, a negative one is just too far.
    if start == 0 {
        return Err(arg_error(3, "unpack", "offset must be 1 or greater"));
    }
    let mut pos = (start as u64 as usize).wrapping_sub(1);
    let mut h = Header::default();
    let mut out: Vec<Value> = Vec::new();
    let mut i = 0;
    let too_short = || arg_error(2, "unpack", "data string too short");
    while i < fmt.len() {
        let opt = fmt[i];
        i += 1;
        let mut size = optsize(opt, &fmt, &mut i)?;
        pos = pos.saturating_add(gettoalign(pos, &h, opt, size));
        if size > ld || pos > ld - size {
            return Err(too_short());
        }
        if out.len() >= MAX_RESULTS {
            return Err(rt("stack overflow (too many results)"));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let bytes = &data[pos..pos + size];
                let mut l: u64 = 0;
                for k in 0..size {
                    let b = if h.little {
                        bytes[size - 1 - k]
                    } else {
                        bytes[k]
                    };
                    l = l.wrapping_shl(8) | u64::from(b);
                }
                let n = if size == 0 {
                    0.0
                } else if opt.is_ascii_lowercase() {
                    let mask = u64::MAX.wrapping_shl((size * 8 - 1) as u32);
                    if l & mask != 0 {
                        l |= mask;
                    }
                    l as i64 as f64
                } else {
                    l as f64
                };
                out.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().expect("4 bytes");
                let f = if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(f64::from(f)));
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().expect("8 bytes");
                let d = if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(d));
            }
            b'c' => {
                if size == 0 {
                    let prev = match out.pop() {
                        Some(Value::Number(n)) => Some(n),
                        Some(Value::Integer(n)) => Some(n as f64),
                        Some(Value::String(s)) => s.to_string_lossy().trim().parse::<f64>().ok(),
                        _ => None,
                    };
                    let Some(prev) = prev else {
                        return Err(rt("format 'c0' needs a previous size"));
                    };
                    // A negative size is a huge size_t in C: too short.
                    size = if prev < 0.0 {
                        usize::MAX
                    } else {
                        c_to_u64(prev) as usize
                    };
                    if size > ld || pos > ld - size {
                        return Err(too_short());
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(len) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(rt("unfinished string in data"));
                };
                size = len + 1;
                out.push(Value::String(lua.create_string(&data[pos..pos + len])?));
            }
            _ => controloptions(opt, &fmt, &mut i, &mut h, "unpack")?,
        }
        pos = pos.saturating_add(size);
    }
    if out.len() > MAX_RESULTS {
        return Err(rt("stack overflow (too many results)"));
    }
    out.push(Value::Number(pos.wrapping_add(1) as i64 as f64));
    Ok(MultiValue::from_vec(out))
}

fn size(args: &MultiValue) -> mlua::Result<i64> {
    let fmt = format_arg(args, "size")?;
    let mut h = Header::default();
    let mut pos = 0usize;
    let mut i = 0;
    while i < fmt.len() {
        let opt = fmt[i];
        i += 1;
        let size = optsize(opt, &fmt, &mut i)?;
        pos = pos.saturating_add(gettoalign(pos, &h, opt, size));
        if opt == b's' {
            return Err(arg_error(1, "size", "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(arg_error(1, "size", "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            controloptions(opt, &fmt, &mut i, &mut h, "size")?;
        }
        pos = pos.saturating_add(size);
    }
    Ok(pos as i64)
}
