//! The Lua libraries Redis adds to Lua 5.1, in Rust: `bit` (LuaBitOp) and `cjson` here,
//! `cmsgpack` in [`super::msgpack`], `struct` in [`super::structlib`].

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

fn rt(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

/// A library function's error as Lua's `luaL_error` words it: prefixed with the script's
/// position (`user_script:3: `) when a Lua function called the library function.
pub(crate) fn located(lua: &Lua, e: mlua::Error) -> mlua::Error {
    let mlua::Error::RuntimeError(msg) = e else {
        return e;
    };
    let place = lua.inspect_stack(1, |d| {
        let src = d.source();
        let short = src.short_src.as_deref().unwrap_or("?").to_string();
        d.current_line()
            .filter(|&line| line > 0 && src.what != "C")
            .map(|line| format!("{short}:{line}: "))
    });
    rt(format!("{}{msg}", place.flatten().unwrap_or_default()))
}

/// Installs `bit`, `cjson`, `cmsgpack` and `struct` into `g`.
///
/// # Errors
/// Lua ran out of memory.
pub fn register(lua: &Lua, g: &Table) -> mlua::Result<()> {
    g.raw_set("bit", bit(lua)?)?;
    g.raw_set("cjson", cjson(lua)?)?;
    g.raw_set("cmsgpack", super::msgpack::cmsgpack(lua)?)?;
    g.raw_set("struct", super::structlib::structlib(lua)?)?;
    Ok(())
}

/// LuaBitOp's `tobit`: the number reduced to a signed 32-bit integer (modulo 2^32).
fn tobit(v: &Value) -> mlua::Result<i32> {
    let n = match v {
        Value::Integer(n) => *n as f64,
        Value::Number(n) => *n,
        Value::String(s) => s
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| rt("bad argument to 'bit' function (number expected)"))?,
        _ => {
            return Err(rt(
                "bad argument to 'bit' function (number expected, got no value)",
            ));
        }
    };
    // LuaBitOp adds 2^52+2^51 and takes the low word: rounding to nearest, modulo 2^32.
    let r = n.round_ties_even();
    Ok((r.rem_euclid(4294967296.0) as u64 as u32) as i32)
}

fn bit(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    macro_rules! fold {
        ($name:expr, $op:expr) => {
            t.raw_set(
                $name,
                lua.create_function(|_, v: MultiValue| {
                    let mut it = v.iter();
                    let first = it
                        .next()
                        .ok_or_else(|| rt("bad argument #1 to 'bit' function"))?;
                    let mut acc = tobit(first)?;
                    for x in it {
                        acc = $op(acc, tobit(x)?);
                    }
                    Ok(acc as f64)
                })?,
            )?;
        };
    }
    fold!("band", |a: i32, b: i32| a & b);
    fold!("bor", |a: i32, b: i32| a | b);
    fold!("bxor", |a: i32, b: i32| a ^ b);
    t.raw_set(
        "tobit",
        lua.create_function(|_, v: Value| Ok(tobit(&v)? as f64))?,
    )?;
    t.raw_set(
        "bnot",
        lua.create_function(|_, v: Value| Ok(!tobit(&v)? as f64))?,
    )?;
    t.raw_set(
        "bswap",
        lua.create_function(|_, v: Value| Ok(tobit(&v)?.swap_bytes() as f64))?,
    )?;
    macro_rules! shift {
        ($name:expr, $op:expr) => {
            t.raw_set(
                $name,
                lua.create_function(|_, (a, n): (Value, Value)| {
                    let a = tobit(&a)?;
                    let n = (tobit(&n)? & 31) as u32;
                    Ok($op(a, n) as f64)
                })?,
            )?;
        };
    }
    shift!("lshift", |a: i32, n: u32| ((a as u32) << n) as i32);
    shift!("rshift", |a: i32, n: u32| ((a as u32) >> n) as i32);
    shift!("arshift", |a: i32, n: u32| a >> n);
    shift!("rol", |a: i32, n: u32| (a as u32).rotate_left(n) as i32);
    shift!("ror", |a: i32, n: u32| (a as u32).rotate_right(n) as i32);
    t.raw_set(
        "tohex",
        lua.create_function(|_, (a, n): (Value, Option<Value>)| {
            let a = tobit(&a)? as u32;
            let mut n = match n {
                Some(v) => tobit(&v)?,
                None => 8,
            };
            let upper = n < 0;
            if upper {
                n = -n;
            }
            let n = n.clamp(1, 8) as usize;
            let s = if upper {
                format!("{a:08X}")
            } else {
                format!("{a:08x}")
            };
            Ok(s[8 - n..].to_string())
        })?,
    )?;
    Ok(t)
}

