//! The hot path of a script on Lua's C API: `redis.call` / `redis.pcall` read their arguments
//! from the Lua stack and push the command's reply onto it, and a run's `KEYS`/`ARGV` tables
//! are built on the stack, without mlua value handles. Each mlua handle is a reference in an
//! auxiliary Lua thread, taken and released under a lock; for a short script (an INCR and a
//! GET) they were a third of the server's time.
//!
//! The rules this module keeps, for every function below:
//! - A Lua error is a `longjmp`: it must never cross a Rust frame that still owns something
//!   to drop. So every Lua call that can raise (any allocation, a `rawset` with a nil key)
//!   runs inside `lua_pcall` of a C function kept in the registry ([`build`], [`run_body`]),
//!   which owns nothing; the C functions raise with `lua_error` only after the Rust code that
//!   built the outcome has returned and dropped everything. (A C function is kept, not pushed
//!   each time: in Lua 5.1 pushing one allocates a closure.)
//! - Outside those protected calls only calls that cannot raise are made: reading the stack,
//!   `lua_rawgeti` and `lua_rawseti` of an existing registry key, light userdata pushes, and
//!   `lua_checkstack` with the memory limit off (it can fail only if the system allocator
//!   does, as everywhere in mlua).
//! - Rust code reached from Lua must not unwind into it: [`push_reply`] indexes with `get`
//!   only, and a panic of the command `redis.call` runs is caught and resumed after the run.
//! - Argument strings are borrowed from the Lua stack while the command runs; nothing runs
//!   Lua code (so nothing can collect them) until the command has returned.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use mlua::{Function, Lua, ffi};

use super::vm::{CallOutcome, Current};

/// Deepest reply nesting converted (Redis stops at Lua's stack limit; a reply nested deeper
/// than this becomes an error, never a crash).
const MAX_DEPTH: usize = 1000;

/// Makes `f` a Lua C function whose first upvalue is `current` (which must outlive the Lua
/// state: the [`super::vm::Vm`] owns both).
pub(super) fn c_closure(
    lua: &Lua,
    f: unsafe extern "C-unwind" fn(*mut ffi::lua_State) -> c_int,
    current: *const Current,
) -> mlua::Result<Function> {
    // SAFETY: the closure pushes one light userdata and makes one C closure of it, both
    // inside mlua's protected call (an allocation failure there is a Lua error it catches);
    // it owns nothing.
    unsafe {
        lua.exec_raw::<Function>((), |l| {
            ffi::lua_pushlightuserdata(l, current as *mut c_void);
            ffi::lua_pushcclosure(l, f, 1);
        })
    }
}

/// `redis.call`: a command error is raised.
pub(super) unsafe extern "C-unwind" fn redis_call(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua as a C closure made by `c_closure`.
    unsafe { call_entry(l, true) }
}

/// `redis.pcall`: a command error is returned as `{err=...}`.
pub(super) unsafe extern "C-unwind" fn redis_pcall(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: as `redis_call`.
    unsafe { call_entry(l, false) }
}

/// Runs the command and leaves its Lua value on the stack; raises when it must. This frame
/// owns nothing when `lua_error` jumps out of it: [`run_and_push`] has returned.
unsafe fn call_entry(l: *mut ffi::lua_State, raising: bool) -> c_int {
    // SAFETY: `l` is the running Lua thread; see `run_and_push`.
    let raise = unsafe { run_and_push(l, raising) };
    if raise {
        // SAFETY: the error value is on top of the stack; nothing here needs dropping.
        unsafe { ffi::lua_error(l) }
    }
    1
}

