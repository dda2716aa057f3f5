//! [`PostgresRegistry`]: the registry in PostgreSQL, shareable by several server instances.

use crate::StoreError;
use crate::sql::{POSTGRES_MIGRATIONS, migrator, sql_registry};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Default pool size per server instance.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// A [`crate::Registry`] stored in PostgreSQL. Several stateless server instances may use
/// the same database at once: every multi-row write is one transaction, inserts use
/// `ON CONFLICT`, and migrations take sqlx's advisory lock.
pub struct PostgresRegistry {
    pool: PgPool,
    location: String,
}

impl fmt::Debug for PostgresRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresRegistry").field("location", &self.location).finish()
    }
}

impl PostgresRegistry {
    pub(crate) const BACKEND: &'static str = "postgres";

    /// Connects to `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?…]` and applies pending
    /// migrations. sqlx URL parameters work, e.g. `options[search_path]=myschema`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let shown = crate::redact_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Config(format!(
                "postgres registry: cannot parse URL {shown}: {e}; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
            ))
        })?;
        Self::connect_with(options, DEFAULT_MAX_CONNECTIONS, shown).await
    }

    /// Connects with explicit options and pool size; `location` names the database in messages
    /// (it must not contain a password).
    pub async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
        location: String,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Config(format!(
                    "postgres registry: cannot connect to {location}: {e}; check that PostgreSQL is running and that \
                     the URL's host, port, user, password and database are right"
                ))
            })?;
        migrator(POSTGRES_MIGRATIONS).run(&pool).await.map_err(|e| {
            tracing::error!(backend = Self::BACKEND, location = %location, error = %e, "registry migration failed");
            StoreError::Database { backend: Self::BACKEND, source: sqlx::Error::Migrate(Box::new(e)) }
        })?;
        tracing::debug!(location = %location, "postgres registry ready");
        Ok(PostgresRegistry { pool, location })
    }

    /// The database URL with any password removed.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Closes every connection (waits for queries in flight).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A read-committed transaction; the statements in it are written so concurrent
    /// transactions neither lose rows nor deadlock (inserts in sorted key order).
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(|e| crate::sql::db_err(Self::BACKEND, "begin transaction", e))
    }
}

sql_registry!(PostgresRegistry, Postgres);