/// C's `%.14g` (lua-cjson's default number precision).
pub fn fmt_g14(n: f64) -> String {
    fmt_g(n, 14)
}

/// C's `%.<prec>g`.
pub fn fmt_g(n: f64, prec: i32) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() {
            "-nan".into()
        } else {
            "nan".into()
        };
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if n == 0.0 {
        return if n.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let p1 = (prec - 1) as usize;
    let e = format!("{n:.p1$e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..prec).contains(&exp) {
        let decimals = (prec - 1 - exp).max(0) as usize;
        let s = format!("{n:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let m = if mant.contains('.') {
            mant.trim_end_matches('0').trim_end_matches('.')
        } else {
            mant
        };
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    }
}

fn json_null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("null", json_null())?;
    t.raw_set(
        "encode",
        lua.create_function(|lua, v: MultiValue| {
            if v.len() != 1 {
                return Err(located(
                    lua,
                    rt("bad argument #1 to 'encode' (expected 1 argument)"),
                ));
            }
            let mut out = Vec::new();
            encode(v.front().unwrap_or(&Value::Nil), &mut out, 0).map_err(|e| located(lua, e))?;
            Ok(mlua::BString::from(out))
        })?,
    )?;
    t.raw_set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| {
            let bytes = s.as_bytes();
            // The parsed tree takes up to ~16 times the text, outside the Lua limit.
            let left = super::vm::LUA_MEMORY_LIMIT.saturating_sub(lua.used_memory());
            if bytes.len().saturating_mul(16) > left {
                return Err(located(lua, rt("not enough memory")));
            }
            let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                located(
                    lua,
                    rt(format!(
                        "Expected value but found invalid token at character {}",
                        e.column().max(1)
                    )),
                )
            })?;
            decode(lua, &v)
        })?,
    )?;
    for name in [
        "encode_keep_buffer",
        "encode_max_depth",
        "decode_max_depth",
        "encode_number_precision",
        "encode_sparse_array",
        "decode_invalid_numbers",
        "encode_invalid_numbers",
    ] {
        t.raw_set(name, lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    }
    Ok(t)
}

fn escape(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

fn encode(v: &Value, out: &mut Vec<u8>, depth: usize) -> mlua::Result<()> {
    if depth > 1000 {
        return Err(rt("Cannot serialise, excessive nesting (1001)"));
    }
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(u) if u.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(n) => out.extend_from_slice(fmt_g14(*n as f64).as_bytes()),
        Value::Number(n) => {
            if n.is_nan() || n.is_infinite() {
                return Err(rt("Cannot serialise number: must not be NaN or Inf"));
            }
            out.extend_from_slice(fmt_g14(*n).as_bytes())
        }
        Value::String(s) => escape(&s.as_bytes(), out),
        Value::Table(t) => {
            // An array when every key is a positive integer and it is not excessively sparse
            // (lua-cjson: max index > 2 × count and > 10).
            let mut max = 0usize;
            let mut count = 0usize;
            let mut is_array = true;
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair?;
                count += 1;
                match k {
                    Value::Integer(i) if i >= 1 => max = max.max(i as usize),
                    Value::Number(f) if f >= 1.0 && f.fract() == 0.0 => max = max.max(f as usize),
                    _ => {
                        is_array = false;
                        break;
                    }
                }
            }
            if is_array && count > 0 && max > count * 2 && max > 10 {
                return Err(rt("Cannot serialise table: excessively sparse array"));
            }
            if is_array && count > 0 {
                out.push(b'[');
                for i in 1..=max {
                    if i > 1 {
                        out.push(b',');
                    }
                    encode(&t.raw_get::<Value>(i)?, out, depth + 1)?;
                }
                out.push(b']');
            } else {
                out.push(b'{');
                let mut first = true;
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    match &k {
                        Value::String(s) => escape(&s.as_bytes(), out),
                        Value::Integer(n) => escape(fmt_g14(*n as f64).as_bytes(), out),
                        Value::Number(n) => escape(fmt_g14(*n).as_bytes(), out),
                        _ => {
                            return Err(rt(
                                "Cannot serialise table: table key must be a number or string",
                            ));
                        }
                    }
                    out.push(b':');
                    encode(&v, out, depth + 1)?;
                }
                out.push(b'}');
            }
        }
        other => {
            return Err(rt(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            )));
        }
    }
    Ok(())
}

fn decode(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match v {
        serde_json::Value::Null => json_null(),
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, x) in a.iter().enumerate() {
                t.raw_set(i + 1, decode(lua, x)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(o) => {
            let t = lua.create_table_with_capacity(0, o.len())?;
            for (k, x) in o {
                t.raw_set(lua.create_string(k)?, decode(lua, x)?)?;
            }
            Value::Table(t)
        }
    })
}
