//! SQL stores on [sqlx]: [`SqliteStore`](super::SqliteStore) (feature `sqlite`, the embedded
//! default) and [`PostgresStore`](super::PostgresStore) (feature `postgres`, for many app
//! servers sharing one database), and a guide to implementing [`UserStore`](super::UserStore) for your own
//! database with these two as the model.
//!
//! # The table
//!
//! Both stores keep one row per user in one table, created by their embedded migrations
//! (`migrations/sqlite/`, `migrations/postgres/` in the crate source):
//!
//! ```sql
//! CREATE TABLE twofactor_records (
//!     user_id    TEXT PRIMARY KEY,      -- UserId::as_str()
//!     version    BIGINT NOT NULL,       -- Version, 1 on insert, +1 per save
//!     record     TEXT NOT NULL,         -- the TwoFactorRecord as serde_json text
//!     updated_at TIMESTAMP NOT NULL     -- bookkeeping for operators; the store never reads it
//! );
//! ```
//!
//! # Implementing `UserStore` for your own database
//!
//! Everything that must be atomic in 2FA (the last accepted time step that refuses a replayed
//! code, a recovery code consumed once, the throttle's failure counter, a pending mailed code)
//! lives in the one [`TwoFactorRecord`] of a user and is
//! written through [`UserStore::save`](super::UserStore::save)'s compare-and-swap. Get that one method right and the
//! service is correct across threads, processes and app servers; get it wrong and two requests
//! can both accept the same code. The recipe, which is exactly what the stores here do:
//!
//! 1. **Load** is one `SELECT version, record ... WHERE user_id = $1`. No row is `Ok(None)`.
//!    A row you cannot decode (bad JSON, a negative version, a type mismatch) is an `Err`,
//!    **never** `Ok(None)`: "no record" means "this user has no 2FA", and turning a broken
//!    row into that would let a login through without a second factor. The same goes for a
//!    database that is down or timing out: return `Err`, and the service fails closed.
//! 2. **Save with an expected version** is *one* conditional statement, never a read followed
//!    by a write and never a table lock:
//!
//!    ```sql
//!    UPDATE twofactor_records
//!       SET record = $2, version = version + 1, updated_at = CURRENT_TIMESTAMP
//!     WHERE user_id = $1 AND version = $3
//!    RETURNING version
//!    ```
//!
//!    A returned row is [`SaveOutcome::Saved`] with that version;
//!    no row (or zero rows affected, if your database has no `RETURNING`) is
//!    [`SaveOutcome::Conflict`]: somebody else saved first, and the caller reloads and retries.
//!    The database makes the check and the write one atomic step; at any isolation level a
//!    concurrent `UPDATE` of the same row waits for the first to commit and then re-checks
//!    `version = $3`, which no longer holds.
//! 3. **Save with no expected version** (`None`: insert only if absent) is one
//!    `INSERT ... VALUES ($1, 1, $2, ...) ON CONFLICT (user_id) DO NOTHING RETURNING version`:
//!    of two racing inserts exactly one gets a row back, the other gets
//!    [`SaveOutcome::Conflict`]. Do not catch a unique-key violation from a plain `INSERT`
//!    instead: in PostgreSQL it aborts the surrounding transaction.
//! 4. **Serialize the record** with [`encode_record`](super::codec::encode_record) and
//!    decode it with [`decode_record`](super::codec::decode_record); store it as text (a JSON
//!    type that reorders keys works too, since decoding does not depend on key order). Treat
//!    it as opaque: decoding is strict (a row that is not exactly a record this crate wrote
//!    is an error, which you return as your "corrupt row" error), and new versions of this
//!    crate keep reading the formats older ones wrote.
//!    If the column gives the text back exactly as written (a text column, as here), also
//!    implement [`load_encoded`](super::UserStore::load_encoded) and
//!    [`save_encoded`](super::UserStore::save_encoded) the way these stores do: a
//!    [`SealedStore`](crate::seal::SealedStore) over your store then encodes each record
//!    once and checks its tag over the stored bytes. A JSON type that reorders keys keeps
//!    the trait's defaults.
//! 5. **Errors**: an associated `type Error: std::error::Error + Send + Sync + 'static` that
//!    keeps its cause (box the driver's error as the `source`; do not flatten it to a
//!    `String`). [`StoreError`] is a model.
//! 6. **Test it** with the crate's store conformance suite (`tests/common/conformance.rs` in
//!    the repository): copy it, add a fixture for your store, and run the lost-update and
//!    insert-race tests against a real server.
//!
//! Versions are `u64` in Rust and `BIGINT` (`i64`) in SQL; an expected version above
//! `i64::MAX` cannot be stored, so it can only be a [`SaveOutcome::Conflict`].
//!
//! # Protect the table
//!
//! A record holds the user's TOTP secret (base32, as the authenticator app has it): anyone who
//! can read the table can compute that user's codes. Recovery codes and trusted-device tokens
//! are stored only as hashes. Grant access to `twofactor_records` as you would to password
//! hashes, or stricter, and keep it out of analytics replicas and unencrypted backups. Better,
//! wrap the store in [`SealedStore`](crate::seal::SealedStore): the secrets are then stored
//! encrypted under a key that lives outside the database.
//!
//! # Migrations
//!
//! [`SqliteStore::open`](super::SqliteStore::open) and
//! [`SqliteStore::in_memory`](super::SqliteStore::in_memory) create the table themselves.
//! On a database you share with your application
//! ([`PostgresStore::connect`](super::PostgresStore::connect) and both `from_pool`s), call
//! `migrate()` once at start-up, or copy the SQL files into your own migrations and skip it.
//! `migrate()` records its steps in sqlx's `_sqlx_migrations` table and ignores the entries of
//! your own sqlx migrations there; if you run your own `sqlx::migrate!` on the same database,
//! call `set_ignore_missing(true)` on your migrator too, so that it tolerates ours.
//!
//! [sqlx]: https://docs.rs/sqlx

