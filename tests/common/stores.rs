//! One fixture per store: a fresh, empty, migrated store for one test, cleaned up on drop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use twofactor::MemoryStore;
use twofactor::store::UserStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use twofactor::{UserId, store::StoreError};

/// A fresh store for one test.
pub trait Fixture: Send + Sync + Sized + 'static {
    /// The store under test.
    type Store: UserStore + 'static;
    /// Shared handle to the store (tasks of concurrency tests each hold one).
    fn store(&self) -> Arc<Self::Store>;
}

/// What the SQL stores can do beyond the trait: raw SQL to corrupt a row, and closing.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub trait SqlFixture: Fixture<Store: UserStore<Error = StoreError>> {
    /// Writes a row for `user` whose record is not a `TwoFactorRecord`, bypassing the store.
    fn write_garbage(&self, user: &UserId) -> impl Future<Output = ()> + Send;
    /// Closes the store's pool.
    fn close(&self) -> impl Future<Output = ()> + Send;
    /// Writes `json` as `user`'s row at `version`, as an older version of the crate wrote it,
    /// bypassing the store.
    fn write_row(&self, user: &UserId, version: i64, json: &str)
    -> impl Future<Output = ()> + Send;
}

/// [`MemoryStore`].
pub struct Memory(Arc<MemoryStore>);

impl Memory {
    pub async fn new() -> Self {
        Memory(Arc::new(MemoryStore::new()))
    }
}

impl Fixture for Memory {
    type Store = MemoryStore;
    fn store(&self) -> Arc<MemoryStore> {
        self.0.clone()
    }
}

/// `SealedStore` over an in-memory SQLite store (so the sealed secrets go through the JSON
/// the SQL stores write), with a fixed test key.
#[cfg(all(feature = "seal", feature = "sqlite"))]
pub struct SealedSqlite(Arc<SealedSqliteStore>);

/// The store of [`SealedSqlite`].
#[cfg(all(feature = "seal", feature = "sqlite"))]
pub type SealedSqliteStore =
    twofactor::seal::SealedStore<twofactor::SqliteStore, twofactor::seal::Keyring>;

#[cfg(all(feature = "seal", feature = "sqlite"))]
impl SealedSqlite {
    pub async fn new() -> Self {
        let inner = twofactor::SqliteStore::in_memory()
            .await
            .expect("in-memory store");
        let keyring = twofactor::seal::Keyring::new("test-1", &[42; 32]).expect("key");
        SealedSqlite(Arc::new(twofactor::seal::SealedStore::new(inner, keyring)))
    }
}

#[cfg(all(feature = "seal", feature = "sqlite"))]
impl Fixture for SealedSqlite {
    type Store = SealedSqliteStore;
    fn store(&self) -> Arc<SealedSqliteStore> {
        self.0.clone()
    }
}

/// `SealedStore` over the memory store, which keeps what the sealed store encoded (its
/// encoded path).
#[cfg(feature = "seal")]
pub struct SealedMemory(Arc<SealedMemoryStore>);

/// The store of [`SealedMemory`].
#[cfg(feature = "seal")]
pub type SealedMemoryStore = twofactor::seal::SealedStore<MemoryStore, twofactor::seal::Keyring>;

#[cfg(feature = "seal")]
impl SealedMemory {
    pub async fn new() -> Self {
        let keyring = twofactor::seal::Keyring::new("test-1", &[42; 32]).expect("key");
        SealedMemory(Arc::new(twofactor::seal::SealedStore::new(
            MemoryStore::new(),
            keyring,
        )))
    }
}

#[cfg(feature = "seal")]
impl Fixture for SealedMemory {
    type Store = SealedMemoryStore;
    fn store(&self) -> Arc<SealedMemoryStore> {
        self.0.clone()
    }
}

/// A store that implements only `load` and `save` (a third-party store written before the
/// encoded path existed): the trait's defaults serve `load_encoded` and `save_encoded`.
pub struct PlainOnly<S>(pub S);