/// Runs the command named by the call's arguments and pushes its value (or the error to
/// raise, returning true). All that this function owns is dropped when it returns.
unsafe fn run_and_push(l: *mut ffi::lua_State, raising: bool) -> bool {
    // SAFETY: the upvalue is the `Current` pointer `c_closure` was given; the Vm that owns
    // the Lua state running us owns it too.
    let current = unsafe { &*(ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) as *const Current) };
    // SAFETY: see `read_and_run`.
    let outcome = unsafe { read_and_run(l, current) };
    let (status, raise, bad) = {
        let (job_kind, raise) = match &outcome {
            CallOutcome::Reply(out) => {
                let is_err = out.buf.first() == Some(&b'-');
                (JobKind::Reply(&out.buf), is_err && raising)
            }
            CallOutcome::Fail(text) => (JobKind::Err(text.as_bytes()), raising),
            CallOutcome::Stop(why) => (JobKind::Err(why.as_bytes()), true),
        };
        let mut job = Job {
            kind: job_kind,
            bad: false,
        };
        // SAFETY: see `push_outcome`.
        let status = unsafe { push_outcome(l, current.build_fn(), &mut job) };
        (status, raise, job.bad)
    };
    if let CallOutcome::Reply(out) = outcome {
        current.recycle(out.buf);
    }
    status != 0 || raise || bad
}

/// Reads the call's arguments and runs the command they name. What it owns (number
/// arguments' text) is dropped when it returns.
unsafe fn read_and_run(l: *mut ffi::lua_State, current: &Current) -> CallOutcome {
    // SAFETY: see `number_args`.
    let numbers = unsafe { number_args(l) };
    // Up to 8 arguments (most calls) are read into an array on the stack, more into a Vec.
    let mut few: [&[u8]; 8] = [&[]; 8];
    let mut many: Vec<&[u8]> = Vec::new();
    // SAFETY: see `read_args`.
    let refs = unsafe { read_args(l, numbers.as_ref(), &mut few, &mut many) };
    // A panic must not unwind through Lua's C frames (it would leave the state broken): it
    // is kept, the script stopped, and the panic resumed once the run is back in Rust.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| current.run_command(refs))) {
        Ok(outcome) => outcome,
        Err(payload) => {
            current.keep_panic(payload);
            CallOutcome::Stop("ERR a command run by the script failed (panic)")
        }
    }
}

/// The call's number arguments as `%.17g` text (Redis 7.0: so `1e17` is `1e+17`, not
/// `100000000000000000`), by position; `None` (no allocation) when there are none.
unsafe fn number_args(l: *mut ffi::lua_State) -> Option<Vec<(c_int, Vec<u8>)>> {
    // SAFETY (whole function): indices 1..=n are the call's arguments; `lua_type` and
    // `lua_tonumber` never raise.
    let n = unsafe { ffi::lua_gettop(l) };
    let mut numbers = None;
    for i in 1..=n {
        if unsafe { ffi::lua_type(l, i) } == ffi::LUA_TNUMBER {
            let x = unsafe { ffi::lua_tonumber(l, i) };
            numbers
                .get_or_insert_with(Vec::new)
                .push((i, super::convert::number_arg(x)));
        }
    }
    numbers
}

/// Reads `redis.call`'s arguments: strings as they are, numbers from `numbers`. `None`
/// when one is neither. The strings are borrowed from the Lua stack, where they stay (as
/// arguments of the running call) for as long as the slices are used.
unsafe fn read_args<'a>(
    l: *mut ffi::lua_State,
    numbers: Option<&'a Vec<(c_int, Vec<u8>)>>,
    few: &'a mut [&'a [u8]; 8],
    many: &'a mut Vec<&'a [u8]>,
) -> Option<&'a [&'a [u8]]> {
    // SAFETY (whole function): indices 1..=n are the call's arguments; `lua_type` and
    // `lua_tolstring` on a string (which does not allocate) never raise.
    let n = unsafe { ffi::lua_gettop(l) }.max(0) as usize;
    let mut numbers = numbers.map(|v| v.iter()).into_iter().flatten();
    let mut arg = |i: usize| -> Option<&'a [u8]> {
        match unsafe { ffi::lua_type(l, i as c_int) } {
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let p = unsafe { ffi::lua_tolstring(l, i as c_int, &mut len) };
                Some(unsafe { std::slice::from_raw_parts(p as *const u8, len) })
            }
            ffi::LUA_TNUMBER => numbers.next().map(|(_, text)| text.as_slice()),
            _ => None,
        }
    };
    if n <= few.len() {
        for (i, slot) in few.iter_mut().enumerate().take(n) {
            *slot = arg(i + 1)?;
        }
        Some(&few[..n])
    } else {
        many.reserve(n);
        for i in 1..=n {
            many.push(arg(i)?);
        }
        Some(many.as_slice())
    }
}

