//! Redis 7's AOF manifest: the list of files that make up the append-only file.
//!
//! `appenddirname/appendfilename.manifest` holds one line per file,
//! `file <name> seq <n> type <b|h|i>`: at most one base (`b`, an RDB file or AOF commands),
//! history files (`h`, left by a rewrite, deleted at the next chance) and the incremental
//! files (`i`) replayed after the base in order. Names are
//! `<appendfilename>.<seq>.base.rdb` (`.base.aof` without the RDB preamble) and
//! `<appendfilename>.<seq>.incr.aof`. The manifest is replaced atomically (temp file, fsync,
//! rename, fsync of the directory).

use std::io::Write as _;
use std::path::Path;

/// What a listed file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The snapshot the increments apply to.
    Base,
    /// Replaced by a rewrite; to delete.
    History,
    /// Commands appended after the base.
    Incr,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Base => 'b',
            Kind::History => 'h',
            Kind::Incr => 'i',
        }
    }
}

/// One listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name inside the AOF directory.
    pub name: String,
    /// Its sequence number.
    pub seq: u64,
    /// What it holds.
    pub kind: Kind,
}

/// The parsed manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The base file, if any.
    pub base: Option<Entry>,
    /// Files to delete.
    pub history: Vec<Entry>,
    /// Incremental files in replay order.
    pub incr: Vec<Entry>,
    /// Highest base sequence number used so far.
    pub base_seq: u64,
    /// Highest incr sequence number used so far.
    pub incr_seq: u64,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// A line is not `key value` pairs with `file`, `seq` and `type`.
    #[error("Invalid AOF manifest file format (line {0})")]
    Format(usize),
    /// Two base lines.
    #[error("Found duplicate base file information (line {0})")]
    DuplicateBase(usize),
    /// A type other than b, h, i.
    #[error("Unknown AOF file type (line {0})")]
    UnknownType(usize),
    /// A line longer than Redis's 1024-byte limit.
    #[error("The AOF manifest file contains too long line (line {0})")]
    LineTooLong(usize),
    /// Nothing to load.
    #[error("Found an empty AOF manifest")]
    Empty,
}

/// Splits a line into words as Redis's `sdssplitargs` does for the forms a manifest uses:
/// bare words and double-quoted strings with `\"`, `\\` and `\xHH` escapes.
fn split_words(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let mut w = Vec::new();
        if b[i] == b'"' {
            i += 1;
            loop {
                let c = *b.get(i)?;
                match c {
                    b'"' => {
                        i += 1;
                        if i < b.len() && !b[i].is_ascii_whitespace() {
                            return None;
                        }
                        break;
                    }
                    b'\\' => {
                        let e = *b.get(i + 1)?;
                        match e {
                            b'x' => {
                                let h = std::str::from_utf8(b.get(i + 2..i + 4)?).ok()?;
                                w.push(u8::from_str_radix(h, 16).ok()?);
                                i += 4;
                                continue;
                            }
                            b'n' => w.push(b'\n'),
                            b'r' => w.push(b'\r'),
                            b't' => w.push(b'\t'),
                            other => w.push(other),
                        }
                        i += 2;
                    }
                    _ => {
                        w.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                w.push(b[i]);
                i += 1;
            }
        }
        out.push(String::from_utf8_lossy(&w).into_owned());
    }
    Some(out)
}

/// A name as the manifest writes it: bare, or quoted when it holds spaces, quotes or
/// control characters (Redis's `sdscatrepr`).
fn repr(name: &str) -> String {
    let plain = name
        .bytes()
        .all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\\' && c != b'\'');
    if plain && !name.is_empty() {
        return name.to_string();
    }
    let mut s = String::from("\"");
    for c in name.bytes() {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

impl Manifest {
    /// Parses a manifest's text.
    ///
    /// # Errors
    /// A malformed line; a manifest listing no base and no increment.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let mut m = Manifest::default();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.len() > 1024 {
                return Err(ManifestError::LineTooLong(n));
            }
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words = split_words(line).ok_or(ManifestError::Format(n))?;
            if words.is_empty() || !words.len().is_multiple_of(2) {
                return Err(ManifestError::Format(n));
            }
            let (mut name, mut seq, mut kind) = (None, None, None);
            for kv in words.chunks(2) {
                match kv[0].as_str() {
                    "file" => name = Some(kv[1].clone()),
                    "seq" => seq = kv[1].parse::<u64>().ok(),
                    "type" => {
                        kind = Some(match kv[1].as_str() {
                            "b" => Kind::Base,
                            "h" => Kind::History,
                            "i" => Kind::Incr,
                            _ => return Err(ManifestError::UnknownType(n)),
                        })
                    }
                    // Later Redis versions may add keys; unknown ones are skipped as Redis does.
                    _ => {}
                }
            }
            let (Some(name), Some(seq), Some(kind)) = (name, seq, kind) else {
                return Err(ManifestError::Format(n));
            };
            let e = Entry { name, seq, kind };
            match kind {
                Kind::Base => {
                    if m.base.is_some() {
                        return Err(ManifestError::DuplicateBase(n));
                    }
                    m.base_seq = m.base_seq.max(seq);
                    m.base = Some(e);
                }
                Kind::History => m.history.push(e),
                Kind::Incr => {
                    m.incr_seq = m.incr_seq.max(seq);
                    m.incr.push(e);
                }
            }
        }
        if m.base.is_none() && m.incr.is_empty() {
            return Err(ManifestError::Empty);
        }
        Ok(m)
    }

    /// The manifest's text: base, history, then increments.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for e in self.base.iter().chain(&self.history).chain(&self.incr) {
            s.push_str(&format!(
                "file {} seq {} type {}\n",
                repr(&e.name),
                e.seq,
                e.kind.letter()
            ));
        }
        s
    }

    /// Every file the manifest lists, in replay order (history excluded).
    pub fn replay_order(&self) -> Vec<&Entry> {
        self.base.iter().chain(&self.incr).collect()
    }

    /// A new increment's entry (not yet listed).
    pub fn next_incr(&mut self, filename: &str) -> Entry {
        self.incr_seq += 1;
        Entry {
            name: format!("{filename}.{}.incr.aof", self.incr_seq),
            seq: self.incr_seq,
            kind: Kind::Incr,
        }
    }

    /// A new base's entry (not yet listed).
    pub fn next_base(&mut self, filename: &str, rdb: bool) -> Entry {
        self.base_seq += 1;
        let ext = if rdb { "rdb" } else { "aof" };
        Entry {
            name: format!("{filename}.{}.base.{ext}", self.base_seq),
            seq: self.base_seq,
            kind: Kind::Base,
        }
    }
}

