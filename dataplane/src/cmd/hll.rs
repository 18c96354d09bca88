//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST.
//!
//! An HLL is a plain string value in Redis's exact layout, so `GET` returns the same bytes as
//! Redis and a payload taken from Redis with `GET` can be `SET` here (and back):
//!
//! - a 16-byte header: `"HYLL"`, the encoding byte (0 dense, 1 sparse), 3 unused bytes, and the
//!   cached cardinality as a little-endian u64 whose top bit (bit 7 of byte 15) set means
//!   "stale, recompute";
//! - dense: 16384 registers of 6 bits packed LSB first (12288 bytes);
//! - sparse: run-length opcodes, `00xxxxxx` = 1..64 zero registers, `01xxxxxx yyyyyyyy` =
//!   1..16384 zero registers, `1vvvvvll` = 1..4 registers holding 1..32.
//!
//! A new HLL is sparse; it becomes dense when a register needs a value above 32 or when the
//! sparse form would grow past `hll-sparse-max-bytes` (3000). The byte layout after each update
//! follows the splitting and merging rules Redis applies, which is what makes `GET` identical.
//! The estimate is the one of Ertl's "New cardinality estimation algorithms for HyperLogLog
//! sketches" as Redis 7 computes it, in the same floating point order.

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, eq_ic, spec};
use crate::store::{SmallBytes, Value};

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("pfadd", -2, WRITE | DENYOOM | FAST, (1, 1, 1), pfadd),
    spec("pfcount", -2, READONLY, (1, -1, 1), pfcount),
    spec("pfmerge", -2, WRITE | DENYOOM, (1, -1, 1), pfmerge),
    spec("pfdebug", 3, WRITE | DENYOOM | ADMIN, (2, 2, 1), pfdebug),
    spec("pfselftest", 1, ADMIN, (0, 0, 0), pfselftest),
];

/// Bits of the hash that select a register.
const P: u32 = 14;
/// Number of registers.
pub const REGISTERS: usize = 1 << P;
/// Bits of the hash left to count leading zeroes in.
const Q: u32 = 64 - P;
/// Header length.
const HDR: usize = 16;
/// Length of a dense HLL: header plus 16384 six-bit registers.
pub const DENSE_SIZE: usize = HDR + (REGISTERS * 6).div_ceil(8);
/// Encoding byte values.
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
/// Largest value a sparse VAL opcode holds, and its longest run.
const SPARSE_VAL_MAX: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
/// Longest run of a one-byte ZERO opcode.
const SPARSE_ZERO_MAX_LEN: usize = 64;
/// Redis's default `hll-sparse-max-bytes`.
const SPARSE_MAX_BYTES: usize = 3000;
/// The seed Redis hashes elements with.
const SEED: u64 = 0xadc8_3b19;

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

/// A sparse HLL whose opcodes do not describe exactly 16384 registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

fn corrupt_err(_: Corrupt) -> CmdError {
    CmdError::Msg(CORRUPT.into())
}

/// MurmurHash64A (Austin Appleby), reading 8-byte blocks little-endian as Redis does.
pub fn murmurhash64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for b in &mut blocks {
        let mut k = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element falls in and the value it proposes for it: the position of the
/// first set bit in the remaining 50 hash bits, counting from 1 (51 when all are zero).
pub fn pat_len(ele: &[u8]) -> (usize, u8) {
    let hash = murmurhash64a(ele, SEED);
    let index = (hash as usize) & (REGISTERS - 1);
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

// ---------------------------------------------------------------------------------------------
// Header

/// A new, empty HLL: sparse, one XZERO opcode covering every register, cached count 0.
fn new_hll() -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(b"HYLL");
    v.push(SPARSE);
    v.extend_from_slice(&[0; 11]);
    push_zero_run(&mut v, REGISTERS);
    v
}

fn invalidate_cache(hll: &mut [u8]) {
    hll[15] |= 0x80;
}

fn cache_valid(hll: &[u8]) -> bool {
    hll[15] & 0x80 == 0
}

fn encoding(hll: &[u8]) -> u8 {
    hll[4]
}

/// Checks a value is an HLL string as Redis does (magic, known encoding, dense size) and
/// returns its bytes.
fn as_hll(v: &Value) -> Result<&[u8], CmdError> {
    let Value::Str(s) = v else {
        return Err(CmdError::WrongType);
    };
    let b: &[u8] = s;
    if b.len() < HDR
        || &b[..4] != b"HYLL"
        || b[4] > SPARSE
        || (b[4] == DENSE && b.len() != DENSE_SIZE)
    {
        return Err(CmdError::Msg(NOT_HLL.into()));
    }
    Ok(b)
}

// ---------------------------------------------------------------------------------------------
// Dense registers

/// Reads register `i` of a dense register area. Redis may read one byte past the area for
/// the last register (its string's terminator, always 0); that byte counts as 0 here.
#[inline]
fn dense_get(regs: &[u8], i: usize) -> u8 {
    let bit = i * 6;
    let (byte, fb) = (bit / 8, (bit & 7) as u32);
    let b0 = regs[byte] as u32;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & 63) as u8
}

