//! Bit commands over string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD.
//!
//! Bit 0 is the most significant bit of the first byte, as in Redis.

use super::flags::*;
use super::string::{bytes_mut, peek_str, take_vec};
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, eq_ic, spec};
use crate::store::{Db, SmallBytes, Value};
use crate::util::number::parse_i64;

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("setbit", 4, WRITE | DENYOOM, (1, 1, 1), setbit),
    spec("getbit", 3, READONLY | FAST, (1, 1, 1), getbit),
    spec("bitcount", -2, READONLY, (1, 1, 1), bitcount),
    spec("bitpos", -3, READONLY, (1, 1, 1), bitpos),
    spec("bitop", -4, WRITE | DENYOOM, (2, -1, 1), bitop),
    spec("bitfield", -2, WRITE | DENYOOM, (1, 1, 1), bitfield),
    spec("bitfield_ro", -2, READONLY | FAST, (1, 1, 1), bitfield_ro),
];

const OFFSET_ERR: &str = "bit offset is not an integer or out of range";

/// Parses a bit offset. With `hash`, `#n` means `n * bits` (BITFIELD). Offsets whose byte
/// would lie past `proto-max-bulk-len` are refused.
fn bit_offset(ctx: &Ctx<'_>, arg: &[u8], hash: bool, bits: i64) -> Result<u64, CmdError> {
    let use_hash = hash && arg.len() > 1 && arg[0] == b'#';
    let digits = if use_hash { &arg[1..] } else { arg };
    let mut v = parse_i64(digits).ok_or_else(|| CmdError::err(OFFSET_ERR))?;
    if use_hash {
        v = v.wrapping_mul(bits);
    }
    if v < 0 || (v >> 3) as u64 >= ctx.store.config.proto_max_bulk_len {
        return Err(CmdError::err(OFFSET_ERR));
    }
    Ok(v as u64)
}

/// The string at `key`, created or zero-padded to at least `min_len` bytes, for writing.
fn grow_str<'a>(
    db: &'a mut Db,
    key: &[u8],
    now: u64,
    min_len: usize,
) -> Result<&'a mut SmallBytes, CmdError> {
    if peek_str(db, key, now)?.is_none() {
        db.set(key, Value::Str(SmallBytes::from_vec(vec![0; min_len])));
    }
    match db.get_mut(key, now) {
        Some(Value::Str(s)) => {
            if s.len() < min_len {
                let mut v = take_vec(s, min_len - s.len());
                v.resize(min_len, 0);
                *s = SmallBytes::from_vec(v);
            }
            Ok(s)
        }
        _ => Err(CmdError::WrongType),
    }
}

fn bit_at(s: &[u8], off: u64) -> u8 {
    let byte = (off >> 3) as usize;
    s.get(byte).map_or(0, |b| (b >> (7 - (off & 7))) & 1)
}

fn setbit(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let off = bit_offset(ctx, args[2], false, 0)?;
    let on = match parse_i64(args[3]) {
        Some(v @ (0 | 1)) => v as u8,
        _ => return Err(CmdError::err("bit is not an integer or out of range")),
    };
    let now = ctx.now_ms;
    let byte = (off >> 3) as usize;
    let s = bytes_mut(grow_str(ctx.db(), args[1], now, byte + 1)?);
    let shift = 7 - (off & 7);
    let old = (s[byte] >> shift) & 1;
    s[byte] = (s[byte] & !(1 << shift)) | (on << shift);
    ctx.dirty(1);
    ctx.out.int(old as i64);
    Ok(())
}

fn getbit(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let off = bit_offset(ctx, args[2], false, 0)?;
    let now = ctx.now_ms;
    let bit = match ctx.db().get(args[1], now) {
        None => 0,
        Some(Value::Str(s)) => bit_at(s, off),
        Some(_) => return Err(CmdError::WrongType),
    };
    ctx.out.int(bit as i64);
    Ok(())
}

/// A resolved BITCOUNT/BITPOS range: whole bytes `start..=end`, plus masks of the bits of
/// the first and last byte that lie outside a BIT-unit range.
struct ByteRange {
    start: usize,
    end: usize,
    first_mask: u8,
    last_mask: u8,
}

