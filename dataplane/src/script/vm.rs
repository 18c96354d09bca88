//! A sandboxed Lua 5.1 state as Redis 7 builds one, and running a script or function in it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use super::convert::{self, error_text, normalize_error};
use super::{Busy, FunctionDef, kill, sflags};
use crate::cmd::{Ctx, flags};
use crate::resp::reply::Out;

/// Lua instructions between two checks for SCRIPT KILL (Redis checks every 100000).
const HOOK_EVERY: u32 = 100_000;
/// Memory a Lua state may take: a script that builds a huge table gets an error, not the
/// server an OOM kill.
pub(crate) const LUA_MEMORY_LIMIT: usize = 1 << 30;
/// FUNCTION LOAD runs the library's top level for at most this long (Redis: 500 ms).
const LOAD_TIMEOUT_MS: u64 = 500;
/// Chunk name of our own Lua helpers: error positions skip them, as they skip C functions.
const INTERNAL: &str = "=redis_internal";

/// Lua code run once per state: read-only globals, the `pcall` that turns error tables into
/// strings (Redis 7's `luaRedisPcall`), `loadstring` bound to the sandbox, `redis.call`.
const INIT: &str = r#"
local real, redis, slot, rawerror, raw_loadstring, setfenv, setmetatable, type, select,
      unpack, rawpcall, tostring, errtext, rawget, rawset, ipairs, concat, rawxpcall,
      stopping = ...
local function ro() rawerror("Attempt to modify a readonly table", 2) end
-- Taken before any script runs: scripts can reach neither the real string table nor the
-- string metatable (see the end), so this check cannot be fooled.
local strbyte = rawget(rawget(real, 'string'), 'byte')
local env = {}
redis.register_function = function(...) return slot[2](...) end
local function pack(...) return select('#', ...), {...} end
-- A script being stopped (SCRIPT KILL, SHUTDOWN NOSAVE, moved to the script thread) cannot
-- catch the error that stops it.
local function stop_if_asked()
  local s = stopping()
  if s then rawerror({err = s}, 0) end
end
rawset(real, 'xpcall', function(f, h)
  local n, r = pack(rawxpcall(f, h))
  if not r[1] then stop_if_asked() end
  return unpack(r, 1, n)
end)
local co = rawget(real, 'coroutine')
if co then
  local resume = rawget(co, 'resume')
  rawset(co, 'resume', function(...)
    local n, r = pack(resume(...))
    if not r[1] then stop_if_asked() end
    return unpack(r, 1, n)
  end)
end
rawset(real, 'pcall', function(f, ...)
  local n, r = pack(rawpcall(f, ...))
  if not r[1] then
    stop_if_asked()
    local e = r[2]
    if type(e) == 'table' and type(e.err) == 'string' then e = e.err
    elseif type(e) == 'userdata' then e = errtext(e) end
    return false, e
  end
  return unpack(r, 1, n)
end)
local function sandboxed_load(s, name)
  if type(s) == 'string' and strbyte(s, 1) == 27 then
    return nil, 'bytecode is not allowed'
  end
  local f, e = raw_loadstring(s, name)
  if f then setfenv(f, env) end
  return f, e