/// Writes register `i` of a dense register area.
#[inline]
fn dense_put(regs: &mut [u8], i: usize, val: u8) {
    let bit = i * 6;
    let (byte, fb) = (bit / 8, (bit & 7) as u32);
    let v = val as u32 & 63;
    regs[byte] = ((regs[byte] as u32 & !(63u32 << fb)) | (v << fb)) as u8;
    if let Some(b1) = regs.get_mut(byte + 1) {
        let fb8 = 8 - fb;
        *b1 = ((*b1 as u32 & !(63u32 >> fb8)) | (v >> fb8)) as u8;
    }
}

/// Raises register `i` to `val`; true if it changed.
#[inline]
fn dense_raise(regs: &mut [u8], i: usize, val: u8) -> bool {
    if val > dense_get(regs, i) {
        dense_put(regs, i, val);
        true
    } else {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// Sparse opcodes

/// One decoded sparse opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `len` zero registers, in a one-byte (ZERO) or two-byte (XZERO) opcode.
    Zero { len: usize, xzero: bool },
    /// `len` registers holding `val`.
    Val { val: u8, len: usize },
}

impl Op {
    fn bytes(self) -> usize {
        match self {
            Op::Zero { xzero: true, .. } => 2,
            _ => 1,
        }
    }

    fn len(self) -> usize {
        match self {
            Op::Zero { len, .. } | Op::Val { len, .. } => len,
        }
    }
}

/// Decodes the opcode at `p`. An XZERO cut short by the end of the string reads its second
/// byte as 0, as Redis reads the string's terminator.
#[inline]
fn op_at(s: &[u8], p: usize) -> Op {
    let b = s[p];
    if b & 0x80 != 0 {
        Op::Val {
            val: ((b >> 2) & 0x1f) + 1,
            len: (b & 3) as usize + 1,
        }
    } else if b & 0x40 != 0 {
        let lo = s.get(p + 1).copied().unwrap_or(0) as usize;
        Op::Zero {
            len: ((((b & 0x3f) as usize) << 8) | lo) + 1,
            xzero: true,
        }
    } else {
        Op::Zero {
            len: (b & 0x3f) as usize + 1,
            xzero: false,
        }
    }
}

fn val_byte(val: u8, len: usize) -> u8 {
    0x80 | ((val - 1) << 2) | (len - 1) as u8
}

/// Appends the opcode for a run of `len` (1..=16384) zero registers: ZERO when it fits.
fn push_zero_run(out: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        let l = len - 1;
        out.push(0x40 | (l >> 8) as u8);
        out.push((l & 0xff) as u8);
    } else {
        out.push((len - 1) as u8);
    }
}