enum JobKind<'a> {
    /// The command's reply (empty: no reply, `nil`).
    Reply(&'a [u8]),
    /// An error of the call itself, as `{err=...}`.
    Err(&'a [u8]),
}

/// What [`build`] pushes, passed to it as a light userdata.
struct Job<'a> {
    kind: JobKind<'a>,
    /// The reply was malformed: an error value was pushed instead.
    bad: bool,
}

/// Pushes the job's value, built in protected mode by [`build`] (kept in the registry under
/// `build_fn`). Returns `lua_pcall`'s status: non-zero when building raised (out of memory, a
/// nil set member), the error then being on top instead.
unsafe fn push_outcome(l: *mut ffi::lua_State, build_fn: c_int, job: &mut Job<'_>) -> c_int {
    // SAFETY: a C function has LUA_MINSTACK free slots; `lua_rawgeti` of an existing key and
    // a light userdata push do not allocate. `build` reads `job` only while this frame, which
    // owns it, waits.
    unsafe {
        ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, build_fn);
        ffi::lua_pushlightuserdata(l, job as *mut Job<'_> as *mut c_void);
        ffi::lua_pcall(l, 1, 1, 0)
    }
}

/// Makes `f` a Lua function kept in the registry; returns its key.
pub(super) fn keep_c_function(
    lua: &Lua,
    f: unsafe extern "C-unwind" fn(*mut ffi::lua_State) -> c_int,
) -> mlua::Result<mlua::RegistryKey> {
    // SAFETY: `f` is one of this module's functions, which keep its rules.
    let func = unsafe { lua.create_c_function(f) }?;
    lua.create_registry_value(func)
}

/// The protected function of `redis.call`: pushes the job's value (its one result).
pub(super) unsafe extern "C-unwind" fn build(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: run by `lua_pcall`: a Lua error here returns to `push_outcome`. Nothing in this
    // frame or below needs dropping.
    unsafe {
        let job = &mut *(ffi::lua_touserdata(l, 1) as *mut Job<'_>);
        ffi::lua_settop(l, 0);
        match job.kind {
            JobKind::Reply([]) => ffi::lua_pushnil(l),
            JobKind::Reply(buf) => {
                if push_reply(l, buf, 0, 0).is_none() {
                    ffi::lua_settop(l, 0);
                    push_tagged(l, c"err", b"ERR bad reply from command");
                    job.bad = true;
                }
            }
            JobKind::Err(text) => push_tagged(l, c"err", text),
        }
    }
    1
}

unsafe fn push_bytes(l: *mut ffi::lua_State, s: &[u8]) {
    // SAFETY: protected mode (see `build`).
    unsafe { ffi::lua_pushlstring_(l, s.as_ptr() as *const _, s.len()) }
}

/// Pushes `{tag = s}`.
unsafe fn push_tagged(l: *mut ffi::lua_State, tag: &std::ffi::CStr, s: &[u8]) {
    // SAFETY: protected mode (see `build`).
    unsafe {
        ffi::lua_createtable(l, 0, 1);
        push_bytes(l, s);
        ffi::lua_setfield(l, -2, tag.as_ptr());
    }
}

/// Wraps the value on top in `{tag = value}`.
unsafe fn wrap_top(l: *mut ffi::lua_State, tag: &std::ffi::CStr) {
    // SAFETY: protected mode (see `build`).
    unsafe {
        ffi::lua_createtable(l, 0, 1);
        ffi::lua_insert(l, -2);
        ffi::lua_setfield(l, -2, tag.as_ptr());
    }
}

fn line(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos..)?;
    let off = memchr::memchr(b'\r', rest)?;
    Some((rest.get(..off)?, pos + off + 2))
}

