//! Lua scripting (EVAL, SCRIPT) and Redis 7 functions (FUNCTION, FCALL) on Lua 5.1.
//!
//! # Layout
//! - [`vm`]: building a sandboxed Lua state (the libraries Redis loads, the `redis` table,
//!   read-only globals) and running one script or function against the keyspace.
//! - [`convert`]: replies to Lua values and back, as Redis 7 converts them (RESP2 and RESP3).
//! - [`libs`]: `bit` and `cjson`, written in Rust; [`msgpack`]: `cmsgpack`;
//!   [`structlib`]: `struct`.
//! - `cmd::script`: the commands.
//!
//! A script runs alone against the keyspace because it runs under the store lock. Where it
//! runs depends on what it did last time:
//! - A script or function whose last run took under [`INLINE_LIMIT`] runs **inline**, on the
//!   connection's thread, in the connection's batch of requests like any other command (no
//!   thread hop: a pipeline of EVALSHA costs what a pipeline of GET costs).
//! - Anything else (a script's first run, one that was slow) goes to the script thread
//!   ([`ScriptThread`]), so the connection threads stay free to answer the other clients
//!   `-BUSY` once it has run past `busy-reply-threshold`, and to take the SCRIPT KILL /
//!   FUNCTION KILL / SHUTDOWN NOSAVE that stop it ([`Busy`]).
//! - An inline run that goes past [`INLINE_BUDGET_MS`] before calling a write command (or
//!   PUBLISH) is stopped by the Lua hook, or before its next command, and run again from the
//!   start on the script thread; it changed nothing (its MONITOR lines and `redis.log` lines
//!   are seen twice). One that already wrote runs to its end where it is: the clients of its
//!   connection thread wait, and connections made once it is past `busy-reply-threshold` go
//!   to a rescue thread (`server::IoThreads`) where they get `-BUSY` and can send SHUTDOWN
//!   NOSAVE.

pub mod convert;
pub mod libs;
pub mod msgpack;
mod rawcall;
pub mod structlib;
pub mod vm;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

/// A run shorter than this lets the script's next run be inline (see the module's doc).
pub const INLINE_LIMIT: std::time::Duration = std::time::Duration::from_millis(1);
/// An inline run without effects is moved to the script thread after this long.
pub const INLINE_BUDGET_MS: u64 = 100;
/// The error the hook raises to stop an inline run that goes to the script thread instead.
pub const RETRY_ELSEWHERE: &str = "ERR script moved to the script thread";

/// `-BUSY` for clients arriving while an EVAL script runs past the threshold.
pub const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// `-BUSY` for clients arriving while a function runs past the threshold.
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
/// The reply to SCRIPT KILL / FUNCTION KILL when nothing runs.
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
/// The reply to a kill of a script that already wrote.
pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";

/// Kill requests, in [`Busy::kill`].
pub mod kill {
    /// Nobody asked.
    pub const NONE: u8 = 0;
    /// SCRIPT KILL / FUNCTION KILL: the script stops with an error at its next hook.
    pub const USER: u8 = 1;
    /// SHUTDOWN NOSAVE: the script stops at once, whatever it wrote.
    pub const SHUTDOWN: u8 = 2;
}

/// The running script, as other clients see it without the store lock.
#[derive(Debug, Default)]
pub struct Busy {
    /// A script or function is running.
    pub running: AtomicBool,
    /// Unix ms it started at.
    pub started_ms: AtomicU64,
    /// `busy-reply-threshold` in ms (0: never busy).
    pub threshold_ms: AtomicU64,
    /// It was started by EVAL/EVALSHA (false: FCALL).
    pub eval: AtomicBool,
    /// It called a write command (then only SHUTDOWN NOSAVE stops it).
    pub wrote: AtomicBool,
    /// It runs for our master (replication): never killable.
    pub from_master: AtomicBool,
    /// A [`kill`] request.
    pub kill: AtomicU8,
    /// The running script is inline and must move to the script thread if it is still
    /// running, without effects, at this Unix ms (0: not inline).
    pub inline_deadline_ms: AtomicU64,
    /// It called a command that is not read-only (then it cannot be run again).
    pub effects: AtomicBool,
    /// The hook stopped it to run it again on the script thread.
    pub retry: AtomicBool,
    /// Libraries loaded when the running script started (FUNCTION STATS while busy).
    pub libraries_count: AtomicU64,
    /// Functions loaded when the running script started.
    pub functions_count: AtomicU64,
    /// Name and arguments of the running function, for FUNCTION STATS.
    pub running_call: parking_lot::Mutex<Option<RunningCall>>,
}

