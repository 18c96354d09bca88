//! Builds the web UI bundle that codis-fe serves (`--assets-dir`), with nothing downloaded at
//! run time but npm's binaryen (optional) and no tool installed by hand.
//!
//! ```text
//! cargo run -p xtask -- dist [OUT]   build into OUT (default: <target>/ui-dist)
//! cargo run -p xtask -- sizes [OUT]  print each file's size and gzipped size
//! ```
//!
//! `dist`: `cargo build -p frontend --target wasm32-unknown-unknown --profile wasm-release`,
//! wasm-bindgen through its library (pinned to the same version as the frontend's
//! `wasm-bindgen`, so they always match), `wasm-opt -Oz --low-memory-unused` from npm's `binaryen@132` (installed
//! into `<target>/tools` when npm is there; never Debian's binaryen 108, which breaks the
//! page), the hand-written files of `static/`, and a `.gz` sibling for each file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The binaryen release whose wasm-opt is known to keep wasm-bindgen 0.2.130's output working.
const BINARYEN: &str = "binaryen@132.0.0";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The directory `cargo run` gives at run time first: a binary reused from a shared build
    // cache may have been compiled in another checkout, whose path `env!` would hold.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = manifest_dir
        .parent()
        .context("xtask lives in the workspace")?
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let out = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("ui-dist"));
    match args.first().map(String::as_str) {
        Some("dist") => {
            dist(&root, &target, &out)?;
            sizes(&out)
        }
        Some("sizes") => sizes(&out),
        _ => bail!("usage: cargo run -p xtask -- dist|sizes [OUT]"),
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd.status().with_context(|| format!("start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn dist(root: &Path, target: &Path, out: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "-p",
            "frontend",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .args(["--profile", "wasm-release"]))?;
    let wasm = target.join("wasm32-unknown-unknown/wasm-release/frontend.wasm");

    // The wasm steps (bindgen, wasm-opt, zopfli) take tens of seconds: skip them when the
    // bundle was made from this very build of the frontend (a warm start of the platform).
    let meta = std::fs::metadata(&wasm).with_context(|| format!("{}", wasm.display()))?;
    let stamp = format!("{} {:?}", meta.len(), meta.modified()?);
    let stamp_file = out.join(".built-from");
    let fresh = std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp)
        && out.join("frontend_bg.wasm.gz").is_file()
        && out.join("frontend.js").is_file();
    if fresh {
        eprintln!("xtask: the wasm bundle is up to date; refreshing static files only");
        copy_static(root, out)?;
        return gzip_all(out, false);
    }
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("clear {}", out.display()))?;
    }
    std::fs::create_dir_all(out)?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .typescript(false)
        // The library's default (true) makes a bare `init()` fail to find the .wasm.
        .omit_default_module_path(false)
        .generate(out)
        .context("wasm-bindgen")?;

    let bg = out.join("frontend_bg.wasm");
    if let Some(opt) = wasm_opt(target) {
        let tmp = out.join("frontend_bg.opt.wasm");
        // `--low-memory-unused`: rustc places the stack first, so addresses below 1 KiB are
        // never used and wasm-opt may fold them into load/store offsets (about 2 KB gzipped).
        run(Command::new(&opt)
            .args(["-Oz", "--low-memory-unused"])
            .arg(&bg)
            .arg("-o")
            .arg(&tmp))?;
        std::fs::rename(&tmp, &bg)?;
    } else {
        // Never a quiet skip: the bundle's size target depends on wasm-opt.
        bail!("wasm-opt from npm's {BINARYEN} could not be installed (is npm on PATH?)");
    }

    copy_static(root, out)?;
    gzip_all(out, true)?;
    std::fs::write(stamp_file, stamp)?;
    Ok(())
}

/// Copies the hand-written assets (`static/`) into the bundle.
fn copy_static(root: &Path, out: &Path) -> Result<()> {
    for entry in std::fs::read_dir(root.join("static"))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), out.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// npm's binaryen wasm-opt under `<target>/tools`, installed there on first use.
fn wasm_opt(target: &Path) -> Option<PathBuf> {
    let tools = target.join("tools");
    let bin = tools.join("node_modules/.bin/wasm-opt");
    if !bin.exists() {
        let ok = Command::new("npm")
            .args([
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
            ])
            .arg(&tools)
            .arg(BINARYEN)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return None;
        }
    }
    bin.exists().then_some(bin)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

/// Gzip as small as the format allows (zopfli): for the .wasm, which every browser downloads.
/// Any gzip reader inflates it; it takes seconds, once, at build time.
fn zopfli_gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let options = zopfli::Options {
        iteration_count: std::num::NonZeroU64::new(5).unwrap_or(std::num::NonZeroU64::MIN),
        ..zopfli::Options::default()
    };
    zopfli::compress(options, zopfli::Format::Gzip, data, &mut out)?;
    Ok(out)
}

/// Writes a `.gz` beside every file (the .wasm too when `with_wasm`).
fn gzip_all(out: &Path, with_wasm: bool) -> Result<()> {
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "gz") || !path.is_file() {
            continue;
        }
        let is_wasm = path.extension().is_some_and(|e| e == "wasm");
        if (is_wasm && !with_wasm) || path.file_name().is_some_and(|n| n == ".built-from") {
            continue;
        }
        let data = std::fs::read(&path)?;
        let gz = if path.extension().is_some_and(|e| e == "wasm") {
            zopfli_gzip(&data)?
        } else {
            gzip(&data)?
        };
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".gz");
        std::fs::write(out.join(name), gz)?;
    }
    Ok(())
}

fn sizes(out: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)
        .with_context(|| format!("read {}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "gz"))
        .collect();
    files.sort();
    let (mut raw, mut packed) = (0u64, 0u64);
    println!("{:<24} {:>10} {:>10}", "file", "bytes", "gzip");
    for f in &files {
        let data = std::fs::read(f)?;
        let mut sibling = f.as_os_str().to_os_string();
        sibling.push(".gz");
        // What is served: the precompressed sibling when there is one.
        let gz = match std::fs::metadata(&sibling) {
            Ok(m) => m.len(),
            Err(_) => gzip(&data)?.len() as u64,
        };
        raw += data.len() as u64;
        packed += gz;
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        println!("{name:<24} {:>10} {gz:>10}", data.len());
    }
    println!("{:<24} {raw:>10} {packed:>10}", "total");
    Ok(())
}