/// Parses the optional `BYTE|BIT` unit argument.
fn unit_is_bit(a: &[u8]) -> Result<bool, CmdError> {
    if eq_ic(a, "bit") {
        Ok(true)
    } else if eq_ic(a, "byte") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// Clamps `start..=end` (negative: from the end) over `len` bytes, in bits when `bit`.
fn byte_range(mut start: i64, mut end: i64, len: usize, bit: bool) -> Option<ByteRange> {
    let total = if bit { (len as i64) << 3 } else { len as i64 };
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0).min(total - 1);
    if start > end {
        return None;
    }
    if bit {
        Some(ByteRange {
            start: (start >> 3) as usize,
            end: (end >> 3) as usize,
            first_mask: !(0xffu8 >> (start & 7)),
            last_mask: ((1u16 << (7 - (end & 7))) - 1) as u8,
        })
    } else {
        Some(ByteRange {
            start: start as usize,
            end: end as usize,
            first_mask: 0,
            last_mask: 0,
        })
    }
}

fn popcount(s: &[u8]) -> u64 {
    let mut chunks = s.chunks_exact(8);
    let mut n: u64 = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        n += u64::from_ne_bytes(w).count_ones() as u64;
    }
    n + chunks
        .remainder()
        .iter()
        .map(|b| b.count_ones() as u64)
        .sum::<u64>()
}

fn bitcount(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    // A missing key counts 0 whatever the other arguments.
    let Some(s) = super::string::read_str(db, args[1], now)? else {
        out.int(0);
        return Ok(());
    };
    let range = match args.len() {
        2 => byte_range(0, -1, s.len(), false),
        4 | 5 => {
            let start = arg_i64(args[2])?;
            let end = arg_i64(args[3])?;
            let bit = match args.get(4) {
                Some(u) => unit_is_bit(u)?,
                None => false,
            };
            if start < 0 && end < 0 && start > end {
                None
            } else {
                byte_range(start, end, s.len(), bit)
            }
        }
        _ => return Err(CmdError::Syntax),
    };
    let n = match range {
        None => 0,
        Some(r) => {
            popcount(&s[r.start..=r.end])
                - (s[r.start] & r.first_mask).count_ones() as u64
                - (s[r.end] & r.last_mask).count_ones() as u64
        }
    };
    out.int(n as i64);
    Ok(())
}

/// Position of the first bit equal to `bit` in `s` (first/last byte masked as `r` says);
/// when none: -1 for 1, and the bit just past the range for 0.
fn find_bit(s: &[u8], r: &ByteRange, bit: bool) -> i64 {
    let last = r.end - r.start;
    for (i, &b) in s[r.start..=r.end].iter().enumerate() {
        let mut b = b;
        let mut mask = 0;
        if i == 0 {
            mask |= r.first_mask;
        }
        if i == last {
            mask |= r.last_mask;
        }
        // Bits outside the range must not match: force them to the opposite value.
        b = if bit { b & !mask } else { b | mask };
        let b = if bit { b } else { !b };
        if b != 0 {
            return (i as i64) * 8 + b.leading_zeros() as i64;
        }
    }
    if bit { -1 } else { (last as i64 + 1) * 8 }
}