/// The running function's name and arguments, borrowed from the run: nothing is copied
/// unless FUNCTION STATS asks (a run copying them made every FCALL allocate its arguments
/// again). The run clears it, under the mutex, before they go away (`vm::BusyGuard`, which
/// a panic drops too); a reader copies them under the same mutex.
#[derive(Debug)]
pub struct RunningCall {
    /// FCALL_RO.
    pub read_only: bool,
    name: *const str,
    /// Pointer to the first key (a `&[u8]`) and their number.
    keys: (*const (), usize),
    /// Pointer to the first argument and their number.
    args: (*const (), usize),
}

// SAFETY: the pointers are read only under `Busy::running_call`'s mutex, while the run that
// owns the data they point to has not cleared them (see the type's comment).
#[allow(unsafe_code)]
unsafe impl Send for RunningCall {}

impl RunningCall {
    /// Borrows the run's name and arguments; the caller clears it before they go away.
    pub fn new(read_only: bool, name: &str, keys: &[&[u8]], args: &[&[u8]]) -> Self {
        RunningCall {
            read_only,
            name: name as *const str,
            keys: (keys.as_ptr().cast(), keys.len()),
            args: (args.as_ptr().cast(), args.len()),
        }
    }

    /// The function's name and its command (`FCALL name numkeys keys... args...`).
    #[allow(unsafe_code)]
    pub fn copy(&self) -> (String, Vec<Vec<u8>>) {
        // SAFETY: see the type's comment: the caller holds the mutex it is kept under, so
        // the run is still on and its name and arguments are alive.
        let (name, keys, args): (&str, &[&[u8]], &[&[u8]]) = unsafe {
            (
                &*self.name,
                std::slice::from_raw_parts(self.keys.0.cast(), self.keys.1),
                std::slice::from_raw_parts(self.args.0.cast(), self.args.1),
            )
        };
        let mut argv = vec![
            if self.read_only {
                b"FCALL_RO".to_vec()
            } else {
                b"FCALL".to_vec()
            },
            name.as_bytes().to_vec(),
            keys.len().to_string().into_bytes(),
        ];
        argv.extend(keys.iter().chain(args).map(|a| a.to_vec()));
        (name.to_string(), argv)
    }
}

impl Busy {
    /// True when a script has run past the threshold: other clients get `-BUSY`.
    pub fn past_threshold(&self) -> bool {
        if !self.running.load(Ordering::Acquire) {
            return false;
        }
        let th = self.threshold_ms.load(Ordering::Relaxed);
        let started = self.started_ms.load(Ordering::Relaxed);
        crate::store::now_ms().saturating_sub(started) >= th
    }

    /// True when a script running inline on a connection thread is past the threshold: the
    /// clients of that thread wait for it, new ones should be served elsewhere.
    pub fn stuck_inline(&self) -> bool {
        self.inline_deadline_ms.load(Ordering::Relaxed) != 0 && self.past_threshold()
    }

    /// How SCRIPT KILL (`eval` true) or FUNCTION KILL answers, requesting the kill if it may.
    pub fn request_kill(&self, eval: bool) -> Result<(), &'static str> {
        if !self.running.load(Ordering::Acquire) {
            return Err(NOTBUSY);
        }
        if self.from_master.load(Ordering::Relaxed) {
            return Err(
                "UNKILLABLE The busy script was sent by a master instance in the context of replication and cannot be killed.",
            );
        }
        if self.wrote.load(Ordering::Relaxed) {
            return Err(UNKILLABLE);
        }
        let is_eval = self.eval.load(Ordering::Relaxed);
        if eval && !is_eval {
            return Err(BUSY_FUNCTION);
        }
        if !eval && is_eval {
            return Err(BUSY_EVAL);
        }
        let _ =
            self.kill
                .compare_exchange(kill::NONE, kill::USER, Ordering::AcqRel, Ordering::Relaxed);
        Ok(())
    }
}