/// `<appendfilename>.manifest`.
pub fn manifest_name(filename: &str) -> String {
    format!("{filename}.manifest")
}

/// Writes `m` as `dir`/`<appendfilename>.manifest`, atomically and durably.
///
/// # Errors
/// The directory cannot be written.
pub fn persist(dir: &Path, filename: &str, m: &Manifest) -> std::io::Result<()> {
    let tmp = dir.join(format!("temp-{}", manifest_name(filename)));
    let dest = dir.join(manifest_name(filename));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(m.render().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Makes a directory's entries (created, renamed files) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_redis_writes() {
        let text = "file appendonly.aof.3.base.rdb seq 3 type b\n\
                    file appendonly.aof.2.incr.aof seq 2 type h\n\
                    file appendonly.aof.5.incr.aof seq 5 type i\n\
                    file appendonly.aof.6.incr.aof seq 6 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.base.as_ref().unwrap().name, "appendonly.aof.3.base.rdb");
        assert_eq!(m.history.len(), 1);
        assert_eq!(m.incr.len(), 2);
        assert_eq!((m.base_seq, m.incr_seq), (3, 6));
        assert_eq!(m.render(), text);
        let names: Vec<_> = m.replay_order().iter().map(|e| e.name.clone()).collect();
        assert_eq!(
            names,
            [
                "appendonly.aof.3.base.rdb",
                "appendonly.aof.5.incr.aof",
                "appendonly.aof.6.incr.aof"
            ]
        );
    }

    #[test]
    fn key_order_comments_and_quotes() {
        let m = Manifest::parse("# comment\nseq 1 type i file \"my file\\x21.aof\"\n").unwrap();
        assert_eq!(m.incr[0].name, "my file!.aof");
        assert_eq!(m.render(), "file \"my file!.aof\" seq 1 type i\n");
        assert_eq!(Manifest::parse(&m.render()).unwrap(), m);
    }

    #[test]
    fn refuses_malformed() {
        assert_eq!(
            Manifest::parse("file a seq 1\n"),
            Err(ManifestError::Format(1))
        );
        assert_eq!(
            Manifest::parse("file a seq 1 type x\n"),
            Err(ManifestError::UnknownType(1))
        );
        assert_eq!(
            Manifest::parse("file a seq 1 type b\nfile b seq 2 type b\n"),
            Err(ManifestError::DuplicateBase(2))
        );
        assert_eq!(Manifest::parse("\n# nothing\n"), Err(ManifestError::Empty));
        assert_eq!(
            Manifest::parse("file a seq x type i\n"),
            Err(ManifestError::Format(1))
        );
    }

    #[test]
    fn names_follow_redis() {
        let mut m = Manifest::default();
        assert_eq!(
            m.next_base("appendonly.aof", true).name,
            "appendonly.aof.1.base.rdb"
        );
        assert_eq!(
            m.next_incr("appendonly.aof").name,
            "appendonly.aof.1.incr.aof"
        );
        assert_eq!(m.next_base("x.aof", false).name, "x.aof.2.base.aof");
    }
}
