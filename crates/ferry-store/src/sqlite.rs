//! [`SqliteRegistry`]: the registry in one SQLite file (WAL mode) or in memory.

use crate::StoreError;
use crate::sql::{SQLITE_MIGRATIONS, migrator, sql_registry};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a connection waits for another writer's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections to a file database (readers run concurrently in WAL mode; writers take turns).
const FILE_CONNECTIONS: u32 = 8;

/// A [`crate::Registry`] stored in SQLite. One process should own a file database; for
/// several server instances use [`crate::PostgresRegistry`].
pub struct SqliteRegistry {
    pool: SqlitePool,
    location: String,
}

impl fmt::Debug for SqliteRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteRegistry").field("location", &self.location).finish()
    }
}

impl SqliteRegistry {
    pub(crate) const BACKEND: &'static str = "sqlite";

    /// Opens (creating it and its parent directory if missing) the database file at `path`,
    /// in WAL mode with a 30 s busy timeout, and applies pending migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let location = path.display().to_string();
        if path.as_os_str().is_empty() {
            return Err(StoreError::Config(
                "sqlite registry: the database path is empty; use sqlite://PATH, e.g. sqlite:///var/lib/ferry/registry.db".into(),
            ));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                StoreError::Config(format!(
                    "sqlite registry: cannot create directory {} for database {location}: {e}; \
                     create it or choose a writable path",
                    parent.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Config(format!(
                    "sqlite registry: cannot open database file {location}: {e}; check that the path is a writable file \
                     location (not a directory) and that no other program holds an exclusive lock on it"
                ))
            })?;
        Self::migrated(pool, location).await
    }

    /// A fresh private in-memory database on a single connection that is never recycled
    /// (the data lives as long as the registry). For tests and demos.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new().in_memory(true).foreign_keys(true).busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Config(format!("sqlite registry: cannot open an in-memory database: {e}")))?;
        Self::migrated(pool, ":memory:".to_string()).await
    }

    /// The database file path (or `:memory:`).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The path of a file database, `None` in memory.
    pub fn path(&self) -> Option<PathBuf> {
        (self.location != ":memory:").then(|| PathBuf::from(&self.location))
    }

    /// Closes every connection (waits for queries in flight).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrated(pool: SqlitePool, location: String) -> Result<Self, StoreError> {
        migrator(SQLITE_MIGRATIONS).run(&pool).await.map_err(|e| {
            tracing::error!(backend = Self::BACKEND, location = %location, error = %e, "registry migration failed");
            StoreError::Database { backend: Self::BACKEND, source: sqlx::Error::Migrate(Box::new(e)) }
        })?;
        tracing::debug!(location = %location, "sqlite registry ready");
        Ok(SqliteRegistry { pool, location })
    }

    /// A write transaction that takes SQLite's write lock at once (waiting up to the busy
    /// timeout), so a read-then-write transaction never fails with SQLITE_BUSY midway.
    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| crate::sql::db_err(Self::BACKEND, "begin write transaction", e))
    }
}

sql_registry!(SqliteRegistry, Sqlite);
