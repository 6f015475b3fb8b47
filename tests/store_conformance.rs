//! Every store runs the same conformance suite: memory, SQLite in memory and on a file,
//! PostgreSQL on a throwaway server, a store with only `load` and `save` (the trait's default
//! encoded path), and `SealedStore` (secrets encrypted at rest) over SQLite, memory, the
//! run-time `DynStore` and the store with only `load` and `save`.
//!
//! - `tests/common/conformance.rs`: the `UserStore` contract (versions, compare-and-swap,
//!   insert races, lost updates, round trips);
//! - `tests/common/flows.rs`: the domain flows through the `TwoFactor` service (enroll, login,
//!   replay, recovery code, throttle) and its concurrency guarantees (one acceptance per
//!   time step, never more checks than the throttle allows);
//! - what only the SQL stores can show: corrupt rows, closed pools, gone databases, several
//!   pools on one database. All of them fail closed.
#![cfg(feature = "serde")]

mod common;

use common::stores::{Fixture, Memory};
use common::{conformance, flows};
use twofactor::account::TwoFactorRecord;

/// The empty record and a real enrolled one.
async fn samples() -> (TwoFactorRecord, TwoFactorRecord) {
    flows::sample_records().await
}

/// A record with a mailed code delivered and a resend that could not be sent (the outgoing
/// code marked not sent, the send attempts counted).
async fn mail_sample() -> TwoFactorRecord {
    flows::sample_mail_record().await
}