/// Script flags (shebang `flags=` and `register_function` flags).
pub mod sflags {
    /// `no-writes`.
    pub const NO_WRITES: u32 = 1;
    /// `allow-oom`.
    pub const ALLOW_OOM: u32 = 1 << 1;
    /// `allow-stale`.
    pub const ALLOW_STALE: u32 = 1 << 2;
    /// `no-cluster`.
    pub const NO_CLUSTER: u32 = 1 << 3;
    /// `allow-cross-slot-keys`.
    pub const ALLOW_CROSS_SLOT: u32 = 1 << 4;
    /// An EVAL script without shebang (Redis's "eval compatibility mode").
    pub const EVAL_COMPAT: u32 = 1 << 5;

    /// Names, in Redis's order.
    pub const NAMES: &[(&str, u32)] = &[
        ("no-writes", NO_WRITES),
        ("allow-oom", ALLOW_OOM),
        ("allow-stale", ALLOW_STALE),
        ("no-cluster", NO_CLUSTER),
        ("allow-cross-slot-keys", ALLOW_CROSS_SLOT),
    ];
}

/// A cached EVAL script.
#[derive(Debug)]
pub struct Script {
    /// The compiled chunk (its environment is the read-only globals), kept in the Lua
    /// registry: a plain `mlua::Function` takes one of the ~8000 slots of mlua's reference
    /// stack, and thousands of cached scripts would exhaust it. `Arc`: a run takes it out
    /// of the store cheaply.
    pub func: Arc<mlua::RegistryKey>,
    /// The body as sent.
    pub body: Vec<u8>,
    /// [`sflags`].
    pub flags: u32,
    /// Its last run was short: the next one runs inline. Shared with the run, which sets
    /// it when it ends (no second lookup by name).
    pub inline: Arc<AtomicBool>,
}

/// One registered function of a library.
#[derive(Debug)]
pub struct FunctionDef {
    /// Function name, as registered (`Arc`: a run takes it out of the store cheaply).
    pub name: Arc<str>,
    /// The Lua callback (in the registry: see [`Script::func`]).
    pub func: Arc<mlua::RegistryKey>,
    /// [`sflags`].
    pub flags: u32,
    /// `description`, if given.
    pub description: Option<Vec<u8>>,
    /// Its last run was short: the next one runs inline. Shared with the run, which sets
    /// it when it ends (no second lookup by name).
    pub inline: Arc<AtomicBool>,
}

/// A script or function as a run needs it (taken out of the store: the run borrows it
/// mutably).
#[derive(Debug, Clone)]
pub struct Target {
    /// [`Script::func`] or [`FunctionDef::func`].
    pub func: Arc<mlua::RegistryKey>,
    /// [`sflags`].
    pub flags: u32,
    /// [`Script::inline`] or [`FunctionDef::inline`].
    pub inline: Arc<AtomicBool>,
    /// [`FunctionDef::name`] (none for a script).
    pub name: Option<Arc<str>>,
}

impl Target {
    pub fn of_script(s: &Script) -> Self {
        Target {
            func: s.func.clone(),
            flags: s.flags,
            inline: s.inline.clone(),
            name: None,
        }
    }

    pub fn of_function(f: &FunctionDef) -> Self {
        Target {
            func: f.func.clone(),
            flags: f.flags,
            inline: f.inline.clone(),
            name: Some(f.name.clone()),
        }
    }
}

/// What [`Scripting::runs_inline`] found, for the call that runs right after it.
#[derive(Debug, Default)]
struct Found {
    /// The command's name and its first argument (SHA1, body or function name) as sent.
    command: Vec<u8>,
    what: Vec<u8>,
    target: Option<Target>,
}

/// A loaded function library.
#[derive(Debug)]
pub struct Library {
    /// Library name (from `#!lua name=`).
    pub name: String,
    /// The code as loaded.
    pub code: Vec<u8>,
    /// Its functions, by name.
    pub functions: BTreeMap<String, FunctionDef>,
}

