//! `cmsgpack` as Redis ships it (lua-cmsgpack): `pack(...)`, `unpack(s)`,
//! `unpack_one(s [, offset])` and `unpack_limit(s, limit [, offset])`, with its encoding
//! choices (smallest integer form, float32 when exact, arrays for 1..n tables, nil past 16
//! levels of nesting) so that packed bytes equal Redis's.

use mlua::{Lua, MultiValue, Table, Value};

use super::libs::located;

/// Tables nested deeper than this are packed as nil (lua-cmsgpack's `LUACMSGPACK_MAX_NESTING`).
const MAX_NESTING: usize = 16;
/// Values one unpack may return (Lua 5.1's C stack holds 8000).
const MAX_RESULTS: usize = 7990;
/// Nodes one pack may visit (a table referring to itself many times is walked again and
/// again, in Rust, where no hook can stop it).
const MAX_PACK_NODES: u64 = 1 << 22;
/// Unpacking deeper than this is refused (our stack, not a Lua error, would give out first;
/// `pack` never nests deeper than 17).
const MAX_UNPACK_DEPTH: usize = 64;

fn rt(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

/// The `cmsgpack` table.
///
/// # Errors
/// Lua ran out of memory.
pub fn cmsgpack(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
            if args.is_empty() {
                return Err(located(
                    lua,
                    rt("bad argument #0 to 'pack' (MessagePack pack needs input.)"),
                ));
            }
            let mut out = Vec::new();
            let mut budget = Budget {
                bytes: super::vm::LUA_MEMORY_LIMIT.saturating_sub(lua.used_memory()),
                nodes: MAX_PACK_NODES,
            };
            for v in args.iter() {
                encode(v, &mut out, 0, &mut budget).map_err(|e| located(lua, e))?;
            }
            lua.create_string(&out)
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, s: mlua::LuaString| {
            unpack_full(lua, &s.as_bytes(), 0, 0).map_err(|e| located(lua, e))
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, (s, offset): (mlua::LuaString, Option<i64>)| {
            unpack_full(lua, &s.as_bytes(), 1, offset.unwrap_or(0)).map_err(|e| located(lua, e))
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(
            |lua, (s, limit, offset): (mlua::LuaString, i64, Option<i64>)| {
                unpack_full(lua, &s.as_bytes(), limit, offset.unwrap_or(0))
                    .map_err(|e| located(lua, e))
            },
        )?,
    )?;
    for (k, v) in [
        ("_NAME", "cmsgpack"),
        ("_VERSION", "lua-cmsgpack 0.4.0"),
        ("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo"),
        ("_DESCRIPTION", "MessagePack C implementation for Lua"),
    ] {
        t.raw_set(k, v)?;
    }
    Ok(t)
}

/// lua-cmsgpack's `mp_unpack_full`: decodes up to `limit` objects from `offset`; with both
/// 0 (`unpack`) every object, else the next offset (-1 at the end) comes first.
fn unpack_full(lua: &Lua, data: &[u8], limit: i64, offset: i64) -> mlua::Result<MultiValue> {
    let len = data.len();
    if offset < 0 || limit < 0 {
        return Err(rt(format!(
            "Invalid request to unpack with offset of {offset} and limit of {len}."
        )));
    }
    if offset as u64 > len as u64 {
        return Err(rt(format!(
            "Start offset {offset} greater than input length {len}."
        )));
    }
    let decode_all = limit == 0 && offset == 0;
    let limit = if decode_all {
        usize::MAX
    } else {
        limit as usize
    };
    let mut cur = Cursor {
        data,
        pos: offset as usize,
    };
    let mut values = Vec::new();
    while cur.pos < len && values.len() < limit {
        if values.len() >= MAX_RESULTS {
            return Err(rt(
                "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
            ));
        }
        values.push(cur.value(lua, 0)?);
    }
    if !decode_all {
        let next = if cur.pos >= len { -1 } else { cur.pos as i64 };
        values.insert(0, Value::Integer(next));
    }
    Ok(MultiValue::from_vec(values))
}

/// What one `pack` may still produce: bytes (the Lua memory left) and nodes visited.
struct Budget {
    bytes: usize,
    nodes: u64,
}

fn is_int(n: f64) -> bool {
    n.is_finite() && n == n.trunc() && n >= i64::MIN as f64 && n < i64::MAX as f64
}

fn encode(v: &Value, out: &mut Vec<u8>, level: usize, budget: &mut Budget) -> mlua::Result<()> {
    budget.nodes = budget
        .nodes
        .checked_sub(1)
        .ok_or_else(|| rt("cmsgpack.pack: input too large"))?;
    if out.len() > budget.bytes {
        return Err(rt("not enough memory"));
    }
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => encode_int(*n, out),
        Value::Number(n) => {
            if is_int(*n) {
                encode_int(*n as i64, out);
            } else {
                encode_double(*n, out);
            }
        }
        Value::String(s) => encode_bytes(&s.as_bytes(), out),
        Value::Table(t) if level < MAX_NESTING => encode_table(t, out, level, budget)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

fn encode_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        let u = n as u64;
        if u <= 0x7f {
            out.push(u as u8);
        } else if u <= 0xff {
            out.extend_from_slice(&[0xcc, u as u8]);
        } else if u <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        } else if u <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_double(d: f64, out: &mut Vec<u8>) {
    let f = d as f32;
    if f as f64 == d {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&d.to_be_bytes());
    }
}

fn encode_bytes(s: &[u8], out: &mut Vec<u8>) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn encode_len(n: usize, fix: u8, b16: u8, b32: u8, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// A table whose keys are exactly 1..n packs as an array, any other as a map. Two walks,
/// as lua-cmsgpack: holding every pair at once would take a Lua reference each.
fn encode_table(
    t: &Table,
    out: &mut Vec<u8>,
    level: usize,
    budget: &mut Budget,
) -> mlua::Result<()> {
    let mut count = 0usize;
    let mut max = 0f64;
    let mut array = true;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        count += 1;
        let key = match &k {
            Value::Integer(i) => Some(*i as f64),
            Value::Number(n) => Some(*n),
            _ => None,
        };
        match key {
            Some(n) if n > 0.0 && n == n.trunc() => max = max.max(n),
            _ => array = false,
        }
    }
    if array && max == count as f64 {
        encode_len(count, 0x90, 0xdc, 0xdd, out);
        for i in 1..=count {
            let v: Value = t.raw_get(i)?;
            encode(&v, out, level + 1, budget)?;
        }
    } else {
        encode_len(count, 0x80, 0xde, 0xdf, out);
        for pair in t.clone().pairs::<Value, Value>() {
            let (k, v) = pair?;
            encode(&k, out, level + 1, budget)?;
            encode(&v, out, level + 1, budget)?;
        }
    }
    Ok(())
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

fn missing() -> mlua::Error {
    rt("Missing bytes in input.")
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> mlua::Result<&[u8]> {
        let end = self.pos.checked_add(n).ok_or_else(missing)?;
        let s = self.data.get(self.pos..end).ok_or_else(missing)?;
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> mlua::Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
    }

    fn value(&mut self, lua: &Lua, depth: usize) -> mlua::Result<Value> {
        if depth > MAX_UNPACK_DEPTH {
            return Err(rt("cmsgpack.unpack: nesting too deep"));
        }
        let tag = self.take(1)?[0];
        let num = |n: f64| Value::Number(n);
        Ok(match tag {
            0x00..=0x7f => Value::Integer(i64::from(tag)),
            0xe0..=0xff => Value::Integer(i64::from(tag as i8)),
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xcc => Value::Integer(self.uint(1)? as i64),
            0xcd => Value::Integer(self.uint(2)? as i64),
            0xce => Value::Integer(self.uint(4)? as i64),
            0xcf => num(self.uint(8)? as i64 as f64),
            0xd0 => Value::Integer(i64::from(self.uint(1)? as u8 as i8)),
            0xd1 => Value::Integer(i64::from(self.uint(2)? as u16 as i16)),
            0xd2 => Value::Integer(i64::from(self.uint(4)? as u32 as i32)),
            0xd3 => num(self.uint(8)? as i64 as f64),
            0xca => num(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => num(f64::from_bits(self.uint(8)?)),
            0xa0..=0xbf => self.string(lua, usize::from(tag & 0x1f))?,
            0xd9 => {
                let n = self.uint(1)? as usize;
                self.string(lua, n)?
            }
            0xda => {
                let n = self.uint(2)? as usize;
                self.string(lua, n)?
            }
            0xdb => {
                let n = self.uint(4)? as usize;
                self.string(lua, n)?
            }
            0x90..=0x9f => self.array(lua, usize::from(tag & 0x0f), depth)?,
            0xdc => {
                let n = self.uint(2)? as usize;
                self.array(lua, n, depth)?
            }
            0xdd => {
                let n = self.uint(4)? as usize;
                self.array(lua, n, depth)?
            }
            0x80..=0x8f => self.map(lua, usize::from(tag & 0x0f), depth)?,
            0xde => {
                let n = self.uint(2)? as usize;
                self.map(lua, n, depth)?
            }
            0xdf => {
                let n = self.uint(4)? as usize;
                self.map(lua, n, depth)?
            }
            _ => return Err(rt("Bad data format in input.")),
        })
    }

    fn string(&mut self, lua: &Lua, n: usize) -> mlua::Result<Value> {
        let s = self.take(n)?;
        Ok(Value::String(lua.create_string(s)?))
    }

    fn array(&mut self, lua: &Lua, n: usize, depth: usize) -> mlua::Result<Value> {
        // Sized by what the input can hold: a huge length is not a huge allocation, and the
        // decoding meets the real error (missing bytes, bad format) as Redis does.
        let t = lua.create_table_with_capacity(n.min(self.data.len() - self.pos), 0)?;
        for i in 1..=n {
            let v = self.value(lua, depth + 1)?;
            t.raw_set(i, v)?;
        }
        Ok(Value::Table(t))
    }

    fn map(&mut self, lua: &Lua, n: usize, depth: usize) -> mlua::Result<Value> {
        let t = lua.create_table_with_capacity(0, n.min((self.data.len() - self.pos) / 2))?;
        for _ in 0..n {
            let k = self.value(lua, depth + 1)?;
            let v = self.value(lua, depth + 1)?;
            if matches!(k, Value::Nil) {
                return Err(rt("table index is nil"));
            }
            t.raw_set(k, v)?;
        }
        Ok(Value::Table(t))
    }
}
