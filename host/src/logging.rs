//! Logging of the Codis processes (proxy, dashboard): stderr or Codis's daily-rotated file (`<FILE>.YYYY-MM-DD`), with a
//! level that the admin API can change at run time.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, reload};

/// Changes the log level of the running process.
#[derive(Clone)]
pub struct LevelHandle(reload::Handle<LevelFilter, Registry>);

impl std::fmt::Debug for LevelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LevelHandle")
    }
}

impl LevelHandle {
    /// Sets the level.
    pub fn set(&self, level: LevelFilter) -> Result<(), String> {
        self.0.modify(|l| *l = level).map_err(|e| e.to_string())
    }
}

/// Parses a Codis log level, case-insensitively: ERROR, WARN/WARNING, INFO, DEBUG, NONE
/// (logging off). Used for `--log-level` and the admin APIs' `loglevel` routes.
pub fn parse_log_level(s: &str) -> Option<LevelFilter> {
    match s.to_ascii_uppercase().as_str() {
        "ERROR" => Some(LevelFilter::ERROR),
        "WARN" | "WARNING" => Some(LevelFilter::WARN),
        "INFO" => Some(LevelFilter::INFO),
        "DEBUG" => Some(LevelFilter::DEBUG),
        "NONE" => Some(LevelFilter::OFF),
        _ => None,
    }
}

/// The civil (UTC) date (year, month, day) of a unix time.
pub fn civil_date(unix_secs: u64) -> (i64, u32, u32) {
    codis_model::proxy::civil_from_days((unix_secs / 86_400) as i64)
}

/// A file writer that switches to `<base>.YYYY-MM-DD` when the (UTC) day changes.
#[derive(Debug)]
struct DailyFile {
    base: PathBuf,
    day: (i64, u32, u32),
    file: Option<std::fs::File>,
}

impl DailyFile {
    fn current(&mut self) -> std::io::Result<&mut std::fs::File> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let day = civil_date(now);
        if self.file.is_none() || day != self.day {
            let (y, m, d) = day;
            let path = format!("{}.{y:04}-{m:02}-{d:02}", self.base.display());
            self.file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            );
            self.day = day;
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

struct DailyWriter(&'static Mutex<DailyFile>);

impl Write for DailyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f.current()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f.current()?.flush()
    }
}

/// Installs the global logger: to `file` (daily rotated) or stderr, at `level`.
pub fn init(file: Option<PathBuf>, level: LevelFilter) -> LevelHandle {
    let (filter, handle) = reload::Layer::new(level);
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    match file {
        Some(base) => {
            let daily: &'static Mutex<DailyFile> = Box::leak(Box::new(Mutex::new(DailyFile {
                base,
                day: (0, 0, 0),
                file: None,
            })));
            let fmt = fmt.with_ansi(false).with_writer(move || DailyWriter(daily));
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(fmt)
                .try_init();
        }
        None => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(fmt)
                .try_init();
        }
    }
    LevelHandle(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(951_782_400), (2000, 2, 29));
        assert_eq!(civil_date(1_795_564_800), (2026, 11, 25));
    }
}