/// Scripting state kept in the [`Store`](crate::store::Store): one Lua state for EVAL scripts
/// and one for function libraries, as Redis keeps them apart.
pub struct Scripting {
    /// The EVAL Lua state.
    pub eval_vm: Option<vm::Vm>,
    /// Cached scripts by lowercase SHA1.
    pub scripts: HashMap<String, Script, crate::store::value::BuildHasher>,
    /// The functions Lua state.
    pub func_vm: Option<vm::Vm>,
    /// Libraries by name.
    pub libraries: BTreeMap<String, Library>,
    /// Function name in lower case → its library and its name as registered: FCALL finds a
    /// function in any case, and a library cannot register a name another one has in any
    /// case (Redis). Two names of one library that differ only in case share one entry
    /// (the first in name order), as in Redis.
    pub functions: HashMap<String, (String, String), crate::store::value::BuildHasher>,
    /// Functions registered by all libraries (a run publishes it for FUNCTION STATS).
    functions_total: usize,
    /// What other clients see of the running script.
    pub busy: Arc<Busy>,
    /// The last run recorded took [`INLINE_LIMIT`] or more (the connection then ends its
    /// batch: see `server::connection`).
    pub last_run_long: bool,
    /// The body and SHA1 of the last EVAL: the connection (to decide where it runs) and
    /// EVAL itself both need it, and an application sends the same body again and again.
    last_eval: Option<(Vec<u8>, String)>,
    /// The reply buffer of the last `redis.call`, kept for the next one (no allocation per
    /// call once it has grown to the replies scripts see).
    pub(crate) call_spare: Vec<u8>,
    /// The commands `redis.call` named last.
    pub(crate) recent_commands: vm::RecentCommands,
    /// Where a run's string result is copied off the Lua stack, kept for the next run.
    pub(crate) return_spare: Vec<u8>,
    /// The script or function the connection found to be short, taken by the run that
    /// follows (see [`Scripting::take_found`]): it is not looked up twice.
    found: Found,
}

impl std::fmt::Debug for Scripting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripting")
            .field("scripts", &self.scripts.len())
            .field("libraries", &self.libraries.len())
            .finish()
    }
}

impl Default for Scripting {
    fn default() -> Self {
        let busy = Arc::new(Busy::default());
        busy.threshold_ms.store(5000, Ordering::Relaxed);
        Scripting {
            eval_vm: None,
            scripts: HashMap::default(),
            func_vm: None,
            libraries: BTreeMap::new(),
            functions: HashMap::default(),
            functions_total: 0,
            busy,
            last_run_long: false,
            last_eval: None,
            call_spare: Vec::new(),
            recent_commands: vm::RecentCommands::default(),
            found: Found::default(),
            return_spare: Vec::new(),
        }
    }
}

impl Scripting {
    /// The EVAL Lua state, created on first use.
    ///
    /// # Errors
    /// Lua could not be initialised (out of memory).
    pub fn eval_vm(&mut self) -> mlua::Result<&vm::Vm> {
        if self.eval_vm.is_none() {
            self.eval_vm = Some(vm::Vm::new(self.busy.clone())?);
        }
        Ok(self.eval_vm.as_ref().expect("just set"))
    }

    /// The functions Lua state, created on first use.
    ///
    /// # Errors
    /// Lua could not be initialised (out of memory).
    pub fn func_vm(&mut self) -> mlua::Result<&vm::Vm> {
        if self.func_vm.is_none() {
            self.func_vm = Some(vm::Vm::new(self.busy.clone())?);
        }
        Ok(self.func_vm.as_ref().expect("just set"))
    }

    /// True when the script call `args` (EVAL, EVALSHA, FCALL and their `_RO` forms) is of a
    /// known script or function whose last run was short: it runs inline. What it found is
    /// kept for that run ([`Scripting::take_found`]).
    pub fn runs_inline(&mut self, args: &[&[u8]]) -> bool {
        self.found.target = None;
        let (Some(name), Some(what)) = (args.first(), args.get(1)) else {
            return false;
        };
        let target = if name.len() >= 5 && name[..5].eq_ignore_ascii_case(b"fcall") {
            self.function(what).map(Target::of_function)
        } else if name.len() >= 7 && name[..7].eq_ignore_ascii_case(b"evalsha") {
            self.by_sha(what).map(Target::of_script)
        } else {
            let sha = self.eval_sha(what);
            self.scripts.get(&sha).map(Target::of_script)
        };
        let Some(target) = target.filter(|t| t.inline.load(Ordering::Relaxed)) else {
            return false;
        };
        let found = &mut self.found;
        if what.len() > FOUND_WHAT_MAX {
            // A long EVAL body is not copied: EVAL looks its script up again.
            return true;
        }
        found.command.clear();
        found.command.extend_from_slice(name);
        found.what.clear();
        found.what.extend_from_slice(what);
        found.target = Some(target);
        true
    }