fn num(s: &[u8]) -> i64 {
    crate::util::number::parse_i64(s).unwrap_or(0)
}

/// Pushes the reply at `buf[pos..]` as one Lua value, as Redis's `redisProtocolToLuaType`
/// converts it. Returns the position after it; `None` for a malformed
/// reply (never, for our own commands' replies) or one nested too deep.
unsafe fn push_reply(
    l: *mut ffi::lua_State,
    buf: &[u8],
    pos: usize,
    depth: usize,
) -> Option<usize> {
    // SAFETY (whole function): protected mode (see `build`); the stack is grown before each
    // level's pushes.
    if depth > MAX_DEPTH || unsafe { ffi::lua_checkstack(l, 4) } == 0 {
        return None;
    }
    let kind = *buf.get(pos)?;
    let (text, next) = line(buf, pos + 1)?;
    match kind {
        b'+' => unsafe { push_tagged(l, c"ok", text) },
        b'-' => unsafe { push_tagged(l, c"err", text) },
        b':' => unsafe { ffi::lua_pushnumber(l, num(text) as f64) },
        b'(' => unsafe { push_tagged(l, c"big_number", text) },
        b'$' | b'=' | b'!' => {
            let n = num(text);
            if n < 0 {
                unsafe { ffi::lua_pushboolean(l, 0) };
                return Some(next);
            }
            let end = next.checked_add(n as usize)?;
            let data = buf.get(next..end)?;
            match kind {
                b'$' => unsafe { push_bytes(l, data) },
                b'!' => unsafe { push_tagged(l, c"err", data) },
                _ => {
                    let (fmt, body) = match (data.get(..3), data.get(4..)) {
                        (Some(f), Some(b)) => (f, b),
                        _ => (&b"txt"[..], data),
                    };
                    unsafe {
                        ffi::lua_createtable(l, 0, 2);
                        push_bytes(l, fmt);
                        ffi::lua_setfield(l, -2, c"format".as_ptr());
                        push_bytes(l, body);
                        ffi::lua_setfield(l, -2, c"string".as_ptr());
                        wrap_top(l, c"verbatim_string");
                    }
                }
            }
            return Some(end + 2);
        }
        b'*' | b'>' | b'~' => {
            let n = num(text);
            if n < 0 {
                unsafe { ffi::lua_pushboolean(l, 0) };
                return Some(next);
            }
            let set = kind == b'~';
            let hint = c_int::try_from(n).unwrap_or(0).min(1 << 16);
            let mut p = next;
            unsafe {
                if set {
                    ffi::lua_createtable(l, 0, hint);
                } else {
                    ffi::lua_createtable(l, hint, 0);
                }
                let t = ffi::lua_gettop(l);
                for i in 0..n {
                    p = push_reply(l, buf, p, depth + 1)?;
                    if set {
                        ffi::lua_pushboolean(l, 1);
                        ffi::lua_rawset(l, t);
                    } else {
                        ffi::lua_rawseti_(l, t, (i + 1) as _);
                    }
                }
                if set {
                    wrap_top(l, c"set");
                }
            }
            return Some(p);
        }
        b'%' => {
            let n = num(text).max(0);
            let mut p = next;
            unsafe {
                ffi::lua_createtable(l, 0, c_int::try_from(n).unwrap_or(0).min(1 << 16));
                let t = ffi::lua_gettop(l);
                for _ in 0..n {
                    p = push_reply(l, buf, p, depth + 1)?;
                    p = push_reply(l, buf, p, depth + 1)?;
                    ffi::lua_rawset(l, t);
                }
                wrap_top(l, c"map");
            }
            return Some(p);
        }
        b'|' => {
            // Attributes are dropped, as Redis does; the value follows.
            let n = num(text).max(0);
            let mut p = next;
            for _ in 0..n.saturating_mul(2) {
                p = unsafe { push_reply(l, buf, p, depth + 1)? };
                unsafe { ffi::lua_settop(l, -2) };
            }
            return unsafe { push_reply(l, buf, p, depth + 1) };
        }
        b'_' => unsafe { ffi::lua_pushnil(l) },
        b'#' => unsafe { ffi::lua_pushboolean(l, c_int::from(text == b"t")) },
        b',' => {
            let d = crate::util::number::parse_f64(text)
                .or_else(|| std::str::from_utf8(text).ok()?.parse().ok())
                .unwrap_or(0.0);
            unsafe {
                ffi::lua_pushnumber(l, d);
                wrap_top(l, c"double");
            }
        }
        _ => return None,
    }
    Some(next)
}

