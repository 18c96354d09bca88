//! Scripting: EVAL EVALSHA EVAL_RO EVALSHA_RO SCRIPT, and functions: FUNCTION FCALL FCALL_RO.
//! The Lua side is in `crate::script`.

use super::flags::*;
use super::{CmdError, CmdResult, CommandSpec, Ctx, arg_i64, eq_ic, spec, unknown_subcommand};
use crate::script::vm::{RunMode, budget_end_ns, eval_shebang};
use crate::script::{Script, Target, sflags};

/// Commands of this family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("eval", -3, NOSCRIPT | SKIP_MONITOR | STALE, (0, 0, 0), eval),
    spec(
        "evalsha",
        -3,
        NOSCRIPT | SKIP_MONITOR | STALE,
        (0, 0, 0),
        eval,
    ),
    spec(
        "eval_ro",
        -3,
        NOSCRIPT | SKIP_MONITOR | STALE | READONLY,
        (0, 0, 0),
        eval,
    ),
    spec(
        "evalsha_ro",
        -3,
        NOSCRIPT | SKIP_MONITOR | STALE | READONLY,
        (0, 0, 0),
        eval,
    ),
    spec(
        "fcall",
        -3,
        NOSCRIPT | SKIP_MONITOR | STALE,
        (0, 0, 0),
        fcall,
    ),
    spec(
        "fcall_ro",
        -3,
        NOSCRIPT | SKIP_MONITOR | STALE | READONLY,
        (0, 0, 0),
        fcall,
    ),
    spec("script", -2, NOSCRIPT, (0, 0, 0), script),
    spec("function", -2, NOSCRIPT | WRITE, (0, 0, 0), function),
];