    /// What [`Scripting::runs_inline`] found for `command what`, if it was asked about them
    /// last. Only for the run the connection started right after asking (`script_inline`):
    /// the store has not changed since.
    pub fn take_found(&mut self, command: &[u8], what: &[u8]) -> Option<Target> {
        let t = self.found.target.take()?;
        (self.found.command == command && self.found.what == what).then_some(t)
    }

    /// The function named `name`, in any case (Redis compares function names so); of two
    /// names of one library that differ only in case, the one written exactly so.
    pub fn function(&self, name: &[u8]) -> Option<&FunctionDef> {
        let mut buf = [0u8; 64];
        let long;
        let key = if name.len() <= buf.len() {
            for (d, s) in buf.iter_mut().zip(name) {
                *d = s.to_ascii_lowercase();
            }
            std::str::from_utf8(&buf[..name.len()]).ok()?
        } else {
            long = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
            long.as_str()
        };
        let (lib, registered) = self.functions.get(key)?;
        let lib = self.libraries.get(lib)?;
        if registered.as_bytes() != name
            && let Some(exact) = std::str::from_utf8(name)
                .ok()
                .and_then(|n| lib.functions.get(n))
        {
            return Some(exact);
        }
        lib.functions.get(registered)
    }

    /// Functions registered by all libraries (FUNCTION STATS).
    pub fn functions_count(&self) -> usize {
        self.functions_total
    }

    /// Forgets the names of `lib`'s functions (being deleted or replaced).
    pub fn unlink_functions(&mut self, lib: &Library) {
        self.functions_total -= lib.functions.len();
        for f in lib.functions.keys() {
            let key = f.to_ascii_lowercase();
            if self
                .functions
                .get(&key)
                .is_some_and(|(l, _)| *l == lib.name)
            {
                self.functions.remove(&key);
            }
        }
    }

    /// The SHA1 of an EVAL body (hex, lower case), computed once for the same body twice in
    /// a row.
    pub fn eval_sha(&mut self, body: &[u8]) -> String {
        match &self.last_eval {
            Some((b, sha)) if b.as_slice() == body => sha.clone(),
            _ => {
                let sha = sha1hex(body);
                if body.len() <= 4096 {
                    self.last_eval = Some((body.to_vec(), sha.clone()));
                }
                sha
            }
        }
    }

    /// The cached script whose SHA1 is `sha` (in any case), without an allocation when it
    /// is already lower case (as clients send it).
    pub fn by_sha(&self, sha: &[u8]) -> Option<&Script> {
        let mut lower = [0u8; 40];
        let lower = lower_sha(sha, &mut lower)?;
        self.scripts.get(lower)
    }

    /// Remembers how long the last run of a script or function took (`inline` is its
    /// [`Script::inline`] or [`FunctionDef::inline`]).
    pub fn record_run(&mut self, inline: &AtomicBool, took: std::time::Duration, retried: bool) {
        inline.store(!retried && took < INLINE_LIMIT, Ordering::Relaxed);
        self.last_run_long = took >= INLINE_LIMIT;
    }

    /// SCRIPT FLUSH: forgets every script and starts a fresh Lua state.
    pub fn flush_scripts(&mut self) {
        self.found.target = None;
        self.scripts.clear();
        self.eval_vm = None;
    }

    /// FUNCTION FLUSH: drops every library.
    pub fn flush_functions(&mut self) {
        self.found.target = None;
        self.libraries.clear();
        self.functions_total = 0;
        self.functions.clear();
        self.func_vm = None;
    }

    /// The code of every library, in name order (RDB, FUNCTION DUMP, AOF rewrite).
    pub fn library_codes(&self) -> Vec<Vec<u8>> {
        self.libraries.values().map(|l| l.code.clone()).collect()
    }