fn bitpos(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let bit = arg_i64(args[2])?;
    if bit != 0 && bit != 1 {
        return Err(CmdError::err("The bit argument must be 1 or 0."));
    }
    let bit = bit == 1;
    let now = ctx.now_ms;
    let (db, out) = ctx.db_out();
    let Some(s) = super::string::read_str(db, args[1], now)? else {
        out.int(if bit { -1 } else { 0 });
        return Ok(());
    };
    let mut end_given = false;
    let range = match args.len() {
        3 => byte_range(0, -1, s.len(), false),
        4..=6 => {
            let start = arg_i64(args[3])?;
            let unit_bit = match args.get(5) {
                Some(u) => unit_is_bit(u)?,
                None => false,
            };
            let end = match args.get(4) {
                Some(e) => {
                    end_given = true;
                    arg_i64(e)?
                }
                None => -1,
            };
            byte_range(start, end, s.len(), unit_bit)
        }
        _ => return Err(CmdError::Syntax),
    };
    let Some(r) = range else {
        out.int(-1);
        return Ok(());
    };
    let pos = find_bit(s, &r, bit);
    let bytes = (r.end - r.start + 1) as i64;
    if end_given && !bit && pos == bytes * 8 {
        // No clear bit inside an explicit range: the padding past its end does not count.
        out.int(-1);
    } else if pos == -1 {
        out.int(-1);
    } else {
        out.int(pos + (r.start as i64) * 8);
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

fn bitop(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let op = if eq_ic(args[1], "and") {
        BitOp::And
    } else if eq_ic(args[1], "or") {
        BitOp::Or
    } else if eq_ic(args[1], "xor") {
        BitOp::Xor
    } else if eq_ic(args[1], "not") {
        BitOp::Not
    } else {
        return Err(CmdError::Syntax);
    };
    if op == BitOp::Not && args.len() != 4 {
        return Err(CmdError::err(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    let now = ctx.now_ms;
    let db = ctx.db();
    // Type-check every source first; then compute from the values in place.
    let mut max_len = 0;
    for k in &args[3..] {
        match db.get(k, now) {
            None => {}
            Some(Value::Str(s)) => max_len = max_len.max(s.len()),
            Some(_) => return Err(CmdError::WrongType),
        }
    }
    let dest = args[2];
    if max_len == 0 {
        if db.delete(dest, now) {
            ctx.dirty(1);
        }
        ctx.out.int(0);
        return Ok(());
    }
    let mut res = vec![0u8; max_len];
    for (i, k) in args[3..].iter().enumerate() {
        let src: &[u8] = match db.peek(k, now).map(|e| &e.value) {
            Some(Value::Str(s)) => s,
            _ => b"",
        };
        if i == 0 {
            res[..src.len()].copy_from_slice(src);
            if op == BitOp::Not {
                res.iter_mut().for_each(|b| *b = !*b);
            }
            continue;
        }
        // Missing bytes of a shorter source count as zero.
        match op {
            BitOp::And => {
                for (j, b) in res.iter_mut().enumerate() {
                    *b &= src.get(j).copied().unwrap_or(0);
                }
            }
            BitOp::Or => res.iter_mut().zip(src).for_each(|(b, s)| *b |= s),
            BitOp::Xor => res.iter_mut().zip(src).for_each(|(b, s)| *b ^= s),
            BitOp::Not => {}
        }
    }
    db.set(dest, Value::Str(SmallBytes::from_vec(res)));
    ctx.dirty(1);
    ctx.out.int(max_len as i64);
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldOp {
    Get,
    Set,
    IncrBy,
}

struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    value: i64,
    overflow: Overflow,
}

/// Parses a BITFIELD type (`i1`..`i64`, `u1`..`u63`).
fn field_type(a: &[u8]) -> Result<(bool, u32), CmdError> {
    let err = || {
        CmdError::err(
            "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
        )
    };
    // Redis reads the type as a C string: it ends at the first NUL byte.
    let a = &a[..a.iter().position(|&c| c == 0).unwrap_or(a.len())];
    let signed = match a.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(err()),
    };
    match parse_i64(&a[1..]) {
        Some(n) if n >= 1 && n <= if signed { 64 } else { 63 } => Ok((signed, n as u32)),
        _ => Err(err()),
    }
}

fn read_field(s: &[u8], offset: u64, bits: u32, signed: bool) -> i64 {
    let mut v: u64 = 0;
    for i in 0..bits as u64 {
        v = v << 1 | bit_at(s, offset + i) as u64;
    }
    if signed && bits < 64 && v >> (bits - 1) & 1 == 1 {
        v |= u64::MAX << bits; // sign-extend
    }
    v as i64
}

fn write_field(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let bit = (value >> (bits as u64 - 1 - i)) & 1;
        let pos = offset + i;
        let byte = (pos >> 3) as usize;
        let shift = 7 - (pos & 7);
        s[byte] = (s[byte] & !(1 << shift)) | ((bit as u8) << shift);
    }
}

/// The value to store for `want` in a field of `bits` under the overflow policy, or None
/// when it does not fit and the policy is FAIL. `sat_up` forces saturation to the maximum
/// (see the signed SET case in [`bitfield_generic`]).
fn fit(want: i128, signed: bool, bits: u32, ow: Overflow, sat_up: bool) -> Option<i64> {
    let (min, max) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    if (min..=max).contains(&want) {
        return Some(want as i64);
    }
    match ow {
        Overflow::Fail => None,
        Overflow::Sat => Some(if want > max || sat_up { max } else { min } as i64),
        Overflow::Wrap => {
            let m = 1i128 << bits;
            let r = want.rem_euclid(m);
            Some(if r > max { r - m } else { r } as i64)
        }
    }
}

fn bitfield(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    bitfield_generic(ctx, args, false)
}

fn bitfield_ro(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    bitfield_generic(ctx, args, true)
}

fn bitfield_generic(ctx: &mut Ctx<'_>, args: &[&[u8]], ro_cmd: bool) -> CmdResult {
    let mut ops: Vec<Field> = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut writes = false;
    let mut highest: u64 = 0; // last bit written + 1
    let mut j = 2;
    while j < args.len() {
        let rem = args.len() - j - 1;
        let sub = args[j];
        let op = if eq_ic(sub, "get") && rem >= 2 {
            FieldOp::Get
        } else if eq_ic(sub, "set") && rem >= 3 {
            FieldOp::Set
        } else if eq_ic(sub, "incrby") && rem >= 3 {
            FieldOp::IncrBy
        } else if eq_ic(sub, "overflow") && rem >= 1 {
            let t = args[j + 1];
            overflow = if eq_ic(t, "wrap") {
                Overflow::Wrap
            } else if eq_ic(t, "sat") {
                Overflow::Sat
            } else if eq_ic(t, "fail") {
                Overflow::Fail
            } else {
                return Err(CmdError::err("Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(CmdError::Syntax);
        };
        let (signed, bits) = field_type(args[j + 1])?;
        let offset = bit_offset(ctx, args[j + 2], true, bits as i64)?;
        let mut value = 0;
        if op != FieldOp::Get {
            value = arg_i64(args[j + 3])?;
            writes = true;
            highest = highest.max(offset + bits as u64);
        }
        ops.push(Field {
            op,
            signed,
            bits,
            offset,
            value,
            overflow,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    let now = ctx.now_ms;
    if !writes {
        let (db, out) = ctx.db_out();
        let s = super::string::read_str(db, args[1], now)?.unwrap_or(b"");
        out.array(ops.len());
        for f in &ops {
            out.int(read_field(s, f.offset, f.bits, f.signed));
        }
        return Ok(());
    }
    if ro_cmd {
        return Err(CmdError::err(
            "BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let min_len = highest.div_ceil(8) as usize;
    let (db, out) = ctx.db_out();
    let s = bytes_mut(grow_str(db, args[1], now, min_len)?);
    out.array(ops.len());
    for f in &ops {
        let old = read_field(s, f.offset, f.bits, f.signed);
        // Unsigned fields read back below 2^63, so `old` is exact either way; an unsigned
        // SET takes its argument as a u64, as Redis does (so -1 overflows upwards).
        let old_exact = old as i128;
        let want = match f.op {
            FieldOp::Get => {
                out.int(old);
                continue;
            }
            FieldOp::Set if f.signed => f.value as i128,
            FieldOp::Set => f.value as u64 as i128,
            FieldOp::IncrBy => old_exact + f.value as i128,
        };
        // Redis decides the direction of a signed SET overflow from `max - value` computed
        // in 64 bits: for very negative values that wraps, and SAT then picks the maximum.
        let sat_up = f.op == FieldOp::Set
            && f.signed
            && f.bits < 64
            && ((1i64 << (f.bits - 1)) - 1).checked_sub(f.value).is_none();
        match fit(want, f.signed, f.bits, f.overflow, sat_up) {
            None => out.null(),
            Some(new) => {
                write_field(s, f.offset, f.bits, new as u64);
                out.int(if f.op == FieldOp::Set { old } else { new });
            }
        }
    }
    ctx.dirty(1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut s = vec![0u8; 4];
        write_field(&mut s, 3, 8, 0xab);
        assert_eq!(read_field(&s, 3, 8, false), 0xab);
        assert_eq!(read_field(&s, 3, 8, true), 0xab_u8 as i8 as i64);
        assert_eq!(fit(300, false, 8, Overflow::Wrap, false), Some(44));
        assert_eq!(fit(300, false, 8, Overflow::Sat, false), Some(255));
        assert_eq!(fit(-129, true, 8, Overflow::Wrap, false), Some(127));
        assert_eq!(fit(-129, true, 8, Overflow::Fail, false), None);
    }
}