/// `numkeys` of a script call: the keys and the arguments after them.
/// Keys and arguments of a script call.
type KeysArgs<'a> = (&'a [&'a [u8]], &'a [&'a [u8]]);

fn split_keys<'a>(args: &'a [&'a [u8]]) -> Result<KeysArgs<'a>, CmdError> {
    let n = arg_i64(args[2])?;
    if n < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    if n as usize > args.len() - 3 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    let n = n as usize;
    Ok((&args[3..3 + n], &args[3 + n..]))
}

/// Compiles `body` into the script cache (if it is not there) and returns its SHA1.
fn cache_script(ctx: &mut Ctx<'_>, body: &[u8]) -> Result<String, CmdError> {
    let sha = ctx.store.scripting.eval_sha(body);
    if ctx.store.scripting.scripts.contains_key(&sha) {
        return Ok(sha);
    }
    let (flags, shebang_len) = eval_shebang(body).map_err(CmdError::Msg)?;
    let vm = ctx
        .store
        .scripting
        .eval_vm()
        .map_err(|e| CmdError::err(e.to_string()))?;
    let func = vm
        .compile_kept(&body[shebang_len..], "@user_script")
        .map_err(|m| CmdError::err(format!("Error compiling script (new function): {m}")))?;
    ctx.store.scripting.scripts.insert(
        sha.clone(),
        Script {
            func: std::sync::Arc::new(func),
            body: body.to_vec(),
            flags,
            inline: std::sync::Arc::default(),
        },
    );
    Ok(sha)
}

/// The checks Redis makes before running a script with a shebang (or any function).
fn prepare(ctx: &mut Ctx<'_>, flags: u32, ro_cmd: bool) -> Result<bool, CmdError> {
    let read_only = ro_cmd || flags & sflags::NO_WRITES != 0;
    if flags & sflags::EVAL_COMPAT != 0 {
        return Ok(read_only);
    }
    if flags & sflags::NO_WRITES == 0 {
        if ctx.store.repl.master.is_some()
            && !ctx.client.is_master
            && ctx.store.config.get("replica-read-only").as_deref() != Some("no")
        {
            return Err(CmdError::Msg(
                "READONLY Can not run script with write flag on readonly replica".into(),
            ));
        }
        if ro_cmd {
            return Err(CmdError::err(
                "Can not execute a script with write flag using *_ro command.",
            ));
        }
        if flags & sflags::ALLOW_OOM == 0
            && ctx.store.config.maxmemory != 0
            && !ctx.client.is_master
            && ctx.store.evict_to_fit(crate::alloc::allocated_bytes)
                == crate::store::evict::EvictOutcome::Oom
        {
            return Err(CmdError::Msg(
                "OOM command not allowed when used memory > 'maxmemory'.".into(),
            ));
        }
    }
    if flags & sflags::ALLOW_STALE == 0
        && !ctx.client.is_master
        && ctx
            .store
            .repl
            .master
            .as_ref()
            .is_some_and(|m| !m.link.up.load(std::sync::atomic::Ordering::Relaxed))
        && ctx.store.config.get("replica-serve-stale-data").as_deref() == Some("no")
    {
        return Err(CmdError::Msg(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                .into(),
        ));
    }
    Ok(read_only)
}

fn eval(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let name = args[0];
    let by_sha = name.len() >= 7 && name[..7].eq_ignore_ascii_case(b"evalsha");
    let ro_cmd = name.len() >= 3 && name[name.len() - 3..].eq_ignore_ascii_case(b"_ro");
    let (keys, argv) = split_keys(args)?;
    let found = if ctx.client.script_inline {
        ctx.store.scripting.take_found(name, args[1])
    } else {
        None
    };
    let mut sha_buf = [0u8; 40];
    let body_sha;
    let (sha, target) = if by_sha {
        let sha = crate::script::lower_sha(args[1], &mut sha_buf);
        let target = match found {
            Some(t) => Some(t),
            None => ctx.store.scripting.by_sha(args[1]).map(Target::of_script),
        };
        match (sha, target) {
            (Some(sha), Some(t)) => (sha, t),
            _ => {
                return Err(CmdError::Msg(
                    "NOSCRIPT No matching script. Please use EVAL.".into(),
                ));
            }
        }
    } else {
        body_sha = cache_script(ctx, args[1])?;
        let target = match found {
            Some(t) => t,
            None => Target::of_script(&ctx.store.scripting.scripts[&body_sha]),
        };
        (body_sha.as_str(), target)
    };
    let call = Call {
        eval: true,
        id: sha,
        inline: &target.inline,
        keys,
        argv,
        flags: target.flags,
        ro_cmd,
    };
    run_call(ctx, args, &target.func, call)
}

/// A script or function call, parsed.
struct Call<'a> {
    /// EVAL family (false: FCALL).
    eval: bool,
    /// The script's SHA1 or the function's name.
    id: &'a str,
    /// Its [`Script::inline`] flag.
    inline: &'a std::sync::atomic::AtomicBool,
    keys: &'a [&'a [u8]],
    argv: &'a [&'a [u8]],
    /// [`sflags`] of the script or function.
    flags: u32,
    /// A `*_RO` command.
    ro_cmd: bool,
}

/// Runs `call` (the script or function kept under `key`) after Redis's checks; then
/// remembers whether its next run may be inline, and hands a stopped inline run to the
/// script thread (`crate::script`).
fn run_call(
    ctx: &mut Ctx<'_>,
    args: &[&[u8]],
    key: &mlua::RegistryKey,
    call: Call<'_>,
) -> CmdResult {
    let Call {
        eval,
        id,
        inline,
        keys,
        argv,
        flags,
        ro_cmd,
    } = call;
    let read_only = prepare(ctx, flags, ro_cmd)?;
    let scripting = &mut ctx.store.scripting;
    let vm = if eval {
        scripting.eval_vm()
    } else {
        scripting.func_vm()
    }
    .map_err(|e| CmdError::err(e.to_string()))?
    .clone();
    // The run's time is its command's: `cmd::call` read the clock just before.
    let started = ctx.store.command_started;
    let mode = RunMode {
        eval,
        read_only,
        flags,
        budget_end_ns: if ctx.client.script_inline {
            budget_end_ns(started)
        } else {
            0
        },
    };
    let done = vm.run(ctx, key, id, keys, argv, mode);
    let ended = quanta::Instant::now();
    ctx.store.command_ended = Some(ended);
    ctx.store
        .scripting
        .record_run(inline, ended.saturating_duration_since(started), !done);
    if !done {
        ctx.client.action = Some(crate::server::client::Action::Script(
            args.iter().map(|a| a.to_vec()).collect(),
        ));
    }
    Ok(())
}