/// The trait-level suite for one store fixture.
macro_rules! store_conformance {
    ($name:ident, $fixture:ty) => {
        mod $name {
            use super::*;

            async fn fixture() -> $fixture {
                <$fixture>::new().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn load_of_unknown_user_is_none() {
                let f = fixture().await;
                conformance::load_unknown_is_none(&*f.store()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn insert_only_if_absent() {
                let f = fixture().await;
                conformance::insert_if_absent(&*f.store(), &samples().await.1).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn save_with_current_version_bumps_it_by_one() {
                let f = fixture().await;
                conformance::save_bumps_version_by_one(&*f.store()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stale_version_conflicts_and_writes_nothing() {
                let f = fixture().await;
                let (a, b) = samples().await;
                conformance::stale_version_conflicts(&*f.store(), &a, &b).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn round_trip_preserves_the_record() {
                let f = fixture().await;
                let (a, b) = samples().await;
                let c = mail_sample().await;
                conformance::round_trip(&*f.store(), &[a.clone(), b, c.clone(), a, c]).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn encoded_path_agrees_with_load_and_save() {
                let f = fixture().await;
                let (a, b) = samples().await;
                let c = mail_sample().await;
                conformance::encoded_path(&*f.store(), &[a.clone(), b, c, a]).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn users_are_independent() {
                let f = fixture().await;
                let (a, b) = samples().await;
                conformance::users_are_independent(&*f.store(), &a, &b).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn racing_inserts_exactly_one_wins() {
                let f = fixture().await;
                conformance::concurrent_insert_race(f.store(), 16).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_increments_lose_no_update() {
                let f = fixture().await;
                conformance::no_lost_update(f.store(), 32).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn service_enroll_login_replay_refused() {
                let f = fixture().await;
                flows::enroll_login_replay(f.store()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn service_full_login_is_one_write() {
                let f = fixture().await;
                flows::full_login_is_one_write(f.store()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn service_several_authenticators() {
                let f = fixture().await;
                flows::several_authenticators(f.store()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn service_recovery_code_works_once() {
                let f = fixture().await;
                flows::recovery_code_once(f.store()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn service_throttle() {
                let f = fixture().await;
                flows::throttle(f.store()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn service_same_code_from_16_clients_is_accepted_once_per_step() {
                let f = fixture().await;
                flows::same_code_storm(f.store(), 16, 1_000, 3).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn service_wrong_codes_from_16_clients_never_exceed_the_throttle() {
                let f = fixture().await;
                flows::wrong_code_storm(f.store(), 16, 320).await;
            }
        }
    };
}

/// What only the SQL stores can be asked: corrupt rows, closing, migrations.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
macro_rules! sql_conformance {
    ($name:ident, $fixture:ty) => {
        mod $name {
            use super::*;
            use common::stores::SqlFixture;
            use twofactor::store::{StoreError, UserStore, Version};
            use twofactor::UserId;

            async fn fixture() -> $fixture {
                <$fixture>::new().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn corrupt_row_is_an_error_not_none() {
                let f = fixture().await;
                let user = UserId::new("mangled");
                f.write_garbage(&user).await;
                conformance::corrupt_row_is_an_error(&*f.store(), &user, |e| {
                    matches!(e, StoreError::Corrupt { user: u, .. } if *u == user)
                        && std::error::Error::source(e).is_some()
                })
                .await;
                flows::unreadable_record_refuses_login(f.store(), &user).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn closed_pool_fails_closed() {
                let f = fixture().await;
                let user = UserId::new("enrolled");
                let store = f.store();
                let v = conformance::saved(
                    store.save(&user, &samples().await.1, None).await.expect("save"),
                    "insert",
                );
                f.close().await;
                conformance::gone_database_fails_closed(&*store, &user, v, |e| {
                    matches!(e, StoreError::Unavailable { .. })
                })
                .await;
                flows::unreadable_record_refuses_login(store, &user).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rows_of_formats_1_to_4_load_as_one_authenticator_and_log_in() {
                let f = fixture().await;
                flows::old_rows_load_and_log_in(&f).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn migrate_is_idempotent_and_keeps_data() {
                let f = fixture().await;
                let store = f.store();
                let user = UserId::new("kept");
                let v = conformance::saved(
                    store.save(&user, &samples().await.1, None).await.expect("save"),
                    "insert",
                );
                store.migrate().await.expect("second migrate");
                store.migrate().await.expect("third migrate");
                let loaded = store.load(&user).await.expect("load").expect("record");
                assert_eq!(loaded.version, v);
                assert_eq!(loaded.version, Version(1));
            }
        }
    };
}

/// Listing users (for `seal::reseal`), on every store that can: the built-in ones and the
/// sealed wrapper over them (`DynStore` and test-only wrappers do not list).
macro_rules! list_conformance {
    ($name:ident, $fixture:ty) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn store_lists_its_users_page_by_page() {
                let f = <$fixture>::new().await;
                conformance::list_users_pages_through_everyone(&*f.store()).await;
            }
        }
    };
}

store_conformance!(memory, Memory);
list_conformance!(memory_lists, Memory);
#[cfg(feature = "sqlite")]
list_conformance!(sqlite_file_lists, common::stores::SqliteFile);
#[cfg(all(feature = "seal", feature = "sqlite"))]
list_conformance!(sealed_sqlite_lists, common::stores::SealedSqlite);
#[cfg(feature = "seal")]
list_conformance!(sealed_memory_lists, common::stores::SealedMemory);
#[cfg(feature = "postgres")]
list_conformance!(postgres_lists, common::stores::Postgres);

/// Records with security keys (feature `webauthn`): registered, logged in with, round trips,
/// and a credential id looked up across users through the store ([`SecurityKeyIndex`]).
///
/// [`SecurityKeyIndex`]: twofactor::store::SecurityKeyIndex
#[cfg(feature = "webauthn")]
macro_rules! key_conformance {
    ($name:ident, $fixture:ty) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn records_with_security_keys() {
                let f = <$fixture>::new().await;
                common::keys::security_keys_on_store(f.store()).await;
            }
        }
    };
}

#[cfg(feature = "webauthn")]
key_conformance!(memory_keys, Memory);
#[cfg(all(feature = "webauthn", feature = "sqlite"))]
key_conformance!(sqlite_file_keys, common::stores::SqliteFile);
#[cfg(all(feature = "webauthn", feature = "seal", feature = "sqlite"))]
key_conformance!(sealed_sqlite_keys, common::stores::SealedSqlite);
#[cfg(all(feature = "webauthn", feature = "seal"))]
key_conformance!(sealed_memory_keys, common::stores::SealedMemory);
#[cfg(all(feature = "webauthn", feature = "postgres"))]
key_conformance!(postgres_keys, common::stores::Postgres);

#[cfg(feature = "sqlite")]
store_conformance!(sqlite_memory, common::stores::SqliteMemory);
#[cfg(feature = "sqlite")]
sql_conformance!(sqlite_memory_sql, common::stores::SqliteMemory);
#[cfg(feature = "sqlite")]
store_conformance!(sqlite_file, common::stores::SqliteFile);
#[cfg(feature = "sqlite")]
sql_conformance!(sqlite_file_sql, common::stores::SqliteFile);

#[cfg(all(feature = "seal", feature = "sqlite"))]
store_conformance!(sealed_sqlite, common::stores::SealedSqlite);
#[cfg(feature = "seal")]
store_conformance!(sealed_memory, common::stores::SealedMemory);
#[cfg(feature = "seal")]
store_conformance!(sealed_plain_only, common::stores::SealedPlainOnly);
#[cfg(feature = "seal")]
store_conformance!(sealed_dyn, common::stores::SealedDyn);
// The memory store's own encoded path and the trait's defaults, under the same suite.
store_conformance!(plain_only, common::stores::PlainOnlyMemory);

#[cfg(feature = "postgres")]
store_conformance!(postgres, common::stores::Postgres);
#[cfg(feature = "postgres")]
sql_conformance!(postgres_sql, common::stores::Postgres);

/// SQLite-specific behaviour: the file, several pools on it, a garbage file.
#[cfg(feature = "sqlite")]
mod sqlite_specific {
    use std::sync::Arc;

    use super::*;
    use common::conformance::{RoundRobin, saved};
    use common::stores::{SqliteFile, TempDir};
    use twofactor::UserId;
    use twofactor::store::{SqliteStore, StoreError, UserStore, Version};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_survive_reopening_the_file() {
        let f = SqliteFile::new().await;
        let user = UserId::new("durable");
        let v = saved(
            f.store()
                .save(&user, &samples().await.1, None)
                .await
                .expect("save"),
            "insert",
        );
        f.store().close().await;
        let reopened = SqliteStore::open(f.file()).await.expect("reopen");
        let loaded = reopened.load(&user).await.expect("load").expect("record");
        assert_eq!(loaded.version, v);
        reopened.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_pools_on_one_file_lose_no_update() {
        // Two stores on one file stand for two processes sharing the database.
        let f = SqliteFile::new().await;
        let other = SqliteStore::open(f.file()).await.expect("second pool");
        let both = Arc::new(RoundRobin::new(vec![f.store(), Arc::new(other)]));
        conformance::no_lost_update(both.clone(), 24).await;
        conformance::concurrent_insert_race(both, 8).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garbage_database_file_fails_closed() {
        let dir = TempDir::new("twofactor-sqlite-garbage");
        let file = dir.path().join("2fa.db");
        // Not an SQLite file: what a disk error or a stray write leaves behind.
        std::fs::write(&file, vec![0x5a; 64 * 1024]).expect("write a garbage file");

        let err = SqliteStore::open(&file)
            .await
            .expect_err("open of a garbage file");
        assert!(
            matches!(
                err,
                StoreError::Migration { .. } | StoreError::Database { .. }
            ),
            "{err:?}"
        );

        // A store handed a pool on the garbage file (no migrate) refuses every call.
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&file))
            .await
            .expect("connecting does not read the file yet");
        let store = SqliteStore::from_pool(pool);
        conformance::gone_database_fails_closed(&store, &UserId::new("a"), Version(1), |e| {
            matches!(e, StoreError::Database { .. })
        })
        .await;
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_without_table_fails_closed() {
        // `from_pool` without `migrate`: a missing table is an error, not "no 2FA".
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(sqlx::sqlite::SqliteConnectOptions::new().in_memory(true))
            .await
            .expect("in-memory pool");
        let store = SqliteStore::from_pool(pool);
        conformance::gone_database_fails_closed(&store, &UserId::new("a"), Version(1), |e| {
            matches!(e, StoreError::Database { .. })
        })
        .await;
    }
}

/// PostgreSQL-specific behaviour: a stopped server, several pools (app servers), bad URLs.
#[cfg(feature = "postgres")]
mod postgres_specific {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use common::conformance::{RoundRobin, saved};
    use common::pg::{Durability, PgServer};
    use common::stores::Postgres;
    use twofactor::UserId;
    use twofactor::store::{PoolConfig, PostgresStore, StoreError, UserStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopped_server_fails_closed() {
        let server = PgServer::start(Durability::Fast);
        let url = server.fresh_database("gone").await;
        let config = PoolConfig::new().acquire_timeout(Duration::from_millis(500));
        let store = PostgresStore::connect_with(&url, config)
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let user = UserId::new("enrolled");
        let v = saved(
            store
                .save(&user, &samples().await.1, None)
                .await
                .expect("save"),
            "insert",
        );
        assert!(store.load(&user).await.expect("load").is_some());

        server.stop();
        let started = Instant::now();
        conformance::gone_database_fails_closed(&store, &user, v, |e| {
            matches!(
                e,
                StoreError::Timeout { .. }
                    | StoreError::Unavailable { .. }
                    | StoreError::Database { .. }
            )
        })
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "failing closed took {:?}: the acquire timeout is not honoured",
            started.elapsed()
        );
        flows::unreadable_record_refuses_login(Arc::new(store), &user).await;
        let root = server.root().to_owned();
        drop(server);
        assert!(!root.exists(), "the server's directory is removed on drop");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_server_is_an_error() {
        let port = PgServer::shared().port();
        // Nobody listens on the port after a just-closed listener (best effort): the
        // connect must fail with a typed error within the acquire timeout.
        let free = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        assert_ne!(port, free);
        let config = PoolConfig::new().acquire_timeout(Duration::from_millis(300));
        let err =
            PostgresStore::connect_with(&format!("postgres://postgres@127.0.0.1:{free}/x"), config)
                .await
                .expect_err("nobody listens there");
        assert!(
            matches!(
                err,
                StoreError::Timeout { .. } | StoreError::Unavailable { .. }
            ),
            "{err:?}"
        );

        let err = PostgresStore::connect("postgres://postgres@127.0.0.1:no-port/x")
            .await
            .expect_err("malformed URL");
        assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_app_servers_lose_no_update() {
        // Two pools on one database stand for two app servers.
        let f = Postgres::new().await;
        let other = PostgresStore::connect(f.url()).await.expect("second pool");
        let both = Arc::new(RoundRobin::new(vec![f.store(), Arc::new(other)]));
        conformance::no_lost_update(both.clone(), 32).await;
        conformance::concurrent_insert_race(both, 16).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unix_socket_url_reaches_the_same_rows() {
        // The documented same-host set-up: `?host=<socket directory>` in the URL.
        let f = Postgres::new().await;
        let url = PgServer::shared().socket_url(f.url());
        let unix = PostgresStore::connect(&url)
            .await
            .expect("connect over the socket");
        let client_addr: Option<String> = sqlx::query_scalar("SELECT inet_client_addr()::text")
            .fetch_one(unix.pool())
            .await
            .expect("query");
        assert_eq!(
            client_addr, None,
            "a Unix-socket session has no client address"
        );
        let tcp_addr: Option<String> = sqlx::query_scalar("SELECT inet_client_addr()::text")
            .fetch_one(f.store().pool())
            .await
            .expect("query");
        assert_eq!(tcp_addr.as_deref(), Some("127.0.0.1/32"));
        let both = Arc::new(RoundRobin::new(vec![f.store(), Arc::new(unix)]));
        conformance::no_lost_update(both, 32).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upgrade_from_the_jsonb_column_keeps_records() {
        // A table made by the first migration alone (record as JSONB), holding a row.
        let url = PgServer::shared().fresh_database("upgrade").await;
        let store = PostgresStore::connect(&url).await.expect("connect");
        sqlx::raw_sql(include_str!(
            "../migrations/postgres/20250601000000_twofactor_records.sql"
        ))
        .execute(store.pool())
        .await
        .expect("first migration");
        let record = samples().await.1;
        let json = serde_json::to_string(&record).expect("json");
        sqlx::query(
            "INSERT INTO twofactor_records (user_id, version, record) VALUES ($1, 7, $2::jsonb)",
        )
        .bind("old")
        .bind(&json)
        .execute(store.pool())
        .await
        .expect("old row");

        store.migrate().await.expect("upgrade");
        let kind: String = sqlx::query_scalar(
            "SELECT data_type FROM information_schema.columns \
             WHERE table_name = 'twofactor_records' AND column_name = 'record'",
        )
        .fetch_one(store.pool())
        .await
        .expect("query");
        assert_eq!(kind, "text");
        let loaded = store
            .load(&UserId::new("old"))
            .await
            .expect("load")
            .expect("the row survived");
        assert_eq!(loaded.version, twofactor::store::Version(7));
        assert_eq!(
            serde_json::to_value(&loaded.record).expect("json"),
            serde_json::to_value(&record).expect("json")
        );
        store.migrate().await.expect("idempotent");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn record_is_stored_as_json_text_operators_can_query() {
        let f = Postgres::new().await;
        let user = UserId::new("typed");
        saved(
            f.store()
                .save(&user, &samples().await.1, None)
                .await
                .expect("save"),
            "insert",
        );
        let kind: String = sqlx::query_scalar(
            "SELECT jsonb_typeof(record::jsonb -> 'authenticators') FROM twofactor_records WHERE user_id = $1",
        )
        .bind(user.as_str())
        .fetch_one(f.store().pool())
        .await
        .expect("query");
        assert_eq!(kind, "array");
    }
}

/// The suite itself: a store without compare-and-swap must fail it.
mod suite_catches_a_broken_store {
    use std::sync::Arc;

    use super::*;
    use common::conformance::LastWriterWins;
    use twofactor::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[should_panic(expected = "lost update")]
    async fn lost_updates() {
        let store = Arc::new(LastWriterWins(MemoryStore::new()));
        conformance::no_lost_update(store, 32).await;
    }

    // Caught one of two ways: usually several acceptances of the one code; when the
    // schedule happens not to interleave, no save ever conflicted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[should_panic]
    async fn replayed_codes() {
        let store = Arc::new(LastWriterWins(MemoryStore::new()));
        flows::same_code_storm(store, 16, 1_000, 1).await;
    }
}