use core::fmt;
use std::time::Duration;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::codec::EncodedRecord;
use super::{Loaded, SaveOutcome, Version, Versioned};
use crate::account::{TwoFactorRecord, UserId};
use crate::vocabulary::BoxError;

/// Why a SQL store could not load or save (feature `sqlite` or `postgres`).
///
/// Every variant is an infrastructure failure: the service fails closed on all of them (a login
/// is refused, nothing is written). Match on the variant to decide what to alert on; the cause
/// is kept as the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached: connecting failed, the connection broke, or the pool
    /// has been closed.
    #[error("2FA store unavailable")]
    Unavailable {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// No connection became available within the pool's acquire timeout (the database is
    /// overloaded, or down and refusing connections).
    #[error("2FA store timed out waiting for a database connection")]
    Timeout {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The database refused or failed a statement (a missing table, a constraint, a lock
    /// timeout, a server shutting down).
    #[error("2FA store database error")]
    Database {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The connection options are invalid (a malformed URL, an unusable path).
    #[error("invalid 2FA store configuration")]
    Config {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// Creating or upgrading the schema failed.
    #[error("2FA store migration failed")]
    Migration {
        /// The migrator's error.
        #[source]
        source: BoxError,
    },
    /// The stored row of `user` cannot be decoded. This is an error, never "no 2FA": the
    /// login fails closed until an operator repairs or resets the record.
    #[error("stored 2FA record of user {user} cannot be decoded")]
    Corrupt {
        /// Whose record.
        user: UserId,
        /// Why it does not decode (JSON error, negative version, column type).
        #[source]
        source: BoxError,
    },
    /// The record could not be serialized to JSON; nothing was written.
    #[error("2FA record of user {user} cannot be serialized")]
    Encode {
        /// Whose record.
        user: UserId,
        /// The serializer's error.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// Classifies a driver error from a statement or a connection attempt.
    pub(crate) fn from_sqlx(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut => StoreError::Timeout {
                source: Box::new(err),
            },
            sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable {
                source: Box::new(err),
            },
            sqlx::Error::Configuration(_) => StoreError::Config {
                source: Box::new(err),
            },
            sqlx::Error::Migrate(_) => StoreError::Migration {
                source: Box::new(err),
            },
            other => StoreError::Database {
                source: Box::new(other),
            },
        }
    }

    /// Classifies a driver error met while reading `user`'s row: decoding failures are
    /// [`StoreError::Corrupt`].
    fn from_sqlx_load(err: sqlx::Error, user: &UserId) -> Self {
        match err {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => StoreError::Corrupt {
                user: user.clone(),
                source: Box::new(err),
            },
            other => Self::from_sqlx(other),
        }
    }

    pub(crate) fn from_migrate(err: sqlx::migrate::MigrateError) -> Self {
        match err {
            sqlx::migrate::MigrateError::Execute(inner) => match Self::from_sqlx(inner) {
                // A failing statement inside a migration is a migration failure; a broken
                // connection stays what it is.
                StoreError::Database { source } => StoreError::Migration { source },
                other => other,
            },
            other => StoreError::Migration {
                source: Box::new(other),
            },
        }
    }
}

/// Connection pool settings shared by [`SqliteStore`](super::SqliteStore) and
/// [`PostgresStore`](super::PostgresStore).
///
/// ```
/// use std::time::Duration;
/// use twofactor::store::PoolConfig;
///
/// let config = PoolConfig::new()
///     .max_connections(32)
///     .acquire_timeout(Duration::from_secs(2));
/// assert_eq!(config.get_max_connections(), 32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    max_connections: u32,
    acquire_timeout: Duration,
    test_before_acquire: bool,
}

impl PoolConfig {
    /// Default pool size.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
    /// Default time to wait for a free connection before failing with
    /// [`StoreError::Timeout`]: a login should fail fast rather than hang.
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

    /// The defaults: [`Self::DEFAULT_MAX_CONNECTIONS`], [`Self::DEFAULT_ACQUIRE_TIMEOUT`].
    #[must_use]
    pub const fn new() -> Self {
        PoolConfig {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
            test_before_acquire: false,
        }
    }

    /// At most this many connections (at least 1; `0` is taken as 1).
    #[must_use]
    pub const fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = if n == 0 { 1 } else { n };
        self
    }

    /// Wait at most this long for a connection.
    #[must_use]
    pub const fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Whether to ping an idle connection before every use (off by default).
    ///
    /// A ping is one more round trip to the server per statement: it doubles the latency
    /// of a load or save on PostgreSQL. Without it, the first statement on a connection that
    /// died while idle (the server restarted) fails with [`StoreError::Unavailable`], the
    /// login fails closed, the connection is discarded, and the next call reconnects.
    /// Turn it on if you would rather pay the round trip than fail that one request.
    #[must_use]
    pub const fn test_before_acquire(mut self, on: bool) -> Self {
        self.test_before_acquire = on;
        self
    }

    /// The configured pool size.
    #[must_use]
    pub const fn get_max_connections(&self) -> u32 {
        self.max_connections
    }

    /// The configured acquire timeout.
    #[must_use]
    pub const fn get_acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    pub(crate) fn pool_options<DB: Database>(&self) -> sqlx::pool::PoolOptions<DB> {
        sqlx::pool::PoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(self.test_before_acquire)
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self::new()
    }
}

// The three statements, the same for SQLite and PostgreSQL (the record is a `TEXT` column in
// both, so neither database parses or reformats the JSON). Parameters are `$1` the user id,
// `$2` the record as JSON text, `$3` the expected version; each returns the `version` column
// (and `LOAD` the record).
const LOAD: &str = "SELECT version, record FROM twofactor_records WHERE user_id = $1";
const INSERT: &str = "INSERT INTO twofactor_records (user_id, version, record, updated_at) \
     VALUES ($1, 1, $2, CURRENT_TIMESTAMP) \
     ON CONFLICT (user_id) DO NOTHING RETURNING version";
const UPDATE: &str = "UPDATE twofactor_records \
     SET record = $2, version = version + 1, updated_at = CURRENT_TIMESTAMP \
     WHERE user_id = $1 AND version = $3 RETURNING version";

/// `SELECT version, record` of `user`, decoded. Shared by both backends.
pub(crate) async fn load<DB>(
    pool: &Pool<DB>,
    user: &UserId,
) -> Result<Option<Versioned>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: Type<DB> + for<'r> Decode<'r, DB>,
    String: Type<DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let Some((json, version)) = load_text(pool, user).await? else {
        return Ok(None);
    };
    let record = super::codec::decode_record(&json).map_err(|e| corrupt(user, e))?;
    Ok(Some(Versioned { record, version }))
}

/// `SELECT version, record` of `user`, decoded, with the text as stored.
pub(crate) async fn load_encoded<DB>(
    pool: &Pool<DB>,
    user: &UserId,
) -> Result<Option<Loaded>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: Type<DB> + for<'r> Decode<'r, DB>,
    String: Type<DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let Some((json, version)) = load_text(pool, user).await? else {
        return Ok(None);
    };
    let encoded = EncodedRecord::decode(json).map_err(|e| corrupt(user, e))?;
    Ok(Some(Loaded::Encoded(encoded, version)))
}