fn fcall(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let ro_cmd = args[0].len() > 5;
    let (keys, argv) = split_keys(args)?;
    let found = if ctx.client.script_inline {
        ctx.store.scripting.take_found(args[0], args[1])
    } else {
        None
    };
    let Some(target) = found.or_else(|| {
        ctx.store
            .scripting
            .function(args[1])
            .map(Target::of_function)
    }) else {
        return Err(CmdError::err("Function not found"));
    };
    // Errors and FUNCTION STATS name the function as registered.
    let fname = target.name.clone().unwrap_or_default();
    let call = Call {
        eval: false,
        id: &fname,
        inline: &target.inline,
        keys,
        argv,
        flags: target.flags,
        ro_cmd,
    };
    run_call(ctx, args, &target.func, call)
}

fn flush_mode(args: &[&[u8]]) -> CmdResult {
    match args.len() {
        2 => Ok(()),
        3 if eq_ic(args[2], "async") || eq_ic(args[2], "sync") => Ok(()),
        3 => Err(CmdError::err("SCRIPT FLUSH only support SYNC|ASYNC option")),
        _ => Err(CmdError::Arity(format!(
            "{}|flush",
            String::from_utf8_lossy(args[0]).to_ascii_lowercase()
        ))),
    }
}

fn script(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    let arity = |n: &str| CmdError::Arity(format!("script|{n}"));
    if eq_ic(sub, "load") {
        if args.len() != 3 {
            return Err(arity("load"));
        }
        let sha = cache_script(ctx, args[2])?;
        ctx.out.bulk(sha.as_bytes());
    } else if eq_ic(sub, "exists") {
        if args.len() < 3 {
            return Err(arity("exists"));
        }
        ctx.out.array(args.len() - 2);
        for a in &args[2..] {
            let sha = String::from_utf8_lossy(a).to_ascii_lowercase();
            let found = ctx.store.scripting.scripts.contains_key(&sha);
            ctx.out.int(found as i64);
        }
    } else if eq_ic(sub, "flush") {
        if args.len() > 3 {
            return Err(arity("flush"));
        }
        flush_mode(args)
            .map_err(|_| CmdError::err("SCRIPT FLUSH only support SYNC|ASYNC option"))?;
        ctx.store.scripting.flush_scripts();
        ctx.out.ok();
    } else if eq_ic(sub, "kill") {
        if args.len() != 2 {
            return Err(arity("kill"));
        }
        // A running script holds the store lock: reaching here means none runs (a kill
        // while one runs is answered by the connection without the lock).
        return Err(CmdError::Msg(crate::script::NOTBUSY.into()));
    } else if eq_ic(sub, "help") {
        let lines = [
            "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
            "HELP",
            "    Prints this help.",
        ];
        ctx.out.array(lines.len());
        for l in lines {
            ctx.out.simple(l);
        }
    } else if eq_ic(sub, "debug") {
        return Err(CmdError::err(
            "SCRIPT DEBUG is not supported by codis-server",
        ));
    } else {
        return Err(unknown_subcommand(sub, "script"));
    }
    Ok(())
}

