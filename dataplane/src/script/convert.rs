//! Lua values to replies, as Redis 7 converts them (`luaReplyToRedisReply`); replies to Lua
//! values are in `rawcall` (`redisProtocolToLuaType`).

use mlua::{Table, Value};

use crate::resp::reply::Out;

/// Deepest reply nesting converted (Redis stops at Lua's stack limit; a reply nested deeper
/// than this becomes an error, never a crash).
const MAX_DEPTH: usize = 1000;

/// A Lua number returned by a script: truncated, as C's `(long long)` cast does on x86-64
/// (NaN and values out of range give the minimum, as Redis replies).
fn number_reply(n: f64) -> i64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_63..TWO_63).contains(&n) {
        n as i64
    } else {
        i64::MIN
    }
}

/// A Lua number as a command argument: C's `%.17g`, as Redis 7.0 formats it.
pub fn number_arg(n: f64) -> Vec<u8> {
    super::libs::fmt_g(n, 17).into_bytes()
}

/// A table's string field, if it has one.
fn str_field(t: &Table, name: &str) -> Option<mlua::LuaString> {
    match t.raw_get::<Value>(name) {
        Ok(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Writes the reply for a script's return value `v` (Redis's `luaReplyToRedisReply`).
/// `resp3` is the calling client's protocol.
pub fn lua_to_reply(out: &mut Out, v: &Value, depth: usize, script_resp3: bool) {
    if depth > MAX_DEPTH {
        out.error("ERR reached lua stack limit");
        return;
    }
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(b) => {
            // Booleans follow the script's protocol (`redis.setresp`), as in Redis 7.0: a
            // RESP3 script's boolean is a RESP3 boolean, or 1/0 for a RESP2 client.
            if script_resp3 {
                if out.resp3 {
                    out.boolean(*b);
                } else {
                    out.int(i64::from(*b));
                }
            } else if *b {
                out.int(1);
            } else {
                out.null();
            }
        }
        Value::Integer(n) => out.int(*n),
        Value::Number(n) => out.int(number_reply(*n)),
        Value::Table(t) => table_to_reply(out, t, depth, script_resp3),
        Value::Error(e) => out.error(&error_text(e)),
        _ => out.null(),
    }
}

fn table_to_reply(out: &mut Out, t: &Table, depth: usize, script_resp3: bool) {
    if let Some(e) = str_field(t, "err") {
        let text = String::from_utf8_lossy(&e.as_bytes()).into_owned();
        out.error(&text);
        return;
    }
    if let Some(s) = str_field(t, "ok") {
        let text = String::from_utf8_lossy(&s.as_bytes()).into_owned();
        out.simple(&text.replace(['\r', '\n'], " "));
        return;
    }
    match t.raw_get::<Value>("double") {
        Ok(Value::Number(d)) => {
            out.double(d);
            return;
        }
        Ok(Value::Integer(d)) => {
            out.double(d as f64);
            return;
        }
        _ => {}
    }
    if let Some(s) = str_field(t, "big_number") {
        let b = s.as_bytes();
        if out.resp3 {
            out.raw(b"(");
            out.raw(&b);
            out.raw(b"\r\n");
        } else {
            out.bulk(&b);
        }
        return;
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
        let pairs: Vec<(Value, Value)> = m.pairs::<Value, Value>().filter_map(|r| r.ok()).collect();
        out.map(pairs.len());
        for (k, v) in &pairs {
            lua_to_reply(out, k, depth + 1, script_resp3);
            lua_to_reply(out, v, depth + 1, script_resp3);
        }
        return;
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("set") {
        let keys: Vec<Value> = m
            .pairs::<Value, Value>()
            .filter_map(|r| r.ok().map(|(k, _)| k))
            .collect();
        out.set(keys.len());
        for k in &keys {
            lua_to_reply(out, k, depth + 1, script_resp3);
        }
        return;
    }
    if let Ok(Value::Table(vt)) = t.raw_get::<Value>("verbatim_string")
        && let (Some(fmt), Some(s)) = (str_field(&vt, "format"), str_field(&vt, "string"))
    {
        let (fmt, s) = (fmt.as_bytes(), s.as_bytes());
        if out.resp3 && fmt.len() == 3 {
            out.raw(format!("={}\r\n", s.len() + 4).as_bytes());
            out.raw(&fmt);
            out.raw(b":");
            out.raw(&s);
            out.raw(b"\r\n");
        } else {
            out.bulk(&s);
        }
        return;
    }
    let mut items = Vec::new();
    let mut j = 1usize;
    loop {
        match t.raw_get::<Value>(j) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(v),
        }
        j += 1;
    }
    out.array(items.len());
    for v in &items {
        lua_to_reply(out, v, depth + 1, script_resp3);
    }
}

/// The text of an error raised from Rust code run by Lua (the cause under mlua's wrappers),
/// as Redis's error code + message.
pub fn error_text(e: &mlua::Error) -> String {
    let mut e = e;
    while let mlua::Error::CallbackError { cause, .. } = e {
        e = cause;
    }
    match e {
        mlua::Error::RuntimeError(s) => normalize_error(s),
        mlua::Error::MemoryError(_) => "ERR Out of memory".into(),
        other => normalize_error(&other.to_string()),
    }
}

/// Redis's `luaPushError` normalisation: `-CODE msg` → `CODE msg`; a bare message gets `ERR`;
/// trailing newlines go.
pub fn normalize_error(s: &str) -> String {
    let s = s.trim_end_matches(['\r', '\n']);
    if let Some(rest) = s.strip_prefix('-') {
        match rest.split_once(' ') {
            Some((code, msg)) => format!("{code} {}", msg.trim_end_matches(['\r', '\n'])),
            None => format!("ERR {rest}"),
        }
    } else if starts_with_code(s) {
        s.to_string()
    } else {
        format!("ERR {s}")
    }
}

/// Our own raised texts already carry a code (`ERR ...`, `WRONGTYPE ...`): an all-caps first
/// word followed by a space.
fn starts_with_code(s: &str) -> bool {
    match s.split_once(' ') {
        Some((w, _)) => !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase()),
        None => false,
    }
}