/// `SELECT version, record` of `user`: the text and a checked version.
async fn load_text<DB>(
    pool: &Pool<DB>,
    user: &UserId,
) -> Result<Option<(String, Version)>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: Type<DB> + for<'r> Decode<'r, DB>,
    String: Type<DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let row: Option<(i64, String)> = sqlx::query_as(LOAD)
        .bind(user.as_str())
        .fetch_optional(pool)
        .await
        .map_err(|e| StoreError::from_sqlx_load(e, user))?;
    let Some((version, json)) = row else {
        return Ok(None);
    };
    let version = u64::try_from(version)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| StoreError::Corrupt {
            user: user.clone(),
            source: Box::new(BadVersion(version)),
        })?;
    Ok(Some((json, Version(version))))
}

/// A row whose record does not decode.
fn corrupt(user: &UserId, err: super::codec::RecordCodecError) -> StoreError {
    StoreError::Corrupt {
        user: user.clone(),
        source: Box::new(err),
    }
}

/// The compare-and-swap: one conditional `INSERT` or `UPDATE`. Shared by both backends.
pub(crate) async fn save<DB>(
    pool: &Pool<DB>,
    user: &UserId,
    record: &TwoFactorRecord,
    expected: Option<Version>,
) -> Result<SaveOutcome, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB>,
    i64: Type<DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let json = super::codec::encode_record(record).map_err(|e| StoreError::Encode {
        user: user.clone(),
        source: Box::new(e),
    })?;
    save_text(pool, user, &json, expected).await
}