/// FUNCTION DUMP's payload: each library as `RDB_OPCODE_FUNCTION2` + its code, then the RDB
/// version and a CRC64, as DUMP payloads end.
pub fn dump_payload(codes: &[Vec<u8>]) -> Vec<u8> {
    let mut w = crate::rdb::Writer::new();
    for code in codes {
        w.buf.push(crate::rdb::file::opcode::FUNCTION2);
        w.write_string(code);
    }
    let mut buf = w.buf;
    buf.extend_from_slice(&crate::rdb::RDB_VERSION.to_le_bytes());
    let crc = crate::rdb::crc64::crc64(0, &buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

fn parse_payload(p: &[u8]) -> Result<Vec<Vec<u8>>, CmdError> {
    let bad = || CmdError::err("DUMP payload version or checksum are wrong");
    if p.len() < 10 {
        return Err(bad());
    }
    let (body, footer) = p.split_at(p.len() - 10);
    let ver = u16::from_le_bytes([footer[0], footer[1]]);
    if ver as u32 > crate::rdb::RDB_VERSION as u32 {
        return Err(bad());
    }
    let crc = u64::from_le_bytes(footer[2..10].try_into().map_err(|_| bad())?);
    if crc != 0 && crc != crate::rdb::crc64::crc64(0, &p[..p.len() - 8]) {
        return Err(bad());
    }
    let mut r = crate::rdb::Reader::new(body);
    let mut codes = Vec::new();
    while r.position() < body.len() {
        let op = r.read_u8().map_err(|_| bad())?;
        if op != crate::rdb::file::opcode::FUNCTION2 {
            return Err(CmdError::err("given type is not a function"));
        }
        let code = r.read_string().map_err(|_| bad())?.into_owned();
        codes.push(code);
    }
    Ok(codes)
}

fn function(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    let arity = |n: &str| CmdError::Arity(format!("function|{n}"));
    if eq_ic(sub, "load") {
        let (replace, code) = match args.len() {
            3 => (false, args[2]),
            4 if eq_ic(args[2], "replace") => (true, args[3]),
            4 => {
                return Err(CmdError::err(format!(
                    "Unknown option given: {}",
                    String::from_utf8_lossy(args[2])
                )));
            }
            _ => return Err(arity("load")),
        };
        let name = ctx
            .store
            .scripting
            .load_library(code, replace)
            .map_err(CmdError::Msg)?;
        ctx.dirty(1);
        ctx.out.bulk(name.as_bytes());
    } else if eq_ic(sub, "delete") {
        if args.len() != 3 {
            return Err(arity("delete"));
        }
        let name = String::from_utf8_lossy(args[2]).into_owned();
        let s = &mut ctx.store.scripting;
        let Some(lib) = s.libraries.remove(&name) else {
            return Err(CmdError::err("Library not found"));
        };
        s.unlink_functions(&lib);
        ctx.dirty(1);
        ctx.out.ok();
    } else if eq_ic(sub, "flush") {
        if args.len() > 3 {
            return Err(arity("flush"));
        }
        if args.len() == 3 && !eq_ic(args[2], "async") && !eq_ic(args[2], "sync") {
            return Err(CmdError::err(
                "FUNCTION FLUSH only supports SYNC|ASYNC option",
            ));
        }
        ctx.store.scripting.flush_functions();
        ctx.dirty(1);
        ctx.out.ok();
    } else if eq_ic(sub, "list") {
        let mut with_code = false;
        let mut pattern: Option<&[u8]> = None;
        let mut i = 2;
        while i < args.len() {
            if eq_ic(args[i], "withcode") {
                if with_code {
                    return Err(CmdError::err("Unknown argument withcode"));
                }
                with_code = true;
            } else if eq_ic(args[i], "libraryname") {
                if pattern.is_some() {
                    return Err(CmdError::err("library name argument was already given"));
                }
                i += 1;
                let Some(p) = args.get(i) else {
                    return Err(CmdError::err("library name argument was not given"));
                };
                pattern = Some(p);
            } else {
                return Err(CmdError::err(format!(
                    "Unknown argument {}",
                    String::from_utf8_lossy(args[i])
                )));
            }
            i += 1;
        }
        let libs: Vec<&crate::script::Library> = ctx
            .store
            .scripting
            .libraries
            .values()
            .filter(|l| {
                pattern.is_none_or(|p| crate::util::glob::glob_match(p, l.name.as_bytes(), false))
            })
            .collect();
        let out = &mut *ctx.out;
        out.array(libs.len());
        for l in libs {
            out.map(if with_code { 4 } else { 3 });
            out.bulk(b"library_name");
            out.bulk(l.name.as_bytes());
            out.bulk(b"engine");
            out.bulk(b"LUA");
            out.bulk(b"functions");
            out.array(l.functions.len());
            for f in l.functions.values() {
                out.map(3);
                out.bulk(b"name");
                out.bulk(f.name.as_bytes());
                out.bulk(b"description");
                match &f.description {
                    Some(d) => out.bulk(d),
                    None => out.null(),
                }
                out.bulk(b"flags");
                let names: Vec<&str> = sflags::NAMES
                    .iter()
                    .filter(|(_, b)| f.flags & b != 0)
                    .map(|(n, _)| *n)
                    .collect();
                out.set(names.len());
                for n in names {
                    out.simple(n);
                }
            }
            if with_code {
                out.bulk(b"library_code");
                out.bulk(&l.code);
            }
        }
    } else if eq_ic(sub, "dump") {
        if args.len() != 2 {
            return Err(arity("dump"));
        }
        let payload = dump_payload(&ctx.store.scripting.library_codes());
        ctx.out.bulk(&payload);
    } else if eq_ic(sub, "restore") {
        if args.len() < 3 || args.len() > 4 {
            return Err(arity("restore"));
        }
        let policy = match args.get(3) {
            None => "append",
            Some(p) if eq_ic(p, "append") => "append",
            Some(p) if eq_ic(p, "replace") => "replace",
            Some(p) if eq_ic(p, "flush") => "flush",
            Some(_) => {
                return Err(CmdError::err(
                    "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
                ));
            }
        };
        let codes = parse_payload(args[2])?;
        // Every library is compiled (in the functions Lua state, not callable yet) and the
        // payload checked against what stays before anything changes: a refused restore
        // changes nothing.
        let s = &mut ctx.store.scripting;
        let mut libs: Vec<crate::script::Library> = Vec::with_capacity(codes.len());
        for c in &codes {
            let lib = s.compile_library(c).map_err(CmdError::Msg)?;
            if libs.iter().any(|l| l.name == lib.name) {
                return Err(CmdError::err(format!(
                    "Library '{}' already exists",
                    lib.name
                )));
            }
            for f in lib.functions.keys() {
                if libs
                    .iter()
                    .any(|l| l.functions.keys().any(|g| g.eq_ignore_ascii_case(f)))
                {
                    return Err(CmdError::err(format!("Function {f} already exists")));
                }
            }
            libs.push(lib);
        }
        if policy != "flush" {
            for lib in &libs {
                if policy == "append" && s.libraries.contains_key(&lib.name) {
                    return Err(CmdError::err(format!(
                        "Library {} already exists",
                        lib.name
                    )));
                }
                let replaced = |owner: &str| libs.iter().any(|l| l.name == owner);
                if let Some(f) = s.taken_function(lib, replaced) {
                    return Err(CmdError::err(format!("Function {f} already exists")));
                }
            }
        }
        s.replace_libraries(libs, policy == "flush");
        ctx.dirty(1);
        ctx.out.ok();
    } else if eq_ic(sub, "stats") {
        if args.len() != 2 {
            return Err(arity("stats"));
        }
        let s = &ctx.store.scripting;
        function_stats(ctx.out, None, s.libraries.len(), s.functions_count());
    } else if eq_ic(sub, "kill") {
        if args.len() != 2 {
            return Err(arity("kill"));
        }
        return Err(CmdError::Msg(crate::script::NOTBUSY.into()));
    } else if eq_ic(sub, "help") {
        let lines = [
            "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LOAD [REPLACE] <FUNCTION CODE>",
            "DELETE <LIBRARY NAME>",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "FLUSH [ASYNC|SYNC]",
            "STATS",
            "KILL",
            "DUMP",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "HELP",
            "    Prints this help.",
        ];
        ctx.out.array(lines.len());
        for l in lines {
            ctx.out.simple(l);
        }
    } else {
        return Err(unknown_subcommand(sub, "function"));
    }
    Ok(())
}

/// The FUNCTION STATS reply: the running function (name, its call, ms so far) if any, and
/// the Lua engine's library and function counts. Also answered while a script is busy.
pub fn function_stats(
    out: &mut crate::resp::reply::Out,
    running: Option<(&str, &[Vec<u8>], u64)>,
    libraries: usize,
    functions: usize,
) {
    out.map(2);
    out.bulk(b"running_script");
    match running {
        None => out.null(),
        Some((name, call, ms)) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"command");
            out.array(call.len());
            for a in call {
                out.bulk(a);
            }
            out.bulk(b"duration_ms");
            out.int(ms as i64);
        }
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(libraries as i64);
    out.bulk(b"functions_count");
    out.int(functions as i64);
}