end
rawset(real, 'loadstring', sandboxed_load)
rawset(real, 'load', function(chunk, name)
  if type(chunk) == 'function' then
    local parts = {}
    while true do
      local p = chunk()
      if p == nil or p == '' then break end
      parts[#parts + 1] = p
    end
    chunk = concat(parts)
  end
  return sandboxed_load(chunk, name)
end)
local protected = {}
setmetatable(protected, {__mode = 'k'})
protected[real] = true
protected[env] = true
local function protect(t)
  local p = {}
  setmetatable(p, {__index = t, __newindex = ro, __metatable = false})
  protected[p] = true
  protected[t] = true
  return p
end
rawset(real, 'rawset', function(t, k, v)
  if protected[t] then rawerror({err = "ERR Attempt to modify a readonly table"}, 0) end
  return rawset(t, k, v)
end)
for _, name in ipairs({'string', 'table', 'math', 'coroutine', 'redis', 'bit', 'cjson',
                       'cmsgpack', 'struct'}) do
  local t = rawget(real, name)
  if t then rawset(real, name, protect(t)) end
end
rawset(real, '_G', env)
-- Strings index the read-only `string` proxy and hide their metatable: through
-- getmetatable('') a script could otherwise replace string functions for every later
-- script (Redis's CVE-2025-46817/46818 class).
local strmt = rawget(real, 'getmetatable')('')
rawset(strmt, '__index', rawget(real, 'string'))
rawset(strmt, '__metatable', false)
setmetatable(real, {
  __index = function(_, k)
    rawerror("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __newindex = ro,
  __metatable = false,
})
local env_mt = {__index = real, __newindex = ro, __metatable = false}
setmetatable(env, env_mt)
-- What a library's top level sees during FUNCTION LOAD (Redis's library API).
local lib_redis = {register_function = redis.register_function, log = redis.log,
  LOG_DEBUG = redis.LOG_DEBUG, LOG_VERBOSE = redis.LOG_VERBOSE, LOG_NOTICE = redis.LOG_NOTICE,
  LOG_WARNING = redis.LOG_WARNING, REDIS_VERSION = redis.REDIS_VERSION,
  REDIS_VERSION_NUM = redis.REDIS_VERSION_NUM, setresp = redis.setresp}
local load_api = {redis = protect(lib_redis)}
local missing = {}
setmetatable(lib_redis, {__index = function(_, k)
  rawerror("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end})
setmetatable(load_api, {__index = function(_, k)
  rawerror("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end, __newindex = ro, __metatable = false})
return env, env_mt, load_api
"#;

/// Why the running script must stop now, if it must: a kill, or (`check_deadline`, from the
/// hook) an inline run without effects past its budget, which then moves to the script thread.
fn stop_reason(busy: &Busy, check_deadline: bool) -> Option<&'static str> {
    match busy.kill.load(Ordering::Relaxed) {
        kill::NONE => {}
        kill::SHUTDOWN => return Some("ERR Script killed by SHUTDOWN NOSAVE."),
        _ => return Some("ERR Script killed by user with SCRIPT KILL..."),
    }
    if busy.retry.load(Ordering::Relaxed) {
        return Some(super::RETRY_ELSEWHERE);
    }
    if check_deadline {
        let deadline = busy.inline_deadline_ms.load(Ordering::Relaxed);
        if deadline != 0
            && !busy.effects.load(Ordering::Relaxed)
            && crate::store::now_ms() > deadline
        {
            busy.retry.store(true, Ordering::Relaxed);
            return Some(super::RETRY_ELSEWHERE);
        }
    }
    None
}

/// Runs `f(keys, args)` under the error handler.
const RUNNER: &str = r#"
local xpcall, handler = ...
local cf, ck, ca
local function body() return cf(ck, ca) end
return function(f, keys, args)
  cf, ck, ca = f, keys, args
  return xpcall(body, handler)
end
"#;

/// The script run in progress, as `redis.call` sees it: the run's [`Ctx`] (null outside a
/// run) and its [`RunMode`]. Set by [`Vm::run_inner`] for the time of the Lua call only.
#[derive(Debug)]
pub(super) struct Current {
    ctx: AtomicPtr<()>,
    /// [`RunMode`] packed: bit 0 eval, bit 1 read-only, flags above.
    mode: AtomicU64,
    /// `redis.setresp` of the run.
    resp3: Arc<AtomicBool>,
    /// Registry id of `rawcall::build`, which `redis.call` runs protected.
    build_fn: std::ffi::c_int,
    /// A panic of a command run by `redis.call`, resumed when the run is back in Rust.
    panic: parking_lot::Mutex<Option<Box<dyn std::any::Any + Send>>>,
    /// `panic` holds one (read without the lock after every run).
    panicked: AtomicBool,
    /// When an inline run's budget ends ([`clock_ns`]; 0: not inline).
    budget_end_ns: AtomicU64,
    /// When the run's last `redis.call` command ended ([`clock_ns`]; 0: none yet), timed by
    /// `cmd::call`: the budget is checked against it before the next call, without a clock
    /// read of its own (time spent in Lua is checked by the hook, every [`HOOK_EVERY`]
    /// instructions).
    last_call_end_ns: AtomicU64,
}

/// `t` as nanoseconds since the first use of this clock (a `quanta` instant kept in an
/// atomic).
fn clock_ns(t: quanta::Instant) -> u64 {
    static BASE: std::sync::OnceLock<quanta::Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(quanta::Instant::now);
    t.saturating_duration_since(base).as_nanos() as u64
}

/// The commands `redis.call` named last, by name as written, a few (name, command id) pairs
/// replaced round-robin: most scripts call the same few commands, so the registry's
/// case-folding lookup runs once per name. Kept in [`super::Scripting`] (no lock: the
/// store's lock is held while a script runs).
#[derive(Debug, Default)]
pub(crate) struct RecentCommands {
    entries: [Option<(Vec<u8>, usize)>; 4],
    next: usize,
}

impl RecentCommands {
    /// The registry's command named `name`, from the cache when it was looked up lately.
    pub(crate) fn lookup(
        &mut self,
        name: &[u8],
    ) -> Option<(usize, &'static crate::cmd::CommandSpec)> {
        let reg = crate::cmd::registry();
        let hit = self
            .entries
            .iter()
            .flatten()
            .find(|(n, _)| n.as_slice() == name);
        if let Some(&(_, id)) = hit {
            return Some((id, reg.commands[id]));
        }
        let found = reg.lookup(name)?;
        if name.len() <= 32 {
            self.entries[self.next] = Some((name.to_vec(), found.0));
            self.next = (self.next + 1) % self.entries.len();
        }
        Some(found)
    }
}

/// What `redis.call` / `redis.pcall` got from a command.
pub(super) enum CallOutcome {
    /// The command's reply (an error reply included).
    Reply(Out),
    /// The call itself failed (unknown command, wrong arity...): `{err=...}`, already in
    /// Redis's form (`CODE message`).
    Fail(String),
    /// The run must stop (killed, or moved to the script thread): raised even by `pcall`.
    Stop(&'static str),
}

impl Current {
    /// Points `redis.call` at `ctx` until the guard drops.
    fn enter<'a>(&'a self, ctx: &mut Ctx<'_>, mode: RunMode) -> CurrentGuard<'a> {
        let packed =
            u64::from(mode.eval) | u64::from(mode.read_only) << 1 | u64::from(mode.flags) << 2;
        let mode_before = self.mode.swap(packed, Ordering::Relaxed);
        self.budget_end_ns
            .store(mode.budget_end_ns, Ordering::Relaxed);
        self.last_call_end_ns.store(0, Ordering::Relaxed);
        let before = self
            .ctx
            .swap(ctx as *mut Ctx<'_> as *mut (), Ordering::AcqRel);
        debug_assert!(before.is_null(), "a script started inside a script");
        CurrentGuard(self, before, mode_before)
    }

    pub(super) fn keep_panic(&self, payload: Box<dyn std::any::Any + Send>) {
        *self.panic.lock() = Some(payload);
        self.panicked.store(true, Ordering::Release);
    }

    pub(super) fn build_fn(&self) -> std::ffi::c_int {
        self.build_fn
    }

    /// `redis.call`'s work: runs `args` (`None`: an argument was neither a string nor a
    /// number) for the script in progress, or says there is none.
    #[allow(unsafe_code)]
    pub(super) fn run_command(&self, args: Option<&[&[u8]]>) -> CallOutcome {
        let p = self.ctx.load(Ordering::Acquire);
        if p.is_null() {
            return CallOutcome::Fail(
                "ERR redis.call/pcall can only be called inside a script invocation".into(),
            );
        }
        // SAFETY: `Vm::run_inner` stores its `&mut Ctx` here only for the time of the Lua
        // call (the guard clears it before `run_inner` uses the context again), and runs on
        // the thread that calls us, under the store lock. No other reference to that context
        // is live meanwhile: commands run from a script cannot start another script (EVAL,
        // FCALL and FUNCTION are NOSCRIPT), so this is the only `&mut` made from it at a time.
        let ctx = unsafe { &mut *(p as *mut Ctx<'_>) };
        script_command(ctx, self, self.mode(), args)
    }

    /// Gives back the reply buffer of a finished `redis.call`, for the next one
    /// ([`super::Scripting::call_spare`]).
    #[allow(unsafe_code)]
    pub(super) fn recycle(&self, mut buf: Vec<u8>) {
        let p = self.ctx.load(Ordering::Acquire);
        // A huge reply's buffer is not kept.
        if p.is_null() || buf.capacity() > super::SPARE_KEPT_MAX {
            return;
        }
        // SAFETY: as in `run_command` (the run is still on, and the `&mut` that
        // `run_command` made has ended with the command).
        let ctx = unsafe { &mut *(p as *mut Ctx<'_>) };
        buf.clear();
        ctx.store.scripting.call_spare = buf;
    }

    fn mode(&self) -> RunMode {
        let m = self.mode.load(Ordering::Relaxed);
        RunMode {
            eval: m & 1 != 0,
            read_only: m & 2 != 0,
            flags: (m >> 2) as u32,
            budget_end_ns: self.budget_end_ns.load(Ordering::Relaxed),
        }
    }
}

/// Marks the script as not running when the run ends, even by a panic (which would
/// otherwise leave every other client answered `-BUSY` for good).
/// The bool: a function's run, whose [`super::RunningCall`] it clears.
struct BusyGuard<'a>(&'a Busy, bool);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
        self.0.inline_deadline_ms.store(0, Ordering::Relaxed);
        if self.1 {
            // It borrows the run's arguments, which go away after this.
            *self.0.running_call.lock() = None;
        }
    }
}

/// Puts [`Current`] back as it was (null) when the run ends, however it ends.
struct CurrentGuard<'a>(&'a Current, *mut (), u64);

impl Drop for CurrentGuard<'_> {
    fn drop(&mut self) {
        self.0.mode.store(self.2, Ordering::Relaxed);
        self.0.ctx.store(self.1, Ordering::Release);
    }
}

/// The Lua memory limit ([`LUA_MEMORY_LIMIT`]) for what a script's own code allocates, on
/// while the guard lives. It is off the rest of the time, when our Rust code builds or reads
/// Lua values: with a limit set, mlua wraps every API call in a protected call (a third of
/// the time of a short script), since any allocation could then fail.
struct MemoryLimit<'a>(&'a Lua, usize);

impl<'a> MemoryLimit<'a> {
    fn on(lua: &'a Lua) -> Self {
        MemoryLimit(lua, lua.set_memory_limit(LUA_MEMORY_LIMIT).unwrap_or(0))
    }
}

impl Drop for MemoryLimit<'_> {
    fn drop(&mut self) {
        let _ = self.0.set_memory_limit(self.1);
    }
}

/// The message of an error raised by Rust code, unchanged (see `error_text` for the reply).
fn raw_error_text(e: &mlua::Error) -> String {
    let mut e = e;
    while let mlua::Error::CallbackError { cause, .. } = e {
        e = cause;
    }
    match e {
        mlua::Error::RuntimeError(s) => s.clone(),
        _ => error_text(e),
    }
}

/// How a script runs (from its command and flags).
#[derive(Debug, Clone, Copy)]
pub struct RunMode {
    /// EVAL family (false: FCALL).
    pub eval: bool,
    /// Writes are refused (`*_RO` or `no-writes`).
    pub read_only: bool,
    /// [`sflags`] of the script or function.
    pub flags: u32,
    /// When an inline run's budget ends ([`budget_end_ns`]; 0: not inline).
    pub budget_end_ns: u64,
}

/// The end of the inline budget of a run started at `started` (for [`RunMode`]).
pub fn budget_end_ns(started: quanta::Instant) -> u64 {
    clock_ns(started) + super::INLINE_BUDGET_MS * 1_000_000
}

/// A Lua state with the sandbox and the `redis` table installed. Cloning is cheap (one
/// `Arc`: a script run clones it out of the store, so it must not touch Lua's references).
#[derive(Clone, Debug)]
pub struct Vm(Arc<VmParts>);

impl std::ops::Deref for Vm {
    type Target = VmParts;
    fn deref(&self) -> &VmParts {
        &self.0
    }
}

/// What a [`Vm`] holds.
pub struct VmParts {
    lua: Lua,
    real: Table,
    env: Table,
    env_mt: Table,
    load_api: Table,
    slot: Table,
    runner: Function,
    /// Read by `redis.call` through a raw pointer: lives as long as the Lua state.
    current: Arc<Current>,
    /// Keeps `rawcall::build` (see [`Current::build_fn`]) in the registry.
    _build_fn: mlua::RegistryKey,
    /// What `rawcall::run` needs from the Lua side.
    run_keys: super::rawcall::RunKeys,
    /// Lua memory in use after the last full collection (see `run_inner`).
    gc_floor: std::sync::atomic::AtomicUsize,
    resp3: Arc<AtomicBool>,
    load_deadline: Arc<AtomicU64>,
    busy: Arc<Busy>,
}

impl std::fmt::Debug for VmParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vm")
    }
}

fn rt(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

fn err_table(lua: &Lua, text: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(text)?)?;
    Ok(Value::Table(t))
}

impl Vm {
    /// Builds a state: base, table, string, math, coroutine, `bit`, `cjson`, `cmsgpack`,
    /// `struct` and `redis`; no `os`, `io`, `debug`, `loadfile`, `dofile`, `print`; every
    /// global and library table read-only.
    ///
    /// # Errors
    /// Lua could not be initialised.
    pub fn new(busy: Arc<Busy>) -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        let real = lua.globals();
        // Captured before they are removed from the globals.
        let setfenv: Function = real.raw_get("setfenv")?;
        let loadstring: Function = real.raw_get("loadstring")?;
        for name in [
            "dofile", "loadfile", "print", "setfenv", "getfenv", "newproxy", "module", "require",
            "package", "os", "io", "debug",
        ] {
            real.raw_remove(name)?;
        }
        super::libs::register(&lua, &real)?;
        let resp3 = Arc::new(AtomicBool::new(false));
        let build_fn = super::rawcall::keep_c_function(&lua, super::rawcall::build)?;
        let current = Arc::new(Current {
            ctx: AtomicPtr::default(),
            mode: AtomicU64::default(),
            resp3: resp3.clone(),
            build_fn: build_fn.id(),
            panic: parking_lot::Mutex::new(None),
            panicked: AtomicBool::new(false),
            budget_end_ns: AtomicU64::new(0),
            last_call_end_ns: AtomicU64::new(0),
        });
        let redis = redis_table(&lua, resp3.clone(), &current)?;
        real.raw_set("redis", redis.clone())?;
        let handler = lua.create_function(error_handler)?;
        let slot = lua.create_table()?;
        real.raw_set("__redis__err__handler", handler.clone())?;
        slot.raw_set(
            2,
            lua.create_function(|_, _: MultiValue| -> mlua::Result<()> {
                Err(rt(
                    "ERR redis.register_function can only be called on FUNCTION LOAD command",
                ))
            })?,
        )?;
        // What `pcall` returns for an error raised by Rust code: its message as raised (a
        // library's `luaL_error` text), as Lua's own pcall returns a C function's error.
        let errtext = lua.create_function(|_, v: Value| {
            Ok(match v {
                Value::Error(e) => raw_error_text(&e),
                _ => "ERR unknown error".to_string(),
            })
        })?;
        let stopping = {
            let busy = busy.clone();
            lua.create_function(move |_, ()| Ok(stop_reason(&busy, false)))?
        };
        let g = |n: &str| real.raw_get::<Value>(n);
        let raw_xpcall = g("xpcall")?;
        let table_lib: Table = real.raw_get("table")?;
        let (env, env_mt, load_api): (Table, Table, Table) = lua
            .load(INIT)
            .set_name(INTERNAL)
            .call(MultiValue::from_vec(vec![
                Value::Table(real.clone()),
                Value::Table(redis),
                Value::Table(slot.clone()),
                g("error")?,
                Value::Function(loadstring),
                Value::Function(setfenv),
                g("setmetatable")?,
                g("type")?,
                g("select")?,
                g("unpack")?,
                g("pcall")?,
                g("tostring")?,
                Value::Function(errtext),
                g("rawget")?,
                g("rawset")?,
                g("ipairs")?,
                table_lib.raw_get::<Value>("concat")?,
                raw_xpcall.clone(),
                Value::Function(stopping),
            ]))?;
        let runner: Function = lua
            .load(RUNNER)
            .set_name(INTERNAL)
            .call((raw_xpcall, handler.clone()))?;
        let load_deadline = Arc::new(AtomicU64::new(0));
        {
            let busy = busy.clone();
            let deadline = load_deadline.clone();
            // Global: coroutines a script creates inherit it (a per-thread hook would leave
            // a loop inside a coroutine unkillable).
            lua.set_global_hook(
                HookTriggers::new().every_nth_instruction(HOOK_EVERY),
                move |_, _| {
                    if let Some(why) = stop_reason(&busy, true) {
                        return Err(rt(why));
                    }
                    let d = deadline.load(Ordering::Relaxed);
                    if d != 0 && crate::store::now_ms() > d {
                        return Err(rt("ERR FUNCTION LOAD timeout"));
                    }
                    Ok(VmState::Continue)
                },
            )?;
        }
        let run_keys = super::rawcall::RunKeys {
            run_fn: super::rawcall::keep_c_function(&lua, super::rawcall::run_body_fn())?,
            handler: lua.create_registry_value(handler.clone())?,
            globals: lua.create_registry_value(real.clone())?,
            result: lua.create_registry_value(false)?,
        };
        Ok(Vm(Arc::new(VmParts {
            lua,
            real,
            env,
            env_mt,
            load_api,
            slot,
            run_keys,
            runner,
            current,
            _build_fn: build_fn,
            gc_floor: std::sync::atomic::AtomicUsize::new(0),
            resp3,
            load_deadline,
            busy,
        })))
    }

    /// Compiles `body` (the part after a shebang line) as chunk `name`, sandboxed, and keeps
    /// it in the registry (see [`super::Script::func`]).
    ///
    /// # Errors
    /// The Lua syntax error message.
    pub fn compile_kept(&self, body: &[u8], name: &str) -> Result<mlua::RegistryKey, String> {
        let f = self.compile(body, name)?;
        self.lua.create_registry_value(f).map_err(|e| e.to_string())
    }

    /// Compiles `body` (the part after a shebang line) as chunk `name`, sandboxed.
    ///
    /// # Errors
    /// The Lua syntax error message.
    pub fn compile(&self, body: &[u8], name: &str) -> Result<Function, String> {
        self.lua
            .load(body)
            .set_name(name)
            .set_mode(mlua::chunk::ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| match e {
                mlua::Error::SyntaxError { message, .. } => message,
                e => e.to_string(),
            })
    }

    /// Runs a library's code (FUNCTION LOAD), collecting what it registers.
    ///
    /// # Errors
    /// The error line to reply with.
    pub fn load_library(
        &self,
        code: &[u8],
    ) -> Result<(String, BTreeMap<String, FunctionDef>), String> {
        let (name, shebang_len) = library_metadata(code)?;
        let func = self
            .compile(&code[shebang_len..], "@user_function")
            .map_err(|m| format!("ERR Error compiling function: {m}"))?;
        let registered = std::cell::RefCell::new(BTreeMap::<String, FunctionDef>::new());
        // A kill that arrived just after the last run ended must not stop this load.
        self.busy.kill.store(kill::NONE, Ordering::Relaxed);
        self.busy.retry.store(false, Ordering::Relaxed);
        self.load_deadline
            .store(crate::store::now_ms() + LOAD_TIMEOUT_MS, Ordering::Relaxed);
        let res = self.lua.scope(|scope| {
            let reg = scope.create_function(|lua, args: MultiValue| {
                register_function(lua, &registered, args)
            })?;
            self.slot.raw_set(2, reg)?;
            self.env_mt.raw_set("__index", self.load_api.clone())?;
            let r = {
                let _limit = MemoryLimit::on(&self.lua);
                self.runner
                    .call::<MultiValue>((func, Value::Nil, Value::Nil))
            };
            self.env_mt.raw_set("__index", self.real.clone())?;
            self.slot.raw_set(
                2,
                self.lua.create_function(|_, _: MultiValue| -> mlua::Result<()> {
                    Err(rt(
                        "ERR redis.register_function can only be called on FUNCTION LOAD command",
                    ))
                })?,
            )?;
            r
        });
        self.load_deadline.store(0, Ordering::Relaxed);
        let values = res.map_err(|e| format!("ERR Error registering functions: {e}"))?;
        let mut it = values.into_iter();
        if !matches!(it.next(), Some(Value::Boolean(true))) {
            let msg = match it.next() {
                Some(Value::Table(t)) => t
                    .raw_get::<String>("err")
                    .unwrap_or_else(|_| "ERR unknown error".into()),
                _ => "ERR unknown error".into(),
            };
            return Err(format!("ERR Error registering functions: {msg}"));
        }
        let functions = registered.into_inner();
        if functions.is_empty() {
            return Err("ERR No functions registered".into());
        }
        Ok((name, functions))
    }

    /// Runs `func` (a compiled script, or a function's callback) for `ctx`'s client and writes
    /// its reply. `name` appears in error replies (the SHA1 or the function name).
    ///
    /// Returns false, with nothing replied, when an inline run was stopped to run again on
    /// the script thread (see `crate::script`).
    pub fn run(
        &self,
        ctx: &mut Ctx<'_>,
        func: &mlua::RegistryKey,
        name: &str,
        keys: &[&[u8]],
        args: &[&[u8]],
        mode: RunMode,
    ) -> bool {
        match self.run_inner(ctx, func, name, keys, args, mode) {
            Ok(done) => done,
            Err(e) => {
                ctx.out.error(&e);
                true
            }
        }
    }

    fn run_inner(
        &self,
        ctx: &mut Ctx<'_>,
        func: &mlua::RegistryKey,
        name: &str,
        keys: &[&[u8]],
        args: &[&[u8]],
        mode: RunMode,
    ) -> Result<bool, String> {
        let lua = &self.lua;
        self.resp3.store(false, Ordering::Relaxed);
        let busy = &self.busy;
        let now = crate::store::now_ms();
        busy.started_ms.store(now, Ordering::Relaxed);
        busy.threshold_ms
            .store(ctx.store.config.busy_reply_threshold, Ordering::Relaxed);
        busy.eval.store(mode.eval, Ordering::Relaxed);
        busy.wrote.store(false, Ordering::Relaxed);
        busy.from_master
            .store(ctx.client.is_master, Ordering::Relaxed);
        busy.kill.store(kill::NONE, Ordering::Relaxed);
        busy.libraries_count.store(
            ctx.store.scripting.libraries.len() as u64,
            Ordering::Relaxed,
        );
        busy.functions_count.store(
            ctx.store.scripting.functions_count() as u64,
            Ordering::Relaxed,
        );
        busy.effects.store(false, Ordering::Relaxed);
        busy.retry.store(false, Ordering::Relaxed);
        busy.inline_deadline_ms.store(
            if ctx.client.script_inline {
                now + super::INLINE_BUDGET_MS
            } else {
                0
            },
            Ordering::Relaxed,
        );
        busy.running.store(true, Ordering::Release);
        let saved_db = ctx.client.db;
        let opened_exec = !ctx.client.in_exec;
        ctx.client.in_exec = true;
        // Not reachable from the run (`redis.call` uses `call_spare`): taken for its length.
        let mut ret_bytes = std::mem::take(&mut ctx.store.scripting.return_spare);
        let res = {
            let _busy = BusyGuard(busy, !mode.eval);
            // Set once the guard that clears it exists (it borrows `name`, `keys`, `args`).
            if !mode.eval {
                *busy.running_call.lock() =
                    Some(super::RunningCall::new(mode.read_only, name, keys, args));
            }
            let _running = self.current.enter(ctx, mode);
            let _limit = MemoryLimit::on(lua);
            let bytes = &mut ret_bytes;
            super::rawcall::run(lua, &self.run_keys, func, keys, args, mode.eval, bytes)
        };
        if self.current.panicked.swap(false, Ordering::Acquire)
            && let Some(payload) = self.current.panic.lock().take()
        {
            std::panic::resume_unwind(payload);
        }
        // Lua 5.1 has no emergency collection: garbage a big run left (one that hit the
        // memory limit, say) would make the next runs fail their allocations. Only when
        // memory doubled since the last collection, so that data kept alive on purpose (a
        // library's upvalues) does not cost a full collection per run.
        let used = lua.used_memory();
        let floor = self.gc_floor.load(Ordering::Relaxed);
        if used > (LUA_MEMORY_LIMIT / 8).max(floor.saturating_mul(2)) {
            let _ = lua.gc_collect();
            self.gc_floor.store(lua.used_memory(), Ordering::Relaxed);
        }
        busy.running.store(false, Ordering::Release);
        busy.inline_deadline_ms.store(0, Ordering::Relaxed);
        let retried = busy.retry.swap(false, Ordering::Relaxed);
        let killed = busy.kill.swap(kill::NONE, Ordering::Relaxed);
        ctx.client.db = saved_db;
        if opened_exec {
            ctx.client.in_exec = false;
            close_multi(ctx);
        }
        let _ = killed;
        if retried && killed != kill::NONE {
            // Killed while it was being moved: the kill wins (its error, not the move's).
            return Err(match killed {
                kill::SHUTDOWN => "ERR Script killed by SHUTDOWN NOSAVE.".to_string(),
                _ => "ERR Script killed by user with SCRIPT KILL...".to_string(),
            });
        }
        if retried && !busy.effects.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let (ok, returned) =
            res.map_err(|e| format!("ERR Error running script (call to {name}): {e}"))?;
        let v = match returned {
            super::rawcall::Returned::Bytes if ok => {
                ctx.out.bulk(&ret_bytes);
                if ret_bytes.capacity() <= super::SPARE_KEPT_MAX {
                    ctx.store.scripting.return_spare = ret_bytes;
                }
                return Ok(true);
            }
            super::rawcall::Returned::Bytes => Value::String(
                lua.create_string(&ret_bytes)
                    .map_err(|e| format!("ERR {e}"))?,
            ),
            super::rawcall::Returned::Plain(v) => v,
            super::rawcall::Returned::Kept => super::rawcall::take_kept(lua, &self.run_keys),
        };
        if ok {
            convert::lua_to_reply(ctx.out, &v, 0, self.resp3.load(Ordering::Relaxed));
            return Ok(true);
        }
        Err(format_script_error(&v, name))
    }
}

/// The reply line for a script error (Redis's `luaCallFunction` error branch).
fn format_script_error(v: &Value, name: &str) -> String {
    match v {
        Value::Table(t) => {
            let msg: String = t
                .raw_get::<mlua::LuaString>("err")
                .map(|s| String::from_utf8_lossy(&s.as_bytes()).into_owned())
                .unwrap_or_default();
            let source: Option<String> = t.raw_get("source").ok();
            let line: Option<i64> = t.raw_get("line").ok();
            match (source, line) {
                (Some(src), Some(line)) if line > 0 => {
                    format!("{msg} script: {name}, on {src}:{line}.")
                }
                _ => msg,
            }
        }
        Value::String(s) => format!(
            "ERR Error running script {name}, {:.100}",
            String::from_utf8_lossy(&s.as_bytes())
        ),
        _ => format!("ERR Error running script {name}, execution failure"),
    }
}

/// Closes the MULTI a script's writes opened on the replication stream and the AOF (Redis 7
/// propagates a script as its effects wrapped in MULTI/EXEC).
fn close_multi(ctx: &mut Ctx<'_>) {
    let to_repl = !ctx.client.is_master && ctx.store.repl.active();
    if to_repl && ctx.store.repl.multi_open {
        ctx.store.repl.multi_open = false;
        ctx.store.repl.propagate(ctx.client.db, &[b"EXEC"]);
        ctx.client.repl_woff = ctx.store.repl.offset;
    }
    if ctx.store.aof.on && ctx.store.aof.multi_open {
        ctx.store.aof.multi_open = false;
        ctx.store.aof.append(ctx.client.db, &[b"EXEC"]);
    }
}

/// `__redis__err__handler`: turns any error into `{err=..., source=..., line=...}`, the
/// position being the script's line that raised it (C functions and our helpers skipped).
fn error_handler(lua: &Lua, err: Value) -> mlua::Result<Value> {
    let t = match err {
        Value::Table(t) => t,
        Value::Error(e) => {
            let t = lua.create_table()?;
            t.raw_set("err", error_text(&e))?;
            t
        }
        other => {
            let s = match lua.coerce_string(other.clone())? {
                Some(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                None => match other {
                    Value::Nil => "nil".into(),
                    Value::Boolean(b) => b.to_string(),
                    _ => other.type_name().to_string(),
                },
            };
            let t = lua.create_table()?;
            t.raw_set("err", format!("ERR {s}"))?;
            t
        }
    };
    let mut level = 1;
    while level < 8 {
        let info = lua.inspect_stack(level, |d| {
            let s = d.source();
            (
                s.what.to_string(),
                s.source.map(|x| x.into_owned()),
                d.current_line(),
            )
        });
        let Some((what, source, line)) = info else {
            break;
        };
        if what == "C" || source.as_deref() == Some(INTERNAL) {
            level += 1;
            continue;
        }
        if let Some(src) = source {
            t.raw_set("source", src)?;
        }
        if let Some(line) = line {
            t.raw_set("line", line as i64)?;
        }
        break;
    }
    Ok(Value::Table(t))
}

/// `redis.call` / `redis.pcall` inside a run: checks and runs the command `args` (`None`: an
/// argument was neither a string nor a number).
fn script_command(
    ctx: &mut Ctx<'_>,
    current: &Current,
    mode: RunMode,
    args: Option<&[&[u8]]>,
) -> CallOutcome {
    let fail = |text: &str| CallOutcome::Fail(normalize_error(text));
    let busy = ctx.shared.script_busy();
    if let Some(why) = stop_reason(busy, false) {
        return CallOutcome::Stop(why);
    }
    let refs = match args {
        Some([]) => return fail("Please specify at least one argument for this redis lib call"),
        Some(a) => a,
        None => return fail("Lua redis lib command arguments must be strings or integers"),
    };
    let Some((id, cmd)) = ctx.store.scripting.recent_commands.lookup(refs[0]) else {
        return fail("Unknown Redis command called from script");
    };
    let argc = refs.len() as i32;
    if (cmd.arity > 0 && argc != cmd.arity) || (cmd.arity < 0 && argc < -cmd.arity) {
        return fail("Wrong number of args calling Redis command from script");
    }
    if cmd.flags & flags::NOSCRIPT != 0 {
        return fail("This Redis command is not allowed from script");
    }
    // The inline budget is checked here too: a run that spent it inside a command (a long
    // KEYS) moves before its next command, as long as none had effects (after that it
    // cannot move). The time is the end of the last command, as `cmd::call` read it, but
    // before the first command with effects it is read afresh: time spent in Lua's C
    // functions (string.rep, cjson...) escapes the hook's instruction count.
    let budget_end = mode.budget_end_ns;
    if budget_end != 0 && !busy.effects.load(Ordering::Relaxed) {
        let first_effect = cmd.flags & (flags::WRITE | flags::PUBSUB) != 0;
        let now = if first_effect {
            clock_ns(quanta::Instant::now())
        } else {
            current.last_call_end_ns.load(Ordering::Relaxed)
        };
        if now > budget_end {
            busy.retry.store(true, Ordering::Relaxed);
            return CallOutcome::Stop(super::RETRY_ELSEWHERE);
        }
    }
    if cmd.flags & flags::WRITE != 0 || cmd.flags & flags::PUBSUB != 0 {
        // From here on the run cannot be started again elsewhere (PUBLISH reached
        // subscribers; TIME, PING, SELECT and the like leave no trace).
        ctx.shared
            .script_busy()
            .effects
            .store(true, Ordering::Relaxed);
    }
    if cmd.flags & flags::WRITE != 0 {
        if mode.read_only {
            return fail("Write commands are not allowed from read-only scripts.");
        }
        if ctx.store.repl.master.is_some()
            && !ctx.client.is_master
            && ctx.store.config.get("replica-read-only").as_deref() != Some("no")
        {
            return fail("-READONLY You can't write against a read only replica.");
        }
        if cmd.flags & flags::DENYOOM != 0
            && mode.flags & sflags::EVAL_COMPAT != 0
            && ctx.store.config.maxmemory != 0
            && ctx.store.evict_to_fit(crate::alloc::allocated_bytes)
                == crate::store::evict::EvictOutcome::Oom
        {
            return fail("-OOM command not allowed when used memory > 'maxmemory'.");
        }
        ctx.shared
            .script_busy()
            .wrote
            .store(true, Ordering::Relaxed);
    }
    let mut out = Out::new();
    out.buf = std::mem::take(&mut ctx.store.scripting.call_spare);
    out.resp3 = current.resp3.load(Ordering::Relaxed);
    {
        let mut c2 = Ctx {
            store: &mut *ctx.store,
            client: &mut *ctx.client,
            out: &mut out,
            shared: ctx.shared,
            now_ms: ctx.now_ms,
        };
        let ended = crate::cmd::call(&mut c2, id, cmd, refs);
        current
            .last_call_end_ns
            .store(clock_ns(ended), Ordering::Relaxed);
    }
    // A command run from a script never blocks nor closes the connection.
    ctx.client.action = None;
    ctx.client.blocked_keys.clear();
    CallOutcome::Reply(out)
}

/// `redis.register_function(name, callback)` or `redis.register_function{...}`.
fn register_function(
    lua: &Lua,
    registered: &std::cell::RefCell<BTreeMap<String, FunctionDef>>,
    args: MultiValue,
) -> mlua::Result<()> {
    let _ = lua;
    let (name, func, fl, desc) = match args.len() {
        1 => {
            let Some(Value::Table(t)) = args.front() else {
                return Err(rt(
                    "ERR calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
                ));
            };
            let mut name = None;
            let mut func = None;
            let mut fl = 0u32;
            let mut desc = None;
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let key = match &k {
                    Value::String(s) => s.to_string_lossy(),
                    _ => {
                        return Err(rt(
                            "ERR named argument key given to redis.register_function is not a string",
                        ));
                    }
                };
                match key.as_str() {
                    "function_name" => match v {
                        Value::String(s) => name = Some(s.to_string_lossy()),
                        _ => {
                            return Err(rt(
                                "ERR function_name argument given to redis.register_function must be a string",
                            ));
                        }
                    },
                    "callback" => match v {
                        Value::Function(f) => func = Some(f),
                        _ => {
                            return Err(rt(
                                "ERR callback argument given to redis.register_function must be a function",
                            ));
                        }
                    },
                    "description" => match v {
                        Value::String(s) => desc = Some(s.as_bytes().to_vec()),
                        _ => {
                            return Err(rt(
                                "ERR description argument given to redis.register_function must be a string",
                            ));
                        }
                    },
                    "flags" => match v {
                        Value::Table(ft) => {
                            for f in ft.sequence_values::<Value>() {
                                let Value::String(s) = f? else {
                                    return Err(rt("ERR unknown flag given"));
                                };
                                let s = s.to_string_lossy();
                                match sflags::NAMES.iter().find(|(n, _)| *n == s) {
                                    Some((_, b)) => fl |= b,
                                    None => return Err(rt("ERR unknown flag given")),
                                }
                            }
                        }
                        _ => {
                            return Err(rt(
                                "ERR flags argument to redis.register_function must be a table representing function flags",
                            ));
                        }
                    },
                    _ => return Err(rt("ERR unknown argument given to redis.register_function")),
                }
            }
            let Some(name) = name else {
                return Err(rt(
                    "ERR redis.register_function must get a function name argument",
                ));
            };
            let Some(func) = func else {
                return Err(rt(
                    "ERR redis.register_function must get a callback argument",
                ));
            };
            (name, func, fl, desc)
        }
        2 => {
            let mut it = args.into_iter();
            let name = match it.next() {
                Some(Value::String(s)) => s.to_string_lossy(),
                _ => {
                    return Err(rt(
                        "ERR first argument to redis.register_function must be a string",
                    ));
                }
            };
            let func = match it.next() {
                Some(Value::Function(f)) => f,
                _ => {
                    return Err(rt(
                        "ERR second argument to redis.register_function must be a function",
                    ));
                }
            };
            (name, func, 0, None)
        }
        _ => {
            return Err(rt(
                "ERR wrong number of arguments to redis.register_function",
            ));
        }
    };
    if !valid_name(&name) {
        return Err(rt(
            "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
        ));
    }
    let mut reg = registered.borrow_mut();
    if reg.contains_key(&name) {
        return Err(rt("ERR Function already exists in the library"));
    }
    reg.insert(
        name.clone(),
        FunctionDef {
            name: name.into(),
            func: Arc::new(lua.create_registry_value(func)?),
            flags: fl,
            description: desc,
            inline: Arc::default(),
        },
    );
    Ok(())
}

/// Library and function names: letters, digits, underscores, at least one.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `#!lua name=<lib>`: the library name and the shebang line's length.
fn library_metadata(code: &[u8]) -> Result<(String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let end = memchr::memchr(b'\n', code).unwrap_or(code.len());
    let line = String::from_utf8_lossy(&code[..end]).into_owned();
    let mut parts = line.split_ascii_whitespace();
    let engine = parts.next().unwrap_or("#!");
    let engine = &engine[2..];
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    let mut name = None;
    for p in parts {
        match p.split_once('=') {
            Some(("name", v)) => name = Some(v.to_string()),
            _ => return Err(format!("ERR Invalid metadata value given: {p}")),
        }
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    if !valid_name(&name) {
        return Err("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    Ok((name, end))
}

/// `#!lua flags=...` of an EVAL script: its [`sflags`] and the shebang line's length
/// (0 and [`sflags::EVAL_COMPAT`] without one).
///
/// # Errors
/// The error line (Redis's texts).
pub fn eval_shebang(body: &[u8]) -> Result<(u32, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((sflags::EVAL_COMPAT, 0));
    }
    let Some(end) = memchr::memchr(b'\n', body) else {
        return Err("ERR Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]).into_owned();
    let mut parts = line.split_ascii_whitespace();
    let Some(engine) = parts.next() else {
        return Err("ERR Invalid engine in script shebang".into());
    };
    if engine != "#!lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}"));
    }
    let mut fl = 0;
    for p in parts {
        if let Some(list) = p.strip_prefix("flags=") {
            for f in list.split(',') {
                if f.is_empty() {
                    continue;
                }
                match sflags::NAMES.iter().find(|(n, _)| *n == f) {
                    Some((_, b)) => fl |= b,
                    None => return Err(format!("ERR Unexpected flag in script shebang: {f}")),
                }
            }
        } else {
            return Err(format!("ERR Unknown lua shebang option: {p}"));
        }
    }
    Ok((fl, end))
}

/// The `redis` table (before it is made read-only).
fn redis_table(lua: &Lua, resp3: Arc<AtomicBool>, current: &Arc<Current>) -> mlua::Result<Table> {
    let r = lua.create_table()?;
    r.raw_set(
        "error_reply",
        lua.create_function(|lua, v: MultiValue| {
            let Some(Value::String(s)) = v.front().filter(|_| v.len() == 1) else {
                return Err(rt("ERR wrong number or type of arguments"));
            };
            let s = s.to_string_lossy();
            let s = if s.starts_with('-') {
                s
            } else {
                format!("-{s}")
            };
            err_table(lua, &normalize_error(&s))
        })?,
    )?;
    r.raw_set(
        "status_reply",
        lua.create_function(|lua, v: MultiValue| {
            let Some(Value::String(s)) = v.front().filter(|_| v.len() == 1) else {
                return Err(rt("ERR wrong number or type of arguments"));
            };
            let t = lua.create_table()?;
            t.raw_set("ok", s.clone())?;
            Ok(t)
        })?,
    )?;
    r.raw_set(
        "sha1hex",
        lua.create_function(|_, v: MultiValue| {
            if v.len() != 1 {
                return Err(rt("ERR wrong number of arguments"));
            }
            let data = match v.front() {
                Some(Value::String(s)) => s.as_bytes().to_vec(),
                Some(Value::Integer(n)) => n.to_string().into_bytes(),
                Some(Value::Number(n)) => convert::number_arg(*n),
                _ => Vec::new(),
            };
            Ok(super::sha1hex(&data))
        })?,
    )?;
    r.raw_set(
        "log",
        lua.create_function(|lua, v: MultiValue| {
            if v.len() < 2 {
                return Err(rt("ERR redis.log() requires two arguments or more."));
            }
            let level = match v.front() {
                Some(Value::Integer(n)) => *n,
                Some(Value::Number(n)) => *n as i64,
                _ => return Err(rt("ERR First argument must be a number (log level).")),
            };
            if !(0..=3).contains(&level) {
                return Err(rt("ERR Invalid debug level."));
            }
            let mut msg = String::new();
            for (i, a) in v.iter().skip(1).enumerate() {
                if i > 0 {
                    msg.push(' ');
                }
                if let Some(s) = lua.coerce_string(a.clone())? {
                    msg.push_str(&s.to_string_lossy());
                }
            }
            match level {
                0 => tracing::debug!(target: "lua", "{msg}"),
                1 | 2 => tracing::info!(target: "lua", "{msg}"),
                _ => tracing::warn!(target: "lua", "{msg}"),
            }
            Ok(())
        })?,
    )?;
    r.raw_set(
        "setresp",
        lua.create_function(move |_, v: MultiValue| {
            if v.len() != 1 {
                return Err(rt("ERR redis.setresp() requires one argument."));
            }
            let n = match v.front() {
                Some(Value::Integer(n)) => *n,
                Some(Value::Number(n)) => *n as i64,
                _ => 0,
            };
            if n != 2 && n != 3 {
                return Err(rt("ERR RESP version must be 2 or 3."));
            }
            resp3.store(n == 3, Ordering::Relaxed);
            Ok(())
        })?,
    )?;
    r.raw_set(
        "set_repl",
        lua.create_function(|_, v: MultiValue| {
            if v.len() != 1 {
                return Err(rt("ERR redis.set_repl() requires one argument."));
            }
            let n = match v.front() {
                Some(Value::Integer(n)) => *n,
                Some(Value::Number(n)) => *n as i64,
                _ => -1,
            };
            if !(0..=3).contains(&n) {
                return Err(rt(
                    "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                ));
            }
            Ok(())
        })?,
    )?;
    r.raw_set(
        "replicate_commands",
        lua.create_function(|_, _: MultiValue| Ok(true))?,
    )?;
    r.raw_set(
        "breakpoint",
        lua.create_function(|_, _: MultiValue| Ok(false))?,
    )?;
    r.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    r.raw_set(
        "acl_check_cmd",
        lua.create_function(|_, v: MultiValue| {
            let Some(Value::String(s)) = v.front() else {
                return Err(rt(
                    "ERR Please specify at least one argument for this redis lib call",
                ));
            };
            match crate::cmd::registry().lookup(&s.as_bytes()) {
                Some(_) => Ok(true),
                None => Err(rt("ERR Invalid command passed to redis.acl_check_cmd()")),
            }
        })?,
    )?;
    // redis.call and redis.pcall are C functions, as in Redis: a `return redis.call(..)`
    // tail call then keeps the script's frame, whose line the error reports.
    let cur = Arc::as_ptr(current);
    r.raw_set(
        "call",
        super::rawcall::c_closure(lua, super::rawcall::redis_call, cur)?,
    )?;
    r.raw_set(
        "pcall",
        super::rawcall::c_closure(lua, super::rawcall::redis_pcall, cur)?,
    )?;
    r.raw_set("REDIS_VERSION", crate::server::REDIS_VERSION)?;
    r.raw_set("REDIS_VERSION_NUM", 0x07000f)?;
    for (k, v) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        r.raw_set(k, v)?;
    }
    Ok(r)
}