/// The compare-and-swap of `json`, a record's text, as it is.
pub(crate) async fn save_text<DB>(
    pool: &Pool<DB>,
    user: &UserId,
    json: &str,
    expected: Option<Version>,
) -> Result<SaveOutcome, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB>,
    i64: Type<DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let query = match expected {
        None => sqlx::query_scalar(INSERT).bind(user.as_str()).bind(json),
        Some(Version(v)) => {
            let Ok(v) = i64::try_from(v) else {
                // No stored version is above i64::MAX, so the check cannot hold.
                return Ok(SaveOutcome::Conflict);
            };
            sqlx::query_scalar(UPDATE)
                .bind(user.as_str())
                .bind(json)
                .bind(v)
        }
    };
    let new_version: Option<i64> = query
        .fetch_optional(pool)
        .await
        .map_err(StoreError::from_sqlx)?;
    match new_version {
        None => Ok(SaveOutcome::Conflict),
        Some(v) => u64::try_from(v)
            .map(|v| SaveOutcome::Saved(Version(v)))
            .map_err(|_| StoreError::Corrupt {
                user: user.clone(),
                source: Box::new(BadVersion(v)),
            }),
    }
}

const LIST_FIRST: &str = "SELECT user_id FROM twofactor_records ORDER BY user_id LIMIT $1";
const LIST_AFTER: &str = "SELECT user_id FROM twofactor_records WHERE user_id > $1 \
     ORDER BY user_id LIMIT $2";

/// One page of user ids in the column's order (the primary key's index). Shared by both
/// backends.
pub(crate) async fn list_users<DB>(
    pool: &Pool<DB>,
    after: Option<&UserId>,
    limit: usize,
) -> Result<Vec<UserId>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB>,
    i64: Type<DB>,
    String: Type<DB> + for<'r> Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let query = match after {
        None => sqlx::query_scalar(LIST_FIRST).bind(limit),
        Some(after) => sqlx::query_scalar(LIST_AFTER)
            .bind(after.as_str())
            .bind(limit),
    };
    let ids: Vec<String> = query.fetch_all(pool).await.map_err(StoreError::from_sqlx)?;
    Ok(ids.into_iter().map(UserId::new).collect())
}

/// A stored version that is not a positive number.
#[derive(Debug)]
struct BadVersion(i64);

impl fmt::Display for BadVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stored version {} is not a positive number", self.0)
    }
}

impl std::error::Error for BadVersion {}