/// Walks a sparse HLL's opcodes, calling `f(first_register, run_length, value)` for every run
/// (value 0 for zero runs). Fails when a value run passes the last register (the whole HLL is
/// then invalid, even if the registers before it add up to 16384) or when the runs do not
/// cover exactly 16384 registers.
fn for_each_run(hll: &[u8], mut f: impl FnMut(usize, usize, u8)) -> Result<(), Corrupt> {
    let mut idx = 0usize;
    let mut p = HDR;
    while p < hll.len() {
        let op = op_at(hll, p);
        p += op.bytes();
        let (len, val) = match op {
            Op::Zero { len, .. } => (len, 0),
            Op::Val { val, len } => {
                if idx + len > REGISTERS {
                    return Err(Corrupt);
                }
                (len, val)
            }
        };
        f(idx, len, val);
        idx += len;
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    Ok(())
}

/// Converts a sparse HLL to dense (header copied, encoding changed). Fails when the opcodes
/// do not cover exactly 16384 registers.
fn sparse_to_dense(hll: &[u8]) -> Result<Vec<u8>, Corrupt> {
    let mut out = vec![0u8; DENSE_SIZE];
    out[..HDR].copy_from_slice(&hll[..HDR]);
    out[4] = DENSE;
    let regs = &mut out[HDR..];
    for_each_run(hll, |idx, len, val| {
        if val > 0 {
            for i in idx..idx + len {
                dense_put(regs, i, val);
            }
        }
    })?;
    Ok(out)
}

/// Raises register `index` of a sparse HLL to `count`, rewriting the opcode that covers it
/// the way Redis does. Promotes `hll` to dense when the value does not fit a VAL opcode or
/// the string would grow past `max_bytes`. Returns whether a register changed.
fn sparse_set(
    hll: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<bool, Corrupt> {
    if count > SPARSE_VAL_MAX {
        return promote(hll, index, count);
    }
    // Find the opcode covering `index`, the one before it, and the first register it covers.
    let end = hll.len();
    let mut p = HDR;
    let mut prev = None;
    let mut first = 0usize;
    let mut found = None;
    while p < end {
        let op = op_at(hll, p);
        if index < first + op.len() {
            found = Some(op);
            break;
        }
        prev = Some(p);
        p += op.bytes();
        first += op.len();
    }
    let Some(op) = found else {
        return Err(Corrupt);
    };
    if p + op.bytes() > end {
        // An XZERO missing its second byte: nothing sensible to rewrite.
        return Err(Corrupt);
    }

    match op {
        Op::Val { val, .. } if val >= count => return Ok(false),
        Op::Val { len: 1, .. }
        | Op::Zero {
            len: 1,
            xzero: false,
        } => {
            // A one-byte opcode for one register: rewrite it in place. (A two-byte XZERO of
            // length 1 goes through the general case, which shrinks it to one byte.)
            hll[p] = val_byte(count, 1);
        }
        _ => {
            // Split the run into: what comes before `index`, `index` itself, what follows.
            let last = first + op.len() - 1;
            let mut seq = Vec::with_capacity(5);
            match op {
                Op::Zero { .. } => {
                    if index != first {
                        push_zero_run(&mut seq, index - first);
                    }
                    seq.push(val_byte(count, 1));
                    if index != last {
                        push_zero_run(&mut seq, last - index);
                    }
                }
                Op::Val { val, .. } => {
                    if index != first {
                        seq.push(val_byte(val, index - first));
                    }
                    seq.push(val_byte(count, 1));
                    if index != last {
                        seq.push(val_byte(val, last - index));
                    }
                }
            }
            let old = op.bytes();
            if seq.len() > old && hll.len() + seq.len() - old > max_bytes {
                return promote(hll, index, count);
            }
            hll.splice(p..p + old, seq);
        }
    }
    merge_adjacent_vals(hll, prev.unwrap_or(HDR));
    invalidate_cache(hll);
    Ok(true)
}

/// After an update, joins neighbouring VAL opcodes with the same value (when the joined run
/// still fits one opcode), looking at no more than 5 opcodes from `start`, as Redis does.
fn merge_adjacent_vals(hll: &mut Vec<u8>, start: usize) {
    let mut p = start;
    let mut budget = 5;
    while p < hll.len() && budget > 0 {
        budget -= 1;
        let op = op_at(hll, p);
        let next = if p + 1 < hll.len() {
            Some(op_at(hll, p + 1))
        } else {
            None
        };
        if let (Op::Val { val, len }, Some(Op::Val { val: v2, len: l2 })) = (op, next)
            && val == v2
            && len + l2 <= SPARSE_VAL_MAX_LEN
        {
            hll[p + 1] = val_byte(val, len + l2);
            hll.remove(p);
            // Stay on the merged opcode: it may merge with the next one too.
            continue;
        }
        p += op.bytes();
    }
}

/// Converts `hll` to dense and raises register `index` to `count` there.
fn promote(hll: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    let mut dense = sparse_to_dense(hll)?;
    dense_raise(&mut dense[HDR..], index, count);
    *hll = dense;
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Counting and merging

/// Folds an HLL's registers into `max` (register-wise maximum).
fn merge_into(max: &mut [u8], hll: &[u8]) -> Result<(), Corrupt> {
    if encoding(hll) == DENSE {
        let regs = &hll[HDR..];
        for (i, m) in max.iter_mut().enumerate() {
            let v = dense_get(regs, i);
            if v > *m {
                *m = v;
            }
        }
        return Ok(());
    }
    for_each_run(hll, |idx, len, val| {
        if val > 0 {
            for m in &mut max[idx..idx + len] {
                if val > *m {
                    *m = val;
                }
            }
        }
    })
}

/// How many registers hold each value 0..=63.
type Histogram = [u32; 64];

/// The register histogram of an HLL; Err for a sparse HLL that does not cover exactly 16384
/// registers.
fn histogram(hll: &[u8]) -> Result<Histogram, Corrupt> {
    let mut h = [0u32; 64];
    if encoding(hll) == DENSE {
        let regs = &hll[HDR..];
        for i in 0..REGISTERS {
            h[dense_get(regs, i) as usize] += 1;
        }
        return Ok(h);
    }
    for_each_run(hll, |_, len, val| h[val as usize] += len as u32)?;
    Ok(h)
}

/// The histogram of plain one-byte-per-register registers (PFCOUNT of several keys).
fn raw_histogram(regs: &[u8]) -> Histogram {
    let mut h = [0u32; 64];
    for &r in regs {
        h[(r & 63) as usize] += 1;
    }
    h
}

/// Ertl's sigma function (improved raw estimator correction for empty registers).
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

/// Ertl's tau function (correction for saturated registers).
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if before == z {
            return z / 3.0;
        }
    }
}

/// The cardinality estimate for a register histogram, computed in Redis's operation order so
/// the rounded result is identical.
///
/// When every counted register is saturated the division yields infinity; Redis's conversion
/// of that to an integer gives 0x8000000000000000, which is replied as a negative number and,
/// once cached, leaves the header's stale bit set. The same value comes out here.
pub fn estimate(h: &Histogram) -> u64 {
    const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
    let m = REGISTERS as f64;
    let qp1 = (Q + 1) as usize;
    let mut z = m * tau((m - h[qp1] as f64) / m);
    for j in (1..=Q as usize).rev() {
        z += h[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(h[0] as f64 / m);
    let e = (ALPHA_INF * m * m / z).round();
    if e.is_finite() && e >= i64::MIN as f64 && e < i64::MAX as f64 {
        e as i64 as u64
    } else {
        i64::MIN as u64
    }
}

// ---------------------------------------------------------------------------------------------
// Commands

fn pfadd(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let key = args[1];
    let now = ctx.now_ms;
    let db = ctx.db();
    // Lookup as Redis's lookupKeyWrite: no hit/miss statistics.
    let sparse_copy = match db.peek(key, now) {
        None => None,
        Some(e) => {
            let hll = as_hll(&e.value)?;
            if encoding(hll) == SPARSE {
                Some(hll.to_vec())
            } else {
                // Dense: update in place, and only take the key for writing if some
                // register really grows (an unchanged key must not invalidate WATCH).
                let regs = &hll[HDR..];
                let grows = args[2..].iter().any(|e| {
                    let (i, c) = pat_len(e);
                    c > dense_get(regs, i)
                });
                let mut updated = 0;
                if grows && let Some(Value::Str(s)) = db.get_mut(key, now) {
                    let b = s.as_mut_bytes();
                    for e in &args[2..] {
                        let (i, c) = pat_len(e);
                        updated += dense_raise(&mut b[HDR..], i, c) as u64;
                    }
                    invalidate_cache(b);
                }
                ctx.dirty(updated);
                ctx.out.int((updated > 0) as i64);
                return Ok(());
            }
        }
    };
    let created = sparse_copy.is_none();
    let mut hll = sparse_copy.unwrap_or_else(new_hll);
    let mut updated = created as u64;
    let mut failed = false;
    for e in &args[2..] {
        let (i, c) = pat_len(e);
        let res = if encoding(&hll) == DENSE {
            Ok(dense_raise(&mut hll[HDR..], i, c))
        } else {
            sparse_set(&mut hll, i, c, SPARSE_MAX_BYTES)
        };
        match res {
            Ok(changed) => {
                if changed {
                    // Counted before any later error: Redis changes the string in place,
                    // so updates made before a corrupt opcode is met are kept.
                    updated += 1;
                }
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if updated > 0 {
        if !failed {
            invalidate_cache(&mut hll);
        }
        ctx.db()
            .set_with(key, Value::Str(SmallBytes::from_vec(hll)), true);
    }
    if failed {
        return Err(CmdError::Msg(CORRUPT.into()));
    }
    ctx.dirty(updated);
    ctx.out.int((updated > 0) as i64);
    Ok(())
}

fn pfcount(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    if args.len() > 2 {
        // Several keys: the count of their union, nothing cached.
        let mut max = vec![0u8; REGISTERS];
        let db = ctx.db();
        for key in &args[1..] {
            if let Some(v) = db.get(key, now) {
                let hll = as_hll(v)?;
                merge_into(&mut max, hll).map_err(corrupt_err)?;
            }
        }
        ctx.out.int(estimate(&raw_histogram(&max)) as i64);
        return Ok(());
    }
    let key = args[1];
    let (db, out) = ctx.db_out();
    let card = match db.peek(key, now) {
        None => {
            out.int(0);
            return Ok(());
        }
        Some(e) => {
            let hll = as_hll(&e.value)?;
            if cache_valid(hll) {
                out.int(u64::from_le_bytes(hll[8..16].try_into().unwrap_or([0; 8])) as i64);
                return Ok(());
            }
            estimate(&histogram(hll).map_err(corrupt_err)?)
        }
    };
    // Store the fresh count in the header (a modification, as in Redis).
    if let Some(Value::Str(s)) = db.get_mut(key, now) {
        let bytes = card.to_le_bytes();
        s.as_mut_bytes()[8..16].copy_from_slice(&bytes);
    }
    ctx.dirty(1);
    ctx.out.int(card as i64);
    Ok(())
}

fn pfmerge(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let dest = args[1];
    let db = ctx.db();
    // The destination is one of the sources (args[1..]).
    let mut max = vec![0u8; REGISTERS];
    let mut use_dense = false;
    for key in &args[1..] {
        if let Some(v) = db.get(key, now) {
            let hll = as_hll(v)?;
            use_dense |= encoding(hll) == DENSE;
            merge_into(&mut max, hll).map_err(corrupt_err)?;
        }
    }
    let mut hll = match db.peek(dest, now) {
        Some(e) => as_hll(&e.value)?.to_vec(),
        None => new_hll(),
    };
    if use_dense && encoding(&hll) == SPARSE {
        hll = sparse_to_dense(&hll).map_err(corrupt_err)?;
    }
    for (i, &m) in max.iter().enumerate() {
        if m == 0 {
            continue;
        }
        if encoding(&hll) == DENSE {
            dense_raise(&mut hll[HDR..], i, m);
        } else {
            // A sparse destination was merged above, so it is well formed: no error here.
            let _ = sparse_set(&mut hll, i, m, SPARSE_MAX_BYTES);
        }
    }
    invalidate_cache(&mut hll);
    ctx.db()
        .set_with(dest, Value::Str(SmallBytes::from_vec(hll)), true);
    ctx.dirty(1);
    ctx.out.ok();
    Ok(())
}

fn pfdebug(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let (sub, key) = (args[1], args[2]);
    let db = ctx.db();
    let hll = match db.peek(key, now) {
        None => return Err(CmdError::err("The specified key does not exist")),
        Some(e) => as_hll(&e.value)?.to_vec(),
    };
    if eq_ic(sub, "getreg") || eq_ic(sub, "todense") {
        let converted = encoding(&hll) == SPARSE;
        let dense = if converted {
            let d = sparse_to_dense(&hll).map_err(corrupt_err)?;
            ctx.db()
                .set_with(key, Value::Str(SmallBytes::from_vec(d.clone())), true);
            ctx.dirty(1);
            d
        } else {
            hll
        };
        if eq_ic(sub, "todense") {
            ctx.out.int(converted as i64);
        } else {
            ctx.out.array(REGISTERS);
            for i in 0..REGISTERS {
                ctx.out.int(dense_get(&dense[HDR..], i) as i64);
            }
        }
    } else if eq_ic(sub, "decode") {
        if encoding(&hll) != SPARSE {
            return Err(CmdError::err("HLL encoding is not sparse"));
        }
        let mut text = String::new();
        let mut p = HDR;
        while p < hll.len() {
            let op = op_at(&hll, p);
            p += op.bytes();
            match op {
                Op::Zero { len, xzero: false } => text.push_str(&format!("z:{len} ")),
                Op::Zero { len, xzero: true } => text.push_str(&format!("Z:{len} ")),
                Op::Val { val, len } => text.push_str(&format!("v:{val},{len} ")),
            }
        }
        ctx.out.bulk(text.trim_matches(' ').as_bytes());
    } else if eq_ic(sub, "encoding") {
        ctx.out.simple(if encoding(&hll) == DENSE {
            "dense"
        } else {
            "sparse"
        });
    } else {
        // Redis formats the name with %s: it stops at a NUL byte.
        let name = sub.split(|&c| c == 0).next().unwrap_or_default();
        return Err(CmdError::err(format!(
            "Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

fn pfselftest(ctx: &mut Ctx<'_>, _args: &[&[u8]]) -> CmdResult {
    match self_test() {
        Ok(()) => ctx.out.ok(),
        Err(msg) => return Err(CmdError::Msg(format!("TESTFAILED {msg}"))),
    }
    Ok(())
}

/// Checks the dense register packing, that sparse and dense updates agree register for
/// register (also across the promotion), and that estimates stay within a sane error.
fn self_test() -> Result<(), String> {
    // Every register keeps its own value when neighbours are written.
    let mut regs = vec![0u8; DENSE_SIZE - HDR];
    for i in 0..REGISTERS {
        dense_put(&mut regs, i, ((i * 7 + 3) % 64) as u8);
    }
    for i in 0..REGISTERS {
        let want = ((i * 7 + 3) % 64) as u8;
        let got = dense_get(&regs, i);
        if got != want {
            return Err(format!(
                "Register error at register {i}: expected {want}, got {got}"
            ));
        }
    }
    // Sparse (allowed to grow large) and dense fed the same elements hold the same registers.
    let mut sparse = new_hll();
    let mut dense = sparse_to_dense(&sparse).map_err(|_| "conversion failed".to_string())?;
    let mut seed = 0x1234_5678_u64;
    for n in 1..=20_000u64 {
        seed = murmurhash64a(&seed.to_le_bytes(), n);
        let (i, c) = pat_len(&seed.to_le_bytes());
        let a = if encoding(&sparse) == DENSE {
            dense_raise(&mut sparse[HDR..], i, c)
        } else {
            sparse_set(&mut sparse, i, c, 1 << 20).map_err(|_| "sparse corrupted")?
        };
        let b = dense_raise(&mut dense[HDR..], i, c);
        if a != b {
            return Err(format!("sparse and dense disagree after {n} elements"));
        }
        if n % 1000 == 0 {
            let hs = histogram(&sparse).map_err(|_| "sparse corrupted")?;
            let hd = histogram(&dense).map_err(|_| "dense corrupted")?;
            if hs != hd {
                return Err(format!("histograms differ after {n} elements"));
            }
            let est = estimate(&hd) as f64;
            let err = (est - n as f64).abs() / n as f64;
            if err > 0.05 {
                return Err(format!("estimate {est} too far from {n}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(hll: &mut Vec<u8>, e: &[u8]) -> bool {
        let (i, c) = pat_len(e);
        if encoding(hll) == DENSE {
            dense_raise(&mut hll[HDR..], i, c)
        } else {
            sparse_set(hll, i, c, SPARSE_MAX_BYTES).unwrap()
        }
    }

    #[test]
    fn murmur_known_values() {
        // MurmurHash64A reference values (seed 0 and Redis's seed).
        assert_eq!(murmurhash64a(b"", 0), 0);
        assert_eq!(pat_len(b"x"), pat_len(b"x"));
        // Registers Redis reports (PFDEBUG DECODE) for PFADD a x y z:
        // "Z:8581 v:1,1 Z:6350 v:3,1 Z:1441 v:2,1 z:9".
        let mut got: Vec<(usize, u8)> =
            [&b"x"[..], b"y", b"z"].iter().map(|e| pat_len(e)).collect();
        got.sort();
        assert_eq!(got, vec![(8581, 1), (14932, 3), (16374, 2)]);
    }

    #[test]
    fn sparse_bytes_match_redis() {
        let mut h = new_hll();
        assert_eq!(&h[16..], &[0x7f, 0xff]);
        for e in [&b"x"[..], b"y", b"z"] {
            assert!(add(&mut h, e));
        }
        invalidate_cache(&mut h);
        let want = b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x61\x84\x80\x58\xcd\x88\x45\xa0\x84\x08";
        assert_eq!(&h[..], &want[..]);
        assert!(!add(&mut h, b"x"));
    }

    #[test]
    fn estimator() {
        assert_eq!(estimate(&raw_histogram(&[0u8; REGISTERS])), 0);
        let mut h = new_hll();
        for e in [&b"x"[..], b"y", b"z"] {
            add(&mut h, e);
        }
        assert_eq!(estimate(&histogram(&h).unwrap()), 3);
        // Every register saturated at 51: the estimate divides by zero; Redis replies
        // -9223372036854775808.
        let mut full = [0u32; 64];
        full[51] = REGISTERS as u32;
        assert_eq!(estimate(&full) as i64, i64::MIN);
        // Half the registers saturated: tau contributes, the result stays finite.
        full[51] = REGISTERS as u32 / 2;
        full[10] = REGISTERS as u32 / 2;
        assert!(estimate(&full) > 1_000_000);
    }

    #[test]
    fn sparse_and_dense_agree_and_promote() {
        let mut h = new_hll();
        let mut d = sparse_to_dense(&h).unwrap();
        for n in 0..5000u32 {
            let e = format!("ele:{n}");
            add(&mut h, e.as_bytes());
            let (i, c) = pat_len(e.as_bytes());
            dense_raise(&mut d[HDR..], i, c);
        }
        assert_eq!(encoding(&h), DENSE);
        assert_eq!(&h[HDR..], &d[HDR..]);
        let est = estimate(&histogram(&h).unwrap());
        assert!((4800..5200).contains(&est), "{est}");
    }

    #[test]
    fn single_register_xzero_is_replaced() {
        // Z:16383 then a two-byte Z:1 for the last register.
        let mut h = new_hll();
        h.truncate(HDR);
        h.extend_from_slice(&[0x7f, 0xfe, 0x40, 0x00]);
        assert_eq!(
            sparse_set(&mut h, REGISTERS - 1, 3, SPARSE_MAX_BYTES),
            Ok(true)
        );
        assert_eq!(&h[HDR..], &[0x7f, 0xfe, val_byte(3, 1)]);
    }

    #[test]
    fn value_above_32_promotes() {
        let mut h = new_hll();
        assert_eq!(sparse_set(&mut h, 5, 40, SPARSE_MAX_BYTES), Ok(true));
        assert_eq!(h.len(), DENSE_SIZE);
        assert_eq!(encoding(&h), DENSE);
        assert_eq!(dense_get(&h[HDR..], 5), 40);
        assert_eq!(dense_get(&h[HDR..], REGISTERS - 1), 0);
        // The header (stale bit included) is copied as it was.
        assert_eq!(&h[..4], b"HYLL");
        assert_eq!(h[15], 0);
    }

    #[test]
    fn sparse_run_past_the_end_is_corrupt() {
        let mut h = new_hll();
        h.truncate(HDR);
        h.extend_from_slice(&[0x7f, 0xfe, 0x84, 0x84]);
        assert_eq!(histogram(&h), Err(Corrupt));
        assert_eq!(sparse_to_dense(&h), Err(Corrupt));
    }

    #[test]
    fn corrupt_sparse_detected() {
        let mut h = new_hll();
        h.truncate(HDR);
        h.push(0x00); // covers one register only
        assert_eq!(histogram(&h), Err(Corrupt));
        assert_eq!(sparse_to_dense(&h), Err(Corrupt));
        let mut max = vec![0u8; REGISTERS];
        assert_eq!(merge_into(&mut max, &h), Err(Corrupt));
    }

    #[test]
    fn self_test_passes() {
        self_test().unwrap();
    }
}
