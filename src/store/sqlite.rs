//! [`SqliteStore`]: the embedded SQL store (feature `sqlite`).

use std::path::Path;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::pool::PoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

use super::sql::{EmbeddedMigrations, PoolConfig, StoreError, impl_user_store};

/// The schema, from `migrations/sqlite`.
pub(crate) const MIGRATIONS: EmbeddedMigrations = EmbeddedMigrations(&[(
    20250601000000,
    "twofactor records",
    include_str!("../../migrations/sqlite/20250601000000_twofactor_records.sql"),
)]);

/// 2FA records in an SQLite database: the embedded default for single-server apps.
///
/// One row per user in table `twofactor_records`; saves are one conditional `UPDATE` (or
/// `INSERT ... ON CONFLICT DO NOTHING`), so concurrent requests, and several processes
/// sharing the file, cannot lose an update. See [`store::sql`](super::sql) for the schema and
/// the design.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use twofactor::store::{SaveOutcome, SqliteStore, UserStore};
/// use twofactor::UserId;
/// use twofactor::account::TwoFactorRecord;
///
/// # let dir = std::env::temp_dir().join(format!("twofactor-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let path = dir.join("2fa.db");
/// let store = SqliteStore::open(&path).await?; // creates the file and the table
/// let alice = UserId::new("alice");
/// assert!(store.load(&alice).await?.is_none());
///
/// let outcome = store.save(&alice, &TwoFactorRecord::default(), None).await?;
/// assert!(matches!(outcome, SaveOutcome::Saved(_)));
/// # store.close().await;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
///
/// # Linking SQLite next to `rusqlite` or `diesel`
///
/// The store runs on sqlx 0.8, whose SQLite driver depends on `libsqlite3-sys` **0.30** with
/// its `bundled` feature (SQLite compiled from source and linked statically). Every
/// `libsqlite3-sys` declares `links = "sqlite3"`, and Cargo allows one crate with a given
/// `links` value in a build: an application whose own SQLite library depends on another
/// `libsqlite3-sys` minor version fails to resolve ("two packages link to native library
/// `sqlite3`"). One SQLite is then shared by both, and the `bundled` feature applies to it.
///
/// | your SQLite crate | `libsqlite3-sys` it needs | with `twofactor/sqlite` |
/// |---|---|---|
/// | none | — | works |
/// | `rusqlite` 0.32 | 0.30 | works (one shared, bundled SQLite) |
/// | `rusqlite` 0.33 or later | 0.31 or later | does not resolve |
/// | `diesel` 2.2 (`sqlite`) | `>=0.17.2, <0.31` | works (Cargo picks 0.30) |
/// | `sqlx` 0.8 itself | 0.30 | works (same driver) |
///
/// A host on a newer `rusqlite` can keep 2FA in its own database: implement
/// [`UserStore`](super::UserStore) over its connection (one conditional `UPDATE`, see
/// [`store::sql`](super::sql) for the schema) or use `PostgresStore`.
///
/// The migrations are compiled in with `include_str!`, not `sqlx::migrate!`: without sqlx's
/// `macros` feature no proc macro builds a second SQLite driver and a second bundled SQLite
/// for the compiler's host.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// How long a connection waits for another one's write lock before failing with
    /// [`StoreError::Database`] (`SQLITE_BUSY`).
    pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

    /// Opens (creating if missing) the database file at `path` with a pool of the default
    /// size, and creates or upgrades the table.
    ///
    /// The file is opened in WAL mode (readers do not block the writer) with
    /// `synchronous = NORMAL` and a [`Self::BUSY_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] or [`StoreError::Database`] if the file cannot be created
    /// or opened, [`StoreError::Migration`] if the schema cannot be created.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, PoolConfig::new()).await
    }

    /// Like [`open`](Self::open), with a pool sized by `config`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub async fn open_with(path: impl AsRef<Path>, config: PoolConfig) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Self::BUSY_TIMEOUT);
        Self::connect_and_migrate(config.pool_options(), options).await
    }

    /// A private database in memory, with the table created: for tests and examples.
    /// Its records vanish when the store (and all its clones) are dropped.
    ///
    /// An SQLite `:memory:` database belongs to one connection, so this store's pool holds
    /// exactly one connection that never expires; concurrent calls queue for it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Migration`] if the table cannot be created (not expected).
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use twofactor::store::{SaveOutcome, SqliteStore, UserStore, Version};
    /// use twofactor::UserId;
    /// use twofactor::account::TwoFactorRecord;
    ///
    /// let store = SqliteStore::in_memory().await?;
    /// let bob = UserId::new("bob");
    /// let record = TwoFactorRecord::default();
    /// assert_eq!(store.save(&bob, &record, None).await?, SaveOutcome::Saved(Version(1)));
    /// // A second writer that loaded version 1 too loses the race:
    /// assert_eq!(store.save(&bob, &record, Some(Version(1))).await?, SaveOutcome::Saved(Version(2)));
    /// assert_eq!(store.save(&bob, &record, Some(Version(1))).await?, SaveOutcome::Conflict);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new().in_memory(true);
        let pool = PoolConfig::new()
            .pool_options()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
        Self::connect_and_migrate(pool, options).await
    }

    /// Opens `pool` on `options` and creates the table.
    async fn connect_and_migrate(
        pool: PoolOptions<Sqlite>,
        options: SqliteConnectOptions,
    ) -> Result<Self, StoreError> {
        let pool = pool
            .connect_with(options)
            .await
            .map_err(StoreError::from_sqlx)?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Uses a pool you configured yourself (say, your application's). Call
    /// [`migrate`](Self::migrate) once before first use, or create the table with your own
    /// migrations.
    ///
    /// For a file database, use WAL mode and a busy timeout as [`open`](Self::open) does;
    /// for `:memory:`, a pool of one connection without idle timeout or maximum lifetime
    /// (see [`in_memory`](Self::in_memory)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    /// use twofactor::store::SqliteStore;
    ///
    /// # let dir = std::env::temp_dir().join(format!("twofactor-doc-pool-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let path = dir.join("app.db");
    /// let options = SqliteConnectOptions::new()
    ///     .filename(&path)
    ///     .create_if_missing(true)
    ///     .journal_mode(SqliteJournalMode::Wal)
    ///     .busy_timeout(Duration::from_secs(5));
    /// let pool = SqlitePoolOptions::new().connect_with(options).await?; // your app's pool
    /// let store = SqliteStore::from_pool(pool.clone());
    /// store.migrate().await?;
    /// # store.close().await;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn from_pool(pool: SqlitePool) -> Self {
        SqliteStore { pool }
    }

    /// Creates or upgrades table `twofactor_records`. Idempotent; safe to run from several
    /// processes at once.
    ///
    /// # Errors
    ///
    /// [`StoreError::Migration`] if a migration fails or the database holds a different
    /// version of one; connection errors as for [`open`](Self::open).
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
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool and waits for its connections to close. Afterwards every call
    /// fails with [`StoreError::Unavailable`]: never "no record".
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use twofactor::store::{SqliteStore, StoreError, UserStore};
    /// use twofactor::UserId;
    ///
    /// let store = SqliteStore::in_memory().await?;
    /// store.close().await;
    /// let err = store.load(&UserId::new("carol")).await.unwrap_err();
    /// assert!(matches!(err, StoreError::Unavailable { .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_user_store!(SqliteStore);