impl<S: UserStore> UserStore for PlainOnly<S> {
    type Error = S::Error;

    async fn load(
        &self,
        user: &twofactor::UserId,
    ) -> Result<Option<twofactor::store::Versioned>, S::Error> {
        self.0.load(user).await
    }

    async fn save(
        &self,
        user: &twofactor::UserId,
        record: &twofactor::account::TwoFactorRecord,
        expected: Option<twofactor::store::Version>,
    ) -> Result<twofactor::store::SaveOutcome, S::Error> {
        self.0.save(user, record, expected).await
    }
}

/// The memory store behind [`PlainOnly`].
pub struct PlainOnlyMemory(Arc<PlainOnly<MemoryStore>>);

impl PlainOnlyMemory {
    pub async fn new() -> Self {
        PlainOnlyMemory(Arc::new(PlainOnly(MemoryStore::new())))
    }
}

impl Fixture for PlainOnlyMemory {
    type Store = PlainOnly<MemoryStore>;
    fn store(&self) -> Arc<PlainOnly<MemoryStore>> {
        self.0.clone()
    }
}

/// `SealedStore` over a store without the encoded path: the sealed store encodes the loaded
/// record itself to check its tag.
#[cfg(feature = "seal")]
pub struct SealedPlainOnly(Arc<SealedPlainOnlyStore>);

/// The store of [`SealedPlainOnly`].
#[cfg(feature = "seal")]
pub type SealedPlainOnlyStore =
    twofactor::seal::SealedStore<PlainOnly<MemoryStore>, twofactor::seal::Keyring>;

#[cfg(feature = "seal")]
impl SealedPlainOnly {
    pub async fn new() -> Self {
        let keyring = twofactor::seal::Keyring::new("test-1", &[42; 32]).expect("key");
        let inner = PlainOnly(MemoryStore::new());
        SealedPlainOnly(Arc::new(twofactor::seal::SealedStore::new(inner, keyring)))
    }
}

#[cfg(feature = "seal")]
impl Fixture for SealedPlainOnly {
    type Store = SealedPlainOnlyStore;
    fn store(&self) -> Arc<SealedPlainOnlyStore> {
        self.0.clone()
    }
}

/// `SealedStore` over the memory store chosen at run time (`DynStore`), whose encoded path
/// goes through the boxed adapter.
#[cfg(feature = "seal")]
pub struct SealedDyn(Arc<SealedDynStore>);

/// The store of [`SealedDyn`].
#[cfg(feature = "seal")]
pub type SealedDynStore =
    twofactor::seal::SealedStore<twofactor::store::DynStore, twofactor::seal::Keyring>;

#[cfg(feature = "seal")]
impl SealedDyn {
    pub async fn new() -> Self {
        let keyring = twofactor::seal::Keyring::new("test-1", &[42; 32]).expect("key");
        let inner: twofactor::store::DynStore = Arc::new(MemoryStore::new());
        SealedDyn(Arc::new(twofactor::seal::SealedStore::new(inner, keyring)))
    }
}

#[cfg(feature = "seal")]
impl Fixture for SealedDyn {
    type Store = SealedDynStore;
    fn store(&self) -> Arc<SealedDynStore> {
        self.0.clone()
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteFile, SqliteMemory};

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use twofactor::store::SqliteStore;

    async fn write_row(store: &SqliteStore, user: &UserId, version: i64, json: &str) {
        sqlx::query("INSERT INTO twofactor_records (user_id, version, record) VALUES ($1, $2, $3)")
            .bind(user.as_str())
            .bind(version)
            .bind(json)
            .execute(store.pool())
            .await
            .expect("write a row");
    }

    async fn write_garbage(store: &SqliteStore, user: &UserId) {
        sqlx::query("INSERT INTO twofactor_records (user_id, version, record) VALUES ($1, 1, $2)")
            .bind(user.as_str())
            .bind("{ this is not json")
            .execute(store.pool())
            .await
            .expect("write a corrupt row");
    }