/// Implements `UserStore` and `ListUsers` for a store type with a `pool` field by delegating
/// to the shared [`load`], [`save`] and [`list_users`].
macro_rules! impl_user_store {
    ($store:ty) => {
        impl $crate::store::UserStore for $store {
            type Error = $crate::store::sql::StoreError;

            #[tracing::instrument(skip_all, fields(user.id = %user))]
            async fn load(
                &self,
                user: &$crate::account::UserId,
            ) -> Result<Option<$crate::store::Versioned>, Self::Error> {
                $crate::store::sql::load(&self.pool, user).await
            }

            #[tracing::instrument(skip_all, fields(user.id = %user))]
            async fn save(
                &self,
                user: &$crate::account::UserId,
                record: &$crate::account::TwoFactorRecord,
                expected: Option<$crate::store::Version>,
            ) -> Result<$crate::store::SaveOutcome, Self::Error> {
                $crate::store::sql::save(&self.pool, user, record, expected).await
            }

            /// The text as stored.
            #[tracing::instrument(skip_all, fields(user.id = %user))]
            async fn load_encoded(
                &self,
                user: &$crate::account::UserId,
            ) -> Result<Option<$crate::store::Loaded>, Self::Error> {
                $crate::store::sql::load_encoded(&self.pool, user).await
            }

            /// Writes the text as it is.
            #[tracing::instrument(skip_all, fields(user.id = %user))]
            async fn save_encoded(
                &self,
                user: &$crate::account::UserId,
                record: $crate::store::codec::EncodedRecord,
                expected: Option<$crate::store::Version>,
            ) -> Result<$crate::store::SaveOutcome, Self::Error> {
                $crate::store::sql::save_text(&self.pool, user, record.text(), expected).await
            }
        }

        #[cfg(feature = "webauthn")]
        impl $crate::store::SecurityKeyIndex for $store {}

        impl $crate::store::ListUsers for $store {
            async fn list_users(
                &self,
                after: Option<&$crate::account::UserId>,
                limit: usize,
            ) -> Result<Vec<$crate::account::UserId>, Self::Error> {
                $crate::store::sql::list_users(&self.pool, after, limit).await
            }
        }
    };
}
pub(crate) use impl_user_store;

/// Migrations compiled into the library with `include_str!`, resolved as `sqlx::migrate!`
/// would resolve their files (same versions, descriptions and checksums), but without the
/// proc macro: the `macros` feature of sqlx would compile its SQLite driver, and so a second
/// bundled SQLite, for the compiler's host (twice in release builds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EmbeddedMigrations(pub(crate) &'static [(i64, &'static str, &'static str)]);

impl EmbeddedMigrations {
    pub(crate) fn migrations(self) -> Vec<sqlx::migrate::Migration> {
        use std::borrow::Cow;
        let mut migrations: Vec<_> = self
            .0
            .iter()
            .map(|&(version, description, sql)| {
                sqlx::migrate::Migration::new(
                    version,
                    Cow::Borrowed(description),
                    sqlx::migrate::MigrationType::Simple,
                    Cow::Borrowed(sql),
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect();
        migrations.sort_by_key(|m| m.version);
        migrations
    }

    /// A migrator over these migrations that tolerates the host's own sqlx migrations in the
    /// same table.
    pub(crate) async fn migrator(self) -> Result<sqlx::migrate::Migrator, StoreError> {
        let mut migrator = sqlx::migrate::Migrator::new(self)
            .await
            .map_err(StoreError::from_migrate)?;
        migrator.set_ignore_missing(true);
        Ok(migrator)
    }
}

impl<'s> sqlx::migrate::MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> core::pin::Pin<
        Box<
            dyn core::future::Future<
                    Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
                > + Send
                + 's,
        >,
    > {
        Box::pin(async move { Ok(self.migrations()) })
    }
}

#[cfg(test)]
mod embedded_tests {
    /// What `sqlx::migrate!` would have compiled in: the files resolved by sqlx itself.
    async fn from_files(dir: &str) -> Vec<sqlx::migrate::Migration> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        sqlx::migrate::Migrator::new(path)
            .await
            .unwrap()
            .iter()
            .cloned()
            .collect()
    }

    async fn same_as_the_files(embedded: super::EmbeddedMigrations, dir: &str) {
        let files = from_files(dir).await;
        let ours = embedded.migrations();
        assert!(!files.is_empty());
        assert_eq!(ours.len(), files.len(), "a migration file is not embedded");
        for (a, b) in ours.iter().zip(&files) {
            assert_eq!(a.version, b.version);
            assert_eq!(a.description, b.description);
            assert_eq!(a.migration_type, b.migration_type);
            assert_eq!(a.checksum, b.checksum, "{}", a.description);
            assert_eq!(a.no_tx, b.no_tx);
        }
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_migrations_match_their_files() {
        same_as_the_files(crate::store::sqlite::MIGRATIONS, "migrations/sqlite").await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn postgres_migrations_match_their_files() {
        same_as_the_files(crate::store::postgres::MIGRATIONS, "migrations/postgres").await;
    }
}