    /// Loads a library (FUNCTION LOAD, RDB, AOF, full sync). Returns its name.
    ///
    /// # Errors
    /// The error line (without `-`) to reply with; nothing changed then.
    pub fn load_library(&mut self, code: &[u8], replace: bool) -> Result<String, String> {
        let lib = self.compile_library(code)?;
        let name = lib.name.clone();
        if self.libraries.contains_key(&name) && !replace {
            return Err(format!("ERR Library '{name}' already exists"));
        }
        if let Some(f) = self.taken_function(&lib, |owner| owner == name) {
            return Err(format!("ERR Function {f} already exists"));
        }
        self.replace_libraries(vec![lib], false);
        Ok(name)
    }

    /// Compiles a library in the functions Lua state, without making it callable.
    ///
    /// # Errors
    /// The error line (without `-`).
    pub fn compile_library(&mut self, code: &[u8]) -> Result<Library, String> {
        let vm = self.func_vm().map_err(|e| format!("ERR {e}"))?.clone();
        let (name, functions) = vm.load_library(code)?;
        Ok(Library {
            name,
            code: code.to_vec(),
            functions,
        })
    }

    /// A function of `lib` whose name (in any case) a loaded library has, other than one
    /// `leaving` says is about to go.
    pub fn taken_function<'a>(
        &self,
        lib: &'a Library,
        leaving: impl Fn(&str) -> bool,
    ) -> Option<&'a str> {
        lib.functions.keys().map(String::as_str).find(|f| {
            self.functions
                .get(&f.to_ascii_lowercase())
                .is_some_and(|(owner, _)| !leaving(owner))
        })
    }

    /// Makes compiled libraries callable, in place of the loaded ones of the same names (of
    /// every loaded one, with `flush`). The callers have checked that no function name is
    /// taken by a library that stays.
    pub fn replace_libraries(&mut self, libs: Vec<Library>, flush: bool) {
        if flush {
            self.libraries.clear();
            self.functions.clear();
            self.functions_total = 0;
        }
        self.found.target = None;
        // All replaced libraries go first: one may own a name a new library takes.
        for lib in &libs {
            if let Some(old) = self.libraries.remove(&lib.name) {
                self.unlink_functions(&old);
            }
        }
        for lib in libs {
            self.functions_total += lib.functions.len();
            for f in lib.functions.keys() {
                self.functions
                    .entry(f.to_ascii_lowercase())
                    .or_insert_with(|| (lib.name.clone(), f.clone()));
            }
            self.libraries.insert(lib.name.clone(), lib);
        }
    }
}

/// Lowercase hex SHA1 of `data` (script ids, `redis.sha1hex`).
pub fn sha1hex(data: &[u8]) -> String {
    use sha1::Digest;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = sha1::Sha1::digest(data);
    let mut s = String::with_capacity(40);
    for b in d.iter() {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// True for the commands the connection hands to the script thread.
pub fn is_script_call(name: &[u8]) -> bool {
    matches!(name.len(), 4 | 5 | 7 | 8 | 10)
        && [
            "eval",
            "evalsha",
            "eval_ro",
            "evalsha_ro",
            "fcall",
            "fcall_ro",
        ]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// Work for the script thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// The thread scripts run on (one, since scripts run one at a time anyway).
#[derive(Debug)]
pub struct ScriptThread {
    tx: std::sync::mpsc::Sender<Job>,
}

impl ScriptThread {
    /// Starts the thread.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn start() -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("codis-script".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    // A panic in one script must not take the thread (and every later script)
                    // down; its connection sees the reply channel dropped and closes.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })?;
        Ok(ScriptThread { tx })
    }

    /// Queues `job`. False if the thread is gone.
    pub fn run(&self, job: Job) -> bool {
        self.tx.send(job).is_ok()
    }
}

/// The longest EVAL body [`Scripting::runs_inline`] keeps for the run that follows.
const FOUND_WHAT_MAX: usize = 4096;

/// The largest buffer (of a `redis.call` reply, of a run's string result) kept for the
/// next use: a huge one is let go.
pub(crate) const SPARE_KEPT_MAX: usize = 64 * 1024;

/// `sha` in lower case in `buf`, when it can name a cached script (40 ASCII characters;
/// the cache's keys are lower-case hex).
pub fn lower_sha<'a>(sha: &[u8], buf: &'a mut [u8; 40]) -> Option<&'a str> {
    if sha.len() != 40 || !sha.is_ascii() {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(sha) {
        *d = s.to_ascii_lowercase();
    }
    std::str::from_utf8(buf).ok()
}
