//! The fe's SQLite database: opened with WAL and foreign keys, migrated at start from the
//! top-level `migrations/` folder, refused when it was written by a newer codis-fe.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::SqlitePool;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// The schema this binary knows.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Opening the database failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file was migrated by a newer codis-fe.
    #[error(
        "the database {path} has schema version {found}, newer than this codis-fe knows \
         (up to {known}); run the codis-fe that wrote it, or point --db at another file"
    )]
    NewerSchema {
        /// The file.
        path: String,
        /// The newest migration in the file.
        found: i64,
        /// The newest migration this binary has.
        known: i64,
    },
    /// Anything else.
    #[error("database {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database {path}: migration failed: {source}")]
    Migrate {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: MigrateError,
    },
}

/// Opens (creating if needed) and migrates the database at `path`; `:memory:` gives a private
/// in-memory database (tests).
///
/// # Errors
/// See [`DbError`].
pub async fn open(path: &str) -> Result<SqlitePool, DbError> {
    let memory = path == ":memory:";
    let url = if memory {
        "sqlite::memory:".to_string()
    } else {
        if let Some(dir) = Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        format!("sqlite://{path}")
    };
    let open_err = |source| DbError::Open {
        path: path.to_string(),
        source,
    };
    let mut opts = SqliteConnectOptions::from_str(&url)
        .map_err(open_err)?
        .create_if_missing(true)
        .foreign_keys(true)
        // REPLACE must fire delete triggers, so the audit history cannot be rewritten by an
        // INSERT OR REPLACE.
        .pragma("recursive_triggers", "ON")
        .busy_timeout(Duration::from_secs(5));
    if !memory {
        opts = opts
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
    }
    // An in-memory database lives as long as its connection: keep exactly one.
    let max = if memory { 1 } else { 8 };
    let pool = SqlitePoolOptions::new()
        .max_connections(max)
        .min_connections(if memory { 1 } else { 0 })
        .idle_timeout(if memory {
            None
        } else {
            Some(Duration::from_secs(600))
        })
        .max_lifetime(if memory {
            None
        } else {
            Some(Duration::from_secs(3600))
        })
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts)
        .await
        .map_err(open_err)?;
    check_not_newer(&pool, path).await?;
    MIGRATOR.run(&pool).await.map_err(|source| match source {
        MigrateError::VersionMissing(found) => DbError::NewerSchema {
            path: path.to_string(),
            found,
            known: known_version(),
        },
        source => DbError::Migrate {
            path: path.to_string(),
            source,
        },
    })?;
    Ok(pool)
}

fn known_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

async fn check_not_newer(pool: &SqlitePool, path: &str) -> Result<(), DbError> {
    let table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await
    .map_err(|source| DbError::Open {
        path: path.to_string(),
        source,
    })?;
    if table.is_none() {
        return Ok(());
    }
    let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .map_err(|source| DbError::Open {
            path: path.to_string(),
            source,
        })?;
    let known = known_version();
    match found {
        Some(found) if found > known => Err(DbError::NewerSchema {
            path: path.to_string(),
            found,
            known,
        }),
        _ => Ok(()),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
