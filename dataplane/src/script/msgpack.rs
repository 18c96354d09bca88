//! `cmsgpack` as Redis ships it (lua-cmsgpack): `pack(...)`, `unpack(s)`,
//! `unpack_one(s [, offset])` and `unpack_limit(s, limit [, offset])`, with its encoding
//! choices (smallest integer form, float32 when exact, arrays for 1..n tables, nil past 16
//! levels of nesting) so that packed bytes equal Redis's.

use mlua::{Lua, MultiValue, Table, Value};

use super::libs::located;

/// Tables nested deeper than this are packed as nil (lua-cmsgpack's `LUACMSGPACK_MAX_NESTING`).
const MAX_NESTING: usize = 16;
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
            for v in args.iter() {
                encode(v, &mut out, 0).map_err(|e| located(lua, e))?;
            }
            lua.create_string(&out)
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, s: mlua::LuaString| {
            let (_, values) = unpack(lua, &s.as_bytes(), 0, 0).map_err(|e| located(lua, e))?;
            Ok(MultiValue::from_vec(values))
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, (s, offset): (mlua::LuaString, Option<i64>)| {
            unpack_with_offset(lua, &s.as_bytes(), 1, offset.unwrap_or(0))
                .map_err(|e| located(lua, e))
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(
            |lua, (s, limit, offset): (mlua::LuaString, i64, Option<i64>)| {
                unpack_with_offset(
                    lua,
                    &s.as_bytes(),
                    limit.max(0) as usize,
                    offset.unwrap_or(0),
                )
                .map_err(|e| located(lua, e))
            },
        )?,
    )?;
    Ok(t)
}

/// `unpack_one` / `unpack_limit`: the offset after what was read (-1 at the end), then the
/// values.
fn unpack_with_offset(
    lua: &Lua,
    data: &[u8],
    limit: usize,
    offset: i64,
) -> mlua::Result<MultiValue> {
    if offset < 0 {
        return Err(rt(format!(
            "Start offset {offset} greater than input length {}.",
            data.len()
        )));
    }
    let (end, mut values) = unpack(lua, data, offset as usize, limit)?;
    let next = if end >= data.len() { -1 } else { end as i64 };
    values.insert(0, Value::Integer(next));
    Ok(MultiValue::from_vec(values))
}

/// Decodes up to `limit` objects (0: all) from `data[offset..]`; returns where it stopped.
fn unpack(
    lua: &Lua,
    data: &[u8],
    offset: usize,
    limit: usize,
) -> mlua::Result<(usize, Vec<Value>)> {
    if offset > data.len() {
        return Err(rt(format!(
            "Start offset {offset} greater than input length {}.",
            data.len()
        )));
    }
    let mut cur = Cursor { data, pos: offset };
    let mut values = Vec::new();
    while cur.pos < data.len() && (limit == 0 || values.len() < limit) {
        values.push(cur.value(lua, 0)?);
    }
    Ok((cur.pos, values))
}

fn is_int(n: f64) -> bool {
    n.is_finite() && n == n.trunc() && n >= i64::MIN as f64 && n < i64::MAX as f64
}

fn encode(v: &Value, out: &mut Vec<u8>, level: usize) -> mlua::Result<()> {
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
        Value::Table(t) if level < MAX_NESTING => encode_table(t, out, level)?,
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

/// A table whose keys are exactly 1..n packs as an array, any other as a map.
fn encode_table(t: &Table, out: &mut Vec<u8>, level: usize) -> mlua::Result<()> {
    let mut pairs = Vec::new();
    let mut max = 0f64;
    let mut array = true;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, v) = pair?;
        let key = match &k {
            Value::Integer(i) => Some(*i as f64),
            Value::Number(n) => Some(*n),
            _ => None,
        };
        match key {
            Some(n) if n > 0.0 && n == n.trunc() => max = max.max(n),
            _ => array = false,
        }
        pairs.push((k, v));
    }
    if array && max == pairs.len() as f64 {
        encode_len(pairs.len(), 0x90, 0xdc, 0xdd, out);
        for i in 1..=pairs.len() {
            let v: Value = t.raw_get(i)?;
            encode(&v, out, level + 1)?;
        }
    } else {
        encode_len(pairs.len(), 0x80, 0xde, 0xdf, out);
        for (k, v) in &pairs {
            encode(k, out, level + 1)?;
            encode(v, out, level + 1)?;
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
            return Err(rt("ERR cmsgpack.unpack: nesting too deep"));
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
            0xcf => num(self.uint(8)? as f64),
            0xd0 => Value::Integer(i64::from(self.uint(1)? as u8 as i8)),
            0xd1 => Value::Integer(i64::from(self.uint(2)? as u16 as i16)),
            0xd2 => Value::Integer(i64::from(self.uint(4)? as u32 as i32)),
            0xd3 => num(self.uint(8)? as i64 as f64),
            0xca => num(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => num(f64::from_bits(self.uint(8)?)),
            0xa0..=0xbf => self.string(lua, usize::from(tag & 0x1f))?,
            0xd9 | 0xc4 => {
                let n = self.uint(1)? as usize;
                self.string(lua, n)?
            }
            0xda | 0xc5 => {
                let n = self.uint(2)? as usize;
                self.string(lua, n)?
            }
            0xdb | 0xc6 => {
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
        // Each element takes at least one byte: a length past the input is missing bytes,
        // not a huge table to allocate.
        if n > self.data.len() - self.pos {
            return Err(missing());
        }
        let t = lua.create_table_with_capacity(n, 0)?;
        for i in 1..=n {
            let v = self.value(lua, depth + 1)?;
            t.raw_set(i, v)?;
        }
        Ok(Value::Table(t))
    }

    fn map(&mut self, lua: &Lua, n: usize, depth: usize) -> mlua::Result<Value> {
        if n > (self.data.len() - self.pos) / 2 {
            return Err(missing());
        }
        let t = lua.create_table_with_capacity(0, n)?;
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