/// Registry keys of what a run needs from the Lua side.
#[derive(Debug)]
pub(super) struct RunKeys {
    /// [`run_body`], kept.
    pub run_fn: mlua::RegistryKey,
    /// The error handler (`vm::error_handler`) the script runs under.
    pub handler: mlua::RegistryKey,
    /// The real globals table (`KEYS` and `ARGV` of EVAL go there).
    pub globals: mlua::RegistryKey,
    /// Where a result that is not a plain value (a table) is left for mlua to read.
    pub result: mlua::RegistryKey,
}

/// What a script returned, read straight off the stack when it is a plain value.
#[derive(Debug)]
pub(super) enum Returned {
    /// Nil, a boolean or a number: no Lua reference needed.
    Plain(mlua::Value),
    /// A string: copied into the buffer [`run`] was given.
    Bytes,
    /// Anything else (a table): left in [`RunKeys::result`].
    Kept,
}

/// The run's parameters, read by [`run_body`] through a light userdata.
struct RunJob<'a> {
    func: c_int,
    handler: c_int,
    globals: c_int,
    keys: &'a [&'a [u8]],
    args: &'a [&'a [u8]],
    eval: bool,
}

/// Runs `func(KEYS, ARGV)` under the error handler, with the two tables built on the stack
/// (and, for EVAL, set as the globals `KEYS` and `ARGV`). Returns whether the script
/// succeeded and its result (or the handler's error value); a string result goes to `bytes`
/// (a buffer kept between runs).
///
/// # Errors
/// Lua could not build the tables (out of memory): the error text.
pub(super) fn run(
    lua: &Lua,
    rk: &RunKeys,
    func: &mlua::RegistryKey,
    keys: &[&[u8]],
    args: &[&[u8]],
    eval: bool,
    bytes: &mut Vec<u8>,
) -> Result<(bool, Returned), String> {
    let mut job = RunJob {
        func: func.id(),
        handler: rk.handler.id(),
        globals: rk.globals.id(),
        keys,
        args,
        eval,
    };
    let (run_fn, result) = (rk.run_fn.id(), rk.result.id());
    lua.exec_raw_lua(|raw| {
        let l = raw.state();
        // SAFETY: mlua's lock is held (`exec_raw_lua`) and the stack is restored to `top`
        // before returning. Only non-raising calls are made here (see the module's rules);
        // `run_body` runs under `lua_pcall` and reads `job` while this frame owns it.
        unsafe {
            let top = ffi::lua_gettop(l);
            if ffi::lua_checkstack(l, 4) == 0 {
                return Err("ERR Lua stack exhausted".to_string());
            }
            ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, run_fn);
            ffi::lua_pushlightuserdata(l, &mut job as *mut RunJob<'_> as *mut c_void);
            if ffi::lua_pcall(l, 1, 2, 0) != 0 {
                let text = match ffi::lua_type(l, -1) {
                    ffi::LUA_TSTRING => {
                        let mut len = 0usize;
                        let p = ffi::lua_tolstring(l, -1, &mut len);
                        String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len))
                            .into_owned()
                    }
                    _ => "unknown error".to_string(),
                };
                ffi::lua_settop(l, top);
                return Err(super::convert::normalize_error(&text));
            }
            let ok = ffi::lua_toboolean(l, -2) != 0;
            let value = match ffi::lua_type(l, -1) {
                ffi::LUA_TNIL | ffi::LUA_TNONE => Returned::Plain(mlua::Value::Nil),
                ffi::LUA_TBOOLEAN => {
                    Returned::Plain(mlua::Value::Boolean(ffi::lua_toboolean(l, -1) != 0))
                }
                ffi::LUA_TNUMBER => Returned::Plain(mlua::Value::Number(ffi::lua_tonumber(l, -1))),
                ffi::LUA_TSTRING => {
                    let mut len = 0usize;
                    let p = ffi::lua_tolstring(l, -1, &mut len);
                    bytes.clear();
                    bytes.extend_from_slice(std::slice::from_raw_parts(p as *const u8, len));
                    Returned::Bytes
                }
                _ => {
                    ffi::lua_rawseti_(l, ffi::LUA_REGISTRYINDEX, result);
                    Returned::Kept
                }
            };
            ffi::lua_settop(l, top);
            Ok((ok, value))
        }
    })
}