    /// `SqliteStore::in_memory()`.
    pub struct SqliteMemory(Arc<SqliteStore>);

    impl SqliteMemory {
        pub async fn new() -> Self {
            SqliteMemory(Arc::new(
                SqliteStore::in_memory().await.expect("in-memory store"),
            ))
        }
    }

    impl Fixture for SqliteMemory {
        type Store = SqliteStore;
        fn store(&self) -> Arc<SqliteStore> {
            self.0.clone()
        }
    }

    impl SqlFixture for SqliteMemory {
        async fn write_garbage(&self, user: &UserId) {
            write_garbage(&self.0, user).await;
        }
        async fn write_row(&self, user: &UserId, version: i64, json: &str) {
            write_row(&self.0, user, version, json).await;
        }
        async fn close(&self) {
            self.0.close().await;
        }
    }

    /// `SqliteStore::open(path)` on a file in a fresh temp dir.
    pub struct SqliteFile {
        store: Arc<SqliteStore>,
        file: PathBuf,
        // Dropped after the store field: the pool goes first.
        dir: TempDir,
    }

    impl SqliteFile {
        pub async fn new() -> Self {
            let dir = TempDir::new("twofactor-sqlite");
            let file = dir.path().join("nested").join("2fa.db");
            std::fs::create_dir_all(dir.path().join("nested")).expect("create dir");
            let store = SqliteStore::open(&file).await.expect("open SQLite file");
            SqliteFile {
                store: Arc::new(store),
                file,
                dir,
            }
        }
        pub fn file(&self) -> &Path {
            &self.file
        }
    }

    impl Fixture for SqliteFile {
        type Store = SqliteStore;
        fn store(&self) -> Arc<SqliteStore> {
            self.store.clone()
        }
    }

    impl SqlFixture for SqliteFile {
        async fn write_garbage(&self, user: &UserId) {
            write_garbage(&self.store, user).await;
        }
        async fn write_row(&self, user: &UserId, version: i64, json: &str) {
            write_row(&self.store, user, version, json).await;
        }
        async fn close(&self) {
            self.store.close().await;
        }
    }
}

#[cfg(feature = "postgres")]
pub use postgres::Postgres;

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::common::pg::PgServer;
    use twofactor::store::{PoolConfig, PostgresStore};

    /// `PostgresStore` on a fresh database of the process's shared throwaway server.
    pub struct Postgres {
        store: Arc<PostgresStore>,
        url: String,
    }

    impl Postgres {
        pub async fn new() -> Self {
            Self::with_pool(16).await
        }

        pub async fn with_pool(max_connections: u32) -> Self {
            let url = PgServer::shared().fresh_database("conformance").await;
            let config = PoolConfig::new().max_connections(max_connections);
            let store = PostgresStore::connect_with(&url, config)
                .await
                .expect("connect to the test server");
            store.migrate().await.expect("migrate");
            Postgres {
                store: Arc::new(store),
                url,
            }
        }

        pub fn url(&self) -> &str {
            &self.url
        }
    }

    impl Fixture for Postgres {
        type Store = PostgresStore;
        fn store(&self) -> Arc<PostgresStore> {
            self.store.clone()
        }
    }

    impl SqlFixture for Postgres {
        async fn write_garbage(&self, user: &UserId) {
            sqlx::query(
                "INSERT INTO twofactor_records (user_id, version, record) VALUES ($1, 1, $2)",
            )
            .bind(user.as_str())
            .bind("\"this is not a record\"")
            .execute(self.store.pool())
            .await
            .expect("write a corrupt row");
        }
        async fn write_row(&self, user: &UserId, version: i64, json: &str) {
            sqlx::query(
                "INSERT INTO twofactor_records (user_id, version, record) VALUES ($1, $2, $3)",
            )
            .bind(user.as_str())
            .bind(version)
            .bind(json)
            .execute(self.store.pool())
            .await
            .expect("write a row");
        }
        async fn close(&self) {
            self.store.close().await;
        }
    }
}
