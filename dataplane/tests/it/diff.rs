//! Differential tests: every script in `tests/scripts/*.txt` runs against a real
//! `redis-server` and our `codis-server`, and each reply must match byte for byte.
//!
//! Script lines are commands in redis-cli syntax (`"a\x00b"`, `'x'`). A line may start with a
//! directive:
//! - `@sort CMD`: compare the reply's elements as a sorted multiset (unordered replies).
//! - `@scan CMD`: a SCAN-family command with its cursor as `0`; it is repeated until the
//!   cursor returns to 0 and the sorted set of returned elements is compared.
//! - `@type CMD`: compare only the reply's type (random replies).
//! - `@len CMD`: compare only the number of elements.
//! - `@skip CMD`: run on both, compare nothing.
//!
//! Set `DIFF_ONLY=name1,name2` to run only some scripts.

use std::path::PathBuf;

use dataplane::resp::frame::Frame;
use dataplane::resp::request::split_args;

use crate::support::{Client, show, start_codis, start_redis};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Exact,
    Sort,
    Scan,
    Type,
    Len,
    Skip,
}

fn parse_line(line: &str) -> Option<(Mode, Vec<Vec<u8>>)> {
    let (mode, rest) = if let Some(r) = line.strip_prefix("@sort ") {
        (Mode::Sort, r)
    } else if let Some(r) = line.strip_prefix("@scan ") {
        (Mode::Scan, r)
    } else if let Some(r) = line.strip_prefix("@type ") {
        (Mode::Type, r)
    } else if let Some(r) = line.strip_prefix("@len ") {
        (Mode::Len, r)
    } else if let Some(r) = line.strip_prefix("@skip ") {
        (Mode::Skip, r)
    } else {
        (Mode::Exact, line)
    };
    let args = split_args(rest.as_bytes()).unwrap_or_else(|| panic!("bad quoting: {line}"));
    if args.is_empty() {
        None
    } else {
        Some((mode, args))
    }
}

fn sorted_elements(f: &Frame) -> Vec<Vec<u8>> {
    let items = match f {
        Frame::Array(_, items) | Frame::Map(items) => items.clone(),
        other => vec![other.clone()],
    };
    let mut v: Vec<Vec<u8>> = items
        .iter()
        .map(|i| {
            let mut b = Vec::new();
            i.encode(&mut b);
            b
        })
        .collect();
    v.sort();
    v
}

fn type_of(f: &Frame) -> String {
    match f {
        Frame::Simple(_) => "simple".into(),
        Frame::Error(_) => "error".into(),
        Frame::Integer(_) => "integer".into(),
        Frame::Bulk(_) => "bulk".into(),
        Frame::Null => "null".into(),
        Frame::Array(k, _) => format!("array{}", *k as char),
        Frame::Map(_) => "map".into(),
        Frame::Double(_) => "double".into(),
        Frame::Boolean(_) => "bool".into(),
    }
}

fn len_of(f: &Frame) -> usize {
    match f {
        Frame::Array(_, i) | Frame::Map(i) => i.len(),
        _ => 1,
    }
}

/// Runs a SCAN-family command to completion and returns the sorted, deduplicated elements.
fn full_scan(c: &mut Client, args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Vec<u8>> {
    let cursor_at = if args[0].eq_ignore_ascii_case(b"scan") {
        1
    } else {
        2
    };
    let mut args = args.to_vec();
    let mut all = Vec::new();
    for _ in 0..100_000 {
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        let (f, raw) = c.cmd(&refs);
        let Frame::Array(_, parts) = f else {
            return Err(raw);
        };
        let (Frame::Bulk(cur), Frame::Array(_, items)) = (&parts[0], &parts[1]) else {
            return Err(raw);
        };
        let pairs =
            !args[0].eq_ignore_ascii_case(b"scan") && !args[0].eq_ignore_ascii_case(b"sscan");
        if pairs {
            for ch in items.chunks(2) {
                let mut b = Vec::new();
                for x in ch {
                    x.encode(&mut b);
                }
                all.push(b);
            }
        } else {
            for x in items {
                let mut b = Vec::new();
                x.encode(&mut b);
                all.push(b);
            }
        }
        if cur == b"0" {
            all.sort();
            all.dedup();
            return Ok(all);
        }
        args[cursor_at] = cur.clone();
    }
    panic!("scan did not finish");
}

fn run_script(name: &str, text: &str) -> Vec<String> {
    let redis = start_redis(&[]);
    let codis = start_codis(&[]);
    let mut a = Client::connect(redis.port);
    let mut b = Client::connect(codis.port);
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((mode, args)) = parse_line(line) else {
            continue;
        };
        let at = format!("{name}.txt:{}: {line}", n + 1);
        if mode == Mode::Scan {
            let (x, y) = (full_scan(&mut a, &args), full_scan(&mut b, &args));
            if x != y {
                failures.push(format!(
                    "{at}\n  redis: {:?}\n  codis: {:?}",
                    x.map(|v| v.iter().map(|e| show(e)).collect::<Vec<_>>()),
                    y.map(|v| v.iter().map(|e| show(e)).collect::<Vec<_>>())
                ));
            }
            continue;
        }
        let enc = Client::encode(&args);
        a.send_raw(&enc);
        b.send_raw(&enc);
        let ra = a.read_reply();
        let rb = b.read_reply();
        let (Some((fa, xa)), Some((fb, xb))) = (ra, rb) else {
            failures.push(format!("{at}\n  a connection closed"));
            break;
        };
        let same = match mode {
            Mode::Exact => xa == xb,
            Mode::Sort => {
                sorted_elements(&fa) == sorted_elements(&fb) && type_of(&fa) == type_of(&fb)
            }
            Mode::Type => type_of(&fa) == type_of(&fb),
            Mode::Len => type_of(&fa) == type_of(&fb) && len_of(&fa) == len_of(&fb),
            Mode::Skip | Mode::Scan => true,
        };
        if !same {
            failures.push(format!(
                "{at}\n  redis: {}\n  codis: {}",
                show(&xa),
                show(&xb)
            ));
        }
    }
    failures
}

#[test]
fn differential_scripts() {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("tests/scripts");
    let only: Option<Vec<String>> = std::env::var("DIFF_ONLY")
        .ok()
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    scripts.sort();
    let handles: Vec<_> = scripts
        .into_iter()
        .filter_map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            if only.as_ref().is_some_and(|o| !o.contains(&name)) {
                return None;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            Some(std::thread::spawn(move || {
                (name.clone(), run_script(&name, &text))
            }))
        })
        .collect();
    assert!(!handles.is_empty(), "no scripts ran");
    let mut report = String::new();
    let mut total = 0;
    for h in handles {
        let (name, fails) = h.join().expect("script thread panicked");
        total += fails.len();
        for f in fails.iter().take(40) {
            report.push_str(&format!("{f}\n"));
        }
        if fails.len() > 40 {
            report.push_str(&format!("{name}: {} more differences\n", fails.len() - 40));
        }
    }
    assert!(
        total == 0,
        "{total} replies differ from redis-server:\n{report}"
    );
}