/// Reads the result [`run`] kept, and frees its slot.
pub(super) fn take_kept(lua: &Lua, rk: &RunKeys) -> mlua::Value {
    let v = lua
        .registry_value::<mlua::Value>(&rk.result)
        .unwrap_or(mlua::Value::Nil);
    let result = rk.result.id();
    lua.exec_raw_lua(|raw| {
        // SAFETY: a boolean push and `lua_rawseti` of an existing registry key do not
        // allocate; the stack is left as found.
        unsafe {
            ffi::lua_pushboolean(raw.state(), 0);
            ffi::lua_rawseti_(raw.state(), ffi::LUA_REGISTRYINDEX, result);
        }
    });
    v
}

/// The protected body of [`run`]: builds `KEYS`/`ARGV` and calls the script under the error
/// handler (as `xpcall` would, without its frames); its two results are whether the script
/// succeeded and its first result or the handler's error value.
unsafe extern "C-unwind" fn run_body(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: run by `lua_pcall` from `run`: a Lua error here (out of memory building the
    // tables) returns there. Nothing in this frame or below needs dropping; the script itself
    // runs under its own `lua_pcall`, whose error handler is at index 1.
    unsafe {
        let job = &*(ffi::lua_touserdata(l, 1) as *const RunJob<'_>);
        ffi::lua_settop(l, 0);
        ffi::lua_checkstack(l, 8);
        ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, job.handler); // 1
        ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, job.func); // 2
        push_strings(l, job.keys); // 3
        push_strings(l, job.args); // 4
        if job.eval {
            ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, job.globals); // 5
            ffi::lua_pushlstring_(l, c"KEYS".as_ptr(), 4);
            ffi::lua_pushvalue(l, 3);
            ffi::lua_rawset(l, 5);
            ffi::lua_pushlstring_(l, c"ARGV".as_ptr(), 4);
            ffi::lua_pushvalue(l, 4);
            ffi::lua_rawset(l, 5);
            ffi::lua_settop(l, 4);
        }
        let status = ffi::lua_pcall(l, 2, 1, 1);
        // [handler, value]: the status goes under the value.
        ffi::lua_pushboolean(l, c_int::from(status == 0));
        ffi::lua_insert(l, -2);
    }
    2
}

/// [`run_body`], to keep in the registry.
pub(super) fn run_body_fn() -> unsafe extern "C-unwind" fn(*mut ffi::lua_State) -> c_int {
    run_body
}

/// Pushes an array of the strings `items`.
unsafe fn push_strings(l: *mut ffi::lua_State, items: &[&[u8]]) {
    // SAFETY: protected mode (inside `run_body`).
    unsafe {
        ffi::lua_createtable(l, c_int::try_from(items.len()).unwrap_or(0), 0);
        for (i, s) in items.iter().enumerate() {
            push_bytes(l, s);
            ffi::lua_rawseti_(l, -2, (i + 1) as _);
        }
    }
}
