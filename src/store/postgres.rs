//! [`PostgresStore`]: the shared SQL store for deployments with many app servers
//! (feature `postgres`).

use sqlx::postgres::{PgConnectOptions, PgPool};

use super::sql::{EmbeddedMigrations, PoolConfig, StoreError, impl_user_store};

/// The schema, from `migrations/postgres`.
pub(crate) const MIGRATIONS: EmbeddedMigrations = EmbeddedMigrations(&[
    (
        20250601000000,
        "twofactor records",
        include_str!("../../migrations/postgres/20250601000000_twofactor_records.sql"),
    ),
    (
        20261123000000,
        "record as text",
        include_str!("../../migrations/postgres/20261123000000_record_as_text.sql"),
    ),
]);

/// 2FA records in PostgreSQL: for several app servers sharing one database.
///
/// One row per user in table `twofactor_records` (the record as JSON in a `TEXT` column:
/// the server stores it without parsing it; cast it with `record::jsonb` in ad-hoc queries);
/// saves are one conditional `UPDATE` (or `INSERT ... ON CONFLICT DO NOTHING`), correct at
/// PostgreSQL's default isolation level across any number of app servers, with no table
/// locks. See [`store::sql`](super::sql) for the schema and the design.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use twofactor::store::{PoolConfig, PostgresStore, UserStore};
/// use twofactor::UserId;
///
/// let store = PostgresStore::connect_with(
///     "postgres://app@db.internal/app",
///     PoolConfig::new().max_connections(32),
/// )
/// .await?;
/// store.migrate().await?; // once at start-up, or use your own migrations
/// let record = store.load(&UserId::new("alice")).await?;
/// # Ok(())
/// # }
/// ```
///
/// # Same host: connect over the Unix socket
///
/// When the database runs on the app server's host, put the socket's directory in the URL's
/// `host` parameter: `postgres://app@localhost/app?host=/run/postgresql` (Debian's default
/// directory). This skips the TCP stack on both ends: on the 2-vCPU machine of
/// `benches/STORES.md`, 16 clients completed 16–30% more logins per second over the socket
/// than over TCP loopback, from the same server in the same run.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects a pool of the default size to the database at `url`
    /// (`postgres://user:password@host:port/database?sslmode=...`), and checks that one
    /// connection can be made. Does not touch the schema: call [`migrate`](Self::migrate).
    ///
    /// # Errors
    ///
    /// [`StoreError::Config`] for a malformed URL, [`StoreError::Unavailable`],
    /// [`StoreError::Timeout`] or [`StoreError::Database`] if the server cannot be reached or
    /// refuses the login.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PoolConfig::new()).await
    }

    /// Like [`connect`](Self::connect), with a pool sized by `config`.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, config: PoolConfig) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::from_sqlx)?;
        Self::connect_options(options, config).await
    }

    /// Like [`connect_with`](Self::connect_with), from parsed options (to set a schema
    /// search path, TLS roots or an application name).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_options(
        options: PgConnectOptions,
        config: PoolConfig,
    ) -> Result<Self, StoreError> {
        let pool = config
            .pool_options()
            .connect_with(options)
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(PostgresStore { pool })
    }

    /// Uses a pool you configured yourself (say, your application's). Call
    /// [`migrate`](Self::migrate) once before first use, or create the table with your own
    /// migrations.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sqlx::postgres::PgPoolOptions;
    /// use twofactor::store::PostgresStore;
    ///
    /// let pool = PgPoolOptions::new()
    ///     .max_connections(20)
    ///     .connect("postgres://app@db.internal/app")
    ///     .await?; // your app's pool
    /// let store = PostgresStore::from_pool(pool);
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn from_pool(pool: PgPool) -> Self {
        PostgresStore { pool }
    }

    /// Creates or upgrades table `twofactor_records` in the connection's schema. Idempotent;
    /// concurrent runs from several app servers serialize on an advisory lock.
    ///
    /// # Errors
    ///
    /// [`StoreError::Migration`] if a migration fails or the database holds a different
    /// version of one; connection errors as for [`connect`](Self::connect).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATIONS
            .migrator()
            .await?
            .run(&self.pool)
            .await
            .map_err(StoreError::from_migrate)
    }

    /// The underlying pool, for health checks and your own queries.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool and waits for its connections to close. Afterwards every call
    /// fails with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_user_store!(PostgresStore);
